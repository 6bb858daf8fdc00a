"""numpy's ``np.linalg`` on real matrices: ``inv``, ``solve``, ``det``, ``slogdet``,
``cholesky``, ``eigh`` and ``svd`` (``norm`` is in :mod:`.reductions`).

Every function takes numpy's stacks of matrices, ``(..., M, N)``, and differentiates
through them with the classical matrix identities (docs/linalg.md states them with their
assumptions). A function of several outputs (``eigh``, ``slogdet``, ``svd``) returns a
tuple of Tensors, one node per output sharing the operand: each prints numpy's call and
takes its own part (``np.linalg.eigh(a)[1]``), and the adjoints of the parts add up in the
operand. The generated module calls LAPACK once per distinct node, so a gradient that
needs both ``w`` and ``v`` of ``eigh`` decomposes twice (each call is exact; the cost is
one more ``O(M**3)`` call). The eigenvalues and the singular values alone print numpy's
calls without vectors (``np.linalg.eigvalsh``, ``svd(a, compute_uv=False)``).

The array API target prints the standard's ``linalg`` extension the same way
(``xp.linalg.eigh(a)[1]``, ``xp.linalg.eigvalsh(a)``, ``xp.linalg.svdvals(a)``), taking
the parts of its named tuples by index. Each node declares the ``xp.linalg.<fn>`` calls
its form writes in ``array_api_calls``, as it declares its numpy calls in
``numpy_calls``: the allowlist of generated modules admits exactly those chains through
``xp`` (:func:`symgrad.ops.record.array_api_chains`), no other function of the extension.
"""

from __future__ import annotations

import numpy as np
import sympy

from .. import expr as tensors
from ..nodes import TensorOp, dtype_of, info, shape_of
from ..shapes import ShapeError, broadcast_shapes, format_shape
from .linalg import _typed_adjoint
from .record import public
from .shape import sum_to_shape

__all__ = ["Inv", "Solve", "Det", "SlogDet", "Cholesky", "Eigh", "Svd", "LINALG_FUNCTIONS"]


def _float_dtype(dtype):
    """numpy's result dtype for a decomposition: integers and booleans compute in float64."""
    if dtype is None or dtype.kind not in "fc":
        return np.dtype(np.float64)
    return dtype


def _matrix(op: str, x, operand: str = "a", square: bool = True):
    """``(shape, dtype)`` of a stack of matrices, checked: at least 2-d, square if asked."""
    shape, dtype = info(x)
    if len(shape) < 2:
        raise ShapeError(f"{op}: operand {operand} of shape {format_shape(shape)} is not a "
                         f"(stack of) matrix: it needs at least 2 dims, (..., M, M)")
    if square and shape[-1] != shape[-2]:
        raise ShapeError(f"{op}: operand {operand} of shape {format_shape(shape)} is not square "
                         f"in its last two dims, (..., M, M)")
    return tuple(shape), _float_dtype(dtype)


def _known(op: str, shape, *dims) -> list:
    """The given dims of ``shape`` as ints (the gradient builds identity masks of them)."""
    out = []
    for d in dims:
        if not isinstance(shape[d], int):
            raise ShapeError(f"{op}: operand a of shape {format_shape(shape)}: the matrix dims "
                             f"must be known integers (not symbolic) for its gradient")
        out.append(shape[d])
    return out


def _t(e):
    """An expression as a Tensor: the rules below are written with the public functions."""
    return tensors.Tensor(e, shape_of(e), dtype_of(e))


def _mT(t):
    from .shape import swapaxes
    return swapaxes(t, -1, -2)


def _col(v):
    """A stack of vectors ``(..., K)`` as rows to scale columns: ``(..., 1, K)``."""
    from .shape import expand_dims
    return expand_dims(v, -2)


def _row(v):
    """A stack of vectors ``(..., K)`` as columns to scale rows: ``(..., K, 1)``."""
    from .shape import expand_dims
    return expand_dims(v, -1)


def _const(value, dtype):
    return tensors.constant(np.asarray(value, dtype=dtype))


def _pair_inverse(w, dtype, squared: bool):
    """``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal, 0 on it (``w**2`` if ``squared``):
    the divided differences of a spectrum, the heart of the eigen- and singular-vector
    rules (the spectrum is assumed distinct; equal values make F infinite)."""
    k = w.shape[-1]
    eye = np.eye(k)
    if squared:
        w = w * w
    diff = _col(w) - _row(w)
    return _const(1.0 - eye, dtype) / (diff + _const(eye, dtype))


def _skew(x):
    return (x - _mT(x)) * 0.5


def _xp_float(p, operand, source: str, dtype) -> str:
    """An operand's array API source, cast to the node's float ``dtype`` when it is not a
    float: the standard's ``linalg`` takes floating arrays only, where numpy computes
    integers in float64."""
    kind = getattr(dtype_of(operand), "kind", "f")
    if kind in "fc":
        return source
    return p.cast_source(source, p.dtype_source(dtype))


class _LinalgOp(TensorOp):
    """Base of the ``np.linalg`` nodes: one square operand ``a`` and an output part."""

    operands = (0,)
    fresh_result = True
    function = ""  # numpy's function under np.linalg
    parts = 1  # how many outputs numpy's function returns (this node is one of them)
    #: the standard's calls the array API form writes (the first: the one of every part,
    #: unless a node prints another for some part); the allowlist admits these chains
    array_api_calls: tuple = ()

    def __new__(cls, a, part=0):
        return TensorOp.__new__(cls, a, sympy.Integer(part))

    @property
    def part(self) -> int:
        return int(self.args[1])

    def call(self, ops) -> str:
        return f"np.linalg.{self.function}({ops[0]})"

    def print_numpy(self, p, ops):
        return self.call(ops) + (f"[{self.part}]" if self.parts > 1 else "")

    def print_array_api(self, p, ops):
        part = f"[{self.part}]" if self.parts > 1 else ""
        return self.xp_call(self.xp_operand(p, ops)) + part

    def xp_operand(self, p, ops) -> str:
        """The operand's source as the standard's ``linalg`` takes it (a float array)."""
        return _xp_float(p, self.args[0], ops[0], self.dtype)

    def xp_call(self, a: str) -> str:
        """The standard's call on the operand source ``a`` (its parts taken by index: a
        named tuple is a tuple in every namespace)."""
        return f"{self.array_api_calls[0]}({a})"

    def formula(self, ops):
        name = f"linalg.{self.function}({ops[0]})"
        return name + (f"[{self.part}]" if self.parts > 1 else "")


class Inv(_LinalgOp):
    """``np.linalg.inv``: ``d(A^-1) = -A^-1 dA A^-1`` gives ``gA = -Y^T g Y^T``."""

    op_name = "inv"
    function = "inv"
    numpy_calls = ("np.linalg.inv",)
    array_api_calls = ("xp.linalg.inv",)

    @classmethod
    def infer(cls, a, part):
        return _matrix("inv", a)

    def vjp(self, g):
        y = _t(self)
        g = _t(_typed_adjoint(g, self))
        return [(-(_mT(y) @ g @ _mT(y))).expr]


class Det(_LinalgOp):
    """``np.linalg.det``: ``d det(A) = det(A) tr(A^-1 dA)`` gives ``gA = g det(A) A^-T``."""

    op_name = "det"
    function = "det"
    numpy_calls = ("np.linalg.det",)
    array_api_calls = ("xp.linalg.det",)

    @classmethod
    def infer(cls, a, part):
        shape, dtype = _matrix("det", a)
        return shape[:-2], dtype

    def vjp(self, g):
        a = self.args[0]
        g = _t(_typed_adjoint(g, self)) * _t(self)
        return [(_row(_row(g)) * _mT(_t(Inv(a)))).expr]


class SlogDet(_LinalgOp):
    """``np.linalg.slogdet``: part 0 the sign (no gradient), part 1 ``log|det A|``, whose
    gradient is ``A^-T``."""

    op_name = "slogdet"
    function = "slogdet"
    parts = 2
    numpy_calls = ("np.linalg.slogdet",)
    array_api_calls = ("xp.linalg.slogdet",)

    @classmethod
    def infer(cls, a, part):
        shape, dtype = _matrix("slogdet", a)
        return shape[:-2], dtype

    def vjp(self, g):
        if self.part == 0:
            return [None]  # the sign is piecewise constant
        g = _t(_typed_adjoint(g, self))
        return [(_row(_row(g)) * _mT(_t(Inv(self.args[0])))).expr]


class Cholesky(_LinalgOp):
    """``np.linalg.cholesky`` (lower): with ``Phi`` the lower triangle with its diagonal
    halved, ``S = L^-T Phi(L^T gL) L^-1`` and ``gA = (S + S^T) / 2``."""

    op_name = "cholesky"
    function = "cholesky"
    numpy_calls = ("np.linalg.cholesky",)
    array_api_calls = ("xp.linalg.cholesky",)

    @classmethod
    def infer(cls, a, part):
        return _matrix("cholesky", a)

    def vjp(self, g):
        (m,) = _known("cholesky", shape_of(self.args[0]), -1)
        low = _t(self)
        g = _t(_typed_adjoint(g, self))
        phi = (_mT(low) @ g) * _const(np.tril(np.ones((m, m))) - 0.5 * np.eye(m), self.dtype)
        inv = _t(Inv(self))
        s = _mT(inv) @ phi @ inv
        return [((s + _mT(s)) * 0.5).expr]


class Eigh(_LinalgOp):
    """``np.linalg.eigh`` (numpy reads the lower triangle): part 0 the eigenvalues ``w``
    (ascending), part 1 the eigenvectors ``V`` (columns).

    ``gA = V (diag(gw) + F o skew(V^T gV)) V^T``, ``F[i, j] = 1 / (w[j] - w[i])``: the
    symmetric gradient, for symmetric input with distinct eigenvalues.
    """

    op_name = "eigh"
    function = "eigh"
    parts = 2
    numpy_calls = ("np.linalg.eigh", "np.linalg.eigvalsh")
    array_api_calls = ("xp.linalg.eigh", "xp.linalg.eigvalsh")

    def print_numpy(self, p, ops):
        if self.part == 0:  # the eigenvalues alone: LAPACK skips the vectors
            return f"np.linalg.eigvalsh({ops[0]})"
        return super().print_numpy(p, ops)

    def print_array_api(self, p, ops):
        if self.part == 0:
            return f"{self.array_api_calls[1]}({self.xp_operand(p, ops)})"
        return super().print_array_api(p, ops)

    @classmethod
    def infer(cls, a, part):
        shape, dtype = _matrix("eigh", a)
        return (shape[:-1] if int(part) == 0 else shape), dtype

    def vjp(self, g):
        a = self.args[0]
        _known("eigh", shape_of(a), -1)
        v = _t(Eigh(a, 1))
        g = _t(_typed_adjoint(g, self))
        if self.part == 0:
            return [((v * _col(g)) @ _mT(v)).expr]
        w = _t(Eigh(a, 0))
        inner = _pair_inverse(w, self.dtype, False) * _skew(_mT(v) @ g)
        return [(v @ inner @ _mT(v)).expr]


class Svd(_LinalgOp):
    """``np.linalg.svd(a, full_matrices=False)``: part 0 ``U`` (..., M, K), part 1 the
    singular values ``s`` (..., K), descending, part 2 ``Vh`` (..., K, N), ``K = min(M, N)``.

    With ``F[i, j] = 1 / (s[j]**2 - s[i]**2)`` (distinct nonzero singular values):
    ``gA = U diag(gs) Vh`` from ``s``;
    ``U (F o (U^T gU - gU^T U)) diag(s) Vh + (I - U U^T) gU diag(1/s) Vh`` from ``U``;
    ``U diag(s) (F o (Vh gVh^T - gVh Vh^T)) Vh + U diag(1/s) gVh (I - Vh^T Vh)`` from
    ``Vh``.
    """

    op_name = "svd"
    function = "svd"
    parts = 3
    numpy_calls = ("np.linalg.svd",)
    array_api_calls = ("xp.linalg.svd", "xp.linalg.svdvals")

    @classmethod
    def infer(cls, a, part):
        shape, dtype = _matrix("svd", a, square=False)
        m, n = shape[-2:]
        if m == n:
            k = m
        elif isinstance(m, int) and isinstance(n, int):
            k = min(m, n)
        else:
            raise ShapeError(f"svd: operand a of shape {format_shape(shape)}: a non-square "
                             f"matrix needs known integer dims")
        batch = shape[:-2]
        return [batch + (m, k), batch + (k,), batch + (k, n)][int(part)], dtype

    def call(self, ops) -> str:
        return f"np.linalg.svd({ops[0]}, full_matrices=False)"

    def print_numpy(self, p, ops):
        if self.part == 1:  # the singular values alone: LAPACK skips the vectors
            return f"np.linalg.svd({ops[0]}, compute_uv=False)"
        return super().print_numpy(p, ops)

    def xp_call(self, a: str) -> str:
        return f"{self.array_api_calls[0]}({a}, full_matrices=False)"

    def print_array_api(self, p, ops):
        if self.part == 1:  # the standard's function for the singular values alone
            return f"{self.array_api_calls[1]}({self.xp_operand(p, ops)})"
        return super().print_array_api(p, ops)

    def formula(self, ops):
        return f"linalg.svd({ops[0]}, full_matrices=False)[{self.part}]"

    def vjp(self, g):
        a = self.args[0]
        m, n = _known("svd", shape_of(a), -2, -1)
        k = min(m, n)
        u, s, vh = (_t(Svd(a, i)) for i in range(3))
        g = _t(_typed_adjoint(g, self))
        if self.part == 1:
            return [((u * _col(g)) @ vh).expr]
        f = _pair_inverse(s, self.dtype, True)
        if self.part == 0:
            ug = _mT(u) @ g
            out = u @ ((f * (ug - _mT(ug))) * _col(s)) @ vh
            if m > k:  # the part of gU outside U's columns
                out = out + ((g - u @ ug) * _col(1.0 / s)) @ vh
            return [out.expr]
        vg = vh @ _mT(g)
        out = u @ (_row(s) * (f * (vg - _mT(vg)))) @ vh
        if n > k:  # the part of gVh outside Vh's rows
            out = out + u @ (_row(1.0 / s) * (g - (g @ _mT(vh)) @ vh))
        return [out.expr]


class Solve(TensorOp):
    """``np.linalg.solve(a, b)`` with numpy 2's rule: ``b`` is one vector when it is 1-d,
    a stack of matrices ``(..., M, K)`` otherwise; batch dims broadcast. ``x = A^-1 b``
    gives ``gb = A^-T g`` and ``gA = -gb x^T``."""

    op_name = "solve"
    operands = (0, 1)
    fresh_result = True
    numpy_calls = ("np.linalg.solve",)
    array_api_calls = ("xp.linalg.solve",)

    @classmethod
    def infer(cls, a, b):
        sa, da = _matrix("solve", a)
        sb, db = info(b)
        sb = tuple(sb)
        m = sa[-1]
        if len(sb) == 1:
            if sb[0] != m:
                raise ShapeError(f"solve: operand b of shape {format_shape(sb)} does not fit "
                                 f"operand a of shape {format_shape(sa)} ({sb[0]} != {m})")
            shape = sa[:-1]
        else:
            if len(sb) < 2 or sb[-2] != m:
                raise ShapeError(f"solve: operand b of shape {format_shape(sb)} does not fit "
                                 f"operand a of shape {format_shape(sa)}: b is (M,) or "
                                 f"(..., M, K) with M = {m}")
            shape = broadcast_shapes(sa[:-2], sb[:-2], op="solve") + sb[-2:]
        return shape, np.result_type(da, _float_dtype(db))

    def vjp(self, g):
        a, b = self.args
        sa, sb = shape_of(a), shape_of(b)
        vector = len(sb) == 1
        g = _t(_typed_adjoint(g, self))
        x = _t(self)
        if vector:  # as matrices of one column: the batch rule of solve reads it so
            g, x = _row(g), _row(x)
        gb = _t(Solve(_mT(_t(a)).expr, g.expr))
        ga = -(gb @ _mT(x))
        if vector:
            from .shape import squeeze
            gb = squeeze(gb, -1)
        return [sum_to_shape(ga.expr, ga.shape, sa), sum_to_shape(gb.expr, gb.shape, sb)]

    def print_numpy(self, p, ops):
        return f"np.linalg.solve({ops[0]}, {ops[1]})"

    def print_array_api(self, p, ops):
        a, b = (_xp_float(p, arg, src, self.dtype) for arg, src in zip(self.args, ops))
        if len(shape_of(self.args[1])) == 1:
            # one vector: solved as the one column of a matrix, which every namespace
            # reads alike (numpy 1 and the standard's early drafts read a 1-d b otherwise)
            return f"{self.array_api_calls[0]}({a}, xp.expand_dims({b}, axis=-1))[..., 0]"
        return f"{self.array_api_calls[0]}({a}, {b})"

    def formula(self, ops):
        return f"linalg.solve({ops[0]}, {ops[1]})"


# ---------------------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------------------


def _node(cls, a, part=0):
    t = tensors.as_tensor(a)
    node = cls(t.expr, part)
    return tensors.Tensor(node, node.shape, node.dtype)


@public("structural", node=Inv, numpy="np.linalg.inv", reference=np.linalg.inv)
def inv(a):
    """numpy's ``linalg.inv``: the inverse of each matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, M)``.

    Returns
    -------
    Tensor
        Of shape ``(..., M, M)`` (float64 for integer input).

    Raises
    ------
    ShapeError
        When ``a`` has fewer than 2 dims or is not square.

    Notes
    -----
    ``Y = A^-1``: ``dY = -Y dA Y``, so ``gA = -Y^T gY Y^T``. Assumes ``A`` nonsingular
    (numpy raises ``LinAlgError`` at run time otherwise).
    """
    return _node(Inv, a)


@public("structural", node=Solve, numpy="np.linalg.solve", reference=np.linalg.solve)
def solve(a, b):
    """numpy's ``linalg.solve``: ``x`` with ``a @ x = b``, for each matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, M)``.
    b : Tensor or array_like
        Of shape ``(M,)`` (one right-hand side for every matrix) or ``(..., M, K)`` (numpy
        2's rule: only a 1-d ``b`` is a vector); the batch dims broadcast with a's.

    Returns
    -------
    Tensor
        Of shape ``(..., M)`` or ``(..., M, K)``.

    Raises
    ------
    ShapeError
        When ``a`` is not a stack of square matrices or ``b`` does not fit it.

    Notes
    -----
    ``x = A^-1 b``: ``gb = A^-T gx`` and ``gA = -gb x^T`` (summed over broadcast batch
    dims). Assumes ``A`` nonsingular.
    """
    ta, tb = tensors.as_tensor(a), tensors.as_tensor(b)
    node = Solve(ta.expr, tb.expr)
    return tensors.Tensor(node, node.shape, node.dtype)


@public("structural", node=Det, numpy="np.linalg.det", reference=np.linalg.det)
def det(a):
    """numpy's ``linalg.det``: the determinant of each matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, M)``.

    Returns
    -------
    Tensor
        Of shape ``(...)``.

    Raises
    ------
    ShapeError
        When ``a`` has fewer than 2 dims or is not square.

    Notes
    -----
    Jacobi's formula ``d det(A) = det(A) tr(A^-1 dA)`` gives ``gA = g det(A) A^-T``.
    Assumes ``A`` nonsingular (the gradient goes through ``inv``; at a singular ``A`` the
    true gradient, the adjugate, is finite but this form is not).
    """
    return _node(Det, a)


@public("structural", node=SlogDet, numpy="np.linalg.slogdet")
def slogdet(a):
    """numpy's ``linalg.slogdet``: the sign and the log of the absolute value of the
    determinant of each matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, M)``.

    Returns
    -------
    tuple of Tensor
        ``(sign, logabsdet)``, each of shape ``(...)``: ``det(a) = sign * exp(logabsdet)``.
        ``sign`` has no gradient (it is piecewise constant).

    Raises
    ------
    ShapeError
        When ``a`` has fewer than 2 dims or is not square.

    Notes
    -----
    ``d log|det A| = tr(A^-1 dA)``, so ``gA = g A^-T``. Assumes ``A`` nonsingular.
    """
    t = tensors.as_tensor(a)
    return _node(SlogDet, t, 0), _node(SlogDet, t, 1)


@public("structural", node=Cholesky, numpy="np.linalg.cholesky", reference=np.linalg.cholesky)
def cholesky(a):
    """numpy's ``linalg.cholesky``: the lower factor ``L`` of ``a = L @ L.T`` for each
    symmetric positive definite matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, M)``, symmetric positive definite (numpy reads only its lower
        triangle).

    Returns
    -------
    Tensor
        ``L``, lower triangular, of shape ``(..., M, M)``.

    Raises
    ------
    ShapeError
        When ``a`` has fewer than 2 dims or is not square; when differentiated, for
        symbolic matrix dims.

    Notes
    -----
    With ``Phi(X)`` the lower triangle of ``X`` with its diagonal halved,
    ``S = L^-T Phi(L^T gL) L^-1``; the gradient is its symmetric part ``(S + S^T) / 2``
    (as PyTorch's): the gradient with respect to a symmetric ``A``, spread evenly over
    the two triangles. A loss of a symmetrized ``(X + X.T) / 2`` gets the exact gradient
    in ``X``; a non-symmetric ``A`` is outside the rule (numpy ignores its upper
    triangle, the rule does not).
    """
    return _node(Cholesky, a)


@public("structural", node=Eigh, numpy="np.linalg.eigh")
def eigh(a, UPLO="L"):
    """numpy's ``linalg.eigh``: eigenvalues (ascending) and eigenvectors of each symmetric
    matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, M)``, symmetric.
    UPLO : {"L"}
        numpy's triangle to read; only ``"L"`` (numpy's default) is supported.

    Returns
    -------
    tuple of Tensor
        ``(w, v)``: ``w`` of shape ``(..., M)``, ``v`` of shape ``(..., M, M)`` whose
        column ``v[..., :, i]`` is the unit eigenvector of ``w[..., i]``.

    Raises
    ------
    ShapeError
        When ``a`` has fewer than 2 dims or is not square; when differentiated, for
        symbolic matrix dims.
    ValueError
        For ``UPLO="U"``.

    Notes
    -----
    ``gA = V (diag(gw) + F o skew(V^T gV)) V^T`` with ``F[i, j] = 1 / (w[j] - w[i])``
    off the diagonal, ``skew(X) = (X - X^T) / 2`` and ``o`` the elementwise product: the
    symmetric gradient (as PyTorch's), for symmetric ``A`` with distinct eigenvalues
    (equal eigenvalues make ``F`` infinite, and their eigenvectors are not unique). Each
    eigenvector's sign is arbitrary: only losses that do not depend on it (``v**2``,
    ``v @ diag(f(w)) @ v.T``) have a meaningful gradient.
    """
    if UPLO != "L":
        raise ValueError(f"eigh: UPLO={UPLO!r} is not supported, only 'L' (numpy's default)")
    t = tensors.as_tensor(a)
    return _node(Eigh, t, 0), _node(Eigh, t, 1)


@public("structural", node=Svd, numpy="np.linalg.svd")
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """numpy's ``linalg.svd``, reduced: ``a = U @ diag(s) @ Vh`` for each matrix of a stack.

    Parameters
    ----------
    a : Tensor or array_like
        Of shape ``(..., M, N)``.
    full_matrices : bool
        numpy's default True is accepted for square matrices only (where the complete and
        the reduced factors are the same); for others it raises: pass False (the extra
        columns of a complete ``U`` or ``Vh`` are arbitrary, no gradient goes through them).
    compute_uv : bool
        False: return ``s`` alone (numpy's ``svd(a, compute_uv=False)``).
    hermitian : bool
        Must be False.

    Returns
    -------
    tuple of Tensor or Tensor
        ``(U, s, Vh)`` of shapes ``(..., M, K)``, ``(..., K)``, ``(..., K, N)`` with
        ``K = min(M, N)``, ``s`` descending; ``s`` alone when ``compute_uv`` is False.

    Raises
    ------
    ShapeError
        When ``a`` has fewer than 2 dims; when differentiated, for symbolic matrix dims.
    ValueError
        For ``full_matrices=True`` on a non-square ``a`` (with ``compute_uv``), or
        ``hermitian=True``.

    Notes
    -----
    With ``F[i, j] = 1 / (s[j]**2 - s[i]**2)`` off the diagonal, ``o`` the elementwise
    product: ``gA = U diag(gs) Vh`` from ``s``;
    ``U (F o (U^T gU - gU^T U)) diag(s) Vh + (I - U U^T) gU diag(1/s) Vh`` from ``U``;
    ``U diag(s) (F o (Vh gVh^T - gVh Vh^T)) Vh + U diag(1/s) gVh (I - Vh^T Vh)`` from
    ``Vh``. Assumes distinct, nonzero singular values (the singular vectors are not
    unique otherwise). The signs of a pair ``(U[:, i], Vh[i])`` are arbitrary: only
    losses that do not depend on them (``s``, ``U @ diag(f(s)) @ Vh``, ``U**2``) have a
    meaningful gradient.
    """
    if hermitian:
        raise ValueError("svd: hermitian=True is not supported (use eigh for symmetric input)")
    t = tensors.as_tensor(a)
    if not compute_uv:
        return _node(Svd, t, 1)
    m, n = t.shape[-2:] if t.ndim >= 2 else (None, None)
    if full_matrices and not (t.ndim >= 2 and m == n):  # square: complete is reduced
        raise ValueError(f"svd: full_matrices=True is not supported for operand a of shape "
                         f"{format_shape(t.shape)}: pass full_matrices=False (the reduced U, "
                         f"s, Vh); the extra columns of a complete U or Vh are arbitrary and "
                         f"have no gradient")
    return _node(Svd, t, 0), _node(Svd, t, 1), _node(Svd, t, 2)


#: the functions of ``np.linalg`` symgrad implements (``sg.linalg`` lists them)
LINALG_FUNCTIONS = ("inv", "solve", "det", "slogdet", "cholesky", "eigh", "svd", "norm")
