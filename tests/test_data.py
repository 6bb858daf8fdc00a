"""Tests of :mod:`symgrad.data` (IDX reader, batching, default data) and :mod:`symgrad.workloads`.

IDX files are written here by an independent little writer (``_idx_bytes``) and read back;
every malformed file must raise :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also run under a bare ``pytest`` without an install
    sys.path.insert(0, str(ROOT))

from symgrad import workloads  # noqa: E402
from symgrad.data import (DataError, default_digits, load_mnist, load_mnist_idx,  # noqa: E402
                          minibatches, one_hot)


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------

def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """IDX encoding: magic ``00 00 code ndim``, big-endian uint32 sizes, big-endian data."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(big[code]).tobytes()


def _write(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


@pytest.fixture
def labels() -> np.ndarray:
    return np.array([3, 1, 4, 1, 5], dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_images_and_labels(tmp_path, images, labels, gz):
    img = load_mnist_idx(_write(tmp_path / "img", _idx_bytes(images), gz))
    lab = load_mnist_idx(_write(tmp_path / "lab", _idx_bytes(labels), gz))
    assert img.dtype == np.uint8 and img.shape == (5, 4, 3)
    assert lab.dtype == np.uint8 and lab.shape == (5,)
    np.testing.assert_array_equal(img, images)
    np.testing.assert_array_equal(lab, labels)
    img[0, 0, 0] = 7  # a fresh, writable array
    # The magic numbers are MNIST's: 2051 for images, 2049 for labels.
    assert int.from_bytes(_idx_bytes(images)[:4], "big") == 2051
    assert int.from_bytes(_idx_bytes(labels)[:4], "big") == 2049


def test_idx_gzip_detected_by_magic_bytes_not_name(tmp_path, images):
    # gzipped content under a plain name, and plain content under a .gz name
    a = load_mnist_idx(_write(tmp_path / "images-idx3-ubyte", _idx_bytes(images), gz=True))
    b = load_mnist_idx(_write(tmp_path / "images-idx3-ubyte.gz", _idx_bytes(images)))
    np.testing.assert_array_equal(a, images)
    np.testing.assert_array_equal(b, images)


def test_idx_other_element_types(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    out = load_mnist_idx(_write(tmp_path / "f", _idx_bytes(arr, code=0x0D)))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def _raises_naming(path: Path, *words: str):
    """Assert that loading ``path`` raises DataError mentioning the file and ``words``."""
    with pytest.raises(DataError) as info:
        load_mnist_idx(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message.lower(), message
    return message


@pytest.mark.parametrize("gz", [False, True])
def test_idx_wrong_magic(tmp_path, images, gz):
    payload = b"\x12\x34" + _idx_bytes(images)[2:]
    _raises_naming(_write(tmp_path / "bad_magic", payload, gz), "magic")


def test_idx_text_file_is_wrong_magic(tmp_path):
    _raises_naming(_write(tmp_path / "notes.txt", b"hello, this is not IDX\n"), "magic")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_data(tmp_path, images, gz):
    payload = _idx_bytes(images)[:-7]
    message = _raises_naming(_write(tmp_path / "short", payload, gz), "truncated")
    assert "60 bytes" in message  # what the header promised: 5 * 4 * 3


def test_idx_truncated_header(tmp_path, images):
    _raises_naming(_write(tmp_path / "short_header", _idx_bytes(images)[:9]), "truncated")
    _raises_naming(_write(tmp_path / "tiny", b"\x00\x00"), "truncated")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_empty_file(tmp_path, gz):
    _raises_naming(_write(tmp_path / "empty", b"", gz), "empty")


def test_idx_unknown_dtype_code(tmp_path, images):
    payload = b"\x00\x00\x07\x03" + _idx_bytes(images)[4:]
    _raises_naming(_write(tmp_path / "code7", payload), "unknown", "0x07")


def test_idx_trailing_bytes(tmp_path, labels):
    _raises_naming(_write(tmp_path / "long", _idx_bytes(labels) + b"\x00\x00"), "trailing")


def test_idx_corrupt_gzip(tmp_path, images):
    payload = gzip.compress(_idx_bytes(images))[:-12]
    _raises_naming(_write(tmp_path / "cut.gz", payload), "gzip")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_load_mnist_directory(tmp_path):
    rng = np.random.default_rng(1)
    train_x = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, 10, size=6).astype(np.uint8)
    test_x = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    test_y = np.array([9, 0], dtype=np.uint8)
    _write(tmp_path / "train-images-idx3-ubyte.gz", _idx_bytes(train_x), gz=True)
    _write(tmp_path / "train-labels-idx1-ubyte.gz", _idx_bytes(train_y), gz=True)
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx_bytes(test_x))
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(test_y))

    x, y = load_mnist(tmp_path)
    assert x.shape == (6, 784) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(x, train_x.reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, train_y)
    assert 0.0 <= x.min() and x.max() <= 1.0

    x, y = load_mnist(str(tmp_path), kind="test")
    assert x.shape == (2, 784)
    np.testing.assert_array_equal(y, [9, 0])

    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="validation")


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path)
    x = np.zeros((3, 2, 2), np.uint8)
    _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(x))
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="3 images but .* 4 labels"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------------------------------------
# minibatches, one_hot
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatches_every_row_once_aligned(shuffle):
    x = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10) * 100
    batches = list(minibatches(x, y, batch_size=4, shuffle=shuffle, seed=0))
    assert [len(b[0]) for b in batches] == [4, 4, 2]  # last smaller batch kept
    rows = np.concatenate([b[1] for b in batches]) // 100
    assert sorted(rows.tolist()) == list(range(10))
    if not shuffle:
        assert rows.tolist() == list(range(10))
    for xb, yb in batches:  # x and y stay aligned
        np.testing.assert_array_equal(xb[:, 0] // 3, yb // 100)


def test_minibatches_drop_last_and_single_array():
    batches = list(minibatches(np.arange(10), batch_size=4, seed=1, drop_last=True))
    assert [len(b) for b in batches] == [1, 1]  # always tuples
    assert [len(b[0]) for b in batches] == [4, 4]
    assert len(list(minibatches(np.arange(8), batch_size=4, drop_last=True))) == 2


def test_minibatches_seeded_reproducibility():
    x = np.arange(50)

    def order(seed):
        return np.concatenate([b[0] for b in minibatches(x, batch_size=8, seed=seed)])

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))
    assert not np.array_equal(order(3), x)
    # A Generator is advanced: successive epochs differ, and the sequence is reproducible.
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    e1, e2 = order(g1), order(g1)
    assert not np.array_equal(e1, e2)
    np.testing.assert_array_equal(e1, order(g2))


def test_minibatches_errors_are_eager_and_clear():
    with pytest.raises(ValueError, match=r"different lengths.*\[10, 9\]"):
        minibatches(np.zeros(10), np.zeros((9, 2)), batch_size=4)  # no iteration needed
    for bad in (0, -1, 2.5, "4", True):
        with pytest.raises(ValueError, match="batch_size"):
            minibatches(np.zeros(10), batch_size=bad)
    with pytest.raises(ValueError, match="at least one"):
        minibatches(batch_size=2)
    with pytest.raises(ValueError, match="first axis"):
        minibatches(np.float64(1.0), batch_size=2)


def test_one_hot():
    out = one_hot([2, 0, 1], 3, dtype="float64")
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert out.dtype == np.float64
    assert one_hot(np.array([[1, 2]]), 4).shape == (1, 2, 4)
    assert one_hot(np.array([], dtype=int), 4).shape == (0, 4)
    with pytest.raises(ValueError, match="0..2"):
        one_hot([3], 3)
    with pytest.raises(ValueError, match="integers"):
        one_hot([0.5], 3)


# ---------------------------------------------------------------------------------------------
# default_digits
# ---------------------------------------------------------------------------------------------

def test_default_digits_synthetic_fallback(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes ``import sklearn...`` fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    x, y, description = default_digits()
    assert "synthetic" in description and "scikit-learn" in description
    assert x.shape == (1797, 784) and x.dtype == np.float32
    assert y.shape == (1797,) and set(np.unique(y)) <= set(range(10))
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_default_digits_sklearn_branch_with_a_stand_in(monkeypatch):
    # Exercises the scikit-learn branch even where scikit-learn is not installed.
    import types

    fake = types.ModuleType("sklearn.datasets")
    pixels = np.tile(np.arange(17.0), (3, 4))[:, :64]  # values 0..16 like the 8x8 digits
    fake.load_digits = lambda: types.SimpleNamespace(data=pixels, target=np.array([0, 5, 9]))
    monkeypatch.setitem(sys.modules, "sklearn", types.ModuleType("sklearn"))
    monkeypatch.setitem(sys.modules, "sklearn.datasets", fake)
    x, y, description = default_digits(dtype="float64")
    assert "handwritten digits" in description and "64 features" in description
    np.testing.assert_allclose(x, pixels / 16)
    assert y.dtype == np.int64 and y.tolist() == [0, 5, 9]


def test_default_digits_real_when_sklearn_available():
    pytest.importorskip("sklearn")
    x, y, description = default_digits()
    assert "handwritten digits" in description
    assert x.shape == (1797, 64) and x.max() == 1.0 and x.min() == 0.0
    assert set(np.unique(y)) == set(range(10))


# ---------------------------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------------------------

def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k]
        for k in a)


@pytest.mark.parametrize("make", [workloads.w0, workloads.w1, workloads.w4,
                                  lambda seed: workloads.w3(batch=4, seed=seed)])
def test_workloads_are_deterministic(make):
    assert _same(make(seed=5), make(seed=5))
    assert not _same(make(seed=5), make(seed=6))


def test_w0():
    d = workloads.w0()
    assert d["x"].shape == (100,) and abs(d["x"].mean() - 1.0) < 0.05
    assert d["A"].shape == () and d["target"] == 10.0
    assert d["indices"].shape == (100,) and d["indices"].min() >= 0 and d["indices"].max() < 100
    assert (d["lr"], d["steps"]) == (0.02, 100)
    assert workloads.w0(dtype="float32")["x"].dtype == np.float32


def test_w1_data_and_batches():
    d = workloads.w1()
    np.testing.assert_array_equal(d["X"], np.random.RandomState(23455).rand(32, 2))
    np.testing.assert_array_equal(d["Y"][:, 0], (d["X"].sum(axis=1) < 1).astype(float))
    assert d["w1"].shape == (2, 3) and d["w2"].shape == (3, 1) and d["Y"].shape == (32, 1)
    assert (d["lr"], d["batch"], d["steps"], d["log_every"]) == (0.001, 8, 3000, 500)
    for i, start in [(0, 0), (1, 8), (3, 24), (4, 0), (2999, 24)]:
        xb, yb = workloads.w1_batch(d, i)
        np.testing.assert_array_equal(xb, d["X"][start:start + 8])
        np.testing.assert_array_equal(yb, d["Y"][start:start + 8])


def test_w2_1_expected_values_follow_from_the_cost():
    d = workloads.w2_1()

    def cost(w):  # TensorFlow differentiates the sum of a vector target
        y = w * d["X"]
        return float(np.sum(y[1] * y))

    h = 1e-6
    grad = [(cost(d["w"] + h * e) - cost(d["w"] - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(grad, d["expected_grad"], rtol=1e-7)
    np.testing.assert_allclose(d["w"] - d["lr"] * np.array(grad), d["expected_w"], rtol=1e-7)


def test_w3_and_mlp_params():
    d = workloads.w3()
    shapes = {k: d[k].shape for k in d["param_names"]}
    assert shapes == {"w1": (784, 256), "b1": (256,), "w2": (256, 128), "b2": (128,),
                      "w3": (128, 10), "b3": (10,)}
    assert all(d[k].dtype == np.float32 for k in d["param_names"])
    assert d["x"].shape == (128, 784) and d["onehot"].shape == (128, 10)
    np.testing.assert_array_equal(d["onehot"].argmax(axis=1), d["labels"])
    for i in (1, 2, 3):
        w = d[f"w{i}"]
        assert np.abs(w).max() <= 0.2 + 1e-7  # truncated at 2 stddev
        assert 0.08 < w.std() < 0.1  # a normal truncated at +-2 sigma has std 0.88 sigma
        assert not d[f"b{i}"].any()
    wide = workloads.w3(batch=3, hidden=(32, 16, 8), dtype="float64")
    assert [wide[f"w{i}"].shape for i in (1, 2, 3, 4)] == [(784, 32), (32, 16), (16, 8), (8, 10)]
    assert wide["param_names"] == ("w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4")
    params = workloads.mlp_params([5, 4, 3, 2, 1], seed=0, dtype="float64")
    assert list(params) == ["w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4"]
    with pytest.raises(ValueError, match="two"):
        workloads.mlp_params([5])


def test_synthetic_mnist_is_learnable_and_shared_teacher():
    train = workloads.synthetic_mnist(3000, seed=1, dtype="float64")
    test = workloads.synthetic_mnist(500, seed=2, dtype="float64")
    assert train["x"].shape == (3000, 784) and 0 <= train["x"].min() and train["x"].max() <= 1
    counts = np.bincount(train["labels"], minlength=10)
    assert counts.min() > 200  # roughly balanced
    # Class means from the train set classify the test set far better than chance (10 %):
    # the data carry information about the labels, through the same fixed teacher.
    means = np.stack([train["x"][train["labels"] == c].mean(axis=0) for c in range(10)])
    dist = ((test["x"][:, None, :] - means[None]) ** 2).sum(axis=2)
    accuracy = (dist.argmin(axis=1) == test["labels"]).mean()
    assert accuracy > 0.5, accuracy


def test_w4():
    d = workloads.w4()
    assert d["input"].shape == (5, 2) and d["target"].shape == (5, 1)
    np.testing.assert_array_equal(d["input"][:, 0], 1.0)
    np.testing.assert_array_equal(d["input"][:, 1], d["x"])
    np.testing.assert_array_equal(d["target"][:, 0], d["y"])
    assert np.abs(d["x"] - np.linspace(-10, 10, 5)).max() < 6  # noise N(0, 1.5)
    assert d["weights"].shape == (2, 1) and np.abs(d["weights"]).max() < 0.5
    assert (d["lr"], d["steps"]) == (0.002, 50)
