"""The tape's op rules: one table, :data:`OPS`, with one entry per op.

Each entry (:class:`OpRule`) holds everything the tape knows about one op: its name, the
names of its tensor inputs and of its other parameters, a check that validates and
normalizes the parameters, the forward computation in numpy and the vector-Jacobian rule.
The public functions (``tp.exp``, ``tp.matmul``, ...) are derived from the entries by
:func:`function_from_rule`; none is written out by hand. Adding an op to the tape is one
entry here (plus its rule functions, next to the other rules of its family).

The contract of a rule, stated once (like PyTorch's ``derivatives.yaml``):

* ``prepare(op, *inputs, *params) -> params`` (optional) receives the op's name, the input
  values (ndarrays) and the raw parameters; it raises ValueError or TypeError naming the op
  and the operand shapes, and returns the normalized parameters as a tuple.
* ``forward(*inputs, *params) -> y`` computes the output value with numpy.
* ``vjp(g, y, *inputs, *params) -> tuple`` receives the output adjoint ``g``, the output
  value ``y``, the input values and the normalized parameters, and returns a tuple with one
  entry per input: that input's gradient (its shape; never a wider dtype than the op's), or
  None for no gradient. ``vjp=None`` declares an op without a rule: differentiating through
  it raises NotImplementedError naming the op and the input position.

Rules are named functions, never lambdas, so a traceback names the rule. Values are never
mutated. numpy semantics throughout: broadcasting (every binary rule sums its adjoint back
with :func:`unbroadcast`), ``matmul`` with vectors and batches, reductions over ``axis``
(int, tuple or None, negatives allowed) with ``keepdims``, NEP 50 dtypes (a Python scalar
takes the dtype of the array it meets). PyTorch's conventions at kinks: d relu(0) = 0,
d|x|(0) = 0, d sign = 0, ``maximum``/``minimum`` split ties 1/2 to each operand, a ``max``
reduction sends the whole gradient to the first maximal element in C order. Stable forms:
sigmoid, softplus, log-sigmoid, softmax, log-softmax, logsumexp and the cross-entropies
neither overflow nor warn for inputs of magnitude 1e4.

The tape is an independent oracle for the symbolic compiler, so this module imports only
numpy, the standard library and the tape's own modules, and states every rule itself.
"""

from __future__ import annotations

import inspect
import math
import types
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

from . import values as _values
from .engine import _record
from .values import Tensor, _as_tensor, _as_tensors, _value_of

__all__ = ["OpRule", "OPS", "FUNCTIONS", "REQUIRED", "function_from_rule", "unbroadcast"]


class _Required:
    """The default of a parameter that has none (the caller must pass it)."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: Marks a parameter without a default in :attr:`OpRule.params`.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class OpRule:
    """Everything the tape knows about one op.

    Parameters
    ----------
    name : str
        The op's name: the public function ``tp.<name>`` and the label in error messages.
    forward : callable
        ``forward(*inputs, *params) -> y``, numpy.
    vjp : callable or None
        ``vjp(g, y, *inputs, *params) -> tuple`` with one entry per input (None: no
        gradient); None when the op has no rule.
    doc : str
        The public function's docstring.
    inputs : tuple of str
        The names of the tensor inputs, the differentiable positions, in order.
    params : tuple of (str, default)
        The other parameters with their defaults (:data:`REQUIRED` for none).
    prepare : callable, optional
        ``prepare(op, *inputs, *params) -> params``: validates (errors name the op and the
        shapes) and normalizes the parameters.
    order : tuple of str, optional
        The public function's positional order when it is not inputs then params.
    public : bool, default True
        Whether ``tp.<name>`` exists (``getitem`` is reached through ``Tensor[...]`` only).
    """

    name: str
    forward: Callable[..., Any]
    vjp: Optional[Callable[..., tuple]]
    doc: str
    inputs: tuple[str, ...] = ("x",)
    params: tuple[tuple[str, Any], ...] = ()
    prepare: Optional[Callable[..., tuple]] = None
    order: Optional[tuple[str, ...]] = None
    public: bool = True


# --------------------------------------------------------------------------------------------
# Helpers shared by the rules
# --------------------------------------------------------------------------------------------

def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes broadcasting added, so it takes ``shape``.

    The adjoint of ``broadcast_to(a, s)`` is a sum over the new leading axes and over the
    axes where ``a`` had length 1.

    Parameters
    ----------
    grad : ndarray
        A gradient of the broadcast shape.
    shape : tuple of int
        The operand's shape (which broadcasts to ``grad.shape``).

    Returns
    -------
    ndarray
        Of shape ``shape``, possibly ``grad`` itself.
    """
    grad = np.asarray(grad)
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    # sigmoid(x) = 1/(1+exp(-x)) = exp(-log(1+exp(-x))); logaddexp never overflows.
    return np.exp(-np.logaddexp(0, -x))


def _normalize_axes(op: str, axis: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``axis`` (None, int or tuple, negatives allowed) as sorted non-negative axes."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of bounds for an operand of shape {shape}")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def _normalize_axis(op: str, axis: Any, shape: tuple[int, ...]) -> int:
    """A single axis (negatives allowed) as a non-negative int."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return _normalize_axes(op, axis, shape)[0]


def _restore_axes(g: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Put back the reduced axes (as length 1) that ``keepdims=False`` dropped."""
    return g if keepdims else np.expand_dims(g, axes)


def _check_broadcast(op: str, a: np.ndarray, b: np.ndarray) -> tuple:
    """prepare of the binary elementwise ops: the operands must broadcast; no parameters."""
    if a.shape == b.shape or not a.shape or not b.shape:
        return ()  # the common cases, without np.broadcast_shapes (about 4 us)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape} do not broadcast"
                         ) from None
    return ()


def _reduction_axes(op: str, x: np.ndarray, axis: Any, keepdims: bool) -> tuple:
    """prepare of the reductions: ``axis`` as sorted non-negative axes."""
    return _normalize_axes(op, axis, x.shape), keepdims


def _one_axis(op: str, x: np.ndarray, axis: Any) -> tuple:
    """prepare of the ops along one axis (softmax, log_softmax)."""
    return (_normalize_axis(op, axis, x.shape),)


# --------------------------------------------------------------------------------------------
# Elementwise unary rules: vjp(g, y, x)
# --------------------------------------------------------------------------------------------

def _relu_forward(x):
    return np.maximum(x, 0)


def _softplus_forward(x):
    return np.logaddexp(0, x)  # log(1 + e^x) without overflow


def _log_sigmoid_forward(x):
    return -np.logaddexp(0, -x)  # log sigmoid(x) = -softplus(-x)


def _negative_vjp(g, y, x):
    return (-g,)


def _exp_vjp(g, y, x):
    return (g * y,)  # d/dx exp(x) = exp(x)


def _log_vjp(g, y, x):
    return (g / x,)  # d/dx log(x) = 1/x


def _log1p_vjp(g, y, x):
    return (g / (1 + x),)


def _sqrt_vjp(g, y, x):
    return (g / (2 * y),)  # d/dx sqrt(x) = 1/(2 sqrt(x))


def _sin_vjp(g, y, x):
    return (g * np.cos(x),)


def _cos_vjp(g, y, x):
    return (-g * np.sin(x),)


def _tanh_vjp(g, y, x):
    return (g * (1 - y * y),)  # d/dx tanh(x) = 1 - tanh(x)^2


def _sigmoid_vjp(g, y, x):
    return (g * y * (1 - y),)  # s' = s (1 - s)


def _relu_vjp(g, y, x):
    return (g * (x > 0),)  # PyTorch: d relu(0) = 0


def _abs_vjp(g, y, x):
    return (g * np.sign(x),)  # d|x| = sign(x), 0 at 0


def _square_vjp(g, y, x):
    return (g * (2 * x),)


def _sign_vjp(g, y, x):
    return (np.zeros(np.shape(x), dtype=g.dtype),)  # piecewise constant: d sign = 0


def _softplus_vjp(g, y, x):
    return (g * _stable_sigmoid(x),)  # d/dx log(1 + e^x) = sigmoid(x)


def _log_sigmoid_vjp(g, y, x):
    return (g * _stable_sigmoid(-x),)  # d/dx -log(1 + e^-x) = sigmoid(-x)


# --------------------------------------------------------------------------------------------
# Elementwise binary rules, broadcasting: vjp(g, y, a, b)
# --------------------------------------------------------------------------------------------

def _add_vjp(g, y, a, b):
    return unbroadcast(g, a.shape), unbroadcast(g, b.shape)


def _subtract_vjp(g, y, a, b):
    return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)


def _multiply_vjp(g, y, a, b):
    return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)


def _divide_vjp(g, y, a, b):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -y/b
    return unbroadcast(g / b, a.shape), unbroadcast(-g * y / b, b.shape)


def _power_vjp(g, y, a, b):
    # d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a), taken as 0 where a <= 0 (the real
    # power is not differentiable in b there; PyTorch also gives 0 at a = 0).
    ga = g * b * a ** (b - 1)
    positive = a > 0
    log_a = np.log(np.where(positive, a, 1))
    gb = g * np.where(positive, y * log_a, 0)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _maximum_vjp(g, y, a, b):
    # PyTorch: at a tie each operand gets half the gradient.
    half = g * 0.5
    ga = g * (a > b) + half * (a == b)
    gb = g * (b > a) + half * (a == b)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _minimum_vjp(g, y, a, b):
    half = g * 0.5
    ga = g * (a < b) + half * (a == b)
    gb = g * (b < a) + half * (a == b)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _clip_prepare(op, x, lo, hi):
    lo, hi = float(lo), float(hi)
    if not lo <= hi:
        raise ValueError(f"{op}: the lower bound {lo} is above the upper bound {hi}")
    return lo, hi


def _clip_forward(x, lo, hi):
    return np.clip(x, lo, hi)


def _clip_vjp(g, y, x, lo, hi):
    # 1 inside [lo, hi] (bounds included), 0 outside
    return (g * ((x >= lo) & (x <= hi)).astype(g.dtype),)


def _sigmoid_cross_entropy_forward(x, z):
    # max(x, 0) - x z + log(1 + exp(-|x|)) = log(1 + e^x) - x z without overflow.
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_cross_entropy_vjp(g, y, x, z):
    # d/dx = sigmoid(x) - z, d/dz = -x
    return unbroadcast(g * (_stable_sigmoid(x) - z), x.shape), unbroadcast(-g * x, z.shape)


def _where_prepare(op, a, b, cond):
    cond = np.asarray(_value_of(cond), dtype=bool)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: condition of shape {cond.shape} and operands of shape "
                         f"{a.shape} and {b.shape} do not broadcast") from None
    return (cond,)


def _where_forward(a, b, cond):
    return np.where(cond, a, b)


def _where_vjp(g, y, a, b, cond):
    zero = np.zeros((), g.dtype)
    return (unbroadcast(np.where(cond, g, zero), a.shape),
            unbroadcast(np.where(cond, zero, g), b.shape))


# --------------------------------------------------------------------------------------------
# matmul: vjp(g, y, a, b)
# --------------------------------------------------------------------------------------------

def _matmul_prepare(op, a, b):
    sa, sb = a.shape, b.shape
    if not sa or not sb:
        raise ValueError(f"{op}: operands of shape {sa} and {sb}: 0-d operands are not "
                         f"allowed (use multiply)")
    ka, kb = sa[-1], (sb[-2] if len(sb) >= 2 else sb[0])
    if ka != kb:
        raise ValueError(f"{op}: operands of shape {sa} and {sb} do not align ({ka} != {kb})")
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dimensions of operands of shape {sa} and {sb} "
                         f"do not broadcast") from None
    return ()


def _matmul_vjp(g, y, a, b):
    # For matrices C = A B: dA = G B^T, dB = A^T G. Vectors are promoted as numpy does
    # (a (k,) -> (1, k), b (k,) -> (k, 1)); batch axes are summed back by unbroadcast.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a.ndim == 1 and b.ndim == 1:
        g2 = g.reshape(1, 1)
    elif a.ndim == 1:
        g2 = g[..., None, :]
    elif b.ndim == 1:
        g2 = g[..., :, None]
    else:
        g2 = g
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    return unbroadcast(ga, a2.shape).reshape(a.shape), unbroadcast(gb, b2.shape).reshape(b.shape)


# --------------------------------------------------------------------------------------------
# Reductions: vjp(g, y, x, axes, keepdims), axes sorted and non-negative
# --------------------------------------------------------------------------------------------

def _sum_forward(x, axes, keepdims):
    return np.sum(x, axis=axes, keepdims=keepdims)


def _sum_vjp(g, y, x, axes, keepdims):
    # every summed element receives the adjoint of its sum
    return (np.broadcast_to(_restore_axes(g, axes, keepdims), x.shape),)


def _mean_forward(x, axes, keepdims):
    return np.mean(x, axis=axes, keepdims=keepdims)


def _mean_vjp(g, y, x, axes, keepdims):
    count = math.prod(x.shape[ax] for ax in axes)  # a Python int: no dtype promotion
    return (np.broadcast_to(_restore_axes(g, axes, keepdims) / count, x.shape),)


def _max_prepare(op, x, axis, keepdims):
    axes = _normalize_axes(op, axis, x.shape)
    if x.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty operand of shape {x.shape}")
    return axes, keepdims


def _max_forward(x, axes, keepdims):
    return np.max(x, axis=axes, keepdims=keepdims)


def _max_vjp(g, y, x, axes, keepdims):
    # The whole adjoint goes to one element per reduced slice: the first maximum in C order
    # among the reduced axes. Move those axes last and flatten them so argmax finds it.
    kept = [ax for ax in range(x.ndim) if ax not in axes]
    perm = kept + list(axes)
    moved = np.transpose(x, perm)
    lead = moved.shape[:len(kept)]
    flat = moved.reshape(lead + (-1,))
    first = np.argmax(flat, axis=-1)
    out = np.zeros(flat.shape, dtype=g.dtype)
    np.put_along_axis(out, first[..., None], g.reshape(lead)[..., None], axis=-1)
    return (np.transpose(out.reshape(moved.shape), np.argsort(perm)),)


def _logsumexp_forward(x, axes, keepdims):
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) slices: shift by 0, not nan
    with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for all -inf slices
        y_kept = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return y_kept if keepdims else np.squeeze(y_kept, axis=axes)


def _logsumexp_vjp(g, y, x, axes, keepdims):
    # d/dx logsumexp(x) = softmax(x) = exp(x - logsumexp(x)), never overflowing
    return (_restore_axes(g, axes, keepdims) * np.exp(x - _restore_axes(y, axes, keepdims)),)


def _norm_forward(x, axes, keepdims):
    y_kept = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
    return y_kept if keepdims else np.squeeze(y_kept, axis=axes)


def _norm_vjp(g, y, x, axes, keepdims):
    # d/dx ||x|| = x / ||x||, taken as 0 where the norm is 0 (PyTorch's choice)
    y_kept = _restore_axes(y, axes, keepdims)
    safe = np.where(y_kept == 0, 1, y_kept)
    return (_restore_axes(g, axes, keepdims) * (x / safe),)


def _cumsum_prepare(op, x, axis):
    return (None if axis is None else _normalize_axis(op, axis, x.shape),)


def _cumsum_forward(x, axis):
    return np.cumsum(x, axis=axis)


def _cumsum_vjp(g, y, x, axis):
    # each input element reaches every later output: sum the adjoint from the end
    if axis is None:
        return (np.cumsum(g[::-1])[::-1].reshape(x.shape),)
    return (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),)


def _l2_loss_forward(x):
    return np.sum(x * x) / 2


def _l2_loss_vjp(g, y, x):
    return (g * x,)  # d/dx sum(x^2)/2 = x


# --------------------------------------------------------------------------------------------
# Structural rules: transpose, reshape, indexing
# --------------------------------------------------------------------------------------------

def _transpose_prepare(op, x, axes):
    if axes is None:
        return (tuple(reversed(range(x.ndim))),)
    perm = tuple(int(ax) % x.ndim if -x.ndim <= ax < x.ndim else -1 for ax in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"{op}: axes {tuple(axes)} are not a permutation of the axes "
                         f"of an operand of shape {x.shape}")
    return (perm,)


def _transpose_forward(x, perm):
    return np.transpose(x, perm)


def _transpose_vjp(g, y, x, perm):
    return (np.transpose(g, np.argsort(perm)),)  # the inverse permutation


def _reshape_forward(x, shape):
    try:
        return np.reshape(x, shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape an operand of shape {x.shape} "
                         f"into shape {shape}") from None


def _reshape_vjp(g, y, x, shape):
    return (g.reshape(x.shape),)


def _broadcast_to_prepare(op, x, shape):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"{op}: cannot broadcast an operand of shape {x.shape} to "
                         f"{shape}") from None
    if np.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"{op}: cannot broadcast an operand of shape {x.shape} to {shape}")
    return (shape,)


def _broadcast_to_forward(x, shape):
    return np.array(np.broadcast_to(x, shape))  # a copy: values are never views


def _broadcast_to_vjp(g, y, x, shape):
    return (unbroadcast(g, x.shape),)


_BASIC_INDEX_TYPES = (int, np.integer, slice, type(None), type(Ellipsis))


def _getitem_prepare(op, x, key):
    """The key with tensors read as arrays, and whether it is basic (no repeated elements)."""
    parts = key if isinstance(key, tuple) else (key,)
    parts = tuple(_value_of(p) for p in parts)
    basic = all(isinstance(p, _BASIC_INDEX_TYPES) and not isinstance(p, bool) for p in parts)
    return (parts if isinstance(key, tuple) else parts[0]), basic


def _getitem_forward(x, key, basic):
    try:
        return np.asarray(x[key])
    except IndexError as err:
        raise IndexError(f"getitem: {err} (operand of shape {x.shape})") from None


def _getitem_vjp(g, y, x, key, basic):
    # scatter the adjoint back into zeros; advanced indices may repeat, so add.at sums them
    out = np.zeros(x.shape, dtype=g.dtype)
    if basic:
        out[key] = g
    else:
        np.add.at(out, key, g)
    return (out,)


# --------------------------------------------------------------------------------------------
# Normalizations and losses (shifted by the max; stable backward rules)
# --------------------------------------------------------------------------------------------

# --- conv (issue 12): convolutions, pooling, dropout, layer norm ---
# Written apart from symgrad/ops/conv.py on purpose: windows are numpy's
# sliding_window_view and the contractions einsum (the compiled code copies one strided
# slice per tap and calls matmul); only the scatter back over the taps is alike.

def _conv_pair(op, value, name, minimum=1):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") \
            from None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
           for v in (a, b)):
        raise ValueError(f"{op}: {name} must be ints >= {minimum}, got {value!r}")
    return int(a), int(b)


def _conv_padding(op, padding, size, kernel, stride, dilation):
    """(top, bottom, left, right); "same" gives ceil(n / stride) outputs (TensorFlow)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{op}: unknown padding {padding!r}")
        out = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
            out += [total // 2, total - total // 2]
        return tuple(out)
    if isinstance(padding, (tuple, list)) and all(isinstance(p, (tuple, list)) for p in padding):
        return _conv_pair(op, padding[0], "padding", 0) + _conv_pair(op, padding[1],
                                                                     "padding", 0)
    ph, pw = _conv_pair(op, padding, "padding", 0)
    return (ph, ph, pw, pw)


def _conv_layout(op, x, data_format):
    if data_format not in ("NCHW", "NHWC"):
        raise ValueError(f"{op}: data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D, got shape {x.shape}")
    return data_format == "NHWC"


def _nchw(x, nhwc):
    return x.transpose(0, 3, 1, 2) if nhwc else x


def _nhwc(x, nhwc):
    return x.transpose(0, 2, 3, 1) if nhwc else x


def _windows(x, kernel, stride, pad, dilation, fill=0.0):
    """(N, C, Ho, Wo, kh, kw) read-only view of the windows of x padded with ``fill``."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), pad[:2], pad[2:]), constant_values=fill)
    v = np.lib.stride_tricks.sliding_window_view(
        xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def _unwindow(cols, shape, stride, pad, dilation):
    """The adjoint of _windows: (N, C, Ho, Wo, kh, kw) added back into ``shape``."""
    n, c, ho, wo, kh, kw = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = np.zeros((n, c, shape[2] + pad[0] + pad[1], shape[3] + pad[2] + pad[3]),
                   dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh,
                j * dw:j * dw + (wo - 1) * sw + 1:sw] += cols[..., i, j]
    return out[:, :, pad[0]:pad[0] + shape[2], pad[2]:pad[2] + shape[3]]


def _conv2d_prepare(op, x, w, stride, padding, dilation, groups, data_format):
    nhwc = _conv_layout(op, x, data_format)
    xs = _nchw(x, nhwc).shape
    if w.ndim != 4 or xs[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise ValueError(f"{op}: weight of shape {w.shape} does not fit an input of shape "
                         f"{x.shape} with groups={groups}")
    stride = _conv_pair(op, stride, "stride")
    dilation = _conv_pair(op, dilation, "dilation")
    pad = _conv_padding(op, padding, xs[2:], w.shape[2:], stride, dilation)
    return stride, pad, dilation, int(groups), nhwc


def _conv_nchw(x, w, stride, pad, dilation, groups):
    v = _windows(x, w.shape[2:], stride, pad, dilation)
    n, c, ho, wo, kh, kw = v.shape
    v = v.reshape(n, groups, c // groups, ho, wo, kh, kw)
    wg = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
    y = np.einsum("ngchwij,gocij->ngohw", v, wg, optimize=True)
    return y.reshape(n, w.shape[0], ho, wo)


def _conv_input_adjoint(g, w, shape, stride, pad, dilation, groups):
    """d/dx of <conv(x, w), g> for x of ``shape`` (a transposed convolution)."""
    n, o, ho, wo = g.shape
    g5 = g.reshape(n, groups, o // groups, ho, wo)
    wg = w.reshape(groups, o // groups, *w.shape[1:])
    cols = np.einsum("ngohw,gocij->ngchwij", g5, wg, optimize=True)
    cols = cols.reshape(n, shape[1], ho, wo, *w.shape[2:])
    return _unwindow(cols, shape, stride, pad, dilation)


def _conv_weight_adjoint(x, g, kernel, stride, pad, dilation, groups):
    """d/dw of <conv(x, w), g> for a kernel of ``kernel``."""
    v = _windows(x, kernel, stride, pad, dilation)
    n, c, ho, wo, kh, kw = v.shape
    o = g.shape[1]
    g5 = g.reshape(n, groups, o // groups, ho, wo)
    v = v.reshape(n, groups, c // groups, ho, wo, kh, kw)
    gw = np.einsum("ngohw,ngchwij->gocij", g5, v, optimize=True)
    return gw.reshape(o, c // groups, kh, kw)


def _conv2d_forward(x, w, stride, pad, dilation, groups, nhwc):
    return _nhwc(_conv_nchw(_nchw(x, nhwc), w, stride, pad, dilation, groups), nhwc)


def _conv2d_vjp(g, y, x, w, stride, pad, dilation, groups, nhwc):
    xn, gn = _nchw(x, nhwc), _nchw(g, nhwc)
    gx = _conv_input_adjoint(gn, w, xn.shape, stride, pad, dilation, groups)
    gw = _conv_weight_adjoint(xn, gn, w.shape[2:], stride, pad, dilation, groups)
    return _nhwc(gx, nhwc), gw


def _conv_transpose2d_prepare(op, x, w, stride, padding, output_padding, groups, dilation,
                              data_format):
    nhwc = _conv_layout(op, x, data_format)
    xs = _nchw(x, nhwc).shape
    if w.ndim != 4 or xs[1] != w.shape[0] or w.shape[0] % groups:
        raise ValueError(f"{op}: weight of shape {w.shape} does not fit an input of shape "
                         f"{x.shape} with groups={groups}")
    stride = _conv_pair(op, stride, "stride")
    dilation = _conv_pair(op, dilation, "dilation")
    ph, pw = _conv_pair(op, padding, "padding", 0)
    oph, opw = _conv_pair(op, output_padding, "output_padding", 0)
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + q + 1 for n, s, p, d, k, q in zip(
        xs[2:], stride, (ph, pw), dilation, w.shape[2:], (oph, opw)))
    shape = (xs[0], w.shape[1] * groups) + size
    return stride, (ph, ph, pw, pw), dilation, int(groups), shape, nhwc


def _conv_transpose2d_forward(x, w, stride, pad, dilation, groups, shape, nhwc):
    return _nhwc(_conv_input_adjoint(_nchw(x, nhwc), w, shape, stride, pad, dilation, groups),
                 nhwc)


def _conv_transpose2d_vjp(g, y, x, w, stride, pad, dilation, groups, shape, nhwc):
    xn, gn = _nchw(x, nhwc), _nchw(g, nhwc)
    gx = _conv_nchw(gn, w, stride, pad, dilation, groups)
    gw = _conv_weight_adjoint(gn, xn, w.shape[2:], stride, pad, dilation, groups)
    return _nhwc(gx, nhwc), gw


def _pool_prepare(op, x, kernel_size, stride, padding, dilation, data_format):
    nhwc = _conv_layout(op, x, data_format)
    kernel = _conv_pair(op, kernel_size, "kernel_size")
    stride = kernel if stride is None else _conv_pair(op, stride, "stride")
    dilation = _conv_pair(op, dilation, "dilation")
    pad = _conv_padding(op, padding, _nchw(x, nhwc).shape[2:], kernel, stride, dilation)
    return kernel, stride, pad, dilation, nhwc


def _max_pool2d_forward(x, kernel, stride, pad, dilation, nhwc):
    v = _windows(_nchw(x, nhwc), kernel, stride, pad, dilation, -np.inf)
    return _nhwc(v.max(axis=(4, 5)), nhwc)


def _max_pool2d_vjp(g, y, x, kernel, stride, pad, dilation, nhwc):
    xn, gn = _nchw(x, nhwc), _nchw(g, nhwc)
    v = _windows(xn, kernel, stride, pad, dilation, -np.inf)
    flat = v.reshape(v.shape[:4] + (-1,))
    first = np.argmax(flat, axis=-1)  # the first maximum, row-major, as PyTorch's
    cols = (np.arange(flat.shape[-1]) == first[..., None]) * gn[..., None]
    return (_nhwc(_unwindow(cols.reshape(v.shape), xn.shape, stride, pad, dilation), nhwc),)


def _avg_pool2d_prepare(op, x, kernel_size, stride, padding, data_format):
    return _pool_prepare(op, x, kernel_size, stride, padding, 1, data_format)[:3] + (
        _conv_layout(op, x, data_format),)


def _avg_pool2d_forward(x, kernel, stride, pad, nhwc):
    v = _windows(_nchw(x, nhwc), kernel, stride, pad, (1, 1))
    return _nhwc(v.mean(axis=(4, 5)), nhwc)  # padding zeros count (count_include_pad)


def _avg_pool2d_vjp(g, y, x, kernel, stride, pad, nhwc):
    gn = _nchw(g, nhwc) / (kernel[0] * kernel[1])
    cols = np.broadcast_to(gn[..., None, None], gn.shape + kernel)
    return (_nhwc(_unwindow(cols, _nchw(x, nhwc).shape, stride, pad, (1, 1)), nhwc),)


def _dropout_prepare(op, x, mask, keep_prob):
    _check_broadcast(op, x, mask)
    if not 0 < keep_prob <= 1:
        raise ValueError(f"{op}: keep_prob must be in (0, 1], got {keep_prob!r}")
    return (keep_prob,)


def _dropout_forward(x, mask, keep_prob):
    return x * mask / keep_prob


def _dropout_vjp(g, y, x, mask, keep_prob):
    return (unbroadcast(g * mask / keep_prob, x.shape),
            unbroadcast(g * x / keep_prob, mask.shape))


def _layer_norm_prepare(op, x, normalized_shape, eps):
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    if not shape or x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"{op}: normalized_shape {shape} is not the trailing shape of "
                         f"{x.shape}")
    return tuple(range(x.ndim - len(shape), x.ndim)), eps


def _layer_norm_forward(x, axes, eps):
    xc = x - np.mean(x, axis=axes, keepdims=True)
    return xc / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + eps)


def _layer_norm_vjp(g, y, x, axes, eps):
    xc = x - np.mean(x, axis=axes, keepdims=True)
    inv = 1 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + eps)
    # d y / d x applied to g: inv * (g - mean(g) - y * mean(g * y))
    return (inv * (g - np.mean(g, axis=axes, keepdims=True)
                   - y * np.mean(g * y, axis=axes, keepdims=True)),)


def _softmax_forward(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)  # exp(z) <= 1: no overflow
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_vjp(g, y, x, axis):
    # J^T g = y * (g - <g, y>) along the axis
    return (y * (g - np.sum(g * y, axis=axis, keepdims=True)),)


def _log_softmax_forward(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _log_softmax_vjp(g, y, x, axis):
    # d log_softmax_i / dx_j = delta_ij - softmax_j  =>  J^T g = g - softmax * sum(g)
    return (g - np.exp(y) * np.sum(g, axis=axis, keepdims=True),)


def _softmax_cross_entropy_prepare(op, logits, labels, axis):
    if logits.shape != labels.shape:
        raise ValueError(f"{op}: logits of shape {logits.shape} and labels "
                         f"of shape {labels.shape} differ")
    return (_normalize_axis(op, axis, logits.shape),)


def _softmax_cross_entropy_forward(logits, labels, axis):
    return -np.sum(labels * _log_softmax_forward(logits, axis), axis=axis)


def _softmax_cross_entropy_vjp(g, y, logits, labels, axis):
    # loss = -sum(z * log_softmax(x)):  d/dx = softmax(x) * sum(z) - z,  d/dz = -log_softmax(x)
    log_p = _log_softmax_forward(logits, axis)
    g = np.expand_dims(g, axis)
    grad_logits = g * (np.exp(log_p) * np.sum(labels, axis=axis, keepdims=True) - labels)
    return grad_logits, -g * log_p


# --------------------------------------------------------------------------------------------
# The table: one entry per op
# --------------------------------------------------------------------------------------------

_RETURNS = "\n\n    Returns\n    -------\n    Tensor\n    "


def _elementwise_doc(summary: str, operands: str) -> str:
    return f"{summary}\n\n    Parameters\n    ----------\n    {operands} : TensorLike{_RETURNS}"


def _unary(name: str, forward: Callable[..., Any], vjp: Callable[..., tuple],
           summary: str) -> OpRule:
    """The entry of an elementwise op of one input ``x``."""
    return OpRule(name, forward, vjp, _elementwise_doc(summary, "x"))


def _binary(name: str, forward: Callable[..., Any], vjp: Callable[..., tuple],
            summary: str) -> OpRule:
    """The entry of an elementwise op of two broadcasting inputs ``a`` and ``b``."""
    return OpRule(name, forward, vjp, _elementwise_doc(summary, "a, b"), inputs=("a", "b"),
                  prepare=_check_broadcast)


_AXIS_DOC = """

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    keepdims : bool
        Keep reduced axes with length 1.""" + _RETURNS


def _reduction(name: str, forward: Callable[..., Any], vjp: Callable[..., tuple],
               summary: str, prepare: Callable[..., tuple] = _reduction_axes) -> OpRule:
    """The entry of a reduction ``name(x, axis=None, keepdims=False)``."""
    return OpRule(name, forward, vjp, summary + _AXIS_DOC,
                  params=(("axis", None), ("keepdims", False)), prepare=prepare)


def _along_axis(name: str, forward: Callable[..., Any], vjp: Callable[..., tuple],
                summary: str) -> OpRule:
    """The entry of a normalization ``name(x, axis=-1)`` along one axis."""
    doc = (f"{summary}\n\n    Parameters\n    ----------\n    x : TensorLike\n"
           f"    axis : int, default -1{_RETURNS}")
    return OpRule(name, forward, vjp, doc, params=(("axis", -1),), prepare=_one_axis)


_TABLE: tuple[OpRule, ...] = (
    # elementwise, one input
    _unary("negative", np.negative, _negative_vjp, "Elementwise -x."),
    _unary("exp", np.exp, _exp_vjp, "Elementwise e**x."),
    _unary("log", np.log, _log_vjp, "Elementwise natural logarithm."),
    _unary("log1p", np.log1p, _log1p_vjp, "Elementwise log(1 + x)."),
    _unary("sqrt", np.sqrt, _sqrt_vjp, "Elementwise square root."),
    _unary("sin", np.sin, _sin_vjp, "Elementwise sine."),
    _unary("cos", np.cos, _cos_vjp, "Elementwise cosine."),
    _unary("tanh", np.tanh, _tanh_vjp, "Elementwise hyperbolic tangent."),
    _unary("sigmoid", _stable_sigmoid, _sigmoid_vjp,
           "Elementwise logistic 1/(1+exp(-x)), computed as exp(-logaddexp(0, -x))."),
    _unary("relu", _relu_forward, _relu_vjp, "Elementwise max(x, 0); d relu(0) = 0."),
    _unary("abs", np.abs, _abs_vjp, "Elementwise |x|; d|x|(0) = 0."),
    _unary("square", np.square, _square_vjp, "Elementwise x**2."),
    _unary("sign", np.sign, _sign_vjp, "Elementwise sign (-1, 0, 1); its gradient is 0."),
    _unary("softplus", _softplus_forward, _softplus_vjp,
           "Elementwise log(1 + exp(x)), computed as logaddexp(0, x)."),
    _unary("log_sigmoid", _log_sigmoid_forward, _log_sigmoid_vjp,
           "Elementwise log(sigmoid(x)) = -softplus(-x)."),
    # elementwise, two broadcasting inputs
    _binary("add", np.add, _add_vjp, "Elementwise a + b, broadcasting like numpy."),
    _binary("subtract", np.subtract, _subtract_vjp,
            "Elementwise a - b, broadcasting like numpy."),
    _binary("multiply", np.multiply, _multiply_vjp,
            "Elementwise a * b, broadcasting like numpy."),
    _binary("divide", np.divide, _divide_vjp, "Elementwise a / b, broadcasting like numpy."),
    _binary("power", np.power, _power_vjp,
            "Elementwise a ** b; the gradient in b is taken as 0 where a <= 0."),
    _binary("maximum", np.maximum, _maximum_vjp,
            "Elementwise maximum; at ties each operand gets half the gradient."),
    _binary("minimum", np.minimum, _minimum_vjp,
            "Elementwise minimum; at ties each operand gets half the gradient."),
    OpRule("where", _where_forward, _where_vjp,
           "Elementwise ``a`` where ``cond`` else ``b``, broadcasting all three." + """

    Parameters
    ----------
    cond : array_like of bool
        The selector (a Tensor is read as its value; it gets no gradient).
    a, b : TensorLike
        The choices.""" + _RETURNS,
           inputs=("a", "b"), params=(("cond", REQUIRED),), prepare=_where_prepare,
           order=("cond", "a", "b")),
    OpRule("clip", _clip_forward, _clip_vjp,
           "Elementwise clip to ``[lo, hi]``; the gradient is 1 inside, 0 outside." + """

    Parameters
    ----------
    x : TensorLike
    lo, hi : float
        Constant bounds.""" + _RETURNS, params=(("lo", REQUIRED), ("hi", REQUIRED)),
           prepare=_clip_prepare),
    # matmul
    OpRule("matmul", np.matmul, _matmul_vjp,
           "Matrix product with numpy's rules (vectors promoted, batch axes broadcast)." + """

    Parameters
    ----------
    a, b : TensorLike
        Operands of at least one dimension.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        If an operand is 0-d, the contracted lengths differ or the batch axes do not
        broadcast.
    """, inputs=("a", "b"), prepare=_matmul_prepare),
    # reductions
    _reduction("sum", _sum_forward, _sum_vjp,
               "Sum over ``axis`` (int, tuple or None for all; negatives allowed)."),
    _reduction("mean", _mean_forward, _mean_vjp,
               "Mean over ``axis`` (int, tuple or None for all; negatives allowed)."),
    _reduction("max", _max_forward, _max_vjp,
               "Maximum over ``axis``; at ties the first maximal element in C order gets "
               "the gradient.", prepare=_max_prepare),
    _reduction("logsumexp", _logsumexp_forward, _logsumexp_vjp,
               "``log(sum(exp(x)))`` over ``axis``, shifted by the max."),
    _reduction("norm", _norm_forward, _norm_vjp,
               "Euclidean (L2) norm over ``axis`` (all axes by default)."),
    OpRule("cumsum", _cumsum_forward, _cumsum_vjp,
           "Cumulative sum along ``axis`` (None: over the flattened operand)." + """

    Parameters
    ----------
    x : TensorLike
    axis : int, optional""" + _RETURNS, params=(("axis", None),), prepare=_cumsum_prepare),
    OpRule("l2_loss", _l2_loss_forward, _l2_loss_vjp,
           "``sum(x**2) / 2``, like TensorFlow's ``l2_loss``." + """

    Parameters
    ----------
    x : TensorLike

    Returns
    -------
    Tensor
        A scalar.
    """),
    # structural
    OpRule("transpose", _transpose_forward, _transpose_vjp,
           "Permute axes (default: reverse them)." + """

    Parameters
    ----------
    x : TensorLike
    axes : sequence of int, optional
        A permutation of ``range(x.ndim)`` (negatives allowed).""" + _RETURNS,
           params=(("axes", None),), prepare=_transpose_prepare),
    OpRule("reshape", _reshape_forward, _reshape_vjp,
           "Reshape to ``shape`` (one entry may be -1)." + """

    Parameters
    ----------
    x : TensorLike
    shape : int or tuple of int""" + _RETURNS, params=(("shape", REQUIRED),)),
    OpRule("broadcast_to", _broadcast_to_forward, _broadcast_to_vjp,
           "Broadcast to ``shape``; the gradient sums back over the broadcast axes." + """

    Parameters
    ----------
    x : TensorLike
    shape : int or tuple of int""" + _RETURNS, params=(("shape", REQUIRED),),
           prepare=_broadcast_to_prepare),
    OpRule("getitem", _getitem_forward, _getitem_vjp,
           "``x[key]``: basic indexing (ints, slices, None, Ellipsis) or numpy's advanced "
           "indexing." + """

    Parameters
    ----------
    x : TensorLike
    key : index
        Tensors in the key are read as their values.""" + _RETURNS,
           params=(("key", REQUIRED),), prepare=_getitem_prepare, public=False),
    # normalizations and losses
    _along_axis("softmax", _softmax_forward, _softmax_vjp,
                "Softmax along ``axis``, shifted by the max for stability."),
    _along_axis("log_softmax", _log_softmax_forward, _log_softmax_vjp,
                "Log-softmax along ``axis``: ``x - logsumexp(x)``, shifted by the max."),
    # --- conv (issue 12): convolutions, pooling, dropout, layer norm ---
    OpRule("conv2d", _conv2d_forward, _conv2d_vjp,
           "2-D cross-correlation, as torch.nn.functional.conv2d (no bias: add it)." + """

    Parameters
    ----------
    x : TensorLike
        (N, C, H, W), or (N, H, W, C) with data_format="NHWC".
    weight : TensorLike
        (out_channels, C / groups, kh, kw).
    stride, dilation : int or pair of int
    padding : int, pair, pair of pairs, "valid" or "same"
        "same": ceil(H / stride) outputs, the odd padding element at the end.
    groups : int
    data_format : {"NCHW", "NHWC"}""" + _RETURNS, inputs=("x", "weight"),
           params=(("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1),
                   ("data_format", "NCHW")), prepare=_conv2d_prepare),
    OpRule("conv_transpose2d", _conv_transpose2d_forward, _conv_transpose2d_vjp,
           "2-D transposed convolution, as torch.nn.functional.conv_transpose2d (no bias)."
           + """

    Parameters
    ----------
    x : TensorLike
        (N, C, H, W), or (N, H, W, C) with data_format="NHWC".
    weight : TensorLike
        (C, out_channels / groups, kh, kw).
    stride, padding, output_padding, dilation : int or pair of int
    groups : int
    data_format : {"NCHW", "NHWC"}""" + _RETURNS, inputs=("x", "weight"),
           params=(("stride", 1), ("padding", 0), ("output_padding", 0), ("groups", 1),
                   ("dilation", 1), ("data_format", "NCHW")),
           prepare=_conv_transpose2d_prepare),
    OpRule("max_pool2d", _max_pool2d_forward, _max_pool2d_vjp,
           "2-D max pooling; a window's gradient goes to its first maximum (row-major)." + """

    Parameters
    ----------
    x : TensorLike
    kernel_size : int or pair of int
    stride : int or pair of int, optional
        Default: the kernel.
    padding : int, pair, pair of pairs, "valid" or "same"
        Padding counts as -inf.
    dilation : int or pair of int
    data_format : {"NCHW", "NHWC"}""" + _RETURNS,
           params=(("kernel_size", REQUIRED), ("stride", None), ("padding", 0),
                   ("dilation", 1), ("data_format", "NCHW")), prepare=_pool_prepare),
    OpRule("avg_pool2d", _avg_pool2d_forward, _avg_pool2d_vjp,
           "2-D average pooling; padding zeros count in the average." + """

    Parameters
    ----------
    x : TensorLike
    kernel_size : int or pair of int
    stride : int or pair of int, optional
        Default: the kernel.
    padding : int, pair, pair of pairs, "valid" or "same"
    data_format : {"NCHW", "NHWC"}""" + _RETURNS,
           params=(("kernel_size", REQUIRED), ("stride", None), ("padding", 0),
                   ("data_format", "NCHW")), prepare=_avg_pool2d_prepare),
    OpRule("dropout", _dropout_forward, _dropout_vjp,
           "Inverted dropout with a given mask: ``x * mask / keep_prob``." + """

    Parameters
    ----------
    x, mask : TensorLike
        Broadcasting; mask is 1 for kept units, 0 for dropped ones.
    keep_prob : float""" + _RETURNS, inputs=("x", "mask"),
           params=(("keep_prob", REQUIRED),), prepare=_dropout_prepare),
    OpRule("layer_norm", _layer_norm_forward, _layer_norm_vjp,
           "``(x - mean) / sqrt(var + eps)`` over the trailing ``normalized_shape`` axes "
           "(no affine part: multiply and add)." + """

    Parameters
    ----------
    x : TensorLike
    normalized_shape : int or tuple of int
    eps : float, default 1e-5""" + _RETURNS,
           params=(("normalized_shape", REQUIRED), ("eps", 1e-5)),
           prepare=_layer_norm_prepare),
    OpRule("softmax_cross_entropy", _softmax_cross_entropy_forward, _softmax_cross_entropy_vjp,
           """Per-example ``-sum(onehot * log_softmax(logits), axis)``.

    Like TensorFlow's ``softmax_cross_entropy_with_logits``: ``onehot`` may be any
    distribution (or any weights), and gets a gradient too.

    Parameters
    ----------
    logits : TensorLike
    onehot : TensorLike
        Labels of the same shape as ``logits``.
    axis : int, default -1
        The class axis.

    Returns
    -------
    Tensor
        ``logits``' shape without ``axis``.
    """, inputs=("logits", "onehot"), params=(("axis", -1),),
           prepare=_softmax_cross_entropy_prepare),
    OpRule("sigmoid_cross_entropy", _sigmoid_cross_entropy_forward, _sigmoid_cross_entropy_vjp,
           """Elementwise logistic loss, like TensorFlow's ``sigmoid_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : TensorLike
        Unnormalized log-odds ``x``.
    labels : TensorLike
        Targets ``z`` in [0, 1]; broadcast against ``logits``.

    Returns
    -------
    Tensor
        ``max(x, 0) - x*z + log(1 + exp(-|x|))``; its gradients are ``sigmoid(x) - z`` in
        the logits and ``-x`` in the labels.
    """, inputs=("logits", "labels"), prepare=_check_broadcast),
)


# --------------------------------------------------------------------------------------------
# The public functions, derived from the table
# --------------------------------------------------------------------------------------------

def function_from_rule(rule: OpRule) -> Callable[..., Tensor]:
    """The recorded function ``tp.<rule.name>`` of an entry.

    Parameters
    ----------
    rule : OpRule

    Returns
    -------
    callable
        Takes the inputs and parameters in ``rule.order`` (positionally or by name), converts
        the inputs to tensors (a Python scalar takes the dtype numpy 2 gives it against the
        other inputs), runs ``prepare`` and ``forward`` and records the op with ``rule.vjp``.
        Its ``rule`` attribute is the entry.
    """
    param_names = tuple(p for p, _ in rule.params)
    order = rule.order or rule.inputs + param_names
    if sorted(order) != sorted(rule.inputs + param_names):
        raise ValueError(f"{rule.name}: order {order} must list the inputs and parameters")
    arity = len(order)
    n_inputs = len(rule.inputs)
    defaults = dict(rule.params)
    position = {n: i for i, n in enumerate(order)}
    # from the call's order to the rule's order (inputs, then params)
    permutation = tuple(position[n] for n in rule.inputs + param_names)
    permuted = permutation != tuple(range(arity))
    name, forward, vjp, prepare = rule.name, rule.forward, rule.vjp, rule.prepare

    # defaults to append to a call that stops after k positional arguments (the common
    # ``tp.sum(x)``), for every k from which all the rest have defaults
    tails: dict[int, tuple] = {arity: ()}
    for k in range(arity - 1, -1, -1):
        if defaults.get(order[k], REQUIRED) is REQUIRED:
            break
        tails[k] = (defaults[order[k]],) + tails[k + 1]

    def bind(args: tuple, kwargs: dict) -> tuple:
        """The call's arguments in ``order``, defaults filled in."""
        n = len(args)
        tail = tails.get(n)
        if tail is not None:  # every argument after the positional ones has a default
            if not kwargs:
                return args + tail
            bound = list(args + tail)
            for key, value in kwargs.items():
                i = position.get(key, -1)
                if i < n:
                    break  # unknown or repeated: the general path names the problem
                bound[i] = value
            else:
                return tuple(bound)
        return _bind_slowly(args, kwargs)

    def _bind_slowly(args: tuple, kwargs: dict) -> tuple:
        if len(args) > arity:
            raise TypeError(f"{name}() takes {arity} arguments but {len(args)} were given")
        bound = list(args) + [REQUIRED] * (arity - len(args))
        for key, value in kwargs.items():
            i = position.get(key)
            if i is None:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if i < len(args):
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            bound[i] = value
        for i, value in enumerate(bound):
            if value is REQUIRED:
                bound[i] = defaults.get(order[i], REQUIRED)
                if bound[i] is REQUIRED:
                    raise TypeError(f"{name}() missing required argument {order[i]!r}")
        return tuple(bound)

    def op(*args: Any, **kwargs: Any) -> Tensor:
        if kwargs or len(args) != arity:
            args = bind(args, kwargs)
        if permuted:
            args = tuple([args[i] for i in permutation])
        if n_inputs == 1:
            x = _as_tensor(args[0])
            tensors, inputs = (x,), (x._value,)
        else:
            tensors = _as_tensors(*args[:n_inputs])
            inputs = tuple([t._value for t in tensors])
        params = args[n_inputs:]
        if prepare is not None:
            params = prepare(name, *inputs, *params)
        y = forward(*inputs, *params)
        return _record(name, y, tensors, vjp, (y, *inputs, *params))

    # The same steps without binding or star-unpacking, for the ops called most often (the
    # elementwise ones): about 1 us less per call on this machine.
    def unary_op(*args: Any, **kwargs: Any) -> Tensor:
        if kwargs or len(args) != 1:
            args = bind(args, kwargs)
        x = _as_tensor(args[0])
        v = x._value
        y = forward(v)
        return _record(name, y, (x,), vjp, (y, v))

    def binary_op(*args: Any, **kwargs: Any) -> Tensor:
        if kwargs or len(args) != 2:
            args = bind(args, kwargs)
        a, b = _as_tensors(args[0], args[1])
        va, vb = a._value, b._value
        if prepare is not None:
            prepare(name, va, vb)
        y = forward(va, vb)
        return _record(name, y, (a, b), vjp, (y, va, vb))

    if not rule.params and n_inputs == 1 and prepare is None:
        op = unary_op
    elif not rule.params and n_inputs == 2:
        op = binary_op
    op.__name__ = op.__qualname__ = name
    op.__module__ = "symgrad.tape"
    op.__doc__ = rule.doc
    op.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           default=(inspect.Parameter.empty
                                    if defaults.get(n, REQUIRED) is REQUIRED else defaults[n]))
         for n in order])
    op.rule = rule
    return op


def _table(entries: tuple[OpRule, ...]) -> Mapping[str, OpRule]:
    table: dict[str, OpRule] = {}
    for rule in entries:
        if rule.name in table:
            raise ValueError(f"tape rules: op {rule.name!r} has two entries")
        table[rule.name] = rule
    return types.MappingProxyType(table)


#: The tape's ops by name, one :class:`OpRule` each, in the order of the docs.
OPS: Mapping[str, OpRule] = _table(_TABLE)

#: The recorded function of every op, by name (``getitem`` included).
FUNCTIONS: Mapping[str, Callable[..., Tensor]] = types.MappingProxyType(
    {name: function_from_rule(rule) for name, rule in OPS.items()})

# Tensor's operators (``+``, ``@``, ``[...]``, ``.sum()``) call these.
_values._ops.__dict__.update(FUNCTIONS)
