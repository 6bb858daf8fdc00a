"""The tape's values: :class:`Tensor`, :class:`Variable` and the functions that make them.

What it promises. A :class:`Tensor` is an immutable wrapper around an ndarray with numpy's
operators and methods; a :class:`Variable` is a trainable tensor updated in place by
``assign``; :func:`constant`, :func:`one_hot` and :func:`stop_gradient` make tensors that no
tape connects to anything. The operators are recorded ops: they call the functions that
:mod:`symgrad.tape.rules` derives from its table (through :data:`_ops`, which that module
fills in, since ``rules`` imports this module and not the other way round).

This module imports only numpy and the standard library.
"""

from __future__ import annotations

import types
from typing import Any, Iterator, Optional, Union

import numpy as np

__all__ = ["Tensor", "Variable", "TensorLike", "constant", "one_hot", "stop_gradient"]

#: The recorded op functions by name (``_ops.add``, ``_ops.getitem``, ...), set by
#: :mod:`symgrad.tape.rules` when the package is imported; the operators below call them.
_ops = types.SimpleNamespace()


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------

class Tensor:
    """An immutable value produced by an op (or wrapped by :func:`constant`).

    Parameters
    ----------
    value : array_like
        The value; stored as an ndarray (0-d for scalars).
    name : str, optional
        A label used in ``repr``.

    Notes
    -----
    Tensors support numpy's arithmetic operators in both orders with ndarrays and Python
    scalars (``__array_ufunc__ = None`` makes ndarray defer to the reflected operators).
    Comparisons return plain boolean ndarrays and are not recorded. ``==`` is identity, so
    tensors can be dictionary keys.
    """

    # ndarray's binary operators return NotImplemented for us, so Python calls ours.
    __array_ufunc__ = None

    def __init__(self, value: Any, name: Optional[str] = None) -> None:
        self._value = np.asarray(_value_of(value))
        self.name = name

    # -- value and metadata ------------------------------------------------------------------
    @property
    def value(self) -> np.ndarray:
        """The ndarray value (do not mutate it while a tape needs it)."""
        return self._value

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the value."""
        return self._value.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the value."""
        return self._value.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions of the value."""
        return self._value.ndim

    @property
    def size(self) -> int:
        """The number of elements of the value."""
        return self._value.size

    def numpy(self) -> np.ndarray:
        """Return a copy of the value as an ndarray."""
        return self._value.copy()

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if copy:
            return np.array(self._value, dtype=dtype, copy=True)
        return np.asarray(self._value, dtype=dtype)

    def __repr__(self) -> str:
        label = f", name={self.name!r}" if self.name else ""
        return f"{type(self).__name__}({self._value!r}{label})"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator["Tensor"]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    # -- recorded arithmetic -----------------------------------------------------------------
    def __add__(self, other: TensorLike) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: TensorLike) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: TensorLike) -> Tensor:
        return _ops.subtract(self, other)

    def __rsub__(self, other: TensorLike) -> Tensor:
        return _ops.subtract(other, self)

    def __mul__(self, other: TensorLike) -> Tensor:
        return _ops.multiply(self, other)

    def __rmul__(self, other: TensorLike) -> Tensor:
        return _ops.multiply(other, self)

    def __truediv__(self, other: TensorLike) -> Tensor:
        return _ops.divide(self, other)

    def __rtruediv__(self, other: TensorLike) -> Tensor:
        return _ops.divide(other, self)

    def __pow__(self, other: TensorLike) -> Tensor:
        return _ops.power(self, other)

    def __rpow__(self, other: TensorLike) -> Tensor:
        return _ops.power(other, self)

    def __matmul__(self, other: TensorLike) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: TensorLike) -> Tensor:
        return _ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops.negative(self)

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    # -- comparisons: plain boolean arrays, never recorded ----------------------------------
    def __gt__(self, other: TensorLike) -> np.ndarray:
        return self._value > _value_of(other)

    def __lt__(self, other: TensorLike) -> np.ndarray:
        return self._value < _value_of(other)

    def __ge__(self, other: TensorLike) -> np.ndarray:
        return self._value >= _value_of(other)

    def __le__(self, other: TensorLike) -> np.ndarray:
        return self._value <= _value_of(other)

    # -- structural methods ------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Tensor:
        return _ops.getitem(self, key)

    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed)."""
        return _ops.transpose(self)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis``; see :func:`sum`."""
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis``; see :func:`mean`."""
        return _ops.mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; see :func:`max`."""
        return _ops.max(self, axis, keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        """Reshape, accepting ``reshape(2, 3)`` or ``reshape((2, 3))`` like numpy."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute axes, accepting ``transpose(1, 0)``, ``transpose((1, 0))`` or no axes."""
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = axes[0] if axes[0] is None else tuple(axes[0])
        return _ops.transpose(self, axes if axes != () else None)


class Variable(Tensor):
    """A trainable, mutable tensor; tapes watch it when an op reads it.

    Parameters
    ----------
    initial_value : array_like
        The initial value; copied, so later assignments never touch the caller's array.
    name : str, optional
        A label (default ``"Variable"``).
    dtype : dtype, optional
        The dtype to store (default: numpy's choice for ``initial_value``).
    trainable : bool, default True
        Only trainable variables are watched automatically.

    Notes
    -----
    ``assign``, ``assign_add`` and ``assign_sub`` update the stored array in place, keeping
    its shape and dtype. Ops recorded on a tape refer to that array, so assign only after the
    gradients of that tape have been taken.
    """

    def __init__(self, initial_value: Any, name: Optional[str] = None, dtype: Any = None,
                 trainable: bool = True) -> None:
        super().__init__(np.array(_value_of(initial_value), dtype=dtype, copy=True),
                         name=name or "Variable")
        self.trainable = trainable

    def _update(self, op: str, value: Any, ufunc: Optional[np.ufunc]) -> "Variable":
        value = np.asarray(_value_of(value))
        try:
            np.broadcast_to(value, self.shape)
        except ValueError:
            raise ValueError(f"{op}: value of shape {value.shape} does not fit variable "
                             f"{self.name!r} of shape {self.shape}") from None
        if ufunc is None:
            np.copyto(self._value, value, casting="same_kind")
        else:
            ufunc(self._value, value, out=self._value, casting="same_kind")
        return self

    def assign(self, value: TensorLike) -> "Variable":
        """Overwrite the value in place; returns the variable."""
        return self._update("assign", value, None)

    def assign_add(self, delta: TensorLike) -> "Variable":
        """Add ``delta`` in place; returns the variable."""
        return self._update("assign_add", delta, np.add)

    def assign_sub(self, delta: TensorLike) -> "Variable":
        """Subtract ``delta`` in place; returns the variable."""
        return self._update("assign_sub", delta, np.subtract)


TensorLike = Union[Tensor, np.ndarray, np.generic, float, int, bool]


def constant(value: Any, dtype: Any = None, name: Optional[str] = None) -> Tensor:
    """Wrap a copy of ``value`` as an (unwatched) tensor.

    Parameters
    ----------
    value : array_like
        The value.
    dtype : dtype, optional
        The dtype to store.
    name : str, optional
        A label.

    Returns
    -------
    Tensor
    """
    return Tensor(np.array(_value_of(value), dtype=dtype, copy=True), name=name)


def _value_of(x: Any) -> Any:
    """The ndarray behind a tensor; anything else unchanged."""
    return x._value if isinstance(x, Tensor) else x


def _is_python_scalar(x: Any) -> bool:
    # numpy's float64 subclasses float, but numpy scalars are "strong" under NEP 50.
    return isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic)


def _as_tensor(x: TensorLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _as_tensors(*operands: TensorLike) -> tuple[Tensor, ...]:
    """Convert operands to tensors, giving each Python scalar the dtype numpy 2 would.

    Under NEP 50 a Python scalar is "weak": ``float32_array * 2.0`` is float32. Wrapping the
    scalar in a 0-d float64 array would make it strong and upcast, so it is first converted
    to the dtype it would take against the other operands.
    """
    arrays = [np.asarray(_value_of(x)) for x in operands if not _is_python_scalar(x)]
    out = []
    for x in operands:
        if _is_python_scalar(x) and arrays:
            out.append(Tensor(np.asarray(x, dtype=np.result_type(*arrays, x))))
        else:
            out.append(_as_tensor(x))
    return tuple(out)


def one_hot(labels: Any, depth: int, dtype: Any = "float32") -> Tensor:
    """One-hot encode integer labels along a new last axis (no gradient).

    Parameters
    ----------
    labels : array_like of int
        Class indices; out-of-range labels give an all-zero row (like TensorFlow).
    depth : int
        The number of classes.
    dtype : dtype, default "float32"

    Returns
    -------
    Tensor
        Of shape ``labels.shape + (depth,)``, not connected to any tape.
    """
    labels = np.asarray(_value_of(labels))
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    return Tensor((labels[..., None] == np.arange(depth)).astype(dtype))


def stop_gradient(x: TensorLike) -> Tensor:
    """The value of ``x`` as a new tensor that no tape connects to ``x``.

    Parameters
    ----------
    x : TensorLike

    Returns
    -------
    Tensor
    """
    return Tensor(_value_of(x))
