"""The spec table: one row per public operation, expanded over shapes, axes, keepdims and
broadcasting. Each case checks the compiled forward against numpy and the compiled gradient
against float64 central finite differences along random directions.

A test fails when an operation in ``sg.PUBLIC_OPS`` has no row here.
"""

import numpy as np
import pytest

import symgrad as sg


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _lse(x, axis=None, keepdims=False):
    m = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


@sg.custom_gradient
def _cube(x):
    def grad(dy):
        return dy * 3 * x * x
    return x * x * x, grad


# --- linalg block (helpers) ---
# float32 constants, so that float32 inputs stay float32 (float64 ones would promote)
_EYE3V, _EYE4V = 3 * np.eye(3, dtype=np.float32), 4 * np.eye(3, dtype=np.float32)


def _product(sign, logabsdet):
    return sign * logabsdet


_EYE3, _EYE4 = sg.constant(_EYE3V), sg.constant(_EYE4V)
_SPREAD = np.diag(np.array([0.0, 4.0, 8.0], dtype=np.float32))
_SINGULAR = {(m, n): np.eye(m, n, dtype=np.float32) * np.array([9.0, 5.0, 2.0, 1.0][:n],
                                                                 dtype=np.float32)
             for m, n in ((3, 4), (4, 3), (3, 3))}


def _spread(a, swap):
    """A symmetric matrix with eigenvalues at least 0.4 apart, from ``a`` (entries <= 2)."""
    return (a + swap(a, -1, -2)) * 0.15 + (sg.constant(_SPREAD) if swap is sg.swapaxes
                                           else _SPREAD)


def _separated(a):
    """``a`` with singular values near 9, 5, 2: distinct and away from 0."""
    base = _SINGULAR[tuple(a.shape[-2:])]
    return a * 0.15 + (base if isinstance(a, np.ndarray) else sg.constant(base))


def _eig_projection(wv, swap, exp):
    """``v diag(exp(w)) v^T``: a matrix function, invariant to the eigenvectors' signs."""
    w, v = wv
    return (v * exp(w * 0.3)[..., None, :]) @ swap(v, -1, -2)


# domains: "any" (-2..2 away from 0), "pos" (0.5..2)
ANY, POS = "any", "pos"

#: op name -> list of cases (builder on symgrad tensors, numpy reference, input shapes, domain)
SPEC = {
    "add": [(lambda a, b: a + b, np.add, [(3, 4), (4,)], ANY),
            (lambda a, b: a + b, np.add, [(2, 1, 3), (1, 4, 1)], ANY)],
    "subtract": [(lambda a, b: a - b, np.subtract, [(3, 4), (3, 1)], ANY)],
    "multiply": [(lambda a, b: a * b, np.multiply, [(3, 4), (4,)], ANY),
                 (lambda a, b: a * 2.5 * b, lambda a, b: a * 2.5 * b, [(2, 3), ()], ANY)],
    "divide": [(lambda a, b: a / b, np.divide, [(3, 4), (4,)], POS)],
    "power": [(lambda a, b: a ** b, np.power, [(3,), (3,)], POS),
              (lambda a: a ** 3, lambda a: a ** 3, [(2, 3)], ANY)],
    "negative": [(lambda a: -a, np.negative, [(3, 2)], ANY)],
    "matmul": [(lambda a, b: a @ b, np.matmul, [(3, 4), (4, 2)], ANY),
               (lambda a, b: a @ b, np.matmul, [(4,), (4, 2)], ANY),
               (lambda a, b: a @ b, np.matmul, [(3, 4), (4,)], ANY),
               (lambda a, b: a @ b, np.matmul, [(4,), (4,)], ANY),
               (lambda a, b: a @ b, np.matmul, [(2, 3, 4), (4, 2)], ANY)],
    # --- ops-elem: issue 12 elementwise ops ---
    "tan": [(lambda a: sg.tan(a * 0.5), lambda a: np.tan(a * 0.5), [(3, 4)], ANY)],
    "arcsin": [(lambda a: sg.arcsin(a * 0.4), lambda a: np.arcsin(a * 0.4), [(3, 4)], ANY)],
    "arccos": [(lambda a: sg.arccos(a * 0.4), lambda a: np.arccos(a * 0.4), [(3, 4)], ANY)],
    "arctan": [(sg.arctan, np.arctan, [(3, 4)], ANY)],
    "sinh": [(sg.sinh, np.sinh, [(3, 4)], ANY)],
    "cosh": [(sg.cosh, np.cosh, [(3, 4)], ANY)],
    "arcsinh": [(sg.arcsinh, np.arcsinh, [(3, 4)], ANY)],
    # defined for x >= 1: drawn as 1 + (0.3..2)
    "arccosh": [(lambda a: sg.arccosh(a + 1.0), lambda a: np.arccosh(a + 1.0), [(3, 4)], POS)],
    "arctanh": [(lambda a: sg.arctanh(a * 0.4), lambda a: np.arctanh(a * 0.4), [(3, 4)], ANY)],
    "expm1": [(sg.expm1, np.expm1, [(3, 4)], ANY)],
    "log2": [(sg.log2, np.log2, [(3, 4)], POS)],
    "log10": [(sg.log10, np.log10, [(3, 4)], POS)],
    "exp2": [(sg.exp2, np.exp2, [(3, 4)], ANY)],
    "reciprocal": [(sg.reciprocal, np.reciprocal, [(3, 4)], ANY)],
    "cbrt": [(sg.cbrt, np.cbrt, [(3, 4)], ANY)],
    "deg2rad": [(sg.deg2rad, np.deg2rad, [(3, 4)], ANY)],
    "rad2deg": [(sg.rad2deg, np.rad2deg, [(3, 4)], ANY)],
    # piecewise constant: the gradient through them is 0 (the product checks it)
    "floor": [(lambda a: sg.floor(a * 2.0) * a, lambda a: np.floor(a * 2.0) * a, [(3, 4)], ANY)],
    "ceil": [(lambda a: sg.ceil(a * 2.0) * a, lambda a: np.ceil(a * 2.0) * a, [(3, 4)], ANY)],
    "trunc": [(lambda a: sg.trunc(a * 2.0) * a, lambda a: np.trunc(a * 2.0) * a, [(3, 4)], ANY)],
    "fix": [(lambda a: sg.fix(a * 2.0) * a, lambda a: np.fix(a * 2.0) * a, [(3, 4)], ANY)],
    "round": [(lambda a: sg.round(a * 2.0) * a, lambda a: np.round(a * 2.0) * a, [(3, 4)], ANY)],
    "rint": [(lambda a: sg.rint(a * 2.0) * a, lambda a: np.rint(a * 2.0) * a, [(3, 4)], ANY)],
    "sinc": [(sg.sinc, np.sinc, [(3, 4)], ANY)],
    "nan_to_num": [(sg.nan_to_num, np.nan_to_num, [(3, 4)], ANY)],
    "positive": [(lambda a: sg.positive(a) * a, lambda a: np.positive(a) * a, [(3, 4)], ANY)],
    "fabs": [(sg.fabs, np.fabs, [(3, 4)], ANY)],
    "hypot": [(sg.hypot, np.hypot, [(3, 4), (4,)], ANY)],
    "arctan2": [(sg.arctan2, np.arctan2, [(3, 4), (4,)], ANY)],
    "logaddexp": [(sg.logaddexp, np.logaddexp, [(3, 4), (4,)], ANY)],
    "logaddexp2": [(sg.logaddexp2, np.logaddexp2, [(3, 4), (4,)], ANY)],
    "fmax": [(sg.fmax, np.fmax, [(3, 4), (4,)], ANY)],
    "fmin": [(sg.fmin, np.fmin, [(3, 4), (3, 1)], ANY)],
    "mod": [(sg.mod, np.mod, [(3, 4), (4,)], ANY)],
    "remainder": [(sg.remainder, np.remainder, [(3, 4), (4,)], ANY)],
    "fmod": [(sg.fmod, np.fmod, [(3, 4), (4,)], ANY)],
    "copysign": [(sg.copysign, np.copysign, [(3, 4), (4,)], ANY)],
    "float_power": [(sg.float_power, np.float_power, [(3, 4), (4,)], POS)],
    "true_divide": [(sg.true_divide, np.true_divide, [(3, 4), (4,)], ANY)],
    "heaviside": [(lambda a: sg.heaviside(a, 0.5) * a, lambda a: np.heaviside(a, 0.5) * a,
                   [(3, 4)], ANY),
                  # a mix of exact zeros (floor of 0.3..0.8 at most) and ones: the value is
                  # b at a == 0, so d/db there is 1 (and 0 where a is 1)
                  (lambda a, b: sg.heaviside(sg.floor(a * 0.8), b) * b,
                   lambda a, b: np.heaviside(np.floor(a * 0.8), b) * b, [(3, 4), (4,)], POS)],
    "greater": [(lambda a, b: sg.greater(a, b) * a, lambda a, b: np.greater(a, b) * a,
                 [(3, 4), (4,)], ANY)],
    "greater_equal": [(lambda a, b: sg.greater_equal(a, b) * b,
                       lambda a, b: np.greater_equal(a, b) * b, [(3, 4), (4,)], ANY)],
    "less": [(lambda a, b: sg.less(a, b) * a + b, lambda a, b: np.less(a, b) * a + b,
              [(3, 4), (4,)], ANY)],
    "less_equal": [(lambda a, b: a * sg.less_equal(a, b), lambda a, b: a * np.less_equal(a, b),
                    [(3, 4), (3, 1)], ANY)],
    "equal": [(lambda a: sg.equal(sg.floor(a), 1.0) * a, lambda a: np.equal(np.floor(a), 1) * a,
               [(3, 4)], ANY)],
    "not_equal": [(lambda a: sg.not_equal(sg.floor(a), 1.0) * a,
                   lambda a: np.not_equal(np.floor(a), 1) * a, [(3, 4)], ANY)],
    "logical_and": [(lambda a, b: sg.logical_and(a > 0, b > 0) * a,
                     lambda a, b: np.logical_and(a > 0, b > 0) * a, [(3, 4), (4,)], ANY)],
    "logical_or": [(lambda a, b: sg.logical_or(a > 0, b > 0) * a,
                    lambda a, b: np.logical_or(a > 0, b > 0) * a, [(3, 4), (4,)], ANY)],
    "logical_xor": [(lambda a, b: sg.logical_xor(a > 0, b > 0) * b,
                     lambda a, b: np.logical_xor(a > 0, b > 0) * b, [(3, 4), (4,)], ANY)],
    "logical_not": [(lambda a: sg.logical_not(a > 0) * a, lambda a: np.logical_not(a > 0) * a,
                     [(3, 4)], ANY)],
    "exp": [(sg.exp, np.exp, [(3, 4)], ANY)],
    "log": [(sg.log, np.log, [(3, 4)], POS)],
    "log1p": [(sg.log1p, np.log1p, [(3, 4)], POS)],
    "sqrt": [(sg.sqrt, np.sqrt, [(3, 4)], POS)],
    "sin": [(sg.sin, np.sin, [(5,)], ANY)],
    "cos": [(sg.cos, np.cos, [(5,)], ANY)],
    "tanh": [(sg.tanh, np.tanh, [(5,)], ANY)],
    "sigmoid": [(sg.sigmoid, lambda a: 1 / (1 + np.exp(-a)), [(5,)], ANY)],
    "relu": [(sg.relu, lambda a: np.maximum(a, 0), [(3, 4)], ANY)],
    "abs": [(sg.abs, np.abs, [(3, 4)], ANY)],
    "square": [(sg.square, np.square, [(3, 4)], ANY)],
    "sign": [(lambda a: sg.sign(a) * a, lambda a: np.sign(a) * a, [(4,)], ANY)],
    "softplus": [(sg.softplus, lambda a: np.log1p(np.exp(a)), [(4,)], ANY)],
    "log_sigmoid": [(sg.log_sigmoid, lambda a: -np.log1p(np.exp(-a)), [(4,)], ANY)],
    "maximum": [(sg.maximum, np.maximum, [(3, 4), (4,)], ANY)],
    "minimum": [(sg.minimum, np.minimum, [(3, 4), (3, 1)], ANY)],
    "where": [(lambda a, b: sg.where(a > 0, a * b, b), lambda a, b: np.where(a > 0, a * b, b),
               [(3, 4), (4,)], ANY)],
    "clip": [(lambda a: sg.clip(a, -1.0, 1.0), lambda a: np.clip(a, -1, 1), [(6,)], ANY),
             # one-sided, as numpy allows
             (lambda a: sg.clip(a, 0.1, None), lambda a: np.clip(a, 0.1, None), [(6,)], ANY),
             (lambda a: sg.clip(a, None, -0.2), lambda a: np.clip(a, None, -0.2), [(6,)], ANY)],
    "sum": [(lambda a, ax=ax, k=k: sg.sum(a, ax, k),
             lambda a, ax=ax, k=k: np.sum(a, axis=ax, keepdims=k), [(2, 3, 4)], ANY)
            for ax in (None, 0, -1, (0, 2)) for k in (False, True)],
    "mean": [(lambda a, ax=ax, k=k: a.mean(ax, k),
              lambda a, ax=ax, k=k: np.mean(a, axis=ax, keepdims=k), [(2, 3, 4)], ANY)
             for ax in (None, 1, (0, 1)) for k in (False, True)],
    "max": [(lambda a, ax=ax, k=k: sg.max(a, ax, k),
             lambda a, ax=ax, k=k: np.max(a, axis=ax, keepdims=k), [(3, 4)], ANY)
            for ax in (None, 0, -1) for k in (False, True)],
    "cumsum": [(lambda a, ax=ax: sg.cumsum(a, ax), lambda a, ax=ax: np.cumsum(a, axis=ax),
                [(3, 4)], ANY) for ax in (None, 0, -1)],
    # --- reductions and products (issue 12) ---
    "min": [(lambda a, ax=ax, k=k: sg.min(a, ax, k),
             lambda a, ax=ax, k=k: np.min(a, axis=ax, keepdims=k), [(2, 3, 4)], ANY)
            for ax in (None, 0, -1, (0, 2)) for k in (False, True)],
    "amax": [(lambda a, ax=ax: sg.amax(a, ax), lambda a, ax=ax: np.amax(a, axis=ax),
              [(3, 4)], ANY) for ax in (None, -1)],
    "amin": [(lambda a, ax=ax: sg.amin(a, ax, True),
              lambda a, ax=ax: np.amin(a, axis=ax, keepdims=True), [(3, 4)], ANY)
             for ax in (None, 0)],
    "prod": [(lambda a, ax=ax, k=k: sg.prod(a, ax, k),
              lambda a, ax=ax, k=k: np.prod(a, axis=ax, keepdims=k), [(2, 3, 4)], ANY)
             for ax in (None, 1, -1, (0, 2)) for k in (False, True)],
    "var": [(lambda a, ax=ax, d=d, k=k: sg.var(a, ax, ddof=d, keepdims=k),
             lambda a, ax=ax, d=d, k=k: np.var(a, axis=ax, ddof=d, keepdims=k),
             [(2, 3, 4)], ANY)
            for ax, d, k in ((None, 0, False), (0, 1, False), (-1, 0, True), ((0, 2), 2, True))],
    "std": [(lambda a, ax=ax, d=d, k=k: a.std(ax, ddof=d, keepdims=k),
             lambda a, ax=ax, d=d, k=k: np.std(a, axis=ax, ddof=d, keepdims=k),
             [(2, 3, 4)], ANY)
            for ax, d, k in ((None, 0, False), (1, 1, False), (-1, 0, True), ((0, 1), 1, True))],
    "average": [(lambda a, ax=ax: sg.average(a, ax), lambda a, ax=ax: np.average(a, axis=ax),
                 [(3, 4)], ANY) for ax in (None, 0)]
    + [(lambda a, w: sg.average(a, -1, w), lambda a, w: np.average(a, -1, w),
        [(3, 4), (4,)], POS),
       (lambda a, w: sg.average(a, (0, 1), w, keepdims=True),
        lambda a, w: np.average(a, (0, 1), w, keepdims=True), [(2, 3), (2, 3)], POS)],
    # integer outputs: the forward through a mask, and no gradient through the indices
    "argmax": [(lambda a, ax=ax: sg.where(sg.argmax(a, ax, True) >= 1, a, 2 * a),
                lambda a, ax=ax: np.where(np.argmax(a, ax, keepdims=True) >= 1, a, 2 * a),
                [(3, 4)], ANY) for ax in (None, 0, -1)],
    "argmin": [(lambda a, ax=ax: sg.where(a.argmin(ax, True) >= 1, a, 2 * a),
                lambda a, ax=ax: np.where(np.argmin(a, ax, keepdims=True) >= 1, a, 2 * a),
                [(3, 4)], ANY) for ax in (None, 1)],
    "cumprod": [(lambda a, ax=ax: sg.cumprod(a, ax), lambda a, ax=ax: np.cumprod(a, axis=ax),
                 [(3, 4)], ANY) for ax in (None, 0, -1)],
    "dot": [(sg.dot, np.dot, shapes, ANY)
            for shapes in ([(3, 4), (4, 2)], [(4,), (4, 2)], [(3, 4), (4,)], [(4,), (4,)],
                           [(), (2, 3)])],
    "inner": [(sg.inner, np.inner, shapes, ANY)
              for shapes in ([(4,), (4,)], [(3, 4), (2, 4)], [(2, 3, 4), (4,)])],
    "outer": [(sg.outer, np.outer, shapes, ANY) for shapes in ([(3,), (4,)], [(2, 2), (3,)])],
    "vdot": [(sg.vdot, np.vdot, shapes, ANY) for shapes in ([(5,), (5,)], [(2, 3), (3, 2)])],
    "tensordot": [(lambda a, b, ax=ax: sg.tensordot(a, b, ax),
                   lambda a, b, ax=ax: np.tensordot(a, b, ax), shapes, ANY)
                  for ax, shapes in ((2, [(2, 3, 4), (3, 4, 2)]), (1, [(2, 3), (3, 4)]),
                                     (0, [(2,), (3,)]),
                                     (([0, -1], [1, 0]), [(4, 3, 2), (2, 4, 5)]))],
    "einsum": [(lambda *ops, sub=sub: sg.einsum(sub, *ops),
                lambda *ops, sub=sub: np.einsum(sub, *ops), shapes, ANY)
               for sub, shapes in (("ij,jk->ik", [(3, 4), (4, 2)]),
                                   ("ijm,jk->kj", [(2, 3, 2), (3, 4)]),
                                   ("ij->ji", [(2, 3)]), ("ij->", [(2, 3)]),
                                   ("bi,bj,ij->b", [(2, 3), (2, 4), (3, 4)]))],
    "kron": [(sg.kron, np.kron, shapes, ANY) for shapes in ([(2, 3), (3, 2)], [(1, 2), (2, 1)])],
    "cross": [(sg.cross, np.cross, shapes, ANY)
              for shapes in ([(3,), (3,)], [(4, 3), (4, 3)], [(2, 1, 3), (4, 3)])],
    "transpose": [(lambda a: a.T, lambda a: a.T, [(3, 4)], ANY),
                  (lambda a: sg.transpose(a, (1, 2, 0)), lambda a: np.transpose(a, (1, 2, 0)),
                   [(2, 3, 4)], ANY)],
    "reshape": [(lambda a: a.reshape(4, -1), lambda a: a.reshape(4, -1), [(2, 3, 4)], ANY)],
    "index": [(lambda a: a[1], lambda a: a[1], [(3, 4)], ANY),
              (lambda a: a[:, 0], lambda a: a[:, 0], [(3, 4)], ANY),
              (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 4)], ANY)],
    # --- shape ops (issue 12) ---
    "moveaxis": [(lambda a: sg.moveaxis(a, 0, -1), lambda a: np.moveaxis(a, 0, -1),
                  [(2, 3, 4)], ANY),
                 (lambda a: sg.moveaxis(a, (0, 1), (2, 0)),
                  lambda a: np.moveaxis(a, (0, 1), (2, 0)), [(2, 3, 4)], ANY)],
    "swapaxes": [(lambda a: sg.swapaxes(a, 0, 2), lambda a: np.swapaxes(a, 0, 2),
                  [(2, 3, 4)], ANY)],
    "squeeze": [(sg.squeeze, np.squeeze, [(3, 1, 4, 1)], ANY),
                (lambda a: sg.squeeze(a, -1), lambda a: np.squeeze(a, -1), [(3, 1, 4, 1)], ANY)],
    "expand_dims": [(lambda a: sg.expand_dims(a, 1), lambda a: np.expand_dims(a, 1),
                     [(3, 4)], ANY),
                    (lambda a: sg.expand_dims(a, (0, -1)), lambda a: np.expand_dims(a, (0, -1)),
                     [(3, 4)], ANY)],
    "ravel": [(sg.ravel, np.ravel, [(2, 3, 4)], ANY)],
    "atleast_1d": [(sg.atleast_1d, np.atleast_1d, [()], ANY)],
    "atleast_2d": [(sg.atleast_2d, np.atleast_2d, [(4,)], ANY)],
    "atleast_3d": [(sg.atleast_3d, np.atleast_3d, [(4,)], ANY),
                   (sg.atleast_3d, np.atleast_3d, [(2, 3)], ANY)],
    "flip": [(sg.flip, np.flip, [(3, 4)], ANY),
             (lambda a: sg.flip(a, 1), lambda a: np.flip(a, 1), [(2, 3, 4)], ANY)],
    "flipud": [(sg.flipud, np.flipud, [(3, 4)], ANY)],
    "fliplr": [(sg.fliplr, np.fliplr, [(3, 4)], ANY)],
    "rot90": [(lambda a, k=k: sg.rot90(a, k), lambda a, k=k: np.rot90(a, k), [(3, 4)], ANY)
              for k in (1, 2, 3)] + [
        (lambda a: sg.rot90(a, 1, (2, 0)), lambda a: np.rot90(a, 1, (2, 0)), [(2, 3, 4)], ANY)],
    "roll": [(lambda a: sg.roll(a, 2), lambda a: np.roll(a, 2), [(3, 4)], ANY),
             (lambda a: sg.roll(a, -1, 1), lambda a: np.roll(a, -1, 1), [(3, 4)], ANY),
             (lambda a: sg.roll(a, (1, 5), (0, 1)), lambda a: np.roll(a, (1, 5), (0, 1)),
              [(3, 4)], ANY)],
    "repeat": [(lambda a: sg.repeat(a, 2), lambda a: np.repeat(a, 2), [(3, 2)], ANY),
               (lambda a: sg.repeat(a, 3, 1), lambda a: np.repeat(a, 3, 1), [(3, 2)], ANY),
               (lambda a: sg.repeat(a, [2, 0, 1], 0), lambda a: np.repeat(a, [2, 0, 1], 0),
                [(3, 2)], ANY)],
    "tile": [(lambda a: sg.tile(a, 2), lambda a: np.tile(a, 2), [(3,)], ANY),
             (lambda a: sg.tile(a, (2, 1, 3)), lambda a: np.tile(a, (2, 1, 3)), [(3, 2)], ANY)],
    "diff": [(sg.diff, np.diff, [(3, 5)], ANY),
             (lambda a: sg.diff(a, 2, 0), lambda a: np.diff(a, 2, 0), [(5, 3)], ANY)],
    "sort": [(sg.sort, np.sort, [(3, 5)], ANY),
             (lambda a: sg.sort(a, 0), lambda a: np.sort(a, 0), [(3, 5)], ANY),
             (lambda a: sg.sort(a, None), lambda a: np.sort(a, None), [(3, 5)], ANY)],
    "argsort": [(lambda a: sg.take_along_axis(a, sg.argsort(a), -1),
                 lambda a: np.take_along_axis(a, np.argsort(a), -1), [(3, 5)], ANY)],
    "trace": [(sg.trace, np.trace, [(4, 4)], ANY),
              (lambda a: sg.trace(a, 1, 1, 2), lambda a: np.trace(a, 1, 1, 2),
               [(2, 3, 4)], ANY)],
    "diagonal": [(sg.diagonal, np.diagonal, [(3, 4)], ANY),
                 (lambda a: sg.diagonal(a, -1), lambda a: np.diagonal(a, -1), [(4, 3)], ANY),
                 (lambda a: sg.diagonal(a, 2, 2, 0), lambda a: np.diagonal(a, 2, 2, 0),
                  [(3, 2, 5)], ANY)],
    "diag": [(sg.diag, np.diag, [(3,)], ANY),
             (lambda a: sg.diag(a, 2), lambda a: np.diag(a, 2), [(3,)], ANY),
             (lambda a: sg.diag(a, -1), lambda a: np.diag(a, -1), [(3,)], ANY),
             (lambda a: sg.diag(a, 1), lambda a: np.diag(a, 1), [(3, 4)], ANY)],
    "tril": [(sg.tril, np.tril, [(3, 4)], ANY),
             (lambda a: sg.tril(a, -1), lambda a: np.tril(a, -1), [(2, 3, 3)], ANY),
             (sg.tril, np.tril, [(4,)], ANY)],  # a vector: its (M, M) rows, as numpy
    "triu": [(sg.triu, np.triu, [(3, 4)], ANY),
             (lambda a: sg.triu(a, 1), lambda a: np.triu(a, 1), [(2, 3, 3)], ANY),
             (lambda a: sg.triu(a, 1), lambda a: np.triu(a, 1), [(3,)], ANY)],
    "concatenate": [(lambda a, b, c: sg.concatenate([a, b, c]),
                     lambda a, b, c: np.concatenate([a, b, c]), [(2, 3), (1, 3), (4, 3)], ANY),
                    (lambda a, b: sg.concatenate((a, b), -1),
                     lambda a, b: np.concatenate((a, b), -1), [(2, 3), (2, 2)], ANY),
                    (lambda a, b: sg.concatenate((a, b), None),
                     lambda a, b: np.concatenate((a, b), None), [(2, 3), (4,)], ANY),
                    (lambda a: sg.concatenate([a, a * 2], 0),
                     lambda a: np.concatenate([a, a * 2], 0), [(2, 3)], ANY)],
    "stack": [(lambda a, b: sg.stack([a, b]), lambda a, b: np.stack([a, b]),
               [(2, 3), (2, 3)], ANY),
              (lambda a, b: sg.stack([a, b], -1), lambda a, b: np.stack([a, b], -1),
               [(2, 3), (2, 3)], ANY)],
    "vstack": [(lambda a, b: sg.vstack([a, b]), lambda a, b: np.vstack([a, b]),
                [(3,), (2, 3)], ANY)],
    "hstack": [(lambda a, b: sg.hstack([a, b]), lambda a, b: np.hstack([a, b]),
                [(3,), (2,)], ANY),
               (lambda a, b: sg.hstack([a, b]), lambda a, b: np.hstack([a, b]),
                [(2, 3), (2, 1)], ANY)],
    "column_stack": [(lambda a, b: sg.column_stack([a, b]),
                      lambda a, b: np.column_stack([a, b]), [(3,), (3, 2)], ANY)],
    "append": [(sg.append, np.append, [(2, 3), (4,)], ANY),
               (lambda a, b: sg.append(a, b, 1), lambda a, b: np.append(a, b, 1),
                [(2, 3), (2, 1)], ANY)],
    "split": [(lambda a: sg.split(a, 3, 1)[1] * sg.split(a, 3, 1)[2],
               lambda a: np.split(a, 3, 1)[1] * np.split(a, 3, 1)[2], [(2, 6)], ANY),
              (lambda a: sg.split(a, [1, 3])[2] * 3, lambda a: np.split(a, [1, 3])[2] * 3,
               [(5, 2)], ANY)],
    "array_split": [(lambda a: sg.array_split(a, 3)[0] + sg.array_split(a, 3)[2][:1],
                     lambda a: np.array_split(a, 3)[0] + np.array_split(a, 3)[2][:1],
                     [(7,)], ANY)],
    "pad": [(lambda a: sg.pad(a, 1), lambda a: np.pad(a, 1), [(2, 3)], ANY),
            (lambda a: sg.pad(a, ((0, 2), (1, 0)), constant_values=1.5),
             lambda a: np.pad(a, ((0, 2), (1, 0)), constant_values=1.5), [(2, 3)], ANY)],
    "select": [(lambda a, b: sg.select([a > 0.5, b < 0], [a * b, a], 2.0),
                lambda a, b: np.select([a > 0.5, b < 0], [a * b, a], 2.0),
                [(3, 4), (4,)], ANY)],
    "take": [(lambda a: sg.take(a, [2, 0, 2], axis=1), lambda a: np.take(a, [2, 0, 2], axis=1),
              [(3, 4)], ANY),
             (lambda a: sg.take(a, [[5, -1], [0, 5]]), lambda a: np.take(a, [[5, -1], [0, 5]]),
              [(3, 4)], ANY),
             (lambda a: a[np.array([1, 1, 0])], lambda a: a[np.array([1, 1, 0])], [(3, 4)], ANY),
             (lambda a: a[:, [2, 0]], lambda a: a[:, [2, 0]], [(2, 3, 4)], ANY)],
    "take_along_axis": [
        (lambda a: sg.take_along_axis(a, np.array([[0, 2, 2], [1, 1, 0]]), 1),
         lambda a: np.take_along_axis(a, np.array([[0, 2, 2], [1, 1, 0]]), 1), [(2, 3)], ANY),
        (lambda a: sg.take_along_axis(a, np.array([[0], [2], [1]]), 0),
         lambda a: np.take_along_axis(a, np.array([[0], [2], [1]]), 0), [(3, 4)], ANY)],
    # --- end of shape ops (issue 12) ---
    # --- more block ---
    "degrees": [(sg.degrees, np.degrees, [(3, 4)], ANY)],
    "radians": [(sg.radians, np.radians, [(3, 4)], ANY)],
    "rollaxis": [(lambda a: sg.rollaxis(a, 2), lambda a: np.rollaxis(a, 2), [(2, 3, 4)], ANY),
                 (lambda a: sg.rollaxis(a, 0, 3), lambda a: np.rollaxis(a, 0, 3), [(2, 3, 4)],
                  ANY),
                 (lambda a: sg.rollaxis(a, -1, -2), lambda a: np.rollaxis(a, -1, -2),
                  [(2, 3, 4)], ANY)],
    "fftshift": [(sg.fftshift, np.fft.fftshift, [(3, 4)], ANY),
                 (lambda a: sg.fftshift(a, 1), lambda a: np.fft.fftshift(a, 1), [(2, 5)], ANY)],
    "ifftshift": [(sg.ifftshift, np.fft.ifftshift, [(3, 5)], ANY),
                  (lambda a: sg.ifftshift(a, (0,)), lambda a: np.fft.ifftshift(a, (0,)),
                   [(5, 2)], ANY)],
    "gradient": [(sg.gradient, np.gradient, [(6,)], ANY),
                 (lambda a: sg.gradient(a, 0.5)[1] * sg.gradient(a, 0.5)[0],
                  lambda a: np.gradient(a, 0.5)[1] * np.gradient(a, 0.5)[0], [(3, 4)], ANY),
                 (lambda a: sg.gradient(a, 2.0, axis=0, edge_order=2),
                  lambda a: np.gradient(a, 2.0, axis=0, edge_order=2), [(5, 3)], ANY),
                 (lambda a: sg.gradient(a, axis=-1), lambda a: np.gradient(a, axis=-1), [(3, 2)],
                  ANY)],
    "linspace": [(lambda a, b: sg.linspace(a, b, 5), lambda a, b: np.linspace(a, b, 5),
                  [(3,), (3,)], ANY),
                 (lambda a, b: sg.linspace(a, b, 4, endpoint=False, axis=1),
                  lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=1), [(2, 1), (3,)],
                  ANY),
                 (lambda a: sg.linspace(a, 2.0, 3), lambda a: np.linspace(a, 2.0, 3), [()],
                  ANY)],
    "vsplit": [(lambda a: sg.vsplit(a, 2)[1] * 2.0, lambda a: np.vsplit(a, 2)[1] * 2.0,
                [(4, 3)], ANY)],
    "hsplit": [(lambda a: sg.hsplit(a, [1])[1], lambda a: np.hsplit(a, [1])[1], [(2, 3)], ANY),
               (lambda a: sg.hsplit(a, 3)[2], lambda a: np.hsplit(a, 3)[2], [(6,)], ANY)],
    "dsplit": [(lambda a: sg.dsplit(a, 2)[0] - sg.dsplit(a, 2)[1],
                lambda a: np.dsplit(a, 2)[0] - np.dsplit(a, 2)[1], [(2, 1, 4)], ANY)],
    # the int8 cast truncates (no gradient through it); a float cast is checked in float32
    # by tests/test_more_ops.py (finite differences cannot see a rounding to float32)
    # (back to a's dtype before the product: the array API standard has no int-float
    # promotion)
    "astype": [(lambda a: a * a.astype(np.int8).astype(a.dtype),
                lambda a: a * np.astype(np.astype(a, np.int8), a.dtype), [(3, 4)], POS),
               # a round trip through float64 (in the float32 run, two casts)
               (lambda a: sg.astype(a.astype("float64") * 0.5, a.dtype),
                lambda a: a.astype("float64") * 0.5, [(3,)], ANY)],
    "argpartition": [(lambda a: sg.take_along_axis(a, sg.argpartition(a, 2), -1),
                      lambda a: np.take_along_axis(a, np.argpartition(a, 2), -1), [(3, 5)],
                      ANY)],
    "partition": [(lambda a: sg.partition(a, 2), lambda a: np.partition(a, 2), [(3, 5)], ANY),
                  (lambda a: sg.partition(a, [0, -1], axis=0),
                   lambda a: np.partition(a, [0, -1], axis=0), [(6, 2)], ANY),
                  (lambda a: sg.partition(a, 4, None), lambda a: np.partition(a, 4, None),
                   [(3, 3)], ANY)],
    # --- end of more block ---
    "broadcast_to": [(lambda a: sg.broadcast_to(a, (3, 4)),
                      lambda a: np.broadcast_to(a, (3, 4)), [(4,)], ANY)],
    "one_hot": [(lambda a: sg.one_hot(sg.constant(np.array([0, 2, 1])), 3) * a,
                 lambda a: np.eye(3)[[0, 2, 1]] * a, [(3, 3)], ANY)],
    "softmax": [(lambda a, ax=ax: sg.softmax(a, ax), lambda a, ax=ax: _softmax(a, ax),
                 [(3, 4)], ANY) for ax in (0, -1)],
    "log_softmax": [(lambda a, ax=ax: sg.log_softmax(a, ax),
                     lambda a, ax=ax: np.log(_softmax(a, ax)), [(3, 4)], ANY) for ax in (0, -1)],
    "logsumexp": [(lambda a, ax=ax, k=k: sg.logsumexp(a, ax, k),
                   lambda a, ax=ax, k=k: _lse(a, ax, k), [(3, 4)], ANY)
                  for ax in (None, 0, -1) for k in (False, True)],
    # --- conv (issue 12): convolutions, pooling, dropout, layer norm ---
    # references: tests/conv_reference.py (loops over output pixels; imported by name so
    # that this block stays one contiguous piece of the table)
    "conv2d": [
        (lambda x, w: sg.conv2d(x, w, stride=2, padding=1),
         lambda x, w: __import__("conv_reference").conv2d(x, w, (2, 2), (1, 1, 1, 1)),
         [(2, 3, 6, 5), (4, 3, 3, 2)], ANY),
        (lambda x, w: sg.conv2d(x, w, stride=(1, 2), padding="same", dilation=2, groups=2),
         lambda x, w: __import__("conv_reference").conv2d(x, w, (1, 2), (2, 2, 2, 2),
                                                          (2, 2), 2),
         [(1, 4, 7, 7), (6, 2, 3, 3)], ANY),
        (lambda x, w, b: sg.conv2d(x, w, b, padding="valid", data_format="NHWC"),
         lambda x, w, b: (__import__("conv_reference").conv2d(x.transpose(0, 3, 1, 2), w)
                          + b[:, None, None]).transpose(0, 2, 3, 1),
         [(2, 5, 4, 3), (2, 3, 2, 2), (2,)], ANY)],
    "conv_transpose2d": [
        (lambda x, w: sg.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
         lambda x, w: __import__("conv_reference").conv_transpose2d(x, w, (2, 2), (1, 1),
                                                                    (1, 1)),
         [(1, 3, 4, 4), (3, 2, 3, 3)], ANY),
        (lambda x, w: sg.conv_transpose2d(x, w, dilation=(1, 2), groups=2),
         lambda x, w: __import__("conv_reference").conv_transpose2d(x, w, dilation=(1, 2),
                                                                    groups=2),
         [(2, 4, 3, 3), (4, 1, 2, 2)], ANY)],
    "max_pool2d": [
        (lambda x: sg.max_pool2d(x, 2),
         lambda x: __import__("conv_reference").max_pool2d(x, (2, 2), (2, 2)),
         [(2, 2, 6, 6)], ANY),
        (lambda x: sg.max_pool2d(x, 3, stride=2, padding=1),
         lambda x: __import__("conv_reference").max_pool2d(x, (3, 3), (2, 2), (1, 1, 1, 1)),
         [(1, 2, 7, 6)], ANY)],
    "avg_pool2d": [
        (lambda x: sg.avg_pool2d(x, 2),
         lambda x: __import__("conv_reference").avg_pool2d(x, (2, 2), (2, 2)),
         [(2, 2, 6, 6)], ANY),
        (lambda x: sg.avg_pool2d(x, (3, 2), stride=(2, 1), padding=1),
         lambda x: __import__("conv_reference").avg_pool2d(x, (3, 2), (2, 1), (1, 1, 1, 1)),
         [(1, 2, 7, 6)], ANY)],
    "dropout": [(lambda x, m: sg.dropout(x, m, 0.8), lambda x, m: x * m / 0.8,
                 [(3, 4), (3, 4)], ANY),
                (lambda x, m: sg.dropout(x, m, 0.5), lambda x, m: x * m / 0.5,
                 [(3, 4), (4,)], POS)],
    "layer_norm": [
        (lambda x, w, b: sg.layer_norm(x, 5, w, b),
         lambda x, w, b: __import__("conv_reference").layer_norm(x, 1, w, b),
         [(3, 5), (5,), (5,)], ANY),
        (lambda x: sg.layer_norm(x, (3, 4)),
         lambda x: __import__("conv_reference").layer_norm(x, 2), [(2, 3, 4)], ANY)],
    "softmax_cross_entropy": [(
        lambda a: sg.softmax_cross_entropy(a, sg.constant(np.eye(4)[[1, 0, 3]])),
        lambda a: -(np.eye(4)[[1, 0, 3]] * np.log(_softmax(a))).sum(-1), [(3, 4)], ANY)],
    "sigmoid_cross_entropy": [(
        lambda a: sg.sigmoid_cross_entropy(a, sg.constant(np.array([0.0, 1.0, 1.0, 0.0]))),
        lambda a: np.maximum(a, 0) - a * np.array([0, 1, 1, 0]) + np.log1p(np.exp(-np.abs(a))),
        [(4,)], ANY)],
    "l2_loss": [(sg.l2_loss, lambda a: (a ** 2).sum() / 2, [(3, 4)], ANY)],
    "norm": [(lambda a, ax=ax: sg.norm(a, axis=ax), lambda a, ax=ax: np.linalg.norm(a, axis=ax),
              [(3, 4)], ANY) for ax in (None, 0, 1)]
    # numpy's ord values; those through svd ('nuc', 2, -2) on matrices with distinct
    # singular values away from 0
    + [(lambda a, o=o, ax=ax, k=k: sg.norm(_separated(a), o, ax, k),
        lambda a, o=o, ax=ax, k=k: np.linalg.norm(_separated(a), o, ax, k), [s], ANY)
       for o, ax, k, s in (("nuc", None, False, (3, 4)), (2, (1, 2), True, (2, 3, 4)),
                           (-2, (-1, -2), False, (2, 4, 3)))]
    + [(lambda a, o=o, ax=ax, k=k: sg.norm(a, o, ax, k),
        lambda a, o=o, ax=ax, k=k: np.linalg.norm(a, o, ax, k), [(2, 3, 4)], ANY)
       for o, ax, k in ((1, -1, False), (np.inf, 1, True), (-np.inf, 0, False), (3, 2, False),
                        (2.5, -1, True), ("fro", (0, 2), False), (1, (2, 1), True),
                        (-1, (0, 1), False), (np.inf, (1, 2), False), (-np.inf, (2, 0), True))]
    + [(lambda a, o=o: sg.norm(a, o), lambda a, o=o: np.linalg.norm(a, o), [(4,)], ANY)
       for o in (1, np.inf, 3)],
    # --- linalg block ---
    # well-conditioned inputs built from the drawn ones: a + 4I (nonsingular), a a^T + 3I
    # (positive definite), 0.3 sym(a) + diag(0, 4, 8) (eigenvalues >= 0.4 apart), 0.15 a +
    # diag(9, 5, 2) (singular values distinct, >= 0.9); eigenvectors and singular vectors
    # squared (their signs are arbitrary)
    "inv": [(lambda a: sg.inv(a + _EYE4), lambda a: np.linalg.inv(a + _EYE4V), [s], ANY)
            for s in ((3, 3), (2, 3, 3))],
    "solve": [(lambda a, b: sg.solve(a + _EYE4, b), lambda a, b: np.linalg.solve(a + _EYE4V, b),
               shapes, ANY)
              for shapes in ([(3, 3), (3,)], [(2, 3, 3), (3,)], [(3, 3), (3, 2)],
                             [(2, 1, 3, 3), (3, 3, 2)])],
    "det": [(lambda a: sg.det(a + _EYE4), lambda a: np.linalg.det(a + _EYE4V), [s], ANY)
            for s in ((3, 3), (2, 3, 3))],
    "slogdet": [(lambda a: sg.slogdet(a + _EYE4)[1], lambda a: np.linalg.slogdet(a + _EYE4V)[1],
                 [(2, 3, 3)], ANY),
                # the sign (of a - 4I, either) has no gradient; the product checks it
                (lambda a: sg.slogdet(a - _EYE4)[0] * sg.slogdet(a - _EYE4)[1],
                 lambda a: _product(*np.linalg.slogdet(a - _EYE4V)), [(3, 3)], ANY)],
    "cholesky": [(lambda a: sg.cholesky(a @ sg.swapaxes(a, -1, -2) + _EYE3),
                  lambda a: np.linalg.cholesky(a @ np.swapaxes(a, -1, -2) + _EYE3V), [s], ANY)
                 for s in ((3, 3), (2, 3, 3))],
    "eigh": [(lambda a: sg.eigh(_spread(a, sg.swapaxes))[0],
              lambda a: np.linalg.eigh(_spread(a, np.swapaxes))[0], [(2, 3, 3)], ANY),
             (lambda a: sg.eigh(_spread(a, sg.swapaxes))[1] ** 2,
              lambda a: np.linalg.eigh(_spread(a, np.swapaxes))[1] ** 2, [(3, 3)], ANY),
             (lambda a: _eig_projection(sg.eigh(_spread(a, sg.swapaxes)), sg.swapaxes, sg.exp),
              lambda a: _eig_projection(np.linalg.eigh(_spread(a, np.swapaxes)), np.swapaxes,
                                        np.exp), [(2, 3, 3)], ANY)],
    "svd": [(lambda a, i=i, p=p: sg.svd(_separated(a), full_matrices=False)[i] ** p,
             lambda a, i=i, p=p: np.linalg.svd(_separated(a), full_matrices=False)[i] ** p,
             [s], ANY)
            for i, p in ((0, 2), (1, 1), (2, 2)) for s in ((3, 4), (4, 3), (2, 3, 4))]
    + [(lambda a: sg.svd(_separated(a), compute_uv=False),
        lambda a: np.linalg.svd(_separated(a), compute_uv=False), [(3, 3)], ANY)],
    # --- end of linalg block ---
    "stop_gradient": [(lambda a: sg.stop_gradient(a) * a, lambda a: a * a, [(4,)], ANY)],
    "custom_gradient": [(_cube, lambda a: a ** 3, [(4,)], ANY)],
}

#: for ops whose gradient is not the plain derivative of the forward (by design)
EXPECTED_GRAD = {
    "stop_gradient": lambda a: [a],  # d(stop(a)*a)/da = stop(a)
}


def _values(shapes, domain, rng):
    out = []
    for shape in shapes:
        v = rng.uniform(0.3, 2.0, size=shape)
        if domain == ANY:
            v = v * rng.choice([-1.0, 1.0], size=shape)
        out.append(np.asarray(v, dtype=np.float64))
    return out


def _cases():
    for name in sg.PUBLIC_OPS:
        for k, case in enumerate(SPEC.get(name, [])):
            yield pytest.param(name, case, id=f"{name}-{k}")


def test_every_public_op_has_a_spec_row():
    missing = [name for name in sg.PUBLIC_OPS if not SPEC.get(name)]
    assert not missing, f"ops without a spec row: {missing}"


def test_every_spec_row_names_an_op():
    unknown = sorted(set(SPEC) - set(sg.PUBLIC_OPS))
    assert not unknown, f"spec rows of no op (a typo, or an op not declared): {unknown}"


#: the tape's name for an op spelled differently there
TAPE_NAMES = {"index": "getitem"}
#: ops the tape implements outside its table: no gradient (one_hot, stop_gradient) or the
#: user's own rule (custom_gradient)
TAPE_BUILTINS = {"one_hot", "stop_gradient", "custom_gradient"}


def test_every_public_op_has_a_tape_rule():
    # the tape is the independent oracle: an op it cannot run is an op nothing checks
    from symgrad import tape as tp
    missing = [name for name in sg.PUBLIC_OPS
               if TAPE_NAMES.get(name, name) not in tp.OPS
               and not (name in TAPE_BUILTINS and callable(getattr(tp, name, None)))]
    assert not missing, f"ops without a rule in symgrad/tape/rules.py: {missing}"


def test_every_exported_op_is_a_documented_public_function():
    from symgrad.ops import RECORDS
    for name, record in RECORDS.items():
        if not record.exported:
            continue
        fn = getattr(sg, name)
        assert fn is record.function and name in sg.__all__, name
        doc = fn.__doc__ or ""
        assert "Parameters" in doc and "Returns" in doc, f"{name}: no NumPy-style docstring"


@pytest.mark.parametrize("name,case", list(_cases()))
def test_forward_and_gradient_match_numpy_and_finite_differences(name, case):
    build, reference, shapes, domain = case
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    values = _values(shapes, domain, rng)
    leaves = [sg.param(f"a{i}", s, "float64") for i, s in enumerate(shapes)]
    out = build(*leaves)
    expected = reference(*values)
    assert out.shape == np.shape(expected), (out.shape, np.shape(expected))
    weights = rng.standard_normal(np.shape(expected))
    target = sg.sum(out * sg.constant(weights)) if out.shape else out * float(weights)
    grads = sg.grad(target, leaves)
    f = sg.compile([out, *grads], inputs=leaves)
    got, *got_grads = f(*values)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

    def objective(*vals):
        return float(np.sum(reference(*vals) * weights))

    for i, (v, g) in enumerate(zip(values, got_grads)):
        assert g.shape == v.shape and g.dtype == np.float64
        if name in EXPECTED_GRAD:
            np.testing.assert_allclose(g, EXPECTED_GRAD[name](*values)[i] * weights)
            continue
        for _ in range(2):  # central differences along random directions
            d = rng.standard_normal(v.shape)
            h = 1e-6
            plus = [x + h * d if j == i else x for j, x in enumerate(values)]
            minus = [x - h * d if j == i else x for j, x in enumerate(values)]
            fd = (objective(*plus) - objective(*minus)) / (2 * h)
            np.testing.assert_allclose(np.sum(g * d), fd, rtol=2e-6, atol=1e-7,
                                       err_msg=f"{name}: gradient of input {i}")


# (ops with float64 constants in their spec rows promote to float64, as numpy does)
@pytest.mark.parametrize("name,case", [c for c in _cases() if c.values[0] not in (
    "one_hot", "softmax_cross_entropy", "sigmoid_cross_entropy",
    "float_power")])  # float_power computes in float64 whatever its operands, as in numpy
def test_float32_in_float32_out(name, case):
    build, _, shapes, domain = case
    values = [v.astype(np.float32) for v in _values(shapes, domain, np.random.default_rng(0))]
    leaves = [sg.param(f"b{i}", s, "float32") for i, s in enumerate(shapes)]
    out = build(*leaves)
    target = sg.sum(out) if out.shape else out
    f = sg.compile([out, *sg.grad(target, leaves)], inputs=leaves)
    for r in f(*values):
        assert np.asarray(r).dtype == np.float32, (name, np.asarray(r).dtype)
