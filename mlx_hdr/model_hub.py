"""Resolve ``--model``: a local safetensors file, a Hugging Face Hub repo id, or the bundled model.

- ``None`` -> ``mlx_hdr/assets/default.safetensors`` shipped with the package.
- an existing path -> that file (a folder -> its ``model.safetensors``).
- ``owner/name`` (optionally ``owner/name@revision``) -> ``model.safetensors`` from that Hub
  repo, via ``huggingface_hub.hf_hub_download`` (cached in the usual HF cache; honours
  ``HF_HUB_OFFLINE``).

Every failure is a one-line :class:`WeightsError`.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from mlx_hdr.errors import WeightsError

BUNDLED = "assets/default.safetensors"
HUB_FILENAME = "model.safetensors"
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


def hub_download(spec: str) -> Path:
    """Download (or reuse from the cache) ``model.safetensors`` of ``owner/name[@revision]``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, _, revision = spec.partition("@")
    try:
        return Path(hf_hub_download(repo_id, HUB_FILENAME, revision=revision or None))
    except LocalEntryNotFoundError:
        problem = "not in the local cache and the Hub is unreachable (offline?)"
    except RepositoryNotFoundError:
        problem = "no such Hugging Face repo (or it is private)"
    except RevisionNotFoundError:
        problem = f"no revision {revision!r} in this repo"
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
    if path.suffix == ".safetensors" or not REPO_ID.match(spec):
        raise WeightsError("model file not found (and not a Hugging Face repo id)", spec)
    return hub_download(spec)


def load_net(spec: str | None):
    """Resolve and load the hybrid model; returns ``(model, config)`` ready for inference
    (:func:`mlx_hdr.backend.infer`), accelerated for the CPU when it runs there."""
    from mlx_hdr import backend
    from mlx_hdr.models.model_io import load_model

    model, config = load_model(resolve_model(spec))
    return backend.accelerate(model), config
