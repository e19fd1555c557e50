"""The torch-free checkpoint reader, the mapping rules and the safetensors converter.

Checkpoints are either the real files in ``../shared/weights`` or written here by
``write_checkpoint``, a plain-``pickle`` imitation of ``torch.save`` (zip and legacy formats)
that goes through fake ``torch`` modules, so no PyTorch is needed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_hdr.convert import convert_checkpoint, load_torch_checkpoint
from mlx_hdr.convert.mapping import (
    ARCHITECTURES,
    convert_state_dict,
    load_spec,
    map_state_dict,
    mlx_to_torch_layout,
)
from mlx_hdr.errors import WeightsError

KEYS = Path(__file__).parent / "fixtures" / "keys"
STORAGE_NAMES = {
    "f4": "FloatStorage",
    "f2": "HalfStorage",
    "i8": "LongStorage",
    "u2": "BFloat16Storage",
}


class StorageRef:
    def __init__(self, key: str, data: np.ndarray, view: tuple | None = None):
        self.key, self.data, self.view = key, data, view


class Tensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: StorageRef, offset: int, size: tuple, stride: tuple):
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, self.args


class TorchPickler(pickle.Pickler):
    def __init__(self, file, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if not isinstance(obj, StorageRef):
            return None
        name = STORAGE_NAMES[obj.data.dtype.str[1:]]
        storage_type = getattr(sys.modules["torch"], name)
        return ("storage", storage_type, obj.key, "cpu", obj.data.size) + (
            (obj.view,) if self.legacy else ()
        )


@pytest.fixture
def fake_torch(monkeypatch):
    """Importable stand-ins so ``pickle`` can emit ``torch.*`` globals."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "HalfStorage", "LongStorage", "BFloat16Storage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def write_checkpoint(path: Path, obj, storages: list[StorageRef], legacy=False, order="little"):
    """Write ``obj`` (holding ``Tensor``s) as torch.save would (zip, or legacy with ``legacy``)."""
    buf = io.BytesIO()
    TorchPickler(buf, legacy).dump(obj)
    endian = "<" if order == "little" else ">"
    raw = {s.key: s.data.astype(s.data.dtype.newbyteorder(endian)).tobytes() for s in storages}
    if not legacy:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buf.getvalue())
            archive.writestr("archive/byteorder", order)
            for key, data in raw.items():
                archive.writestr(f"archive/data/{key}", data)
        return
    with open(path, "wb") as fh:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": order == "little"}):
            pickle.dump(header, fh, protocol=2)
        fh.write(buf.getvalue())
        pickle.dump([s.key for s in storages], fh, protocol=2)
        for s in storages:
            fh.write(struct.pack("<q", s.data.size) + raw[s.key])


def synthetic_state(legacy: bool):
    """Tensors with offsets, transposed strides, a shared storage, fp16/int64/bf16 dtypes."""
    base = np.arange(60, dtype=np.float32)
    shared = StorageRef("0", base)
    half = StorageRef("1", (np.arange(6) / 4).astype(np.float16))
    long = StorageRef("2", np.array([7], np.int64))
    bf16 = StorageRef("3", np.array([0x3F80, 0xC040], np.uint16))  # 1.0, -3.0 in bfloat16
    state = OrderedDict(
        conv=Tensor(shared, 0, (3, 4, 5), (20, 5, 1)),
        transposed=Tensor(shared, 0, (5, 12), (1, 5)),
        tail=Tensor(shared, 50, (2, 5), (5, 1)),
        half=Tensor(half, 0, (2, 3), (3, 1)),
        count=Tensor(long, 0, (), ()),
        bf=Tensor(bf16, 0, (2,), (1,)),
    )
    expected = {
        "conv": base.reshape(3, 4, 5),
        "transposed": base[:60].reshape(12, 5).T,
        "tail": base[50:].reshape(2, 5),
        "half": half.data.reshape(2, 3),
        "count": np.array(7, np.int64),
        "bf": np.array([1.0, -3.0], np.float32),
    }
    if legacy:  # a view storage: elements 10..19 of the shared one
        state["view"] = Tensor(StorageRef("0", base, ("9", 10, 10)), 2, (4,), (2,))
        expected["view"] = base[12:20:2]
    return state, [shared, half, long, bf16], expected


@pytest.mark.parametrize(
    "legacy, order", [(False, "little"), (False, "big"), (True, "little")]
)  # legacy storages are always little-endian
def test_reader_rebuilds_tensors_exactly(tmp_path, fake_torch, legacy, order):
    state, storages, expected = synthetic_state(legacy)
    path = tmp_path / "ckpt.pth"
    write_checkpoint(path, {"state_dict": state, "epoch": 3}, storages, legacy, order)
    loaded = load_torch_checkpoint(path)
    assert list(loaded) == list(expected)
    for key, want in expected.items():
        assert loaded[key].dtype == want.dtype and loaded[key].shape == want.shape, key
        np.testing.assert_array_equal(loaded[key], want, err_msg=key)


def test_reader_strips_dataparallel_prefix(tmp_path, fake_torch):
    s = StorageRef("0", np.ones(4, np.float32))
    write_checkpoint(tmp_path / "m.pth", {"module.a": Tensor(s, 0, (4,), (1,))}, [s])
    assert list(load_torch_checkpoint(tmp_path / "m.pth")) == ["a"]


class Evil:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_pickle_is_refused_without_running(tmp_path, fake_torch, legacy):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write_checkpoint(path, {"weight": Evil(sentinel)}, [], legacy)
    with pytest.raises(WeightsError, match=r"refused to load `(posix|nt)\.system`") as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not sentinel.exists()


def test_tensor_past_its_storage_is_an_error(tmp_path, fake_torch):
    s = StorageRef("0", np.zeros(4, np.float32))
    write_checkpoint(tmp_path / "bad.pth", {"w": Tensor(s, 2, (4,), (1,))}, [s])
    with pytest.raises(WeightsError, match="runs past its storage"):
        load_torch_checkpoint(tmp_path / "bad.pth")


def test_a_small_file_cannot_claim_a_huge_tensor(tmp_path, fake_torch):
    """A file unfolds to at most 64 times its size (plus 64 MB): one stored element
    repeated (stride 0) into 4 GB, or a record compressed a thousandfold, are refused
    before any large array is made; an expanded tensor within that, and a checkpoint
    zipped again with compression, load."""
    s = StorageRef("0", np.zeros(1, np.float32))
    write_checkpoint(tmp_path / "s0.pth", {"w": Tensor(s, 0, (1 << 15, 1 << 15), (0, 0))}, [s])
    with pytest.raises(WeightsError, match="would take more than 64 times its size"):
        load_torch_checkpoint(tmp_path / "s0.pth")
    s = StorageRef("0", np.arange(3, dtype=np.float32))
    write_checkpoint(tmp_path / "ex.pth", {"w": Tensor(s, 0, (4, 3), (0, 1))}, [s])
    np.testing.assert_array_equal(load_torch_checkpoint(tmp_path / "ex.pth")["w"], [[0, 1, 2]] * 4)
    with (
        zipfile.ZipFile(tmp_path / "ex.pth") as src,
        zipfile.ZipFile(tmp_path / "z.pth", "w") as out,
    ):
        for info in src.infolist():
            out.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(load_torch_checkpoint(tmp_path / "z.pth")["w"], [[0, 1, 2]] * 4)
    big = StorageRef("0", np.zeros(1 << 25, np.float32))  # 128 MB of zeros: deflates 1000-fold
    write_checkpoint(tmp_path / "b.pth", {"w": Tensor(big, 0, (1 << 25,), (1,))}, [big])
    with (
        zipfile.ZipFile(tmp_path / "b.pth") as src,
        zipfile.ZipFile(tmp_path / "bomb.pth", "w") as out,
    ):
        for info in src.infolist():
            out.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(WeightsError, match="would take more than 64 times its size"):
        load_torch_checkpoint(tmp_path / "bomb.pth")
    write_checkpoint(tmp_path / "empty.pth", {}, [])
    with pytest.raises(WeightsError, match="holds no tensors"):
        load_torch_checkpoint(tmp_path / "empty.pth")
    write_checkpoint(tmp_path / "loop.pth", (loop := {}), [])  # {"state_dict": itself}
    loop["state_dict"] = loop
    write_checkpoint(tmp_path / "loop.pth", loop, [])
    with pytest.raises(WeightsError, match="not tensors"):
        load_torch_checkpoint(tmp_path / "loop.pth")


def test_the_pickle_cannot_change_the_readers_storage_types(tmp_path, fake_torch):
    """BUILD on an allowed name (FloatStorage renamed HalfStorage) changes nothing for the
    next file read."""
    s = StorageRef("0", np.arange(4, dtype=np.float32))
    write_checkpoint(tmp_path / "good.pth", {"w": Tensor(s, 0, (4,), (1,))}, [s])
    build = b"\x80\x02ctorch\nFloatStorage\n}X\x04\x00\x00\x00nameX\x0b\x00\x00\x00HalfStorages"
    for target in (b"ctorch\nFloatStorage\n", b"ctorch._utils\n_rebuild_tensor_v2\n"):
        with zipfile.ZipFile(tmp_path / "poison.pth", "w") as archive:
            archive.writestr(
                "archive/data.pkl", build.replace(b"ctorch\nFloatStorage\n", target) + b"b0}."
            )
        with pytest.raises(WeightsError):
            load_torch_checkpoint(tmp_path / "poison.pth")
    np.testing.assert_array_equal(load_torch_checkpoint(tmp_path / "good.pth")["w"], np.arange(4))


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda raw: raw[: len(raw) // 2], "truncated or corrupt zip"),
        (lambda raw: b"hello world", "not a PyTorch checkpoint"),
        (lambda raw: b"", "not a PyTorch checkpoint"),
    ],
)
def test_corrupt_files_are_one_line_errors(tmp_path, fake_torch, content, message):
    s = StorageRef("0", np.zeros(256, np.float32))
    good = tmp_path / "good.pth"
    write_checkpoint(good, {"w": Tensor(s, 0, (256,), (1,))}, [s])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content(good.read_bytes()))
    with pytest.raises(WeightsError, match=message) as info:
        load_torch_checkpoint(bad)
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)


def test_truncated_legacy_file(tmp_path, fake_torch):
    state, storages, _ = synthetic_state(legacy=True)
    path = tmp_path / "legacy.pth"
    write_checkpoint(path, state, storages, legacy=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(WeightsError, match="truncated"):
        load_torch_checkpoint(path)


def test_missing_file():
    with pytest.raises(WeightsError, match="not found"):
        load_torch_checkpoint("/nonexistent/x.pth")


# Reference numbers computed with torch.load (PyTorch 2.14) while developing.
REAL = {
    "mobilenet_v2-b0353104.pth": ("features.18.0.weight", -98.14512792168709, 314, 3_539_036),
    "vgg16_features.pth": ("features.28.weight", -5206.092681044144, 26, 14_714_688),
    "lpips_v0.1_vgg.pth": ("lin4.model.1.weight", 47.03485375829041, 5, 1472),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_checkpoints_match_torch_load(shared, name):
    key, total, count, numel = REAL[name]
    state = load_torch_checkpoint(shared / "weights" / name)
    assert len(state) == count and sum(v.size for v in state.values()) == numel
    assert all(v.dtype == np.float32 for k, v in state.items() if "num_batches" not in k)
    assert float(state[key].astype(np.float64).sum()) == pytest.approx(total, rel=1e-12)


def test_real_checkpoint_parameter_counts(shared):
    def params(state):
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        return sum(v.size for k, v in state.items() if not k.endswith(buffers))

    v2 = load_torch_checkpoint(shared / "weights/mobilenet_v2-b0353104.pth")
    assert params(v2) == 3_504_872
    assert params(load_torch_checkpoint(shared / "weights/vgg16_features.pth")) == 14_714_688
    lpips = load_torch_checkpoint(shared / "weights/lpips_v0.1_vgg.pth")
    assert [v.shape for v in lpips.values()] == [(1, c, 1, 1) for c in (64, 128, 256, 512, 512)]


def test_legacy_rebuild_tensor_v1(shared):
    """ExpandNet's file is pre-1.6 and uses ``torch._utils._rebuild_tensor`` (v1)."""
    state = load_torch_checkpoint(shared / "peers/expandnet/weights.pth")
    assert len(state) == 30 and sum(v.size for v in state.values()) == 456_899
    first = state["local_net.0.0.weight"]
    assert first.shape == (64, 3, 3, 3)
    # torch.load(weights.pth)["local_net.0.0.weight"].double().sum(), PyTorch 2.14.1 (rechecked)
    assert float(first.astype(np.float64).sum()) == pytest.approx(2.2513987954562253, rel=1e-12)


def torch_keys(arch: str) -> dict[str, tuple[int, ...]]:
    table = json.loads((KEYS / f"{arch}.torch.json").read_text())["tensors"]
    return {k: tuple(v) for k, v in table.items()}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_mapping_maps_every_torch_key_to_the_spec(arch):
    """Each official checkpoint's key list (torchvision / lpips) maps exactly onto the spec."""
    state = {k: np.broadcast_to(np.float32(0), s) for k, s in torch_keys(arch).items()}
    mapped = convert_state_dict(arch, state)
    assert {k: v.shape for k, v in mapped.items()} == load_spec(arch)


@pytest.mark.parametrize(
    "arch, name",
    [("mobilenet_v2", "mobilenet_v2-b0353104.pth"), ("lpips_vgg", "lpips_v0.1_vgg.pth")],
)
def test_real_files_have_the_listed_torch_keys(shared, arch, name):
    state = load_torch_checkpoint(shared / "weights" / name)
    assert {k: v.shape for k, v in state.items()} == torch_keys(arch)


def test_features_only_vgg_file_matches_the_full_checkpoint_spec(shared):
    state = load_torch_checkpoint(shared / "weights/vgg16_features.pth")
    full = torch_keys("vgg16")
    assert {k: v.shape for k, v in state.items()} == {
        k: s for k, s in full.items() if k.startswith("features.")
    }
    assert set(convert_state_dict("vgg16", state)) == set(load_spec("vgg16"))


def test_rules_transpose_drop_and_rename():
    kernel = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)  # square: transposed anyway
    state = {
        "features.0.0.weight": kernel,
        "features.0.1.num_batches_tracked": np.array(5),
        "classifier.1.weight": np.ones((3, 2), np.float32),
    }
    out = map_state_dict("mobilenet_v2", state)
    assert list(out) == ["features.0.0.weight", "classifier.1.weight"]
    np.testing.assert_array_equal(out["features.0.0.weight"], kernel.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(out["classifier.1.weight"], state["classifier.1.weight"])
    lp = map_state_dict("lpips_vgg", {"lin2.model.1.weight": np.zeros((1, 8, 1, 1))})
    assert {k: v.shape for k, v in lp.items()} == {"lins.2.weight": (1, 1, 1, 8)}
    vgg = map_state_dict("vgg16", {"classifier.0.weight": np.zeros((2, 2))})
    assert vgg == {}


def test_spec_mismatch_lists_keys_and_counts():
    state = {k: np.broadcast_to(np.float32(0), s) for k, s in torch_keys("mobilenet_v2").items()}
    del state["features.3.conv.2.weight"]
    state["extra.weight"] = np.zeros(3, np.float32)
    state["classifier.1.bias"] = np.zeros(999, np.float32)
    with pytest.raises(WeightsError) as info:
        convert_state_dict("mobilenet_v2", state, source="ck.pth")
    msg = str(info.value)
    assert msg.startswith("ck.pth: mobilenet_v2 checkpoint does not match")
    assert "1 missing (features.3.conv.2.weight)" in msg
    assert "1 unexpected (extra.weight)" in msg
    assert "classifier.1.bias (999,) != expected (1000,)" in msg


def test_unknown_architecture():
    with pytest.raises(WeightsError, match="unknown architecture 'resnet50'"):
        map_state_dict("resnet50", {})


@pytest.fixture(scope="module")
def converted_v2(shared, tmp_path_factory):
    src = shared / "weights/mobilenet_v2-b0353104.pth"
    return src, convert_checkpoint("mobilenet_v2", src, tmp_path_factory.mktemp("out"))


def test_convert_round_trip_and_metadata(converted_v2):
    src, dst = converted_v2
    assert dst.name == "mobilenet_v2.safetensors"
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]  # no temp files left
    arrays, meta = mx.load(str(dst), return_metadata=True)
    assert meta == {
        "format": "mlx-hdr",
        "architecture": "mobilenet_v2",
        "source_file": src.name,
        "source_sha256": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "converter_version": "1",
    }
    raw = load_torch_checkpoint(src)
    assert set(arrays) == {k for k in raw if not k.endswith("num_batches_tracked")}
    for key, value in arrays.items():
        assert value.dtype == mx.float32
        np.testing.assert_array_equal(mlx_to_torch_layout(key, np.array(value)), raw[key])
    assert arrays["features.1.conv.0.0.weight"].shape == (32, 3, 3, 1)  # depthwise (C, kH, kW, 1)


def test_convert_float16_and_explicit_file(shared, tmp_path):
    dst = tmp_path / "sub" / "lp16.safetensors"
    out = convert_checkpoint("lpips_vgg", shared / "weights/lpips_v0.1_vgg.pth", dst, "float16")
    arrays = mx.load(str(out))
    assert out == dst and arrays["lins.4.weight"].dtype == mx.float16
    assert arrays["lins.4.weight"].shape == (1, 1, 1, 512)


def test_failed_conversion_writes_nothing(shared, tmp_path):
    dst = tmp_path / "mobilenet_v3_large.safetensors"
    dst.write_bytes(b"previous")
    with pytest.raises(WeightsError, match="mobilenet_v3_large checkpoint does not match"):
        convert_checkpoint("mobilenet_v3_large", shared / "weights/mobilenet_v2-b0353104.pth", dst)
    assert dst.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(WeightsError, match="unsupported dtype"):
        convert_checkpoint("lpips_vgg", shared / "weights/lpips_v0.1_vgg.pth", tmp_path, "int8")


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda w: np.full_like(w, np.nan), "hold NaN or inf"),
        (lambda w: np.full_like(w, 1e6), "beyond float16's range: convert to float32"),
        (lambda w: w.astype(np.int64), "not floating point"),
    ],
)
def test_conversion_refuses_weights_a_model_cannot_use(
    shared, tmp_path, monkeypatch, spoil, message
):
    from mlx_hdr.convert import convert as convert_module

    state = load_torch_checkpoint(shared / "weights/lpips_v0.1_vgg.pth")
    key = next(iter(state))
    state[key] = spoil(state[key])
    monkeypatch.setattr(convert_module, "load_torch_checkpoint", lambda path, keep=None: state)
    dst = tmp_path / "lp.safetensors"
    with pytest.raises(WeightsError, match=message):
        convert_checkpoint("lpips_vgg", shared / "weights/lpips_v0.1_vgg.pth", dst, "float16")
    assert not dst.exists()


class StatefulTensor(Tensor):
    """Pickles with a state for BUILD to set on the rebuilt tensor."""

    def __reduce__(self):
        return (*super().__reduce__(), {"materialize": OrderedDict})


def test_a_pickle_that_would_hang_or_set_a_tensors_state_is_refused(tmp_path, fake_torch):
    """A dict keyed by a deep tuple whose branches are shared hashes in time exponential
    in its depth (a 1 KB file hung); BUILD on a rebuilt tensor replaced what it returns."""
    key = b"N"
    for i in range(60):  # ((x, x), (x, x)) ... 60 deep, through the memo
        key += b"q" + bytes([i]) + b"h" + bytes([i]) + b"\x86"
    cases = {  # the key set into a dict, or handed to OrderedDict([(key, 0)]) by REDUCE
        b"\x80\x02}" + key + b"K\x00s.": "a dict keyed by a tuple",
        b"\x80\x02ccollections\nOrderedDict\n]" + key + b"K\x00\x86a\x85R.": "keyed by a tuple",
        b"\x80\x05\x96" + struct.pack("<Q", 1 << 40): "a pickle-5 buffer",  # 1 TB bytearray
    }
    for data, message in cases.items():
        with zipfile.ZipFile(tmp_path / "hang.pth", "w") as archive:
            archive.writestr("archive/data.pkl", data)
        with pytest.raises(WeightsError, match=message):
            load_torch_checkpoint(tmp_path / "hang.pth")
    s = StorageRef("0", np.zeros(4, np.float32))
    write_checkpoint(tmp_path / "build.pth", {"w": StatefulTensor(s, 0, (4,), (1,))}, [s])
    with pytest.raises(WeightsError, match="sets the state of a tensor"):
        load_torch_checkpoint(tmp_path / "build.pth")


class Protocol4Pickler(TorchPickler):
    def __init__(self, file, legacy: bool):
        pickle.Pickler.__init__(self, file, protocol=4)
        self.legacy = legacy


def test_sets_and_keys_a_checkpoint_may_hold_but_no_more(tmp_path, fake_torch, monkeypatch):
    """Protocol-4 sets and frozensets in side metadata load; a pickle of a million empty
    sets, a key that is a long tuple, or numbers chosen to share a hash are refused
    before they fill memory or take hours."""
    from mlx_hdr.convert.unpickler import MAX_SETS

    s = StorageRef("0", np.arange(4, dtype=np.float32))
    state = {"state_dict": {"w": Tensor(s, 0, (4,), (1,))}}
    state |= {"tags": {"a", "b"}, "frozen": frozenset({("x", 1)})}
    buf = io.BytesIO()
    Protocol4Pickler(buf, False).dump(state)
    with zipfile.ZipFile(tmp_path / "p4.pth", "w") as archive:
        archive.writestr("archive/data.pkl", buf.getvalue())
        archive.writestr("archive/data/0", s.data.tobytes())
    np.testing.assert_array_equal(load_torch_checkpoint(tmp_path / "p4.pth")["w"], np.arange(4))
    cases = {
        b"\x80\x04" + b"\x8f0" * (MAX_SETS + 1) + b".": "more than 1000 sets",
        b"\x80\x04}(" + b"K\x01" * 9 + b"tK\x00s.": "a dict keyed by a tuple",
        b"\x80\x04}\x8a\x08" + struct.pack("<q", 2**61 - 1) + b"K\x00s.": "keyed by a int",
    }
    for data, message in cases.items():
        with zipfile.ZipFile(tmp_path / "bad.pth", "w") as archive:
            archive.writestr("archive/data.pkl", data)
        with pytest.raises(WeightsError, match=message):
            load_torch_checkpoint(tmp_path / "bad.pth")


def test_a_legacy_files_pickles_are_capped_as_a_zips_are(tmp_path, fake_torch, monkeypatch):
    """A legacy checkpoint's pickles may take no more than a zip's ``data.pkl`` (each byte
    can make an object)."""
    import mlx_hdr.convert.torch_pickle as tp

    state, storages, _ = synthetic_state(legacy=True)
    big = {"state_dict": state, "note": "x" * 9000}
    write_checkpoint(tmp_path / "big.pth", big, storages, legacy=True)
    assert load_torch_checkpoint(tmp_path / "big.pth").keys() == state.keys()
    monkeypatch.setattr(tp, "MAX_PICKLE", 8192)
    with pytest.raises(WeightsError, match="its pickles are larger than"):
        load_torch_checkpoint(tmp_path / "big.pth")


def test_a_checkpoint_is_checked_on_its_shapes_before_any_tensor_is_built(
    fake_torch, tmp_path, monkeypatch
):
    from mlx_hdr.convert import unpickler

    built = []
    materialize = unpickler.LazyTensor.materialize
    monkeypatch.setattr(
        unpickler.LazyTensor, "materialize", lambda t: built.append(t.size) or materialize(t)
    )
    one = StorageRef("0", np.zeros(1, np.float32))  # a stride-0 tensor of 680 MB
    huge = {"lin0.model.1.weight": Tensor(one, 0, (10000, 17000), (0, 0))}
    write_checkpoint(tmp_path / "huge.pth", huge, [one])
    with pytest.raises(WeightsError, match=r"huge\.pth: lpips_vgg checkpoint does not match"):
        convert_checkpoint("lpips_vgg", tmp_path / "huge.pth", tmp_path / "out")
    assert built == []
    # what a rule drops (VGG16's classifier) is never built either
    conv = StorageRef("1", np.zeros(64 * 3 * 9, np.float32))
    dropped = {"classifier.0.weight": Tensor(one, 0, (4096, 25088), (0, 0))}
    write_checkpoint(
        tmp_path / "v.pth",
        {"features.0.weight": Tensor(conv, 0, (64, 3, 3, 3), (27, 9, 3, 1)), **dropped},
        [one, conv],
    )
    assert set(
        load_torch_checkpoint(tmp_path / "v.pth", keep=lambda shapes: {"features.0.weight"})
    ) == {"features.0.weight"}
    assert built == [(64, 3, 3, 3)]
