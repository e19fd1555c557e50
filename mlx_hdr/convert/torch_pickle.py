"""Read PyTorch checkpoints into numpy without PyTorch and without the general unpickler.

Two on-disk formats are supported:

* the zip format (PyTorch >= 1.6): ``<prefix>/data.pkl`` plus one raw storage per
  ``<prefix>/data/<key>`` record and a ``<prefix>/byteorder`` record;
* the legacy format (older files, e.g. torchvision's ``mobilenet_v2-b0353104.pth``): a
  sequence of pickles (magic number, protocol version, system info, the object, the list of
  storage keys) followed by each storage as an int64 element count and its raw bytes.

The pickle is read by :class:`~mlx_hdr.convert.unpickler.RestrictedUnpickler`, whose
``find_class`` only resolves an allow-list of tensor-rebuild functions, storage types and
``collections.OrderedDict``, all mapped to local stand-ins: nothing from ``torch`` (or
anywhere else) is imported or run.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlx_hdr.convert.unpickler import LazyTensor, RestrictedUnpickler, Storage, checked_name
from mlx_hdr.errors import WeightsError

# names and shapes of a checkpoint's tensors -> the names to build (load_torch_checkpoint)
Keep = Callable[[dict[str, tuple[int, ...]]], set[str]]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# what a file may unfold to: INFLATE times its size plus SLACK bytes (a checkpoint's tensors
# take about its size; shared storage and expanded tensors a few times more; a small file
# claiming gigabytes is a bomb)
INFLATE, SLACK = 64, 1 << 26
MAX_PICKLE = 1 << 22  # a model's data.pkl: a few KB to 1 MB (each byte can make an object)


def _load_zip(path: Path, budget: int) -> tuple[object, dict[str, Storage]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pickles) != 1:
            raise ValueError("zip archive without exactly one data.pkl (not a torch checkpoint)")
        prefix = pickles[0][: -len("data.pkl")]
        order = "<"
        if f"{prefix}byteorder" in names:
            order = ">" if _record(archive, f"{prefix}byteorder", 16).strip() == b"big" else "<"
        data = _record(archive, pickles[0], MAX_PICKLE + 1)
        if len(data) > MAX_PICKLE:  # each byte can make an object: a few MB could fill memory
            raise ValueError(f"its pickle is larger than {MAX_PICKLE >> 20} MB")
        unpickler = RestrictedUnpickler(io.BytesIO(data), legacy=False)
        obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            need = storage.numel * storage.stype.dtype.itemsize
            budget -= need
            if budget < 0:
                raise ValueError(f"its tensors would take more than {INFLATE} times its size")
            raw = _record(archive, f"{prefix}data/{key}", need)
            storage.data = _frombuffer(raw, storage, order)
    return obj, unpickler.storages


def _record(archive: zipfile.ZipFile, name: str, most: int) -> bytes:
    """At most ``most`` bytes of a record of a zip checkpoint (PyTorch stores them as they
    are; a tool that zipped the file again may have compressed them: a few MB could then
    inflate to more than memory holds, so no more than is needed is inflated)."""
    with archive.open(name) as f:
        return f.read(most)


def _frombuffer(raw: bytes, storage: Storage, order: str) -> np.ndarray:
    dtype = storage.stype.dtype.newbyteorder(order)
    need = storage.numel * dtype.itemsize
    if len(raw) < need:
        raise ValueError(f"storage holds {len(raw)} bytes, expected {need}")
    return np.frombuffer(raw, dtype, count=storage.numel)


def _load_legacy(path: Path) -> tuple[object, dict[str, Storage]]:
    with open(path, "rb") as fh:
        pickles = _Capped(fh, MAX_PICKLE)  # the five pickles before the storages, together
        for want in (LEGACY_MAGIC, LEGACY_PROTOCOL, None):  # a plain pickle: said at once
            found = RestrictedUnpickler(pickles, legacy=True).load()
            if want is not None and found != want:
                raise ValueError("neither a zip nor a legacy PyTorch checkpoint (bad magic number)")
        unpickler = RestrictedUnpickler(pickles, legacy=True)
        obj = unpickler.load()
        keys = RestrictedUnpickler(pickles, legacy=True).load()
        for key in keys if isinstance(keys, list) else ():
            storage = unpickler.storages[checked_name(key)]
            # torch writes legacy storages little-endian whatever the machine's byte order
            (numel,) = struct.unpack("<q", _read_exact(fh, 8))
            if numel != storage.numel:
                raise ValueError(f"storage {key} holds {numel} elements, expected {storage.numel}")
            raw = _read_exact(fh, numel * storage.stype.dtype.itemsize)
            storage.data = _frombuffer(raw, storage, "<")
    return obj, unpickler.storages


class _Capped:
    """An open file's ``read``/``readline`` for unpicklers, at most ``most`` bytes in all
    (a legacy checkpoint's pickles, capped as a zip's ``data.pkl`` is)."""

    def __init__(self, fh, most: int):
        self.fh, self.left = fh, most

    def read(self, n: int = -1) -> bytes:
        return self._took(self.fh.read(self.left + 1 if n < 0 else min(n, self.left + 1)))

    def readline(self) -> bytes:
        return self._took(self.fh.readline(self.left + 1))

    def _took(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise ValueError(f"its pickles are larger than {MAX_PICKLE >> 20} MB")
        return data


def _read_exact(fh, n: int) -> bytes:
    if n > os.fstat(fh.fileno()).st_size - fh.tell():  # never allocate for a bogus size
        raise EOFError("file ends inside a tensor storage (truncated?)")
    data = fh.read(n)
    if len(data) != n:
        raise EOFError("file ends inside a tensor storage (truncated?)")
    return data


def _unwrap(obj: object) -> dict:
    """``{"state_dict": {...}}``-style wrappers -> the state dict itself."""
    for _ in range(len(WRAPPER_KEYS) * 4):  # wrapped a few times at most (a file may loop)
        if not isinstance(obj, dict) or any(isinstance(v, LazyTensor) for v in dict.values(obj)):
            break
        inner = [dict.get(obj, k) for k in WRAPPER_KEYS if isinstance(dict.get(obj, k), dict)]
        if not inner:
            break
        obj = inner[0]
    if not isinstance(obj, dict):
        raise ValueError(f"the checkpoint holds a {type(obj).__name__}, not a state dict")
    return obj


def _state_dict(obj: object, budget: int, keep: Keep | None = None) -> dict[str, np.ndarray]:
    state = dict(dict.items(_unwrap(obj)))  # dict's own items: not an attribute BUILD set
    if not all(isinstance(k, str) for k in state):
        raise ValueError("a state dict key is not a name")
    odd = [k for k, v in state.items() if not isinstance(v, LazyTensor)]
    if odd:
        raise ValueError(f"{len(odd)} entries are not tensors, e.g. {odd[:3]}")
    if not state:
        raise ValueError("the state dict holds no tensors")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    if keep is not None:  # checked and chosen on their shapes, before any is built
        kept = keep({k: tuple(int(n) for n in v.size) for k, v in state.items()})
        state = {k: v for k, v in state.items() if k in kept}
    if sum(v.nbytes for v in state.values()) > budget:  # shared or repeated (stride 0) storage
        raise ValueError(f"its tensors would take more than {INFLATE} times its size")
    return {k: v.materialize() for k, v in state.items()}


CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
    NotImplementedError,  # a zip compression method Python does not read
    RuntimeError,  # an encrypted zip record
)


def load_torch_checkpoint(path: str | Path, keep: Keep | None = None) -> dict[str, np.ndarray]:
    """Read a PyTorch ``.pth``/``.pt`` state dict as ``{name: np.ndarray}`` without torch.

    Tensors keep PyTorch's layout (conv weights ``(O, I, kH, kW)``) and dtype (bfloat16 is
    widened to float32). ``{"state_dict": ...}``/``{"model": ...}`` wrappers are unwrapped and
    a DataParallel ``module.`` prefix is stripped. ``keep(shapes)``, given every tensor's
    name and shape before any is built, may raise ``WeightsError`` and returns the names to
    build (the others are never read into memory). Raises ``WeightsError`` (one line, naming
    the file) when the file is missing, corrupt, or its pickle names anything outside the
    allow-list; refused code is never imported or run.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError("checkpoint file not found", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        budget = INFLATE * path.stat().st_size + SLACK
        if head.startswith(b"PK"):
            obj, _ = _load_zip(path, budget)
        elif head.startswith(b"\x80"):
            obj, _ = _load_legacy(path)
        else:
            raise ValueError("not a PyTorch checkpoint (neither a zip archive nor a pickle)")
        return _state_dict(obj, budget, keep)
    except WeightsError as exc:
        raise WeightsError(str(exc), path) from None
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"truncated or corrupt zip checkpoint ({exc})", path) from None
    except CORRUPT as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise WeightsError(f"corrupt or unsupported PyTorch checkpoint: {detail}", path) from None
    except OSError as exc:
        raise WeightsError(f"cannot read checkpoint: {exc.strerror or exc}", path) from None
