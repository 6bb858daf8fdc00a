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
from dataclasses import dataclass, replace
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
        The names of the tensor inputs, the differentiable positions, in order. One name
        starred, ``("*arrays",)``, is a sequence of any number of tensors (``concatenate``):
        ``prepare``, ``forward`` and ``vjp`` receive a tuple of arrays in its place and
        ``vjp`` returns one gradient per array.
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
    # None leaves a side open, as in numpy's clip
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
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

# --- ops-elem: issue 12 elementwise ops ---

def _zero_like(x, g):
    return np.zeros(np.shape(x), dtype=g.dtype)


def _no_gradient_unary(g, y, x):
    return (_zero_like(x, g),)  # piecewise constant (floor, round, ...): gradient 0


def _no_gradient_binary(g, y, a, b):
    return _zero_like(a, g), _zero_like(b, g)


def _heaviside_vjp(g, y, a, b):
    # the value is b where a == 0: the gradient flows to b there, nowhere to a
    gb = np.where(a == 0, g, np.zeros((), g.dtype))
    return _zero_like(a, g), unbroadcast(np.broadcast_to(gb, y.shape), b.shape)


def _tan_vjp(g, y, x):
    return (g * (1 + y * y),)  # d tan = 1 + tan^2


def _arcsin_vjp(g, y, x):
    return (g / np.sqrt(1 - x * x),)


def _arccos_vjp(g, y, x):
    return (-g / np.sqrt(1 - x * x),)


def _arctan_vjp(g, y, x):
    return (g / (1 + x * x),)


def _sinh_vjp(g, y, x):
    return (g * np.cosh(x),)


def _cosh_vjp(g, y, x):
    return (g * np.sinh(x),)


def _arcsinh_vjp(g, y, x):
    return (g / np.sqrt(x * x + 1),)


def _arccosh_vjp(g, y, x):
    return (g / np.sqrt(x * x - 1),)


def _arctanh_vjp(g, y, x):
    return (g / (1 - x * x),)


def _expm1_vjp(g, y, x):
    return (g * (y + 1),)  # d(e^x - 1) = e^x


def _log2_vjp(g, y, x):
    return (g / (x * math.log(2)),)


def _log10_vjp(g, y, x):
    return (g / (x * math.log(10)),)


def _exp2_vjp(g, y, x):
    return (g * y * math.log(2),)


def _reciprocal_forward(x):
    return 1 / x  # a true division: np.reciprocal truncates integers


def _reciprocal_vjp(g, y, x):
    return (-g * y * y,)  # d(1/x) = -1/x^2


def _cbrt_vjp(g, y, x):
    return (g / (3 * y * y),)


def _deg2rad_vjp(g, y, x):
    return (g * (math.pi / 180),)


def _rad2deg_vjp(g, y, x):
    return (g * (180 / math.pi),)


def _round_forward(x):
    return np.round(x)


def _sinc_vjp(g, y, x):
    # d/dx sin(pi x)/(pi x) = (cos(pi x) - sinc(x)) / x; its limit at 0 is 0
    nonzero = x != 0
    safe = np.where(nonzero, x, 1)
    return (g * np.where(nonzero, (np.cos(np.pi * x) - y) / safe, 0),)


def _nan_to_num_vjp(g, y, x):
    return (g * np.isfinite(x),)  # identity where finite; replaced values are constants


def _positive_vjp(g, y, x):
    return (g,)


def _fabs_vjp(g, y, x):
    return (g * np.sign(x),)  # 0 at 0, like abs


def _hypot_vjp(g, y, a, b):
    return unbroadcast(g * a / y, a.shape), unbroadcast(g * b / y, b.shape)


def _arctan2_vjp(g, y, a, b):
    # angle of (b, a): d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2)
    r2 = a * a + b * b
    return unbroadcast(g * b / r2, a.shape), unbroadcast(-g * a / r2, b.shape)


def _logaddexp_vjp(g, y, a, b):
    # d/da log(e^a + e^b) = e^(a - y), never overflowing since y >= a
    return unbroadcast(g * np.exp(a - y), a.shape), unbroadcast(g * np.exp(b - y), b.shape)


def _logaddexp2_vjp(g, y, a, b):
    return unbroadcast(g * np.exp2(a - y), a.shape), unbroadcast(g * np.exp2(b - y), b.shape)


def _mod_vjp(g, y, a, b):
    # a mod b = a - b floor(a/b): d/da = 1, d/db = -floor(a/b) (floor piecewise constant)
    return unbroadcast(g, a.shape), unbroadcast(-g * np.floor(a / b), b.shape)


def _fmod_vjp(g, y, a, b):
    # fmod(a, b) = a - b trunc(a/b)
    return unbroadcast(g, a.shape), unbroadcast(-g * np.trunc(a / b), b.shape)


def _copysign_vjp(g, y, a, b):
    # |a| with b's sign bit: d/da = sign(a) copysign(1, b) (b = +0.0 counts as positive);
    # the sign of b is piecewise constant
    return unbroadcast(g * np.sign(a) * np.copysign(1, b), a.shape), _zero_like(b, g)


def _float_power_vjp(g, y, a, b):
    ga = g * b * np.float_power(a, b - 1)
    positive = a > 0
    gb = g * np.where(positive, y * np.log(np.where(positive, a, 1)), 0)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _no_gradient_comparison(g, y, a, b):
    return None, None


def _no_gradient_logical_not(g, y, x):
    return (None,)


def _logical_not_forward(x):
    return np.logical_not(x)


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

# --- reductions and products (issue 12) ---

def _moved_last(x, axes):
    """``x`` with ``axes`` moved last and flattened into one; and the permutation used."""
    kept = [ax for ax in range(x.ndim) if ax not in axes]
    perm = kept + list(axes)
    moved = np.transpose(x, perm)
    return moved.reshape(moved.shape[:len(kept)] + (-1,)), moved.shape, perm


def _min_forward(x, axes, keepdims):
    return np.min(x, axis=axes, keepdims=keepdims)


def _min_vjp(g, y, x, axes, keepdims):
    # the whole adjoint to the first minimum in C order among the reduced axes
    flat, moved_shape, perm = _moved_last(x, axes)
    first = np.argmin(flat, axis=-1)
    out = np.zeros(flat.shape, dtype=g.dtype)
    np.put_along_axis(out, first[..., None], g.reshape(flat.shape[:-1])[..., None], axis=-1)
    return (np.transpose(out.reshape(moved_shape), np.argsort(perm)),)


def _prod_forward(x, axes, keepdims):
    return np.prod(x, axis=axes, keepdims=keepdims)


def _prod_vjp(g, y, x, axes, keepdims):
    # the product of the others, exact with zeros: (product of those before) * (product of
    # those after), from exclusive cumulative products from both ends of each flattened slice
    flat, moved_shape, perm = _moved_last(x, axes)
    ones = np.ones(flat.shape[:-1] + (1,), dtype=flat.dtype)
    before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    others = np.transpose((before * after).reshape(moved_shape), np.argsort(perm))
    return (_restore_axes(g, axes, keepdims) * others,)


def _var_prepare(op, x, axis, ddof, keepdims):
    axes = _normalize_axes(op, axis, x.shape)
    n = math.prod(x.shape[ax] for ax in axes)
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)):
        raise TypeError(f"{op}: ddof must be an int, got {ddof!r}")
    if n - ddof <= 0:
        raise ValueError(f"{op}: ddof={ddof} leaves no degrees of freedom for {n} elements "
                         f"(operand of shape {x.shape})")
    return axes, int(ddof), keepdims


def _var_forward(x, axes, ddof, keepdims):
    return np.var(x, axis=axes, ddof=ddof, keepdims=keepdims)


def _var_vjp(g, y, x, axes, ddof, keepdims):
    # d/dx_i sum_j (x_j - m)^2 / (n - ddof) = 2 (x_i - m) / (n - ddof): the terms through m
    # sum to 0
    n = math.prod(x.shape[ax] for ax in axes)
    deviation = x - np.mean(x, axis=axes, keepdims=True)
    return (_restore_axes(g, axes, keepdims) * deviation * (2 / (n - ddof)),)


def _std_forward(x, axes, ddof, keepdims):
    return np.std(x, axis=axes, ddof=ddof, keepdims=keepdims)


def _std_vjp(g, y, x, axes, ddof, keepdims):
    # d std = d var / (2 std), taken as 0 where std = 0 (PyTorch's std_backward)
    n = math.prod(x.shape[ax] for ax in axes)
    s = _restore_axes(y, axes, keepdims)
    deviation = x - np.mean(x, axis=axes, keepdims=True)
    scale = np.where(s > 0, 1 / ((n - ddof) * np.where(s > 0, s, 1)), 0)
    return (_restore_axes(g, axes, keepdims) * deviation * scale,)


def _average_prepare(op, x, axis, weights, keepdims):
    axes = _normalize_axes(op, axis, x.shape)
    if weights is None:
        return axes, None, keepdims
    w = np.asarray(_value_of(weights))
    if w.shape != x.shape:
        if not (isinstance(axis, (int, np.integer)) and w.ndim == 1
                and w.shape[0] == x.shape[axes[0]]):
            raise ValueError(f"{op}: weights of shape {w.shape} fit neither the operand's "
                             f"shape {x.shape} nor its axis {axis}")
        w = w.reshape([x.shape[ax] if ax == axes[0] else 1 for ax in range(x.ndim)])
    return axes, np.broadcast_to(w, x.shape), keepdims


def _average_forward(x, axes, w, keepdims):
    if w is None:
        return np.mean(x, axis=axes, keepdims=keepdims)
    return np.sum(x * w, axis=axes, keepdims=keepdims) / np.sum(w, axis=axes, keepdims=keepdims)


def _average_vjp(g, y, x, axes, w, keepdims):
    # linear in x: each element weighs w / sum(w) (1 / n unweighted); no gradient for w
    if w is None:
        n = math.prod(x.shape[ax] for ax in axes)
        return (np.broadcast_to(_restore_axes(g, axes, keepdims) / n, x.shape),)
    return (_restore_axes(g, axes, keepdims) * w / np.sum(w, axis=axes, keepdims=True),)


def _arg_prepare(op, x, axis, keepdims):
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"{op}: needs a non-empty operand of at least 1 dim, got shape "
                         f"{x.shape}")
    return (None if axis is None else _normalize_axis(op, axis, x.shape)), bool(keepdims)


def _argmax_forward(x, axis, keepdims):
    return np.argmax(x, axis=axis, keepdims=keepdims)


def _argmin_forward(x, axis, keepdims):
    return np.argmin(x, axis=axis, keepdims=keepdims)


def _no_gradient_vjp(g, y, x, axis, keepdims):
    return (None,)  # integer indices: piecewise constant, no gradient


def _cumprod_forward(x, axis):
    return np.cumprod(x, axis=axis)


def _cumprod_vjp(g, y, x, axis):
    # dx_i = sum_{j >= i} g_j prod_{k <= j, k != i} x_k, exact with zeros: for each i, the
    # cumulative product of the slice with x_i replaced by 1 (an n x n table per slice)
    if axis is None:
        return (_cumprod_vjp(g, y, x.reshape(-1), 0)[0].reshape(x.shape),)
    xs, gs = np.moveaxis(x, axis, -1), np.moveaxis(g, axis, -1)
    n = xs.shape[-1]
    table = np.repeat(xs[..., None, :], n, axis=-2)  # [..., i, k] = x_k
    table[..., np.arange(n), np.arange(n)] = 1
    later = np.triu(np.ones((n, n), dtype=bool))  # [i, j]: j >= i
    grad = np.sum(np.where(later, np.cumprod(table, axis=-1) * gs[..., None, :], 0), axis=-1)
    return (np.moveaxis(grad, -1, axis).astype(g.dtype, copy=False),)


def _tensordot_prepare(op, a, b, axes):
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ValueError(f"{op}: cannot contract {axes} axes of operands of shape "
                             f"{a.shape} and {b.shape}")
        ca, cb = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        ca, cb = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
        if len(ca) != len(cb):
            raise ValueError(f"{op}: axes {axes} pair {len(ca)} with {len(cb)} axes")
        ca = [_normalize_axis(op, ax, a.shape) for ax in ca]
        cb = [_normalize_axis(op, ax, b.shape) for ax in cb]
    for i, j in zip(ca, cb):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape} do not align "
                             f"on axes {i} and {j}")
    return (tuple(ca), tuple(cb)),


def _tensordot_forward(a, b, axes):
    return np.tensordot(a, b, axes=axes)


def _tensordot_vjp(g, y, a, b, axes):
    # the output's axes are a's free axes then b's; contract g with the other operand over
    # the other's free axes, then put the axes back in the operand's order
    ca, cb = axes
    fa = [ax for ax in range(a.ndim) if ax not in ca]
    fb = [ax for ax in range(b.ndim) if ax not in cb]
    na = len(fa)
    # tensordot leaves the remaining axes of an operand in its own order: ga ends with b's
    # contracted axes in increasing order (each stands for its partner in a), gb starts
    # with a's
    ga = np.tensordot(g, b, axes=(list(range(na, g.ndim)), fb))
    gb = np.tensordot(a, g, axes=(fa, list(range(na))))
    ga_axes = fa + [ca[cb.index(j)] for j in sorted(cb)]
    gb_axes = [cb[ca.index(i)] for i in sorted(ca)] + fb
    return np.transpose(ga, np.argsort(ga_axes)), np.transpose(gb, np.argsort(gb_axes))


def _dot_prepare(op, a, b):
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape}: only 0-d, 1-d "
                         f"and 2-d operands (use tensordot or matmul)")
    if a.ndim and b.ndim and a.shape[-1] != b.shape[0]:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape} do not align")
    return ()


def _dot_vjp(g, y, a, b):
    if a.ndim == 0 or b.ndim == 0:
        return _multiply_vjp(g, y, a, b)
    # contract g with the other operand over everything that is not the contracted axis
    ga = np.tensordot(g, b, axes=(list(range(a.ndim - 1, g.ndim)), list(range(1, b.ndim))))
    gb = np.tensordot(a, g, axes=(list(range(a.ndim - 1)), list(range(a.ndim - 1))))
    return ga.reshape(a.shape), gb.reshape(b.shape)


def _inner_prepare(op, a, b):
    if a.ndim and b.ndim and a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape} do not align "
                         f"on their last axes")
    return ()


def _inner_vjp(g, y, a, b):
    if a.ndim == 0 or b.ndim == 0:
        return _multiply_vjp(g, y, a, b)
    na = a.ndim - 1  # y[i..., j...] = sum_k a[i..., k] b[j..., k]
    ga = np.tensordot(g, b, axes=(list(range(na, g.ndim)), list(range(b.ndim - 1))))
    gb = np.tensordot(g, a, axes=(list(range(na)), list(range(na))))
    return ga, gb


def _outer_vjp(g, y, a, b):
    g2 = g.reshape(a.size, b.size)
    return (g2 @ b.reshape(-1)).reshape(a.shape), (a.reshape(-1) @ g2).reshape(b.shape)


def _vdot_prepare(op, a, b):
    if a.size != b.size:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape} differ in size")
    return ()


def _vdot_forward(a, b):
    return np.asarray(np.vdot(a, b))


def _vdot_vjp(g, y, a, b):
    return g * b.reshape(a.shape), g * a.reshape(b.shape)


def _einsum_prepare(op, *args):
    *operands, subscripts = args
    if not isinstance(subscripts, str) or "->" not in subscripts or "." in subscripts:
        raise ValueError(f"{op}: subscripts must be a string with an explicit '->' and no "
                         f"ellipsis, got {subscripts!r}")
    ins, out = subscripts.replace(" ", "").split("->")
    ins = ins.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"{op}: {subscripts!r} names {len(ins)} operands, got "
                         f"{len(operands)}")
    for s, x in zip(ins, operands):
        if len(s) != x.ndim or len(set(s)) != len(s):
            raise ValueError(f"{op}: subscripts {s!r} do not fit an operand of shape {x.shape} "
                             f"(one distinct letter per axis)")
    return ((ins, out),)


def _einsum2_forward(a, b, spec):
    ins, out = spec
    return np.asarray(np.einsum(f"{','.join(ins)}->{out}", a, b))


def _einsum_grads(g, operands, spec):
    # d/dX_i: g contracted with the other operands onto X_i's letters; letters that only
    # X_i has (summed away in the forward) come back by broadcasting
    ins, out = spec
    grads = []
    for i, x in enumerate(operands):
        others = [s for j, s in enumerate(ins) if j != i]
        have = set(out).union(*others)
        kept = "".join(c for c in ins[i] if c in have)
        gi = np.einsum(f"{','.join([out] + others)}->{kept}", g,
                       *[o for j, o in enumerate(operands) if j != i])
        gi = np.expand_dims(gi, [k for k, c in enumerate(ins[i]) if c not in have])
        grads.append(np.broadcast_to(gi, x.shape).astype(g.dtype))
    return tuple(grads)


def _einsum2_vjp(g, y, a, b, spec):
    return _einsum_grads(g, (a, b), spec)


def _kron_prepare(op, a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape}: 2-d only")
    return ()


def _kron_vjp(g, y, a, b):
    # y[i p + k, j q + l] = a[i, j] b[k, l]
    (m, n), (p, q) = a.shape, b.shape
    g4 = g.reshape(m, p, n, q)
    return np.einsum("ikjl,kl->ij", g4, b), np.einsum("ikjl,ij->kl", g4, a)


def _cross_prepare(op, a, b):
    if not a.ndim or not b.ndim or a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape}: 3-vectors along "
                         f"the last axis only")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: operands of shape {a.shape} and {b.shape} do not "
                         f"broadcast") from None
    return ()


def _cross_vjp(g, y, a, b):
    # <g, a x b> = <b x g, a> = <g x a, b>
    return unbroadcast(np.cross(b, g), a.shape), unbroadcast(np.cross(g, a), b.shape)


_VAR_DOC = """

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    ddof : int
        Delta degrees of freedom.
    keepdims : bool

    Returns
    -------
    Tensor
    """

_ARG_DOC = """

    Parameters
    ----------
    x : TensorLike
    axis : int, optional
    keepdims : bool

    Returns
    -------
    Tensor
        Integer indices.
    """

_PAIR_DOC = """

    Parameters
    ----------
    a, b : TensorLike

    Returns
    -------
    Tensor
    """


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


# --- shape ops (issue 12): rule functions ---

def _axis_of(op, axis, ndim):
    """One axis (negatives allowed) of an operand of ``ndim`` dims, as a non-negative int."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of bounds for an operand of {ndim} dims")
    return int(axis) % ndim


def _reshape_back_vjp(g, y, x, *params):
    # every op that only reshapes (squeeze, expand_dims, ravel, atleast_nd)
    return (np.reshape(g, x.shape),)


def _moveaxis_forward(x, source, destination):
    return np.moveaxis(x, source, destination)


def _moveaxis_vjp(g, y, x, source, destination):
    return (np.moveaxis(g, destination, source),)


def _swapaxes_forward(x, axis1, axis2):
    return np.swapaxes(x, axis1, axis2)


def _swapaxes_vjp(g, y, x, axis1, axis2):
    return (np.swapaxes(g, axis1, axis2),)


def _squeeze_forward(x, axis):
    return np.squeeze(x, axis)


def _expand_dims_forward(x, axis):
    return np.expand_dims(x, axis)


def _ravel_forward(x):
    return np.ravel(x)


def _atleast_1d_forward(x):
    return np.atleast_1d(x)


def _atleast_2d_forward(x):
    return np.atleast_2d(x)


def _atleast_3d_forward(x):
    return np.atleast_3d(x)


def _flip_forward(x, axis):
    return np.flip(x, axis)


def _flip_vjp(g, y, x, axis):
    return (np.flip(g, axis),)


def _flipud_forward(x):
    return np.flipud(x)


def _flipud_vjp(g, y, x):
    return (np.flipud(g),)


def _fliplr_forward(x):
    return np.fliplr(x)


def _fliplr_vjp(g, y, x):
    return (np.fliplr(g),)


def _rot90_forward(x, k, axes):
    return np.rot90(x, k, axes)


def _rot90_vjp(g, y, x, k, axes):
    return (np.rot90(g, -k, axes),)  # rotating back


def _roll_forward(x, shift, axis):
    return np.roll(x, shift, axis)


def _roll_vjp(g, y, x, shift, axis):
    return (np.roll(g, np.negative(shift), axis),)


def _repeat_forward(x, repeats, axis):
    return np.repeat(x, repeats, axis)


def _repeat_vjp(g, y, x, repeats, axis):
    # output element j came from input element source[j] along the axis: add them back
    if axis is None:
        source = np.repeat(np.arange(x.size), repeats)
        out = np.zeros(x.size, dtype=g.dtype)
        np.add.at(out, source, g)
        return (out.reshape(x.shape),)
    axis = _axis_of("repeat", axis, x.ndim)
    source = np.repeat(np.arange(x.shape[axis]), repeats)
    out = np.zeros((x.shape[axis],) + tuple(np.delete(x.shape, axis)), dtype=g.dtype)
    np.add.at(out, source, np.moveaxis(g, axis, 0))
    return (np.moveaxis(out, 0, axis),)


def _tile_forward(x, reps):
    return np.tile(x, reps)


def _tile_vjp(g, y, x, reps):
    # sum the cotangent over every copy: one block of the result per tile offset
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    d = max(len(reps), x.ndim)
    reps = (1,) * (d - len(reps)) + reps
    block = (1,) * (d - x.ndim) + x.shape
    out = np.zeros(block, dtype=g.dtype)
    for offset in np.ndindex(*reps):
        out = out + g[tuple(slice(o * b, (o + 1) * b) for o, b in zip(offset, block))]
    return (out.reshape(x.shape),)


def _diff_forward(x, n, axis):
    return np.diff(x, n, axis)


def _diff_vjp(g, y, x, n, axis):
    # the adjoint of d = x[1:] - x[:-1] is [0, g] - [g, 0], taken n times
    axis = _axis_of("diff", axis, x.ndim)
    for _ in range(n):
        before = [(0, 0)] * g.ndim
        after = [(0, 0)] * g.ndim
        before[axis], after[axis] = (1, 0), (0, 1)
        g = np.pad(g, before) - np.pad(g, after)
    return (g,)


def _diagonal_forward(x, offset, axis1, axis2):
    return np.diagonal(x, offset, axis1, axis2).copy()


def _into_diagonal(g, shape, offset, axis1, axis2):
    """zeros(shape) with ``g`` (diagonal last, as np.diagonal gives it) on the diagonal."""
    out = np.zeros(shape, dtype=g.dtype)
    plane = np.moveaxis(out, (axis1, axis2), (-2, -1))  # a view: writes go into out
    n = g.shape[-1]
    rows = np.arange(n) + max(-offset, 0)
    cols = np.arange(n) + max(offset, 0)
    plane[..., rows, cols] = g
    return out


def _diagonal_vjp(g, y, x, offset, axis1, axis2):
    return (_into_diagonal(g, x.shape, offset, axis1, axis2),)


def _trace_forward(x, offset, axis1, axis2):
    return np.asarray(np.trace(x, offset, axis1, axis2))


def _trace_vjp(g, y, x, offset, axis1, axis2):
    n = np.diagonal(x, offset, axis1, axis2).shape[-1]
    diag = np.broadcast_to(np.asarray(g)[..., None], np.shape(g) + (n,))
    return (_into_diagonal(diag, x.shape, offset, axis1, axis2),)


def _diag_forward(x, k):
    return np.diag(x, k).copy()


def _diag_vjp(g, y, x, k):
    if x.ndim == 1:
        return (np.diagonal(g, k).copy(),)
    return (_into_diagonal(g, x.shape, k, 0, 1),)


def _tril_forward(x, k):
    return np.tril(x, k)


def _tril_vjp(g, y, x, k):
    # a 1-D x was every row of the (M, M) result: its gradient is the sum over the rows
    return (_rows_back(np.tril(g, k), x),)


def _rows_back(grad, x):
    return grad.sum(axis=0) if x.ndim == 1 else grad


def _triu_forward(x, k):
    return np.triu(x, k)


def _triu_vjp(g, y, x, k):
    return (_rows_back(np.triu(g, k), x),)


def _pad_forward(x, pad_width, constant_values):
    return np.pad(x, pad_width, mode="constant", constant_values=constant_values)


def _pad_vjp(g, y, x, pad_width, constant_values):
    widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    return (g[tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))],)


def _take_forward(x, indices, axis):
    return np.take(x, indices, axis)


def _take_vjp(g, y, x, indices, axis):
    if axis is None:
        out = np.zeros(x.size, dtype=g.dtype)
        np.add.at(out, np.asarray(indices), g)
        return (out.reshape(x.shape),)
    axis = _axis_of("take", axis, x.ndim)
    out = np.zeros(x.shape, dtype=g.dtype)
    np.add.at(out, (slice(None),) * axis + (np.asarray(indices),), g)
    return (out,)


def _take_along_axis_forward(x, indices, axis):
    return np.take_along_axis(x, np.asarray(indices), axis)


def _take_along_axis_vjp(g, y, x, indices, axis):
    if axis is None:
        out = np.zeros(x.size, dtype=g.dtype)
        np.add.at(out, np.asarray(indices), g)
        return (out.reshape(x.shape),)
    axis = _axis_of("take_along_axis", axis, x.ndim)
    idx = np.broadcast_to(np.asarray(indices), g.shape)
    key = tuple(idx if i == axis else np.arange(n).reshape((-1,) + (1,) * (g.ndim - i - 1))
                for i, n in enumerate(g.shape))
    out = np.zeros(x.shape, dtype=g.dtype)
    np.add.at(out, key, g)
    return (out,)


def _argsort_forward(x, axis):
    return np.argsort(x, axis, kind="stable")


def _argsort_vjp(g, y, x, axis):
    return (None,)  # integer valued


def _sort_forward(x, axis):
    return np.sort(x, axis, kind="stable")


def _sort_vjp(g, y, x, axis):
    # each sorted element's cotangent goes back to where argsort found it
    if axis is None:
        out = np.zeros(x.size, dtype=g.dtype)
        out[np.argsort(x, axis=None, kind="stable")] = g
        return (out.reshape(x.shape),)
    order = np.argsort(x, axis, kind="stable")
    out = np.zeros(x.shape, dtype=g.dtype)
    np.put_along_axis(out, order, g, axis)
    return (out,)


def _select_prepare(op, choices, condlist, default):
    conds = [np.asarray(_value_of(c), dtype=bool) for c in condlist]
    if len(conds) != len(choices):
        raise ValueError(f"{op}: {len(conds)} conditions for {len(choices)} choices")
    return conds, default


def _select_forward(choices, condlist, default):
    return np.asarray(np.select(condlist, list(choices), default))


def _select_vjp(g, y, choices, condlist, default):
    # choice i gets the cotangent where its condition is the first to hold
    taken = np.zeros(g.shape, dtype=bool)
    out = []
    for cond, choice in zip(condlist, choices):
        first = np.broadcast_to(cond, g.shape) & ~taken
        out.append(unbroadcast(np.where(first, g, 0).astype(g.dtype), choice.shape))
        taken = taken | first
    return tuple(out)


def _join_prepare(op, arrays, axis):
    if not arrays:
        raise ValueError(f"{op}: need at least one array")
    return (axis,)


def _sizes_along(arrays, axis):
    return np.cumsum([a.shape[axis] for a in arrays])[:-1]


def _concatenate_forward(arrays, axis):
    return np.concatenate(arrays, axis)


def _concatenate_vjp(g, y, arrays, axis):
    if axis is None:
        parts = np.split(g, np.cumsum([a.size for a in arrays])[:-1])
        return tuple(p.reshape(a.shape) for p, a in zip(parts, arrays))
    return tuple(np.split(g, _sizes_along(arrays, axis), axis))


def _stack_forward(arrays, axis):
    return np.stack(arrays, axis)


def _stack_vjp(g, y, arrays, axis):
    return tuple(np.take(g, i, axis) for i in range(len(arrays)))


def _stacked_vjp(g, axis, arrays, promoted):
    parts = np.split(g, np.cumsum([p.shape[axis] for p in promoted])[:-1], axis)
    return tuple(p.reshape(a.shape) for p, a in zip(parts, arrays))


def _vstack_forward(arrays):
    return np.vstack(arrays)


def _vstack_vjp(g, y, arrays):
    return _stacked_vjp(g, 0, arrays, [np.atleast_2d(a) for a in arrays])


def _hstack_forward(arrays):
    return np.hstack(arrays)


def _hstack_vjp(g, y, arrays):
    promoted = [np.atleast_1d(a) for a in arrays]
    return _stacked_vjp(g, 0 if promoted[0].ndim == 1 else 1, arrays, promoted)


def _column_stack_forward(arrays):
    return np.column_stack(arrays)


def _column_stack_vjp(g, y, arrays):
    promoted = [a.reshape(-1, 1) if a.ndim < 2 else a for a in arrays]
    return _stacked_vjp(g, 1, arrays, promoted)


def _append_forward(arr, values, axis):
    return np.append(arr, values, axis)


def _append_vjp(g, y, arr, values, axis):
    if axis is None:
        return g[:arr.size].reshape(arr.shape), g[arr.size:].reshape(values.shape)
    first, second = np.split(g, [arr.shape[axis]], axis)
    return first, second


def _split_forward(x, indices_or_sections, axis, piece):
    return np.split(x, indices_or_sections, axis)[piece].copy()


def _array_split_forward(x, indices_or_sections, axis, piece):
    return np.array_split(x, indices_or_sections, axis)[piece].copy()


def _piece_vjp(g, positions, x, axis):
    out = np.zeros(x.shape, dtype=g.dtype)
    np.moveaxis(out, axis, 0)[positions] = np.moveaxis(g, axis, 0)
    return (out,)


def _split_vjp(g, y, x, indices_or_sections, axis, piece):
    n = x.shape[axis]
    return _piece_vjp(g, np.split(np.arange(n), indices_or_sections)[piece], x, axis)


def _array_split_vjp(g, y, x, indices_or_sections, axis, piece):
    n = x.shape[axis]
    return _piece_vjp(g, np.array_split(np.arange(n), indices_or_sections)[piece], x, axis)


# --- end of shape ops (issue 12): rule functions ---


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



# --- linalg block ---
# np.linalg on real stacks of matrices (..., M, N). Several outputs (eigh, slogdet, svd): the
# tape records one part per call (``piece``), as split does; the adjoints of the parts add up.


def _mt(x):
    return np.swapaxes(x, -1, -2)


def _square_prepare(op, a, *params):
    """prepare of the ops of one square operand: (..., M, M), or a ValueError naming it."""
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{op}: operand a of shape {a.shape} is not a stack of square "
                         f"matrices (..., M, M)")
    return params


def _inv_vjp(g, y, a):
    # d(A^-1) = -A^-1 dA A^-1
    return (-(_mt(y) @ g @ _mt(y)),)


def _solve_prepare(op, a, b):
    _square_prepare(op, a)
    m = a.shape[-1]
    if (b.ndim == 1 and b.shape[0] != m) or (b.ndim != 1 and (b.ndim < 2 or b.shape[-2] != m)):
        raise ValueError(f"solve: operand b of shape {b.shape} does not fit operand a of shape "
                         f"{a.shape} (b is (M,) or (..., M, K))")
    return ()


def _solve_vjp(g, y, a, b):
    # x = A^-1 b: gb = A^-T g, gA = -gb x^T (vectors as one-column matrices)
    if b.ndim == 1:
        g, y = g[..., None], y[..., None]
    gb = np.linalg.solve(_mt(a), g)
    ga = -gb @ _mt(y)
    if b.ndim == 1:
        gb = gb[..., 0]
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _det_vjp(g, y, a):
    # Jacobi: d det A = det A * tr(A^-1 dA)
    return ((g * y)[..., None, None] * _mt(np.linalg.inv(a)),)


def _slogdet_forward(a, piece):
    return np.linalg.slogdet(a)[piece]


def _slogdet_vjp(g, y, a, piece):
    if piece == 0:
        return (np.zeros_like(a),)  # the sign is piecewise constant
    return (g[..., None, None] * _mt(np.linalg.inv(a)),)


def _cholesky_vjp(g, y, a):
    # S = L^-T Phi(L^T gL) L^-1 with Phi the lower triangle, diagonal halved; gA = sym(S)
    phi = np.tril(_mt(y) @ g)
    m = a.shape[-1]
    phi[..., np.arange(m), np.arange(m)] *= 0.5
    linv = np.linalg.inv(y)
    s = _mt(linv) @ phi @ linv
    return ((s + _mt(s)) / 2,)


def _gap_inverse(values):
    """1 / (values[j] - values[i]) off the diagonal, 0 on it."""
    diff = values[..., None, :] - values[..., :, None]
    off = ~np.eye(values.shape[-1], dtype=bool)
    return np.where(off, 1.0 / np.where(off, diff, 1.0), 0.0)


def _eigh_forward(a, piece):
    return np.linalg.eigh(a)[piece]


def _eigh_vjp(g, y, a, piece):
    w, v = np.linalg.eigh(a)
    if piece == 0:
        return (np.einsum("...ik,...k,...jk->...ij", v, g, v),)
    x = _mt(v) @ g
    return (v @ (_gap_inverse(w) * (x - _mt(x)) / 2) @ _mt(v),)


def _svd_prepare(op, a, piece):
    if a.ndim < 2:
        raise ValueError(f"svd: operand a of shape {a.shape} is not a stack of matrices")
    return (piece,)


def _svd_forward(a, piece):
    return np.linalg.svd(a, full_matrices=False)[piece]


def _svd_vjp(g, y, a, piece):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    if piece == 1:
        return ((u * g[..., None, :]) @ vh,)
    f = _gap_inverse(s * s)
    if piece == 0:
        j = _mt(u) @ g
        core = (f * (j - _mt(j))) * s[..., None, :]
        rest = (g - u @ j) / s[..., None, :]  # the part of gU outside the span of U
        return (u @ core @ vh + rest @ vh,)
    gv = _mt(g)  # the adjoint of V = Vh^T
    v = _mt(vh)
    k = _mt(v) @ gv
    core = s[..., :, None] * (f * (k - _mt(k)))
    rest = (gv - v @ k) / s[..., None, :]  # the part of gV outside the span of V
    return (u @ core @ vh + u @ _mt(rest),)


def _norm_prepare(op, x, ord, axis, keepdims):
    """(ord, the axes in the caller's order, keepdims)."""
    if axis is None:
        if ord is None:
            return None, tuple(range(x.ndim)), keepdims
        if x.ndim not in (1, 2):
            raise ValueError(f"norm: ord={ord!r} without axis needs a 1-d or 2-d operand, "
                             f"got shape {x.shape}")
        axis = tuple(range(x.ndim))
    given = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    _normalize_axes(op, given, x.shape)  # range and repeats
    axes = tuple(int(a) % x.ndim for a in given)
    if ord is not None and len(axes) not in (1, 2):
        raise ValueError(f"norm: ord={ord!r} needs one or two axes, got {axis!r}")
    return ord, axes, keepdims


def _norm_forward(x, ord, axes, keepdims):
    if ord is None or (ord == "fro" and len(axes) == 2):
        y = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
        return y if keepdims else np.squeeze(y, axis=axes)
    return np.linalg.norm(x, ord, axes[0] if len(axes) == 1 else axes, keepdims)


def _first_extreme(values, axis, largest):
    """A one-hot mask of the first maximum (minimum) along ``axis``."""
    idx = np.argmax(values, axis) if largest else np.argmin(values, axis)
    mask = np.zeros(values.shape)
    np.put_along_axis(mask, np.expand_dims(idx, axis), 1.0, axis)
    return mask


def _norm_vjp(g, y, x, ord, axes, keepdims):
    kept = tuple(sorted(axes))
    gk = g if keepdims else np.expand_dims(g, kept)
    yk = y if keepdims else np.expand_dims(y, kept)
    if ord is None or ord == "fro" or (ord == 2 and len(axes) == 1):
        # d/dx ||x|| = x / ||x||, taken as 0 where the norm is 0 (PyTorch's choice)
        return (gk * (x / np.where(yk == 0, 1, yk)),)
    if len(axes) == 1:
        (ax,) = axes
        if ord == 1:
            return (gk * np.sign(x),)
        if ord in (np.inf, -np.inf):
            return (gk * np.sign(x) * _first_extreme(np.abs(x), ax, ord > 0),)
        return (gk * np.sign(x) * (np.abs(x) / yk) ** (ord - 1),)
    # matrix norms: the two axes last, (row, column)
    xm = np.moveaxis(x, axes, (-2, -1))
    gm = np.moveaxis(gk, kept, (-2, -1))  # (..., 1, 1)
    if ord in ("nuc", 2, -2):
        u, s, vh = np.linalg.svd(xm, full_matrices=False)
        if ord == "nuc":
            d = u @ vh
        else:
            i = 0 if ord == 2 else -1  # s is descending
            d = u[..., :, i:i + 1 if i == 0 else None] @ vh[..., i:i + 1 if i == 0 else None, :]
    elif ord in (1, -1):  # the extreme column sum
        d = np.sign(xm) * _first_extreme(np.abs(xm).sum(-2, keepdims=True), -1, ord > 0)
    else:  # inf, -inf: the extreme row sum
        d = np.sign(xm) * _first_extreme(np.abs(xm).sum(-1, keepdims=True), -2, ord > 0)
    return (np.moveaxis(gm * d, (-2, -1), axes),)


# --- end of linalg block (rule functions) ---


# --- more block ---
# rollaxis, fftshift/ifftshift, gradient, linspace, vsplit/hsplit/dsplit (degrees and
# radians reuse the vjp of rad2deg and deg2rad)

def _rollaxis_forward(x, axis, start):
    return np.rollaxis(x, axis, start)


def _rollaxis_vjp(g, y, x, axis, start):
    # y = transpose(x, perm) with perm numpy's rule; the gradient is g transposed back
    n = x.ndim
    axis, start = axis % n, (start + n if start < 0 else start)
    perm = [i for i in range(n) if i != axis]
    perm.insert(start - 1 if axis < start else start, axis)
    return (np.transpose(g, np.argsort(perm)),)


def _fftshift_forward(x, axes):
    return np.fft.fftshift(x, axes)


def _fftshift_vjp(g, y, x, axes):
    return (np.fft.ifftshift(g, axes),)  # the adjoint of a roll is the roll back


def _ifftshift_forward(x, axes):
    return np.fft.ifftshift(x, axes)


def _ifftshift_vjp(g, y, x, axes):
    return (np.fft.fftshift(g, axes),)


def _gradient_parts(x, spacing, axis):
    axes = list(range(x.ndim)) if axis is None else (
        [axis] if np.ndim(axis) == 0 else list(axis))
    steps = np.broadcast_to(np.asarray(spacing, dtype=float), (len(axes),))
    return axes, steps


def _gradient_forward(x, spacing, axis, edge_order, piece):
    axes, steps = _gradient_parts(x, spacing, axis)
    return np.gradient(x, steps[piece], axis=axes[piece], edge_order=edge_order)


def _gradient_vjp(g, y, x, spacing, axis, edge_order, piece):
    # linear along one axis: y = J x with J the gradient of the identity's columns, so
    # the vjp is J^T g along that axis
    axes, steps = _gradient_parts(x, spacing, axis)
    ax = axes[piece] % x.ndim
    n = x.shape[ax]
    jac = np.gradient(np.eye(n), steps[piece], axis=0, edge_order=edge_order)
    back = np.tensordot(jac.T, np.moveaxis(g, ax, 0), axes=1)
    return (np.moveaxis(back, 0, ax).astype(g.dtype, copy=False),)


def _linspace_forward(start, stop, num, endpoint, axis):
    return np.linspace(start, stop, num, endpoint, axis=axis)


def _linspace_vjp(g, y, start, stop, num, endpoint, axis):
    # sample i is (1 - w_i) start + w_i stop, w_i = i / (num - 1) (num with endpoint=False)
    div = num - 1 if endpoint else num
    w = np.arange(num) / div if div > 0 else np.zeros(num)
    gs = np.moveaxis(g, axis, 0)
    to_stop = np.tensordot(w, gs, axes=1)
    to_start = np.tensordot(1.0 - w, gs, axes=1)
    return (unbroadcast(to_start.astype(g.dtype), np.shape(start)),
            unbroadcast(to_stop.astype(g.dtype), np.shape(stop)))


def _axis_split_forward(name, axis_of):
    def forward(x, indices_or_sections, piece):
        return getattr(np, name)(x, indices_or_sections)[piece].copy()

    def vjp(g, y, x, indices_or_sections, piece):
        axis = axis_of(x)
        positions = np.split(np.arange(x.shape[axis]), indices_or_sections)[piece]
        return _piece_vjp(g, positions, x, axis)
    return forward, vjp


def _astype_forward(x, dtype):
    return x.astype(dtype)


def _astype_vjp(g, y, x, dtype):
    # a float result's gradient goes back in the operand's float dtype; none through ints
    if np.dtype(dtype).kind != "f" or x.dtype.kind != "f":
        return (np.zeros(x.shape, dtype=x.dtype if x.dtype.kind == "f" else g.dtype),)
    return (g.astype(x.dtype),)


def _argpartition_forward(x, kth, axis):
    return np.argpartition(x, kth, axis)


def _argpartition_vjp(g, y, x, kth, axis):
    return (None,)  # integer valued


def _partition_forward(x, kth, axis):
    return np.partition(x, kth, axis)


def _partition_vjp(g, y, x, kth, axis):
    # each element's cotangent goes back to where argpartition took it from
    if axis is None:
        out = np.zeros(x.size, dtype=g.dtype)
        out[np.argpartition(x, kth, axis=None)] = g
        return (out.reshape(x.shape),)
    out = np.zeros(x.shape, dtype=g.dtype)
    np.put_along_axis(out, np.argpartition(x, kth, axis), g, axis)
    return (out,)


_vsplit_forward, _vsplit_vjp = _axis_split_forward("vsplit", lambda x: 0)
_hsplit_forward, _hsplit_vjp = _axis_split_forward("hsplit", lambda x: 1 if x.ndim > 1 else 0)
_dsplit_forward, _dsplit_vjp = _axis_split_forward("dsplit", lambda x: 2)


def _axis_split_rule(name, forward, vjp) -> OpRule:
    """The table entry of ``vsplit``, ``hsplit`` or ``dsplit`` (a split along a fixed axis)."""
    return OpRule(name, forward, vjp, f"Piece ``piece`` of numpy's ``{name}``." + """

    Parameters
    ----------
    x : TensorLike
    indices_or_sections : int or sequence of int
    piece : int""" + _RETURNS, params=(("indices_or_sections", REQUIRED), ("piece", 0)),
                  public=False)

# --- end of more block ---


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
    lo, hi : float or None
        Constant bounds (None: that side open).""" + _RETURNS, params=(("lo", None), ("hi", None)),
           prepare=_clip_prepare),
    # --- ops-elem: issue 12 elementwise ops ---
    _unary("tan", np.tan, _tan_vjp, "Elementwise tangent."),
    _unary("arcsin", np.arcsin, _arcsin_vjp, "Elementwise inverse sine."),
    _unary("arccos", np.arccos, _arccos_vjp, "Elementwise inverse cosine."),
    _unary("arctan", np.arctan, _arctan_vjp, "Elementwise inverse tangent."),
    _unary("sinh", np.sinh, _sinh_vjp, "Elementwise hyperbolic sine."),
    _unary("cosh", np.cosh, _cosh_vjp, "Elementwise hyperbolic cosine."),
    _unary("arcsinh", np.arcsinh, _arcsinh_vjp, "Elementwise inverse hyperbolic sine."),
    _unary("arccosh", np.arccosh, _arccosh_vjp, "Elementwise inverse hyperbolic cosine."),
    _unary("arctanh", np.arctanh, _arctanh_vjp, "Elementwise inverse hyperbolic tangent."),
    _unary("expm1", np.expm1, _expm1_vjp, "Elementwise exp(x) - 1."),
    _unary("log2", np.log2, _log2_vjp, "Elementwise base-2 logarithm."),
    _unary("log10", np.log10, _log10_vjp, "Elementwise base-10 logarithm."),
    _unary("exp2", np.exp2, _exp2_vjp, "Elementwise 2**x."),
    _unary("reciprocal", _reciprocal_forward, _reciprocal_vjp, "Elementwise 1/x."),
    _unary("cbrt", np.cbrt, _cbrt_vjp, "Elementwise real cube root."),
    _unary("deg2rad", np.deg2rad, _deg2rad_vjp, "Elementwise degrees to radians."),
    _unary("rad2deg", np.rad2deg, _rad2deg_vjp, "Elementwise radians to degrees."),
    _unary("floor", np.floor, _no_gradient_unary, "Elementwise floor; gradient 0."),
    _unary("ceil", np.ceil, _no_gradient_unary, "Elementwise ceiling; gradient 0."),
    _unary("trunc", np.trunc, _no_gradient_unary, "Elementwise truncation; gradient 0."),
    _unary("fix", np.fix, _no_gradient_unary, "Elementwise rounding toward 0; gradient 0."),
    _unary("round", _round_forward, _no_gradient_unary,
           "Elementwise rounding, halves to even; gradient 0."),
    _unary("rint", np.rint, _no_gradient_unary,
           "Elementwise rounding, halves to even; gradient 0."),
    _unary("sinc", np.sinc, _sinc_vjp, "Elementwise sin(pi x)/(pi x), 1 at 0."),
    _unary("nan_to_num", np.nan_to_num, _nan_to_num_vjp,
           "Elementwise nan to 0 and infinities to the largest finite numbers."),
    _unary("positive", np.positive, _positive_vjp, "Elementwise +x."),
    _unary("fabs", np.fabs, _fabs_vjp, "Elementwise |x| of floats; d|x|(0) = 0."),
    _binary("hypot", np.hypot, _hypot_vjp, "Elementwise sqrt(a**2 + b**2)."),
    _binary("arctan2", np.arctan2, _arctan2_vjp, "Elementwise angle of the point (b, a)."),
    _binary("logaddexp", np.logaddexp, _logaddexp_vjp, "Elementwise log(exp(a) + exp(b))."),
    _binary("logaddexp2", np.logaddexp2, _logaddexp2_vjp,
            "Elementwise log2(2**a + 2**b)."),
    _binary("fmax", np.fmax, _maximum_vjp,
            "Elementwise maximum ignoring nan; ties split the gradient."),
    _binary("fmin", np.fmin, _minimum_vjp,
            "Elementwise minimum ignoring nan; ties split the gradient."),
    _binary("mod", np.mod, _mod_vjp, "Elementwise remainder with the sign of b."),
    _binary("remainder", np.remainder, _mod_vjp, "Elementwise remainder with the sign of b."),
    _binary("fmod", np.fmod, _fmod_vjp, "Elementwise remainder with the sign of a."),
    _binary("copysign", np.copysign, _copysign_vjp,
            "Elementwise |a| with the sign of b; no gradient to b."),
    _binary("float_power", np.float_power, _float_power_vjp, "Elementwise a ** b in float64."),
    _binary("true_divide", np.true_divide, _divide_vjp, "Elementwise a / b."),
    _binary("heaviside", np.heaviside, _heaviside_vjp,
            "Elementwise step: 0 below 0, b at 0, 1 above; gradient to b where a == 0."),
    _binary("greater", np.greater, _no_gradient_comparison, "Elementwise a > b (bool)."),
    _binary("greater_equal", np.greater_equal, _no_gradient_comparison,
            "Elementwise a >= b (bool)."),
    _binary("less", np.less, _no_gradient_comparison, "Elementwise a < b (bool)."),
    _binary("less_equal", np.less_equal, _no_gradient_comparison,
            "Elementwise a <= b (bool)."),
    _binary("equal", np.equal, _no_gradient_comparison, "Elementwise a == b (bool)."),
    _binary("not_equal", np.not_equal, _no_gradient_comparison, "Elementwise a != b (bool)."),
    _binary("logical_and", np.logical_and, _no_gradient_comparison,
            "Elementwise a and b (bool)."),
    _binary("logical_or", np.logical_or, _no_gradient_comparison, "Elementwise a or b (bool)."),
    _binary("logical_xor", np.logical_xor, _no_gradient_comparison,
            "Elementwise a xor b (bool)."),
    _unary("logical_not", _logical_not_forward, _no_gradient_logical_not,
           "Elementwise not x (bool)."),
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
    # --- reductions and products (issue 12) ---
    _reduction("min", _min_forward, _min_vjp,
               "Minimum over ``axis``; at ties the first minimal element in C order gets "
               "the gradient.", prepare=_max_prepare),
    _reduction("amax", _max_forward, _max_vjp, "numpy's ``amax``: :func:`max`.",
               prepare=_max_prepare),
    _reduction("amin", _min_forward, _min_vjp, "numpy's ``amin``: :func:`min`.",
               prepare=_max_prepare),
    _reduction("prod", _prod_forward, _prod_vjp,
               "Product over ``axis``; the gradient is the product of the others (exact "
               "with zeros)."),
    OpRule("var", _var_forward, _var_vjp,
           "Variance over ``axis`` with divisor ``N - ddof``." + _VAR_DOC,
           params=(("axis", None), ("ddof", 0), ("keepdims", False)), prepare=_var_prepare),
    OpRule("std", _std_forward, _std_vjp,
           "Standard deviation over ``axis`` with divisor ``N - ddof``; its gradient is 0 "
           "where it is 0." + _VAR_DOC,
           params=(("axis", None), ("ddof", 0), ("keepdims", False)), prepare=_var_prepare),
    OpRule("average", _average_forward, _average_vjp,
           "Weighted average over ``axis`` (numpy's ``average``)." + """

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int or None
    weights : array_like, optional
        Of ``x``'s shape, or 1-D along an int ``axis``; read as values (no gradient).
    keepdims : bool""" + _RETURNS,
           params=(("axis", None), ("weights", None), ("keepdims", False)),
           prepare=_average_prepare),
    OpRule("argmax", _argmax_forward, _no_gradient_vjp,
           "Index of the first maximum along ``axis`` (None: flattened); no gradient."
           + _ARG_DOC, params=(("axis", None), ("keepdims", False)), prepare=_arg_prepare),
    OpRule("argmin", _argmin_forward, _no_gradient_vjp,
           "Index of the first minimum along ``axis`` (None: flattened); no gradient."
           + _ARG_DOC, params=(("axis", None), ("keepdims", False)), prepare=_arg_prepare),
    OpRule("cumprod", _cumprod_forward, _cumprod_vjp,
           "Cumulative product along ``axis`` (None: flattened); exact gradient with zeros."
           + """

    Parameters
    ----------
    x : TensorLike
    axis : int, optional""" + _RETURNS, params=(("axis", None),), prepare=_cumsum_prepare),
    OpRule("dot", np.dot, _dot_vjp,
           "numpy's ``dot`` for 0-d, 1-d and 2-d operands." + _PAIR_DOC,
           inputs=("a", "b"), prepare=_dot_prepare),
    OpRule("inner", np.inner, _inner_vjp,
           "numpy's ``inner``: the sum over the last axes." + _PAIR_DOC,
           inputs=("a", "b"), prepare=_inner_prepare),
    OpRule("outer", np.outer, _outer_vjp,
           "numpy's ``outer`` of the flattened operands." + _PAIR_DOC, inputs=("a", "b")),
    OpRule("vdot", _vdot_forward, _vdot_vjp,
           "numpy's ``vdot``: the dot product of the flattened operands." + _PAIR_DOC,
           inputs=("a", "b"), prepare=_vdot_prepare),
    OpRule("tensordot", _tensordot_forward, _tensordot_vjp,
           "numpy's ``tensordot``." + """

    Parameters
    ----------
    a, b : TensorLike
    axes : int or pair of sequences of int
        The last ``axes`` of ``a`` with the first of ``b``, or the axes to pair.""" + _RETURNS,
           inputs=("a", "b"), params=(("axes", 2),), prepare=_tensordot_prepare),
    OpRule("einsum", _einsum2_forward, _einsum2_vjp,
           "numpy's ``einsum`` of two operands, with an explicit ``'->'``." + """

    Parameters
    ----------
    subscripts : str
        As ``'ij,jk->ik'``: one distinct letter per axis, no ellipsis.
    a, b : TensorLike""" + _RETURNS,
           inputs=("a", "b"), params=(("subscripts", REQUIRED),), prepare=_einsum_prepare,
           order=("subscripts", "a", "b")),
    OpRule("kron", np.kron, _kron_vjp, "numpy's ``kron`` of two 2-d operands." + _PAIR_DOC,
           inputs=("a", "b"), prepare=_kron_prepare),
    OpRule("cross", np.cross, _cross_vjp,
           "numpy's ``cross`` of 3-vectors along the last axis, broadcasting." + _PAIR_DOC,
           inputs=("a", "b"), prepare=_cross_prepare),
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
    # --- shape ops (issue 12): entries ---
    OpRule("moveaxis", _moveaxis_forward, _moveaxis_vjp, "numpy's ``moveaxis``." + """

    Parameters
    ----------
    x : TensorLike
    source, destination : int or sequence of int""" + _RETURNS,
           params=(("source", REQUIRED), ("destination", REQUIRED))),
    OpRule("swapaxes", _swapaxes_forward, _swapaxes_vjp, "numpy's ``swapaxes``." + """

    Parameters
    ----------
    x : TensorLike
    axis1, axis2 : int""" + _RETURNS, params=(("axis1", REQUIRED), ("axis2", REQUIRED))),
    OpRule("squeeze", _squeeze_forward, _reshape_back_vjp, "numpy's ``squeeze``." + """

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int, optional""" + _RETURNS, params=(("axis", None),)),
    OpRule("expand_dims", _expand_dims_forward, _reshape_back_vjp, "numpy's ``expand_dims``."
           + """

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int""" + _RETURNS, params=(("axis", REQUIRED),)),
    _unary("ravel", _ravel_forward, _reshape_back_vjp, "numpy's ``ravel``: 1-D, C order."),
    _unary("atleast_1d", _atleast_1d_forward, _reshape_back_vjp,
           "numpy's ``atleast_1d`` of one operand."),
    _unary("atleast_2d", _atleast_2d_forward, _reshape_back_vjp,
           "numpy's ``atleast_2d`` of one operand."),
    _unary("atleast_3d", _atleast_3d_forward, _reshape_back_vjp,
           "numpy's ``atleast_3d`` of one operand."),
    OpRule("flip", _flip_forward, _flip_vjp, "numpy's ``flip``." + """

    Parameters
    ----------
    x : TensorLike
    axis : int or tuple of int, optional""" + _RETURNS, params=(("axis", None),)),
    _unary("flipud", _flipud_forward, _flipud_vjp, "numpy's ``flipud``."),
    _unary("fliplr", _fliplr_forward, _fliplr_vjp, "numpy's ``fliplr``."),
    OpRule("rot90", _rot90_forward, _rot90_vjp, "numpy's ``rot90``." + """

    Parameters
    ----------
    x : TensorLike
    k : int
    axes : pair of int""" + _RETURNS, params=(("k", 1), ("axes", (0, 1)))),
    OpRule("roll", _roll_forward, _roll_vjp, "numpy's ``roll``." + """

    Parameters
    ----------
    x : TensorLike
    shift : int or tuple of int
    axis : int or tuple of int, optional""" + _RETURNS,
           params=(("shift", REQUIRED), ("axis", None))),
    OpRule("repeat", _repeat_forward, _repeat_vjp, "numpy's ``repeat``." + """

    Parameters
    ----------
    x : TensorLike
    repeats : int or sequence of int
    axis : int, optional""" + _RETURNS, params=(("repeats", REQUIRED), ("axis", None))),
    OpRule("tile", _tile_forward, _tile_vjp, "numpy's ``tile``." + """

    Parameters
    ----------
    x : TensorLike
    reps : int or tuple of int""" + _RETURNS, params=(("reps", REQUIRED),)),
    OpRule("diff", _diff_forward, _diff_vjp, "numpy's ``diff``." + """

    Parameters
    ----------
    x : TensorLike
    n : int
    axis : int""" + _RETURNS, params=(("n", 1), ("axis", -1))),
    OpRule("diagonal", _diagonal_forward, _diagonal_vjp, "numpy's ``diagonal``." + """

    Parameters
    ----------
    x : TensorLike
    offset, axis1, axis2 : int""" + _RETURNS,
           params=(("offset", 0), ("axis1", 0), ("axis2", 1))),
    OpRule("trace", _trace_forward, _trace_vjp, "numpy's ``trace``." + """

    Parameters
    ----------
    x : TensorLike
    offset, axis1, axis2 : int""" + _RETURNS,
           params=(("offset", 0), ("axis1", 0), ("axis2", 1))),
    OpRule("diag", _diag_forward, _diag_vjp, "numpy's ``diag``." + """

    Parameters
    ----------
    x : TensorLike
        1-D or 2-D.
    k : int""" + _RETURNS, params=(("k", 0),)),
    OpRule("tril", _tril_forward, _tril_vjp, "numpy's ``tril``." + """

    Parameters
    ----------
    x : TensorLike
    k : int""" + _RETURNS, params=(("k", 0),)),
    OpRule("triu", _triu_forward, _triu_vjp, "numpy's ``triu``." + """

    Parameters
    ----------
    x : TensorLike
    k : int""" + _RETURNS, params=(("k", 0),)),
    OpRule("pad", _pad_forward, _pad_vjp, "numpy's ``pad``, constant mode." + """

    Parameters
    ----------
    x : TensorLike
    pad_width : int or sequence
    constant_values : float""" + _RETURNS,
           params=(("pad_width", REQUIRED), ("constant_values", 0))),
    OpRule("take", _take_forward, _take_vjp, "numpy's ``take``; repeated indices add up in "
           "the gradient." + """

    Parameters
    ----------
    x : TensorLike
    indices : array_like of int
    axis : int, optional""" + _RETURNS, params=(("indices", REQUIRED), ("axis", None))),
    OpRule("take_along_axis", _take_along_axis_forward, _take_along_axis_vjp,
           "numpy's ``take_along_axis``." + """

    Parameters
    ----------
    x : TensorLike
    indices : array_like of int
    axis : int or None""" + _RETURNS, params=(("indices", REQUIRED), ("axis", REQUIRED))),
    OpRule("argsort", _argsort_forward, _argsort_vjp, "numpy's ``argsort`` (stable); no "
           "gradient." + """

    Parameters
    ----------
    x : TensorLike
    axis : int or None""" + _RETURNS, params=(("axis", -1),)),
    OpRule("sort", _sort_forward, _sort_vjp, "numpy's ``sort``; the gradient goes back "
           "through the sorting permutation." + """

    Parameters
    ----------
    x : TensorLike
    axis : int or None""" + _RETURNS, params=(("axis", -1),)),
    OpRule("select", _select_forward, _select_vjp, "numpy's ``select``." + """

    Parameters
    ----------
    condlist : sequence of array_like of bool
    choicelist : sequence of TensorLike
    default : float""" + _RETURNS, inputs=("*choicelist",),
           params=(("condlist", REQUIRED), ("default", 0)), prepare=_select_prepare,
           order=("condlist", "choicelist", "default")),
    OpRule("concatenate", _concatenate_forward, _concatenate_vjp,
           "numpy's ``concatenate``." + """

    Parameters
    ----------
    arrays : sequence of TensorLike
    axis : int or None""" + _RETURNS, inputs=("*arrays",), params=(("axis", 0),),
           prepare=_join_prepare),
    OpRule("stack", _stack_forward, _stack_vjp, "numpy's ``stack``." + """

    Parameters
    ----------
    arrays : sequence of TensorLike
    axis : int""" + _RETURNS, inputs=("*arrays",), params=(("axis", 0),),
           prepare=_join_prepare),
    OpRule("vstack", _vstack_forward, _vstack_vjp, "numpy's ``vstack``." + """

    Parameters
    ----------
    tup : sequence of TensorLike""" + _RETURNS, inputs=("*tup",)),
    OpRule("hstack", _hstack_forward, _hstack_vjp, "numpy's ``hstack``." + """

    Parameters
    ----------
    tup : sequence of TensorLike""" + _RETURNS, inputs=("*tup",)),
    OpRule("column_stack", _column_stack_forward, _column_stack_vjp,
           "numpy's ``column_stack``." + """

    Parameters
    ----------
    tup : sequence of TensorLike""" + _RETURNS, inputs=("*tup",)),
    OpRule("append", _append_forward, _append_vjp, "numpy's ``append``." + """

    Parameters
    ----------
    arr, values : TensorLike
    axis : int, optional""" + _RETURNS, inputs=("arr", "values"), params=(("axis", None),)),
    # split and array_split return lists: the tape records one piece per call
    OpRule("split", _split_forward, _split_vjp, "Piece ``piece`` of numpy's ``split``." + """

    Parameters
    ----------
    x : TensorLike
    indices_or_sections : int or sequence of int
    axis : int
    piece : int""" + _RETURNS, params=(("indices_or_sections", REQUIRED), ("axis", 0),
                                       ("piece", 0)), public=False),
    OpRule("array_split", _array_split_forward, _array_split_vjp,
           "Piece ``piece`` of numpy's ``array_split``." + """

    Parameters
    ----------
    x : TensorLike
    indices_or_sections : int or sequence of int
    axis : int
    piece : int""" + _RETURNS, params=(("indices_or_sections", REQUIRED), ("axis", 0),
                                       ("piece", 0)), public=False),
    # --- end of shape ops (issue 12): entries ---
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
    # --- linalg block ---
    OpRule("inv", np.linalg.inv, _inv_vjp, "numpy's ``linalg.inv``." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, M), nonsingular.""" + _RETURNS, inputs=("a",), prepare=_square_prepare),
    OpRule("solve", np.linalg.solve, _solve_vjp, "numpy's ``linalg.solve`` (numpy 2: only a "
           "1-d ``b`` is a vector)." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, M), nonsingular.
    b : TensorLike
        (M,) or (..., M, K).""" + _RETURNS, inputs=("a", "b"), prepare=_solve_prepare),
    OpRule("det", np.linalg.det, _det_vjp, "numpy's ``linalg.det``." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, M).""" + _RETURNS, inputs=("a",), prepare=_square_prepare),
    OpRule("slogdet", _slogdet_forward, _slogdet_vjp,
           "Part ``piece`` of numpy's ``linalg.slogdet``: 0 the sign (no gradient), 1 "
           "``log|det a|``." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, M).
    piece : int""" + _RETURNS, inputs=("a",), params=(("piece", 1),), prepare=_square_prepare),
    OpRule("cholesky", np.linalg.cholesky, _cholesky_vjp,
           "numpy's ``linalg.cholesky`` (lower); the symmetrized gradient." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, M), symmetric positive definite.""" + _RETURNS, inputs=("a",),
           prepare=_square_prepare),
    OpRule("eigh", _eigh_forward, _eigh_vjp,
           "Part ``piece`` of numpy's ``linalg.eigh``: 0 the eigenvalues, 1 the eigenvectors; "
           "the symmetric gradient, for distinct eigenvalues." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, M), symmetric.
    piece : int""" + _RETURNS, inputs=("a",), params=(("piece", 0),), prepare=_square_prepare),
    OpRule("svd", _svd_forward, _svd_vjp,
           "Part ``piece`` of numpy's ``linalg.svd(a, full_matrices=False)``: 0 ``U``, 1 "
           "``s``, 2 ``Vh``; for distinct nonzero singular values." + """

    Parameters
    ----------
    a : TensorLike
        (..., M, N).
    piece : int""" + _RETURNS, inputs=("a",), params=(("piece", 1),), prepare=_svd_prepare),
    OpRule("norm", _norm_forward, _norm_vjp, "numpy's ``linalg.norm``: vector norms over one "
           "axis, matrix norms over two, the L2 norm over any axes for ``ord=None``." + """

    Parameters
    ----------
    x : TensorLike
    ord : {None, 1, 2, inf, -inf, p >= 1, 'fro', 'nuc', -1, -2}
    axis : int, pair of int or None
    keepdims : bool""" + _RETURNS, params=(("ord", None), ("axis", None), ("keepdims", False)),
           prepare=_norm_prepare),
    # --- end of linalg block (entries) ---
    # --- more block ---
    _unary("degrees", np.degrees, _rad2deg_vjp, "Elementwise radians to degrees."),
    _unary("radians", np.radians, _deg2rad_vjp, "Elementwise degrees to radians."),
    OpRule("rollaxis", _rollaxis_forward, _rollaxis_vjp, "numpy's ``rollaxis``." + """

    Parameters
    ----------
    x : TensorLike
    axis, start : int""" + _RETURNS, params=(("axis", REQUIRED), ("start", 0))),
    OpRule("fftshift", _fftshift_forward, _fftshift_vjp, "numpy's ``fft.fftshift``." + """

    Parameters
    ----------
    x : TensorLike
    axes : int or tuple of int, optional""" + _RETURNS, params=(("axes", None),)),
    OpRule("ifftshift", _ifftshift_forward, _ifftshift_vjp, "numpy's ``fft.ifftshift``." + """

    Parameters
    ----------
    x : TensorLike
    axes : int or tuple of int, optional""" + _RETURNS, params=(("axes", None),)),
    # gradient returns one array per axis: the tape records one piece per call
    OpRule("gradient", _gradient_forward, _gradient_vjp,
           "Piece ``piece`` of numpy's ``gradient``." + """

    Parameters
    ----------
    x : TensorLike
    spacing : float or tuple of float
        One sample distance, or one per axis.
    axis : int or tuple of int, optional
    edge_order : int
    piece : int""" + _RETURNS, params=(("spacing", 1.0), ("axis", None), ("edge_order", 1),
                                       ("piece", 0)), public=False),
    OpRule("linspace", _linspace_forward, _linspace_vjp, "numpy's ``linspace``." + """

    Parameters
    ----------
    start, stop : TensorLike
    num : int
    endpoint : bool
    axis : int""" + _RETURNS, inputs=("start", "stop"),
           params=(("num", 50), ("endpoint", True), ("axis", 0))),
    _axis_split_rule("vsplit", _vsplit_forward, _vsplit_vjp),
    _axis_split_rule("hsplit", _hsplit_forward, _hsplit_vjp),
    _axis_split_rule("dsplit", _dsplit_forward, _dsplit_vjp),
    OpRule("astype", _astype_forward, _astype_vjp, "numpy's ``astype``." + """

    Parameters
    ----------
    x : TensorLike
    dtype : dtype""" + _RETURNS, params=(("dtype", REQUIRED),)),
    OpRule("argpartition", _argpartition_forward, _argpartition_vjp, "numpy's "
           "``argpartition``; no gradient." + """

    Parameters
    ----------
    x : TensorLike
    kth : int or sequence of int
    axis : int or None""" + _RETURNS, params=(("kth", REQUIRED), ("axis", -1))),
    OpRule("partition", _partition_forward, _partition_vjp, "numpy's ``partition``; the "
           "gradient goes back through argpartition's permutation." + """

    Parameters
    ----------
    x : TensorLike
    kth : int or sequence of int
    axis : int or None""" + _RETURNS, params=(("kth", REQUIRED), ("axis", -1))),
    # --- end of more block ---
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
    variadic = len(rule.inputs) == 1 and rule.inputs[0].startswith("*")
    entry = rule  # the function's ``rule``; a starred input name is used without its star
    if variadic:
        rule = replace(rule, inputs=(rule.inputs[0][1:],))
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
        if variadic:  # one sequence of tensors: the values go to the rule as one tuple
            if not isinstance(args[0], (list, tuple)):
                raise TypeError(f"{name}: pass a sequence of tensors (a list or a tuple)")
            tensors = _as_tensors(*args[0])
            values = tuple([t._value for t in tensors])
            params = args[1:]
            if prepare is not None:
                params = prepare(name, values, *params)
            y = forward(values, *params)
            return _record(name, y, tensors, vjp, (y, values, *params))
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

    if variadic:
        pass
    elif not rule.params and n_inputs == 1 and prepare is None:
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
    op.rule = entry
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
