"""Small data helpers for the examples and benchmarks: batching, MNIST files, default digits.

Promises:

* pure numpy and the standard library (scikit-learn only if it is installed, for
  :func:`default_digits`); nothing is downloaded;
* :func:`minibatches` visits every row exactly once per call (one epoch), in an order that
  depends only on ``seed``;
* :func:`load_mnist_idx` reads the standard IDX format, plain or gzipped (recognised by
  the gzip magic bytes, not the file name), and every malformed file raises
  :class:`DataError` naming the file and what is wrong with it, never a bare
  ``struct.error`` or a silently short array.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["DataError", "minibatches", "load_mnist_idx", "load_mnist", "default_digits",
           "one_hot", "IDX_DTYPES"]


class DataError(ValueError):
    """A data file is malformed (bad magic number, truncated, unknown element type, ...)."""


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------

def minibatches(*arrays: np.ndarray, batch_size: int, shuffle: bool = True,
                seed: int | np.random.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Aligned mini-batches over the first axis of several arrays: one epoch per call.

    Parameters
    ----------
    *arrays : array_like
        Arrays with the same length along axis 0 (e.g. ``x`` and ``onehot``).
    batch_size : int
        Rows per batch (keyword-only). The last batch is smaller when the length is not a
        multiple of it.
    shuffle : bool
        Visit the rows in a random order (a fresh permutation per call). Without it the
        batches are views in order.
    seed : int, numpy.random.Generator or None
        Seed of the permutation. An int gives the same order on every call (pass e.g.
        ``seed=epoch`` for a different, reproducible order per epoch); a ``Generator`` is
        advanced, so successive calls with the same generator give different orders;
        ``None`` draws fresh entropy.
    drop_last : bool
        Skip the last batch when it has fewer than ``batch_size`` rows.

    Yields
    ------
    tuple of numpy.ndarray
        One slice per input array, always a tuple (also for a single array).

    Raises
    ------
    ValueError
        No arrays, a non-positive ``batch_size``, a 0-d array, or arrays of different
        lengths (the message lists the lengths). Raised at the call, not at the first batch.
    """
    if not arrays:
        raise ValueError("minibatches: need at least one array")
    if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1):
        raise ValueError(f"minibatches: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    arrays = tuple(np.asarray(a) for a in arrays)
    if any(a.ndim == 0 for a in arrays):
        shapes = [a.shape for a in arrays]
        raise ValueError(f"minibatches: every array needs a first axis, got shapes {shapes}")
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"minibatches: arrays have different lengths along axis 0: {lengths}")
    order = np.random.default_rng(seed).permutation(lengths[0]) if shuffle else None
    # Validate eagerly (above), then hand back the generator.
    return _batches(arrays, lengths[0], batch_size, order, drop_last)


def _batches(arrays: tuple[np.ndarray, ...], n: int, batch_size: int, order: np.ndarray | None,
             drop_last: bool) -> Iterator[tuple[np.ndarray, ...]]:
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield tuple(a[start:start + batch_size] for a in arrays)
        else:
            idx = order[start:start + batch_size]
            yield tuple(a[idx] for a in arrays)


def one_hot(labels: np.ndarray, depth: int, dtype: DTypeLike = "float32") -> np.ndarray:
    """One-hot encoding of integer labels.

    Parameters
    ----------
    labels : array_like of int
        Labels in ``0 .. depth-1``, any shape.
    depth : int
        Number of classes.
    dtype : dtype-like
        dtype of the result.

    Returns
    -------
    numpy.ndarray
        Shape ``labels.shape + (depth,)``, 1 at each label's position, 0 elsewhere.

    Raises
    ------
    ValueError
        Non-integer labels, or a label outside ``0 .. depth-1``.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" and labels.size:
        raise ValueError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= depth):
        raise ValueError(f"one_hot: labels must lie in 0..{depth - 1}, got values in "
                         f"{labels.min()}..{labels.max()}")
    flat = labels.reshape(-1).astype(np.intp)
    out = np.zeros((flat.shape[0], depth), dtype=dtype)
    out[np.arange(flat.shape[0]), flat] = 1
    return out.reshape(labels.shape + (depth,))


# ---------------------------------------------------------------------------------------------
# MNIST IDX files
# ---------------------------------------------------------------------------------------------

#: IDX element-type codes (third byte of the magic number) and their big-endian dtypes.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it starts with the gzip magic bytes."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: gzip data is corrupt or truncated ({exc})") from None


def load_mnist_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), plain or gzipped.

    Layout (big-endian): a 4-byte magic number ``0x00 0x00 <type> <ndim>`` -- 2051
    (``0x00000803``) for MNIST images, 2049 (``0x00000801``) for labels -- then ``ndim``
    32-bit sizes, then the elements in C order.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip compression is detected from the first two bytes (``1f 8b``).

    Returns
    -------
    numpy.ndarray
        The elements in native byte order and of the file's element type, a fresh writable
        array: ``uint8`` of shape ``(n, rows, cols)`` for MNIST images, ``(n,)`` for labels.

    Raises
    ------
    DataError
        The message names the file and the problem: empty file, bad magic number, unknown
        element-type code, header or data shorter than the header promises, trailing bytes,
        corrupt gzip stream.
    FileNotFoundError
        The file does not exist.
    """
    path = Path(path)
    data = _read_bytes(path)
    if not data:
        raise DataError(f"{path}: file is empty (expected an IDX header)")
    if len(data) < 4:
        raise DataError(f"{path}: truncated: {len(data)} bytes, shorter than the 4-byte "
                        "IDX magic number")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if zero != 0 or ndim == 0:
        raise DataError(f"{path}: bad magic number 0x{magic:08x} ({magic}); an IDX file starts "
                        "with 0x00000803 (2051, images) or 0x00000801 (2049, labels)")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX element-type code 0x{code:02x} in magic number "
                        f"0x{magic:08x} (known codes: {known})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, "
                        f"file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have < expected:
        raise DataError(f"{path}: truncated data: header promises shape {shape} of "
                        f"{dtype.name} ({expected} bytes), file has {have} bytes after the "
                        "header")
    if have > expected:
        raise DataError(f"{path}: {have - expected} unexpected trailing bytes after the "
                        f"{expected} bytes of shape {shape} (not an IDX file?)")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    # astype copies: the result is writable and in native byte order.
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


_MNIST_KINDS = {"train": "train", "test": "t10k", "t10k": "t10k"}


def _find_idx(directory: Path, stem: str, ext: str) -> Path:
    """``<stem>-<ext>`` with the usual variants: ``.gz`` suffix, ``.`` instead of ``-``."""
    tried = []
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            name = f"{stem}{sep}{ext}{suffix}"
            tried.append(name)
            if (directory / name).is_file():
                return directory / name
    raise FileNotFoundError(f"no MNIST file for {stem!r} in {directory}; tried {tried}")


def load_mnist(directory: str | os.PathLike, kind: str = "train",
               dtype: DTypeLike = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST images and labels of one split from a directory of IDX files.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (``kind="train"``)
    or ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` (``kind="test"``), each
    optionally gzipped with a ``.gz`` suffix (also accepted: ``.idx3-ubyte`` spellings).

    Parameters
    ----------
    directory : str or os.PathLike
        Directory holding the files.
    kind : {"train", "test"}
        Which split (``"t10k"`` is accepted for ``"test"``).
    dtype : dtype-like
        dtype of the images.

    Returns
    -------
    x : numpy.ndarray
        ``(n, rows * cols)`` (``(n, 784)`` for MNIST), pixel values scaled to [0, 1].
    labels : numpy.ndarray
        ``(n,)`` int64 labels.

    Raises
    ------
    FileNotFoundError
        A file is missing (the message lists the names tried).
    DataError
        A file is malformed, the images are not 3-d or the labels not 1-d, or the two
        files hold different numbers of items.
    """
    if kind not in _MNIST_KINDS:
        raise ValueError(f"load_mnist: kind must be 'train' or 'test', got {kind!r}")
    directory = Path(directory)
    prefix = _MNIST_KINDS[kind]
    images_path = _find_idx(directory, f"{prefix}-images", "idx3-ubyte")
    labels_path = _find_idx(directory, f"{prefix}-labels", "idx1-ubyte")
    images = load_mnist_idx(images_path)
    labels = load_mnist_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected 3-d images (n, rows, cols), got shape "
                        f"{images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1-d labels, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} holds {images.shape[0]} images but {labels_path} "
                        f"holds {labels.shape[0]} labels")
    x = images.reshape(images.shape[0], -1).astype(dtype)
    x /= 255  # uint8 pixels 0..255 -> [0, 1]
    return x, labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Default data for the MLP example
# ---------------------------------------------------------------------------------------------

def default_digits(dtype: DTypeLike = "float32", n_synthetic: int = 1797,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The default data of the MLP example, with no download.

    If scikit-learn is importable: its bundled real handwritten digits
    (``sklearn.datasets.load_digits``: 1797 images of 8 x 8 = 64 pixels, values 0..16,
    scaled here to [0, 1]). Otherwise synthetic MNIST-shaped data from
    :func:`symgrad.workloads.synthetic_mnist` (784 features, noisy copies of fixed class
    prototypes), good for timing and smoke tests only.

    Parameters
    ----------
    dtype : dtype-like
        dtype of ``x``.
    n_synthetic : int
        Rows of the synthetic fallback.
    seed : int
        Seed of the synthetic fallback.

    Returns
    -------
    x : numpy.ndarray
        ``(n, features)`` values in [0, 1].
    labels : numpy.ndarray
        ``(n,)`` int64 labels 0..9.
    description : str
        One line saying which data was used, worth printing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        from .workloads import synthetic_mnist

        data = synthetic_mnist(n_synthetic, seed=seed, dtype=dtype)
        description = (f"synthetic MNIST-shaped data: {n_synthetic} rows of 784 pixels, noisy "
                       "copies of fixed random class prototypes (scikit-learn is not "
                       "installed; for timing and smoke tests only, not real digits)")
        return data["x"], data["labels"], description
    digits = load_digits()
    x = np.asarray(digits.data, dtype=dtype) / 16  # the 8x8 digits hold pixel counts 0..16
    labels = np.asarray(digits.target, dtype=np.int64)
    description = (f"scikit-learn handwritten digits: {x.shape[0]} real 8x8 images "
                   f"({x.shape[1]} features) scaled to [0, 1]")
    return x, labels, description
