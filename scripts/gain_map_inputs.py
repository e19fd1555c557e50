"""Photos that record their own highlights: what keeping an Ultra HDR gain map gains.

Phones that write Ultra HDR keep highlights up to some headroom above the photo's white.
Here each held-out pool view (the validation script's simulated photos) becomes such a
phone photo: its base is the simulated photo, its HDR rendition the truth cut at
``--headroom`` stops above white, written as an Ultra HDR JPEG by mlx-hdr's own writer and
read back as ``mlx-hdr predict`` reads one (``io.uhdr_input.recorded_gain``). Side by side
(``scripts/validate_model.py``'s metrics, against the uncut truth):

- the linearised photo, ``kovaleski2014`` and the model from the photo alone
  (``--no-input-gain-map``);
- the recorded rendition alone;
- the default: the rendition, with the model where it is cut (``infer.recorded``).

    python scripts/gain_map_inputs.py --pool ../shared/data/hdr-pool \\
        --pool ../shared/data/hdr-pool-2 -n 64 --headroom 1 --headroom 2 --headroom 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlx_hdr import backend  # noqa: E402

backend.setup()

from sim_sets import POOL_VIEWS, pool_cases  # noqa: E402
from validate_model import aligned, gain_error  # noqa: E402

from mlx_hdr.eval.metrics import hdr_metrics  # noqa: E402
from mlx_hdr.infer.model_hub import load_net  # noqa: E402
from mlx_hdr.infer.pipeline import predict_hdr  # noqa: E402
from mlx_hdr.infer.recorded import SATURATION, recorded_hdr, with_recorded  # noqa: E402
from mlx_hdr.io.uhdr import encode_uhdr  # noqa: E402
from mlx_hdr.io.uhdr_input import recorded_gain  # noqa: E402

KEYS = ("pu21_psnr", "highlight_log2", "gain_err", "log_psnr", "log_ssim")


def phone_gain(ldr: np.ndarray, hdr: np.ndarray, headroom: float, folder: Path) -> np.ndarray:
    """The recorded gain of an Ultra HDR JPEG whose base is ``ldr`` and whose rendition is the
    truth ``hdr`` (aligned to the photo) cut at ``headroom`` stops, as read back from disk."""
    rendition = np.minimum(aligned(hdr, ldr), 2.0**headroom)
    data, _ = encode_uhdr(ldr, rendition.astype(np.float32))
    path = folder / "phone.jpg"
    path.write_bytes(data)
    return recorded_gain(path)


def scores(pred: np.ndarray, hdr: np.ndarray, ldr: np.ndarray) -> list[float]:
    m = hdr_metrics(pred, hdr, ldr)
    m["gain_err"] = gain_error(pred, hdr, ldr)
    return [float(m[k]) for k in KEYS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", action="append", required=True, help="HDR pool folder(s)")
    ap.add_argument("-n", type=int, default=POOL_VIEWS, help="held-out views")
    ap.add_argument("--model", default="mlx_hdr/assets/default.safetensors")
    ap.add_argument("--headroom", type=float, action="append", help="stops kept above white")
    ap.add_argument(
        "--saturation", type=float, action="append", help="cut ramps to try, stops (SATURATION)"
    )
    args = ap.parse_args()
    net = load_net(args.model)[0]
    cases = pool_cases(args.pool, args.n)
    rows: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ldr, hdr in cases:
            model = predict_hdr(ldr, net)
            preds = {
                "linearised photo": predict_hdr(ldr, method="linear"),
                "kovaleski2014": predict_hdr(ldr, method="kovaleski2014"),
                "model, photo alone": model,
            }
            for stops in args.headroom or [2.0]:
                gain = phone_gain(ldr, hdr, stops, Path(tmp))
                preds[f"recorded, {stops:g} stops"] = recorded_hdr(ldr, gain)
                for sat in args.saturation or [SATURATION]:
                    name = f"recorded + model, {stops:g} stops, ramp {sat:g}"
                    preds[name] = with_recorded(ldr, model, gain, sat)
            for name, pred in preds.items():
                rows.setdefault(name, []).append(scores(pred, hdr, ldr))
    print(f"held-out pool views ({len(cases)})\n")
    print("| input | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 1) + "|")
    for name, vals in rows.items():
        mean = np.nanmean(np.array(vals), axis=0)
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in mean) + " |")


if __name__ == "__main__":
    main()
