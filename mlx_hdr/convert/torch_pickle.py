"""Read PyTorch checkpoints into numpy without PyTorch and without the general unpickler.

Two on-disk formats are supported:

* the zip format (PyTorch >= 1.6): ``<prefix>/data.pkl`` plus one raw storage per
  ``<prefix>/data/<key>`` record and a ``<prefix>/byteorder`` record;
* the legacy format (older files, e.g. torchvision's ``mobilenet_v2-b0353104.pth``): a
  sequence of pickles (magic number, protocol version, system info, the object, the list of
  storage keys) followed by each storage as an int64 element count and its raw bytes.

The pickle is read by :class:`RestrictedUnpickler`, whose ``find_class`` only resolves an
allow-list of tensor-rebuild functions, storage types and ``collections.OrderedDict``, all
mapped to local stand-ins: nothing from ``torch`` (or anywhere else) is imported or run.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlx_hdr.errors import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# what a file may unfold to: INFLATE times its size plus SLACK bytes (a checkpoint's tensors
# take about its size; shared storage and expanded tensors a few times more; a small file
# claiming gigabytes is a bomb)
INFLATE, SLACK = 64, 1 << 26
MAX_PICKLE = 1 << 22  # a model's data.pkl: a few KB to 1 MB (each byte can make an object)

# torch storage class name -> numpy dtype (bfloat16 is read as raw uint16, see _to_numpy).
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("f4"),
    "DoubleStorage": np.dtype("f8"),
    "HalfStorage": np.dtype("f2"),
    "BFloat16Storage": np.dtype("u2"),
    "LongStorage": np.dtype("i8"),
    "IntStorage": np.dtype("i4"),
    "ShortStorage": np.dtype("i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "UntypedStorage": np.dtype("u1"),
}


@dataclass(frozen=True, slots=True)
class StorageType:
    """Stand-in for a ``torch.*Storage`` class named in the pickle: a new one each time it
    is named, and read-only (the pickle's BUILD opcode refused)."""

    name: str

    def __setstate__(self, state):
        raise pickle.UnpicklingError("the pickle sets the state of a storage type")

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class Storage:
    """A flat typed buffer; ``data`` is filled once the raw bytes are read.

    A legacy view storage points at its ``root`` storage, starting ``start`` elements in.
    """

    stype: StorageType
    numel: int
    data: np.ndarray | None = None
    root: Storage | None = None
    start: int = 0

    def __setstate__(self, state):
        raise pickle.UnpicklingError("the pickle sets the state of a storage")

    def array(self) -> np.ndarray:
        if self.root is not None:
            return self.root.array()[self.start : self.start + self.numel]
        if self.data is None:
            raise ValueError("a tensor refers to a storage whose bytes were never read")
        return self.data


@dataclass
class LazyTensor:
    """``torch._utils._rebuild_tensor_v2`` arguments, materialised after storages are read."""

    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def __setstate__(self, state):
        raise pickle.UnpicklingError("the pickle sets the state of a tensor")

    @property
    def nbytes(self) -> int:
        """What the tensor takes once materialised (0 for a malformed size)."""
        try:
            stype = self.storage.stype
            item = 4 if stype.name == "BFloat16Storage" else stype.dtype.itemsize  # widened
            return int(np.prod([int(n) for n in self.size], dtype=object)) * item
        except (TypeError, ValueError):
            return 0

    def materialize(self) -> np.ndarray:
        flat = self.storage.array()
        size, stride = tuple(map(int, self.size)), tuple(map(int, self.stride))
        if len(size) != len(stride) or min(size + stride + (self.offset,), default=0) < 0:
            raise ValueError(f"bad tensor geometry size={size} stride={stride}")
        if 0 in size:
            return _to_numpy(np.zeros(size, flat.dtype), self.storage.stype)
        last = self.offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= flat.size:
            raise ValueError(f"tensor of size {size} runs past its storage ({flat.size} elements)")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=size, strides=[s * item for s in stride], writeable=False
        )
        return _to_numpy(np.array(view, dtype=flat.dtype.newbyteorder("=")), self.storage.stype)


def _to_numpy(arr: np.ndarray, stype: StorageType) -> np.ndarray:
    if stype.name == "BFloat16Storage":  # numpy has no bfloat16: widen exactly to float32
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> LazyTensor:
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    return LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


MAX_KEY_ITEMS = 8  # a tuple key's length
MAX_SETS = 1000  # sets a pickle may make (side metadata; each empty one is 200 bytes)


def _key(key):
    """A dict key the pickle may use: a name, a number below 2**31 in size, or a short flat
    tuple of them. A nested tuple whose branches are shared hashes in time exponential in
    its depth, a long tuple in time linear in its length on every insert, and numbers
    chosen to share a hash make a dict quadratic: a small file could hang the reader."""
    if isinstance(key, tuple) and len(key) <= MAX_KEY_ITEMS and all(map(_scalar, key)):
        return key
    if not _scalar(key):
        raise pickle.UnpicklingError(f"a dict keyed by a {type(key).__name__}")
    return key


def _scalar(value) -> bool:
    if isinstance(value, (int, float)):
        return abs(value) < 2**31  # hashes to itself (an int) or spreads (a float)
    return isinstance(value, (str, bytes, type(None)))


def _name(value) -> str:
    """A storage key or persistent-id tag as text: names and numbers only (``str`` of a
    deep shared list takes time and memory exponential in its depth)."""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if not isinstance(value, (str, int)):
        raise pickle.UnpicklingError(f"a storage named by a {type(value).__name__}")
    return str(value)


def _ordered_dict(*args) -> OrderedDict:
    """``collections.OrderedDict`` as the pickle may call it: empty, or from pairs whose
    keys pass :func:`_key`."""
    pairs = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else None
    if len(args) > 1 or (args and pairs is None):
        raise pickle.UnpicklingError("OrderedDict called with other than a list of pairs")
    pairs = list(pairs or [])
    if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise pickle.UnpicklingError("OrderedDict called with other than a list of pairs")
    return OrderedDict((_key(k), v) for k, v in pairs)


class Allowed:
    """An allowed callable as the pickle sees it: read-only, and the pickle's BUILD opcode
    (which would set its state) refused."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable):
        object.__setattr__(self, "fn", fn)

    def __setattr__(self, name, value):
        raise AttributeError("read-only")

    def __setstate__(self, state):
        raise pickle.UnpicklingError("the pickle sets the state of an allowed name")

    def __call__(self, *args):
        return self.fn(*args)


ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): Allowed(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): Allowed(_rebuild_parameter),
    ("collections", "OrderedDict"): Allowed(_ordered_dict),
}
STORAGE_NAMES = {("torch", name): name for name in STORAGE_DTYPES}
STORAGE_NAMES[("torch.storage", "UntypedStorage")] = "UntypedStorage"


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves only :data:`ALLOWED` names and torch storage ids, and builds
    dicts and sets of names and numbers only (:func:`_key`; ``MAX_SETS`` sets at most), with
    no pickle-5 buffers: the pure-Python one, whose opcodes can be checked one by one (a
    checkpoint's pickle is small).

    ``storages`` maps storage keys to :class:`Storage` objects; ``legacy`` selects the
    pre-1.6 persistent-id layout (which may describe views of a root storage).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, legacy: bool):
        super().__init__(file, encoding="utf-8")
        self.legacy = legacy
        self.storages: dict[str, Storage] = {}
        self.sets = 0

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self.stack[-1][_key(key)] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        for i in range(0, len(items), 2):
            target[_key(items[i])] = items[i + 1]

    def load_dict(self):
        items = self.pop_mark()
        self.append({_key(items[i]): items[i + 1] for i in range(0, len(items), 2)})

    def load_frozenset(self):
        items = self.pop_mark()  # before self.append: it switches to the outer stack
        self.append(frozenset(_key(item) for item in items))

    def load_empty_set(self):  # 200 bytes from one opcode byte: a few allowed, not millions
        self.sets += 1
        if self.sets > MAX_SETS:
            raise pickle.UnpicklingError(f"more than {MAX_SETS} sets in the pickle")
        self.append(set())

    def load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, set):
            raise pickle.UnpicklingError("items added to something other than a set")
        target.update(_key(item) for item in items)

    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.FROZENSET[0]] = load_frozenset
    dispatch[pickle.EMPTY_SET[0]] = load_empty_set
    dispatch[pickle.ADDITEMS[0]] = load_additems

    def refuse_buffers(self):
        raise pickle.UnpicklingError("a pickle-5 buffer (never in a checkpoint)")

    dispatch[pickle.BYTEARRAY8[0]] = refuse_buffers
    dispatch[pickle.NEXT_BUFFER[0]] = refuse_buffers
    dispatch[pickle.READONLY_BUFFER[0]] = refuse_buffers

    def find_class(self, module: str, name: str):
        if (module, name) in STORAGE_NAMES:
            return StorageType(STORAGE_NAMES[(module, name)])
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(f"refused to load `{module}.{name}` (not a tensor type)") from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or _name(pid[0]) != "storage":
            raise pickle.UnpicklingError("unsupported persistent id")
        stype, key, _location, numel = pid[1], _name(pid[2]), pid[3], int(pid[4])
        if not isinstance(stype, StorageType):
            raise pickle.UnpicklingError("storage of an unknown type")
        if numel < 0:
            raise pickle.UnpicklingError(f"storage {key} of {numel} elements")
        storage = self.storages.setdefault(key, Storage(stype, numel))
        view = pid[5] if self.legacy and len(pid) > 5 else None
        if view is None:
            return storage
        view_key, start, view_numel = _name(view[0]), int(view[1]), int(view[2])
        if storage.root is not None or not 0 <= start <= start + view_numel <= numel:
            raise pickle.UnpicklingError(f"view {view_key} outside its storage {key}")
        return self.storages.setdefault(
            view_key, Storage(stype, view_numel, root=storage, start=start)
        )


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
        header = [RestrictedUnpickler(pickles, legacy=True).load() for _ in range(3)]
        if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
            raise ValueError("neither a zip nor a legacy PyTorch checkpoint (bad magic number)")
        unpickler = RestrictedUnpickler(pickles, legacy=True)
        obj = unpickler.load()
        keys = RestrictedUnpickler(pickles, legacy=True).load()
        for key in keys if isinstance(keys, list) else ():
            storage = unpickler.storages[_name(key)]
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


def _state_dict(obj: object, budget: int) -> dict[str, np.ndarray]:
    state = dict(dict.items(_unwrap(obj)))  # dict's own items: not an attribute BUILD set
    if not all(isinstance(k, str) for k in state):
        raise ValueError("a state dict key is not a name")
    odd = [k for k, v in state.items() if not isinstance(v, LazyTensor)]
    if odd:
        raise ValueError(f"{len(odd)} entries are not tensors, e.g. {odd[:3]}")
    if sum(v.nbytes for v in state.values()) > budget:  # shared or repeated (stride 0) storage
        raise ValueError(f"its tensors would take more than {INFLATE} times its size")
    out = {k: v.materialize() for k, v in state.items()}
    if not out:
        raise ValueError("the state dict holds no tensors")
    if all(k.startswith("module.") for k in out):  # saved from DataParallel
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


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


def load_torch_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch ``.pth``/``.pt`` state dict as ``{name: np.ndarray}`` without torch.

    Tensors keep PyTorch's layout (conv weights ``(O, I, kH, kW)``) and dtype (bfloat16 is
    widened to float32). ``{"state_dict": ...}``/``{"model": ...}`` wrappers are unwrapped and
    a DataParallel ``module.`` prefix is stripped. Raises ``WeightsError`` (one line, naming
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
        return _state_dict(obj, budget)
    except WeightsError as exc:
        raise WeightsError(str(exc), path) from None
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"truncated or corrupt zip checkpoint ({exc})", path) from None
    except CORRUPT as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise WeightsError(f"corrupt or unsupported PyTorch checkpoint: {detail}", path) from None
    except OSError as exc:
        raise WeightsError(f"cannot read checkpoint: {exc.strerror or exc}", path) from None
