"""Resolve ``--model``: a local safetensors file, a Hugging Face Hub repo id, or the bundled model.

- ``None`` -> ``mlx_hdr/assets/default.safetensors`` shipped with the package.
- an existing path -> that file (a folder -> its ``model.safetensors``).
- ``owner/name`` (optionally ``owner/name@revision``) -> ``model.safetensors`` from that Hub
  repo, via ``huggingface_hub.hf_hub_download`` (cached in the usual HF cache). A cached file
  is used without the network; otherwise ``HF_HUB_OFFLINE`` or a Hub that does not answer
  one connection within 3 s fails at once, without the Hub client's retries.

Every failure is a one-line :class:`WeightsError`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from mlx_hdr.errors import WeightsError

BUNDLED = "assets/default.safetensors"
HUB_FILENAME = "model.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".safetensor", ".pth", ".pt", ".bin", ".ckpt", ".npz")
HUB_URL = "https://huggingface.co"
REACH_TIMEOUT = 3.0  # seconds for the one reachability check
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
NO_MODEL = (
    "no bundled model yet; pass --model FILE.safetensors or a Hugging Face repo id, "
    "or --method linear|akyuz2007|masia2017|kovaleski2014"
)


def bundled_model() -> Path:
    """Path of the model shipped inside the package; WeightsError when there is none."""
    path = Path(str(resources.files("mlx_hdr").joinpath(BUNDLED)))
    if not path.is_file():
        raise WeightsError(NO_MODEL)
    return path


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network access."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = REACH_TIMEOUT) -> bool:
    """One TCP connection to the Hub (``HF_ENDPOINT``), or to the HTTPS proxy when one is set,
    within ``timeout`` seconds: the Hub client would retry for half a minute instead."""
    import socket
    import urllib.request

    url = urllib.request.getproxies().get("https") or os.environ.get("HF_ENDPOINT", HUB_URL)
    parts = urlsplit(url if "//" in url else f"//{url}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


def hub_download(spec: str) -> Path:
    """``model.safetensors`` of ``owner/name[@revision]``: from the local Hugging Face cache,
    else downloaded. Offline (``HF_HUB_OFFLINE``, or no connection to the Hub) it fails at
    once with a one-line ``WeightsError``."""
    from huggingface_hub import hf_hub_download

    repo_id, _, revision = spec.partition("@")
    args = {"repo_id": repo_id, "filename": HUB_FILENAME, "revision": revision or None}
    try:
        return Path(hf_hub_download(**args, local_files_only=True))
    except Exception:  # not in the cache (or not a valid id: the download says which)
        pass
    if hub_offline():
        raise WeightsError(
            "no local file or folder by that name, not in the local Hugging Face cache, and "
            "HF_HUB_OFFLINE is set",
            spec,
        )
    if not hub_reachable():
        raise WeightsError(
            "no local file or folder by that name, not in the local Hugging Face cache, and "
            "the Hub is unreachable (offline?)",
            spec,
        )
    return _download(hf_hub_download, args, spec)


def _download(hf_hub_download, args: dict, spec: str) -> Path:
    """``hf_hub_download(**args)``, its errors as one-line ``WeightsError``s."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(**args))
    except LocalEntryNotFoundError:
        problem = "not in the local cache and the Hub is unreachable (offline?)"
    except RepositoryNotFoundError:
        problem = "no such Hugging Face repo (or it is private)"
    except RevisionNotFoundError:
        problem = f"no revision {args['revision']!r} in this repo"
    except EntryNotFoundError:
        problem = f"the repo has no {HUB_FILENAME}"
    except Exception as exc:  # network/HTTP errors of any kind from the Hub client
        problem = f"download failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    raise WeightsError(problem, spec)


def resolve_model(spec: str | None) -> Path:
    """The local safetensors file for a ``--model`` value (see the module docstring)."""
    if spec is None:
        return bundled_model()
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / HUB_FILENAME
        if not path.is_file():
            raise WeightsError(f"folder has no {HUB_FILENAME}", path.parent)
    if path.is_file():
        return path.resolve()
    if _local(spec) or not REPO_ID.match(spec):
        raise WeightsError("model file not found (and not a Hugging Face repo id)", spec)
    return hub_download(spec)


def _local(spec: str) -> bool:
    """Whether a ``--model`` that names no file still means one, not a Hub repo: a weights
    file's extension (``models/best.safetensor``, a typo) or a path's start (``./``, ``/``,
    ``~``)."""
    return Path(spec).suffix.lower() in WEIGHT_SUFFIXES or spec.startswith((".", "/", "~"))


def load_net(spec: str | None):
    """Resolve and load the hybrid model; returns ``(model, config)`` ready for inference
    (:func:`mlx_hdr.backend.infer`), accelerated for the CPU when it runs there."""
    from mlx_hdr import backend
    from mlx_hdr.models.model_io import load_model

    model, config = load_model(resolve_model(spec))
    return backend.accelerate(model), config


def with_floor_strength(net, strength: float):
    """``net`` with its floor keeping ``strength`` (0-1) of the floor operator's expansion, in
    stops over the linearised photo (``HybridConfig.floor_strength``): a shallow copy that
    shares the weights, as ``mlx-hdr bundle --floor-strength`` would bundle it.

    Raises ``ValueError`` for a model without a floor (nothing to set) or a strength outside
    [0, 1] (``HybridConfig``'s check)."""
    config = getattr(net, "config", None)
    if getattr(config, "floor", None) is None:
        raise ValueError("the model has no floor for a floor strength to set")
    out = copy.copy(net)
    out.config = dataclasses.replace(config, floor_strength=float(strength))
    return out
