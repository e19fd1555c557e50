"""Speed of the hybrid model on this machine: MLX (eager, compiled, without OpenBLAS) vs a
PyTorch twin (``scripts/torch_twin.py``). Prints one markdown table.

Every row runs in its own subprocess (clean peak memory, the OpenBLAS switch applies at
import): MLX rows with this interpreter, torch rows with ``--torch-python`` (default
``$TORCH_PYTHON``, else ``python3``; rows are skipped if it has no torch).
Times are medians over ``--repeats`` runs after ``--warmup`` runs; weights are random.

    .venv/bin/python scripts/benchmark.py                 # all rows (~4 min when idle)
    .venv/bin/python scripts/benchmark.py --quick         # 3 repeats, no compiled rows
    .venv/bin/python scripts/benchmark.py --rows fwd512   # rows whose id contains a string
    .venv/bin/python scripts/benchmark.py --framework mlx # MLX rows only
    .venv/bin/python scripts/benchmark.py --profile       # per-op-type MLX breakdown
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from functools import partial
from pathlib import Path

from bench_timing import timed

ROOT = Path(__file__).resolve().parents[1]
TORCH_PYTHON = os.environ.get("TORCH_PYTHON", "python3")

# id: (framework, task, size, batch, variant)
ROWS = {
    "fwd224-mlx": ("mlx", "forward", 224, 1, "eager"),
    "fwd224-mlx-compiled": ("mlx", "forward", 224, 1, "compiled"),
    "fwd224-mlx-noblas": ("mlx", "forward", 224, 1, "no-openblas"),
    "fwd224-torch": ("torch", "forward", 224, 1, "eager"),
    "fwd512-mlx": ("mlx", "forward", 512, 1, "eager"),
    "fwd512-mlx-1stream": ("mlx", "forward", 512, 1, "eager, model(x), 1 stream"),
    "fwd512-mlx-compiled": ("mlx", "forward", 512, 1, "compiled"),
    "fwd512-mlx-plainconv": ("mlx", "forward", 512, 1, "plain mx.conv2d"),
    "fwd512-mlx-glibc": ("mlx", "forward", 512, 1, "glibc malloc defaults"),
    "fwd512-torch": ("torch", "forward", 512, 1, "eager"),
    "fwd512-torch-tuned": ("torch", "forward", 512, 1, "eager, malloc as mlx_hdr"),
    "train256-mlx": ("mlx", "train step", 256, 4, "eager, 1 stream"),
    "train256-mlx-2streams": ("mlx", "train step", 256, 4, "eager, 2 streams"),
    "train256-mlx-nowino": ("mlx", "train step", 256, 4, "no-winograd, 2 streams"),
    "train256-mlx-plainconv": ("mlx", "train step", 256, 4, "plain mx.conv2d, 1 stream"),
    "train256-mlx-compiled": ("mlx", "train step", 256, 4, "compiled"),
    "train256-mlx-glibc": ("mlx", "train step", 256, 4, "1 stream, glibc malloc defaults"),
    "train256-torch": ("torch", "train step", 256, 4, "eager"),
    "train256-torch-tuned": ("torch", "train step", 256, 4, "eager, malloc as mlx_hdr"),
}


# ---------------------------------------------------------------- MLX rows


def build_mlx_model():
    """The default hybrid model with random weights, accelerated for the CPU."""
    from mlx_hdr import backend

    backend.setup()  # before mlx.core loads (a no-op once done)
    # isort: split
    from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig

    return backend.accelerate(HybridAutoencoder(HybridConfig()))


def mlx_row(task: str, size: int, batch: int, variant: str, warmup: int, repeats: int):
    from mlx_hdr import backend

    backend.setup()  # before mlx.core loads
    # isort: split
    import mlx.core as mx

    mx.random.seed(0)
    model = build_mlx_model()
    x = mx.random.normal((batch, size, size, 3))
    if task == "forward":
        model.eval()
        # eager: backend.infer, the inference path (blocks split over 2 CPU streams); else model(x)
        fwd = partial(backend.infer, model) if variant == "eager" else model
        fwd = mx.compile(model) if variant == "compiled" else fwd

        def fn():
            mx.eval(fwd(x))

    else:
        fn = _mlx_train_fn(model, x, variant)
    mx.eval(model.parameters())
    mx.reset_peak_memory()
    times = timed(fn, warmup, repeats)
    return times, mx.get_peak_memory() / 2**20


def _mlx_train_fn(model, x, variant: str):
    import mlx.core as mx
    import mlx.optimizers as optim

    from mlx_hdr import backend
    from mlx_hdr.models.lpips import LPIPS
    from mlx_hdr.train.step import make_train_step

    model.train()
    lpips = backend.accelerate(LPIPS())
    opt = optim.Adam(learning_rate=1e-4, betas=[0.5, 0.999])
    streams = 2 if "2 streams" in variant else 1
    compiled = variant == "compiled"
    step = make_train_step(model, opt, lpips=lpips, compile=compiled, streams=streams)
    target = mx.tanh(mx.random.normal(x.shape))
    mask = mx.zeros((*x.shape[:3], 1))
    mx.eval(lpips.parameters(), target)

    def fn():
        with backend.blas_threads(1) if streams > 1 else contextlib.nullcontext():
            loss, _, norm = step(x, target, mask)
            mx.eval(loss, norm, model.state, opt.state)

    return fn


# ---------------------------------------------------------------- torch rows


def torch_row(task: str, size: int, batch: int, variant: str, warmup: int, repeats: int):
    import resource

    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from torch_twin import HybridTwin, LPIPSTwin, hybrid_loss

    torch.manual_seed(0)
    model = HybridTwin()
    x = torch.randn(batch, 3, size, size)
    if task == "forward":
        model.eval()

        def fn():
            with torch.inference_mode():
                model(x)

    else:
        model.train()
        lpips = LPIPSTwin()
        opt = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.5, 0.999)
        )
        target = torch.tanh(torch.randn_like(x))

        def fn():
            opt.zero_grad(set_to_none=True)
            loss = hybrid_loss(model(x), target, lpips)
            loss.backward()
            opt.step()

    times = timed(fn, warmup, repeats)
    return times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- twin check


def check_twin(torch_python: str) -> str:
    """Run the MLX model and LPIPS, load the same weights into the torch twin, compare."""
    import tempfile

    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten

    from mlx_hdr.models.lpips import LPIPS

    mx.random.seed(0)
    model, lpips = build_mlx_model(), LPIPS()
    model.eval()
    x = mx.random.normal((2, 96, 128, 3))
    y = model(x)
    d = lpips(y, mx.tanh(x))
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {f"model.{k}": v for k, v in tree_flatten(model.parameters())}
        arrays |= {f"lpips.{k}": v for k, v in tree_flatten(lpips.parameters())}
        arrays |= {"x": x, "y": y, "d": d}
        np.savez(f"{tmp}/ref.npz", **{k: np.array(v) for k, v in arrays.items()})
        code = (
            f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
            f"import torch_twin; print(torch_twin.compare({tmp + '/ref.npz'!r}))"
        )
        proc = subprocess.run([torch_python, "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------- driver


def run_row(row_id: str, warmup: int, repeats: int) -> dict:
    framework, task, size, batch, variant = ROWS[row_id]
    fn = mlx_row if framework == "mlx" else torch_row
    times, peak_mb = fn(task, size, batch, variant, warmup, repeats)
    med = statistics.median(times)
    return {
        "id": row_id,
        "median_s": med,
        "min_s": min(times),
        "runs": len(times),
        "images_per_s": batch / med,
        "peak_mb": peak_mb,
    }


def spawn_row(row_id: str, warmup: int, repeats: int, torch_python: str) -> dict:
    framework, _, _, _, variant = ROWS[row_id]
    python = sys.executable if framework == "mlx" else torch_python
    env = dict(os.environ)
    if variant == "no-openblas":
        env["MLX_HDR_OPENBLAS"] = "0"
    if variant.startswith("plain mx.conv2d"):
        env["MLX_HDR_FLATCONV"] = "0"
    if variant.startswith(("plain mx.conv2d", "no-winograd")):
        env["MLX_HDR_WINOGRAD"] = "0"
    if variant.endswith("glibc malloc defaults"):
        env["MLX_HDR_MALLOC"] = "0"
    if variant.endswith("malloc as mlx_hdr"):  # backend/malloc.py's settings, by environment
        env |= {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}  # no trim
    cmd = [python, __file__, "--run-row", row_id]
    cmd += ["--warmup", str(warmup), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"id": row_id, "error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_available(python: str) -> bool:
    """Whether ``python`` (a path, or a command on PATH such as ``python3``) imports torch."""
    if not Path(python).exists() and shutil.which(python) is None:
        return False
    probe = subprocess.run([python, "-c", "import torch, torchvision"], capture_output=True)
    return probe.returncode == 0


def table(results: list[dict]) -> str:
    lines = [
        "| row | framework | task | size | batch | variant | median | images/s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        framework, task, size, batch, variant = ROWS[r["id"]]
        head = f"| {r['id']} | {framework} | {task} | {size}² | {batch} | {variant} |"
        if "error" in r:
            lines.append(f"{head} error: {r['error'][:80]} | | |")
            continue
        lines.append(
            f"{head} {r['median_s'] * 1e3:,.0f} ms | {r['images_per_s']:.2f} |"
            f" {r['peak_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=("all", "mlx", "torch"), default="all")
    p.add_argument("--rows", nargs="*", default=[], help="keep rows whose id contains any")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row (>= 1)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="3 repeats, no compiled rows")
    p.add_argument("--torch-python", default=TORCH_PYTHON)
    p.add_argument("--profile", action="store_true", help="MLX per-op-type breakdown")
    p.add_argument("--check-twin", action="store_true", help="twin == MLX model on one input")
    p.add_argument(
        "--run-row",
        metavar="ROW",
        help="measure one row in this process and print it as one JSON line (what the full run "
        "starts a process for per row)",
    )
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.run_row and args.run_row not in ROWS:
        p.error(f"no row {args.run_row!r} (rows: {', '.join(ROWS)})")
    if args.run_row:
        print(json.dumps(run_row(args.run_row, args.warmup, args.repeats)))
        return
    if args.check_twin:
        print(check_twin(args.torch_python))
        return
    if args.profile:
        from bench_profile import profile_table

        print(profile_table(args.repeats))
        return
    repeats = 3 if args.quick else args.repeats
    ids = [
        r
        for r, (fw, *_, variant) in ROWS.items()
        if args.framework in ("all", fw)
        and (not args.rows or any(s in r for s in args.rows))
        and not (args.quick and variant == "compiled")
    ]
    if not ids and any(s in r for r in ROWS for s in args.rows):
        p.error("the rows --rows names are left out by --framework or --quick (compiled rows)")
    if not ids:
        p.error(f"no row matches --rows {' '.join(args.rows)} (rows: {', '.join(ROWS)})")
    has_torch = torch_available(args.torch_python)
    results = []
    for row_id in ids:
        if ROWS[row_id][0] == "torch" and not has_torch:
            results.append({"id": row_id, "error": f"no torch at {args.torch_python}"})
            continue
        print(f"running {row_id} ...", file=sys.stderr, flush=True)
        results.append(spawn_row(row_id, args.warmup, repeats, args.torch_python))
        print(f"  {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
