"""The restricted unpickler of :mod:`mlx_hdr.convert.torch_pickle`: stand-ins for the few
names a PyTorch checkpoint's pickle refers to (tensor rebuilds, storage types,
``collections.OrderedDict``), and an unpickler that resolves only those and checks, opcode by
opcode, that dict and set keys are small names and numbers (no hash-flooding or exponential
hashing) and that no pickle-5 buffers appear. Nothing from ``torch`` (or anywhere else) is
imported or run.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlx_hdr.errors import WeightsError

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


def checked_name(value) -> str:
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
        if not isinstance(pid, tuple) or len(pid) < 5 or checked_name(pid[0]) != "storage":
            raise pickle.UnpicklingError("unsupported persistent id")
        stype, key, _location, numel = pid[1], checked_name(pid[2]), pid[3], int(pid[4])
        if not isinstance(stype, StorageType):
            raise pickle.UnpicklingError("storage of an unknown type")
        if numel < 0:
            raise pickle.UnpicklingError(f"storage {key} of {numel} elements")
        storage = self.storages.setdefault(key, Storage(stype, numel))
        view = pid[5] if self.legacy and len(pid) > 5 else None
        if view is None:
            return storage
        view_key, start, view_numel = checked_name(view[0]), int(view[1]), int(view[2])
        if storage.root is not None or not 0 <= start <= start + view_numel <= numel:
            raise pickle.UnpicklingError(f"view {view_key} outside its storage {key}")
        return self.storages.setdefault(
            view_key, Storage(stype, view_numel, root=storage, start=start)
        )
