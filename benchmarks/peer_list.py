"""A peer's gradient test list, run against symgrad: ``python -m benchmarks.peer_list``.

HIPS autograd's test suite checks the gradients of a list of numpy functions (its files
``tests/test_numpy.py``, ``test_scalar_ops.py``, ``test_systematic.py``,
``test_binary_ops.py``, ``test_linalg.py``, ``test_fft.py`` and ``test_complex.py``; scipy's
are left out). :data:`PEER_LIST` is that list of names, one :class:`Entry` each, written
here in our own form (no code of theirs): its group and either the cases that build it on
symgrad Tensors next to a numpy reference, or the reason symgrad leaves it out. The 156
entries are numpy's functions by name (``np.sin``, ``np.linalg.inv``, ``np.fft.fft``;
operators counted as their ufuncs, ``x < y`` as ``np.less``) and the array methods the peer
tests on their own (``ndarray.reshape`` next to ``np.reshape``, ``ndarray.__getitem__``).

Most cases are *one* numpy-code function, run twice: on ndarrays (the reference) and on
symgrad Tensors, where numpy's dispatch (``Tensor.__array_function__`` and
``__array_ufunc__``) builds the symbolic expression -- so a case checks that the peer's
numpy call itself works on symgrad. Inputs are drawn as ``tests/test_op_spec.py`` draws
them (``"any"``: magnitudes 0.3..2 of either sign; ``"pos"``: 0.3..2); a case moves them
into its function's domain itself (``np.arcsin(0.4 * a)``).

A case that needs an op another branch adds (``np.linalg.inv``) names it in ``requires``;
:func:`available` says whether this checkout has it, and the test skips it otherwise.

``python -m benchmarks.peer_list`` prints the coverage table; ``--write-docs`` rewrites
``docs/coverage.md`` (``tests/test_peer_list.py`` checks it is current).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

#: the groups, in the order of the table
GROUPS = ("unary", "binary", "comparison", "reduction", "shape", "indexing/construction",
          "product", "linalg", "fft", "complex")

ANY, POS = "any", "pos"

DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "coverage.md"


@dataclass(frozen=True)
class Case:
    """One check of a supported function.

    Parameters
    ----------
    build : callable
        Takes one symgrad Tensor per shape, returns the function's value as a Tensor.
    reference : callable
        The same on ndarrays (plain numpy).
    shapes : tuple
        The shape of each input.
    domain : {"any", "pos"}
        Where the inputs are drawn.
    requires : str, optional
        A numpy name (``"linalg.inv"``) that ``symgrad.numpy`` must have for the case to
        run; None when every symgrad has it.
    optional : bool
        The case uses an argument this symgrad may lack (``norm``'s ``ord``): it runs only
        where building it raises no TypeError (how symgrad refuses an argument).
    """

    build: Callable
    reference: Callable
    shapes: tuple
    domain: str = ANY
    requires: Optional[str] = None
    optional: bool = False


@dataclass(frozen=True)
class Entry:
    """One numpy function of the peer's list: its name (``"np.sin"``), its group, and
    either ``cases`` (supported) or ``reason`` (why symgrad leaves it out)."""

    name: str
    group: str
    cases: tuple = ()
    reason: str = ""

    @property
    def supported(self) -> bool:
        return bool(self.cases)

    def available(self) -> bool:
        """Whether a supported entry runs on this checkout: some of its cases do (the rest
        need an argument another branch adds, as ``norm``'s ``ord``)."""
        return any(available(c) for c in self.cases)


def available(case: Case) -> bool:
    """Whether this symgrad has what ``case`` needs (see :attr:`Case.requires`)."""
    if case.requires is not None:
        import symgrad.numpy as snp
        scope = snp
        for part in case.requires.split("."):
            scope = getattr(scope, part, None)
            if scope is None:
                return False
    if case.optional:
        import symgrad as sg
        try:
            case.build(*[sg.input(f"_probe{i}", s, "float64") for i, s in enumerate(case.shapes)])
        except TypeError:
            return False
    return True


# ------------------------------------------------------------------------------------------
# Helpers that write entries
# ------------------------------------------------------------------------------------------


def same(fn, shapes, domain=ANY, **kw) -> Case:
    """A case whose numpy code runs unchanged on Tensors (numpy's dispatch)."""
    return Case(fn, fn, tuple(tuple(s) for s in shapes), domain, **kw)


def supported(name, group, *cases) -> Entry:
    assert cases, name
    return Entry(name, group, tuple(cases))


def unsupported(name, group, reason) -> Entry:
    return Entry(name, group, (), reason)


def _ufunc1(name, transform=None, domain=ANY, shape=(3, 4)) -> Entry:
    """A unary ufunc ``np.<name>``, applied to ``transform(a)``."""
    f = getattr(np, name)
    fn = (lambda a: f(a)) if transform is None else (lambda a: f(transform(a)))
    return supported(f"np.{name}", "unary", same(fn, [shape], domain))


def _ufunc2(name, shapes=((3, 4), (4,)), domain=ANY) -> Entry:
    f = getattr(np, name)
    return supported(f"np.{name}", "binary", same(lambda a, b: f(a, b), shapes, domain))


def _piecewise(name) -> Entry:
    """A piecewise-constant ufunc: its gradient is 0, which the product with ``a`` checks
    (a bare zero gradient would check nothing)."""
    f = getattr(np, name)
    return supported(f"np.{name}", "unary", same(lambda a: f(2.0 * a) * a, [(3, 4)]))


def _compare(name, fn_sg=None) -> Entry:
    """A comparison, as a 0/1 mask in arithmetic: no gradient through the mask."""
    f = getattr(np, name)
    ref = lambda a, b: f(a, b) * a + b  # noqa: E731
    if fn_sg is None:
        return supported(f"np.{name}", "comparison", same(ref, [(3, 4), (4,)]))
    return supported(f"np.{name}", "comparison",
                     Case(fn_sg, lambda a: f(np.floor(2.0 * a), 1.0) * a, ((3, 4),)))


def _reduction(name, axes=(None, 0, -1, (0, 2)), **extra) -> Entry:
    f = getattr(np, name)
    cases = [same(lambda a, ax=ax, k=k: f(a, axis=ax, keepdims=k, **extra), [(2, 3, 4)])
             for ax in axes for k in (False, True)]
    return supported(f"np.{name}", "reduction", *cases)


def _spd(a):
    """A symmetric positive definite matrix (batch) from any square ``a``: ``a a^T + 3 I``
    (numpy code, so it runs on Tensors too). Well conditioned: the finite differences of
    inv, solve and det stay accurate (and ``a + 3 I`` for a nonsymmetric one)."""
    n = a.shape[-1]
    return a @ np.swapaxes(a, -1, -2) + 3.0 * np.eye(n)


def _sym(a):
    return (a + np.swapaxes(a, -1, -2)) * 0.5


def _fft(name) -> Entry:
    return unsupported(f"np.fft.{name}", "fft",
                       "FFT: complex-valued spectra; out of scope (issue 12), no complex dtype")


def _complex(name, why) -> Entry:
    return unsupported(f"np.{name}", "complex", f"complex numbers: {why}")


def _linalg(name, *cases) -> Entry:
    return supported(f"np.linalg.{name}", "linalg",
                     *[Case(c.build, c.reference, c.shapes, c.domain,
                            requires=f"linalg.{name}") for c in cases])


_NOT_YET = "not in symgrad yet"


# ------------------------------------------------------------------------------------------
# The list
# ------------------------------------------------------------------------------------------


def _unary() -> list:
    out = [
        _ufunc1("abs"), _ufunc1("absolute"),
        _ufunc1("arccos", lambda a: 0.4 * a), _ufunc1("arccosh", lambda a: a + 1.0, POS),
        _ufunc1("arcsin", lambda a: 0.4 * a), _ufunc1("arcsinh"), _ufunc1("arctan"),
        _ufunc1("arctanh", lambda a: 0.4 * a), _ufunc1("cos"), _ufunc1("cosh"),
        _ufunc1("deg2rad"),
        _ufunc1("degrees"),
        _ufunc1("exp"), _ufunc1("exp2"), _ufunc1("expm1"),
        _ufunc1("log", domain=POS), _ufunc1("log10", domain=POS),
        _ufunc1("log1p", domain=POS), _ufunc1("log2", domain=POS),
        _ufunc1("negative"), _ufunc1("rad2deg"),
        _ufunc1("radians"),
        _ufunc1("reciprocal"),
        supported("np.sign", "unary", same(lambda a: np.sign(a) * a, [(3, 4)])),
        _ufunc1("sin"), _ufunc1("sinc"), _ufunc1("sinh"), _ufunc1("sqrt", domain=POS),
        _ufunc1("tan", lambda a: 0.5 * a), _ufunc1("tanh"),
        _piecewise("ceil"), _piecewise("floor"),
        _ufunc1("fabs"), _ufunc1("square"), _ufunc1("nan_to_num"),
        supported("np.clip", "unary", same(lambda a: np.clip(a, -1.0, 1.0), [(3, 4)]),
                  same(lambda a: np.clip(a, 0.5, None), [(3, 4)]),
                  same(lambda a: np.clip(a, None, -0.5), [(3, 4)])),
    ]
    return out


def _binary() -> list:
    return [
        _ufunc2("add"), _ufunc2("subtract"), _ufunc2("multiply"),
        _ufunc2("divide", domain=POS), _ufunc2("true_divide", domain=POS),
        _ufunc2("power", ((3,), (3,)), POS),
        _ufunc2("mod"), _ufunc2("remainder"),
        _ufunc2("maximum"), _ufunc2("minimum"), _ufunc2("fmax"), _ufunc2("fmin"),
        _ufunc2("logaddexp"), _ufunc2("logaddexp2"), _ufunc2("arctan2"), _ufunc2("hypot"),
        supported("np.where", "binary",
                  same(lambda a, b: np.where(a > 0, a * b, b), [(3, 4), (4,)])),
    ]


def _comparisons() -> list:
    import symgrad as sg
    return [
        _compare("less"), _compare("less_equal"), _compare("greater"),
        _compare("greater_equal"),
        # np.equal/np.not_equal keep Python's identity meaning on a Tensor (it is a dict
        # key: symgrad/numpy.py); sg.equal is the elementwise comparison
        _compare("equal", lambda a: sg.equal(sg.floor(2.0 * a), 1.0) * a),
        _compare("not_equal", lambda a: sg.not_equal(sg.floor(2.0 * a), 1.0) * a),
    ]


def _reductions() -> list:
    return [
        _reduction("sum"), _reduction("mean"), _reduction("max", (None, 0, -1)),
        _reduction("min", (None, 1, (0, 2))), _reduction("prod", (None, 1, (0, 2))),
        _reduction("var", (None, 0, (1, 2)), ddof=1), _reduction("std", (None, -1, (0, 1))),
        supported("np.cumsum", "reduction",
                  *[same(lambda a, ax=ax: np.cumsum(a, axis=ax), [(3, 4)])
                    for ax in (None, 0, -1)]),
    ]


def _shape() -> list:
    g = "shape"
    s = lambda name, *cases: supported(f"np.{name}", g, *cases)  # noqa: E731
    return [
        s("reshape", same(lambda a: np.reshape(a, (4, -1)), [(2, 3, 4)])),
        # the peer tests the method forms of reshape, ravel and squeeze on their own
        supported("ndarray.reshape", g, same(lambda a: a.reshape(6, 4), [(2, 3, 4)]),
                  same(lambda a: a.reshape((-1,)), [(2, 3)])),
        s("ravel", same(lambda a: np.ravel(a), [(2, 3, 4)])),
        supported("ndarray.ravel", g, same(lambda a: a.ravel(), [(2, 3, 4)])),
        s("transpose", same(lambda a: np.transpose(a), [(3, 4)]),
          same(lambda a: np.transpose(a, (1, 2, 0)), [(2, 3, 4)])),
        s("moveaxis", same(lambda a: np.moveaxis(a, 0, -1), [(2, 3, 4)])),
        s("rollaxis", same(lambda a: np.rollaxis(a, 2), [(2, 3, 4)]),
          same(lambda a: np.rollaxis(a, 0, 3), [(2, 3, 4)])),
        s("swapaxes", same(lambda a: np.swapaxes(a, 0, 2), [(2, 3, 4)])),
        s("squeeze", same(lambda a: np.squeeze(a), [(3, 1, 4, 1)])),
        supported("ndarray.squeeze", g, same(lambda a: a.squeeze(), [(3, 1, 4, 1)]),
                  same(lambda a: a.squeeze(1), [(3, 1, 4, 1)])),
        s("expand_dims", same(lambda a: np.expand_dims(a, 1), [(3, 4)])),
        s("atleast_1d", same(lambda a: np.atleast_1d(a), [()])),
        s("atleast_2d", same(lambda a: np.atleast_2d(a), [(4,)])),
        s("atleast_3d", same(lambda a: np.atleast_3d(a), [(2, 3)])),
        s("flipud", same(lambda a: np.flipud(a), [(3, 4)])),
        s("fliplr", same(lambda a: np.fliplr(a), [(3, 4)])),
        s("rot90", same(lambda a: np.rot90(a), [(3, 4)]),
          same(lambda a: np.rot90(a, 3, (2, 0)), [(2, 3, 4)])),
        s("roll", same(lambda a: np.roll(a, 2), [(3, 4)]),
          same(lambda a: np.roll(a, -1, 1), [(3, 4)])),
        s("repeat", same(lambda a: np.repeat(a, 2), [(3, 2)]),
          same(lambda a: np.repeat(a, 3, 1), [(3, 2)])),
        s("tile", same(lambda a: np.tile(a, (2, 1, 3)), [(3, 2)])),
        s("diff", same(lambda a: np.diff(a), [(3, 5)]),
          same(lambda a: np.diff(a, 2, 0), [(5, 3)])),
        s("gradient", same(lambda a: np.gradient(a), [(6,)]),
          same(lambda a: np.gradient(a, 0.5)[0] * np.gradient(a, 0.5)[1], [(3, 4)]),
          same(lambda a: np.gradient(a, axis=0, edge_order=2), [(5, 3)])),
        s("sort", same(lambda a: np.sort(a), [(3, 5)]),
          same(lambda a: np.sort(a, axis=0), [(3, 5)])),
        # np.msort (removed in numpy 2.0) was sort along axis 0: checked as that
        s("msort", same(lambda a: np.sort(a, axis=0), [(5, 3)])),
        s("partition", same(lambda a: np.partition(a, 2), [(3, 5)]),
          same(lambda a: np.partition(a, [0, -1], axis=0), [(6, 2)])),
        s("concatenate", same(lambda a, b: np.concatenate([a, b]), [(2, 3), (1, 3)]),
          same(lambda a, b: np.concatenate((a, b), axis=1), [(2, 3), (2, 2)])),
        s("stack", same(lambda a, b: np.stack([a, b], axis=1), [(2, 3), (2, 3)])),
        s("vstack", same(lambda a, b: np.vstack([a, b]), [(3,), (2, 3)])),
        s("hstack", same(lambda a, b: np.hstack([a, b]), [(2, 3), (2, 1)])),
        # np.row_stack (deprecated in numpy 2.0) is vstack
        s("row_stack", same(lambda a, b: np.vstack([a, b]), [(2, 4), (1, 4)])),
        s("column_stack", same(lambda a, b: np.column_stack([a, b]), [(3,), (3, 2)])),
        s("split", same(lambda a: np.split(a, 3, 1)[1] * np.split(a, 3, 1)[2], [(2, 6)]),
          same(lambda a: np.split(a, [1, 3])[2] * 3.0, [(5, 2)])),
        s("array_split",
          same(lambda a: np.array_split(a, 3)[0] + np.array_split(a, 3)[2][:1], [(7,)])),
        s("vsplit", same(lambda a: np.vsplit(a, 2)[1] * 2.0, [(4, 3)])),
        s("hsplit", same(lambda a: np.hsplit(a, [1])[1], [(2, 3)]),
          same(lambda a: np.hsplit(a, 3)[2], [(6,)])),
        s("dsplit", same(lambda a: np.dsplit(a, 2)[0] - np.dsplit(a, 2)[1], [(2, 1, 4)])),
        s("append", same(lambda a, b: np.append(a, b), [(2, 3), (4,)]),
          same(lambda a, b: np.append(a, b, axis=1), [(2, 3), (2, 1)])),
        s("pad", same(lambda a: np.pad(a, ((0, 2), (1, 0)), constant_values=1.5), [(2, 3)])),
        s("select", same(lambda a, b: np.select([a > 0.5, b < 0], [a * b, a], 2.0),
                         [(3, 4), (4,)])),
        s("trace", same(lambda a: np.trace(a), [(4, 4)]),
          same(lambda a: np.trace(a, 1, 1, 2), [(2, 3, 4)])),
        s("diag", same(lambda a: np.diag(a, -1), [(3,)]), same(lambda a: np.diag(a, 1), [(3, 4)])),
        s("diagonal", same(lambda a: np.diagonal(a), [(3, 4)])),
        s("tril", same(lambda a: np.tril(a, -1), [(2, 3, 3)]),
          same(lambda a: np.tril(a), [(4,)])),
        s("triu", same(lambda a: np.triu(a, 1), [(3, 4)]), same(lambda a: np.triu(a), [(3,)])),
    ]


def _indexing() -> list:
    g = "indexing/construction"
    return [
        supported("ndarray.__getitem__", g, same(lambda a: a[1:, ::2], [(3, 4)]),
                  same(lambda a: a[None, 1, ..., -1], [(3, 4)]),
                  same(lambda a: a[np.array([1, 1, 0])], [(3, 4)]),
                  same(lambda a: a[:, [2, 0]], [(2, 3, 4)])),
        supported("ndarray.flatten", g, same(lambda a: a.flatten(), [(2, 3, 4)])),
        # a float cast that rounds (to float32) is out of reach of float64 finite
        # differences: the cases cast to float64 and to an integer type (no gradient)
        supported("ndarray.astype", g, same(lambda a: np.sin(a.astype("float64")), [(3, 4)]),
                  same(lambda a: a * a.astype(np.int8), [(3, 4)], POS)),
        unsupported("np.array", g, "np.array of Tensors raises a TypeError that points to "
                                   "np.stack / sg.stack (supported): numpy builds arrays of "
                                   "values, and a Tensor has none until it runs"),
        unsupported("np.r_", g, f"{_NOT_YET} (np.concatenate is supported)"),
        unsupported("np.c_", g, f"{_NOT_YET} (np.column_stack is supported)"),
        supported("np.linspace", g, same(lambda a, b: np.linspace(a, b, 5), [(), ()]),
                  same(lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=1),
                       [(2, 1), (3,)])),
    ]


def _products() -> list:
    g = "product"
    s = lambda name, *cases: supported(f"np.{name}", g, *cases)  # noqa: E731
    return [
        s("dot", same(lambda a, b: np.dot(a, b), [(3, 4), (4, 2)]),
          same(lambda a, b: np.dot(a, b), [(4,), (4,)]),
          same(lambda a, b: np.dot(a, b), [(), (2, 3)])),
        s("outer", same(lambda a, b: np.outer(a, b), [(3,), (4,)])),
        s("inner", same(lambda a, b: np.inner(a, b), [(3, 4), (2, 4)])),
        s("matmul", same(lambda a, b: np.matmul(a, b), [(2, 3, 4), (4, 2)]),
          same(lambda a, b: a @ b, [(4,), (4, 2)])),
        s("tensordot", same(lambda a, b: np.tensordot(a, b, 2), [(2, 3, 4), (3, 4, 2)]),
          same(lambda a, b: np.tensordot(a, b, ([0, -1], [1, 0])), [(4, 3, 2), (2, 4, 5)])),
        s("einsum", same(lambda a, b: np.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)]),
          same(lambda a, b, c: np.einsum("bi,bj,ij->b", a, b, c), [(2, 3), (2, 4), (3, 4)])),
        s("kron", same(lambda a, b: np.kron(a, b), [(2, 3), (3, 2)])),
        s("cross", same(lambda a, b: np.cross(a, b), [(4, 3), (4, 3)])),
    ]


def _linalg_entries() -> list:
    g = "linalg"
    return [
        _linalg("inv", same(lambda a: np.linalg.inv(_spd(a)), [(3, 3)]),
                same(lambda a: np.linalg.inv(_spd(a)), [(2, 3, 3)])),
        _linalg("solve", same(lambda a, b: np.linalg.solve(_spd(a), b), [(3, 3), (3, 2)]),
                same(lambda a, b: np.linalg.solve(_spd(a), b[..., None])[..., 0],
                     [(2, 3, 3), (2, 3)])),
        _linalg("det", same(lambda a: np.linalg.det(_spd(a)), [(3, 3)]),
                same(lambda a: np.linalg.det(a + 3.0 * np.eye(3)), [(2, 3, 3)])),
        _linalg("slogdet", same(lambda a: np.linalg.slogdet(_spd(a))[1], [(3, 3)]),
                same(lambda a: np.linalg.slogdet(a + 3.0 * np.eye(3))[1], [(2, 3, 3)])),
        _linalg("cholesky", same(lambda a: np.linalg.cholesky(_spd(a)), [(3, 3)]),
                same(lambda a: np.linalg.cholesky(_spd(a)), [(2, 3, 3)])),
        # eigenvectors: their squares, which do not depend on the sign LAPACK picks
        _linalg("eigh", same(lambda a: np.linalg.eigh(_sym(a))[0], [(3, 3)]),
                same(lambda a: np.linalg.eigh(_sym(a))[1] ** 2, [(3, 3)])),
        _linalg("svd", same(lambda a: np.linalg.svd(a, compute_uv=False), [(3, 4)]),
                same(lambda a: np.linalg.svd(a, full_matrices=False)[0] ** 2, [(4, 3)])),
        supported("np.linalg.norm", g,
                  same(lambda a: np.linalg.norm(a), [(3, 4)]),
                  same(lambda a: np.linalg.norm(a, axis=1, keepdims=True), [(3, 4)]),
                  *[same(lambda a, o=o: np.linalg.norm(a, ord=o), [(5,)], optional=True)
                    for o in (1, 3, np.inf)],
                  *[same(lambda a, o=o: np.linalg.norm(a, ord=o), [(3, 4)],
                         optional=True) for o in ("fro", "nuc")]),
        unsupported("np.linalg.pinv", g, f"{_NOT_YET} (a composite of the linalg ops "
                                         "that land separately)"),
        unsupported("np.linalg.eig", g, "complex numbers: a real matrix's eigenvalues and "
                                        "eigenvectors are complex in general"),
    ]


def _fft_entries() -> list:
    names = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2",
             "irfft2", "rfftn", "irfftn", "fftshift", "ifftshift"]
    shift = {"fftshift": np.fft.fftshift, "ifftshift": np.fft.ifftshift}
    # the shifts are real-valued rolls: supported (the spectra themselves are complex)
    return [_fft(n) if n not in shift else supported(
        f"np.fft.{n}", "fft", same(lambda a, f=shift[n]: f(a), [(3, 5)]),
        same(lambda a, f=shift[n]: f(a, axes=1), [(2, 5)]))
        for n in names]


def _complex_entries() -> list:
    return [
        _complex("real", "the real part of a complex array (the identity on real ones)"),
        _complex("imag", "the imaginary part of a complex array (zeros on real ones)"),
        _complex("conj", "the complex conjugate (the identity on real arrays)"),
        _complex("conjugate", "the complex conjugate (the identity on real arrays)"),
        _complex("angle", "the argument of a complex number"),
        _complex("real_if_close", "drops a negligible imaginary part"),
    ]


def build_list() -> list:
    """The peer's list: one :class:`Entry` per numpy function, grouped as :data:`GROUPS`."""
    entries = (_unary() + _binary() + _comparisons() + _reductions() + _shape()
               + _indexing() + _products() + _linalg_entries() + _fft_entries()
               + _complex_entries())
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), "a function listed twice"
    assert all(e.group in GROUPS for e in entries)
    return entries


PEER_LIST: list = build_list()


# ------------------------------------------------------------------------------------------
# The coverage table and docs/coverage.md
# ------------------------------------------------------------------------------------------


def coverage(entries=None) -> dict:
    """``{group: (supported, available here, total)}`` and the totals under ``"all"``."""
    entries = PEER_LIST if entries is None else entries
    table = {}
    for group in GROUPS + ("all",):
        part = [e for e in entries if group in ("all", e.group)]
        table[group] = (sum(e.supported for e in part), sum(e.available() for e in part),
                        len(part))
    return table


def table_text(entries=None) -> str:
    """The coverage table as text: per group, supported / total."""
    cov = coverage(entries)
    lines = [f"{'group':<24}{'supported':>10}{'runs here':>11}{'total':>7}"]
    for group, (sup, here, total) in cov.items():
        if group == "all":
            lines.append("-" * 52)
        lines.append(f"{group:<24}{sup:>10}{here:>11}{total:>7}")
    sup, here, total = cov["all"]
    lines.append(f"supported: {sup} of {total} ({100 * sup / total:.0f}%); runnable on this "
                 f"checkout: {here} ({100 * here / total:.0f}%)")
    return "\n".join(lines)


def docs_text(entries=None) -> str:
    """docs/coverage.md: the static part of the coverage (what the list supports and why
    the rest is left out), the same on every checkout."""
    entries = PEER_LIST if entries is None else entries
    cov = coverage(entries)
    sup, _, total = cov["all"]
    real = total - cov["fft"][2] - cov["complex"][2]
    # the real-valued fft helpers (fftshift) count in the fft group, not among these
    sup_real = sup - cov["fft"][0] - cov["complex"][0]
    out = [
        "<!-- Generated by `python -m benchmarks.peer_list --write-docs` from "
        "benchmarks/peer_list.py: do not edit. -->",
        "",
        "# Coverage of a peer's gradient test list",
        "",
        "HIPS autograd's tests check the gradients of the numpy functions below (its "
        "tests/test_numpy.py, test_scalar_ops.py, test_systematic.py, test_binary_ops.py, "
        "test_linalg.py, test_fft.py and test_complex.py; scipy left out). "
        "`benchmarks/peer_list.py` lists them, with a symgrad case for each supported one: "
        "`tests/test_peer_list.py` compiles it and checks its value against numpy and its "
        "gradient against float64 central finite differences. "
        "`python -m benchmarks.peer_list` prints the table with a column for what runs on "
        "the current checkout.",
        "",
        f"**{sup} of {total} supported ({100 * sup / total:.0f}%); of the {real} outside the "
        f"fft and complex groups, {sup_real} ({100 * sup_real / real:.0f}%).** FFT and "
        "complex-valued functions are out of scope: symgrad has no complex dtype (the "
        "real-valued `np.fft.fftshift` and `ifftshift` are supported).",
        "",
        "| group | supported | total |",
        "|---|---|---|",
    ]
    for group in GROUPS:
        s, _, t = cov[group]
        out.append(f"| {group} | {s} | {t} |")
    out.append(f"| **all** | **{sup}** | **{total}** |")
    needs = [e for e in entries if e.supported and any(c.requires for c in e.cases)]
    if needs:
        out += ["", "## Supported with ops that land separately", "",
                "Their cases run where `symgrad.numpy` has the function (elsewhere the test "
                "skips them and says why); so do `np.linalg.norm`'s cases with `ord`:", ""]
        out += [f"- `{e.name}`" for e in needs]
    out += ["", "## Not supported", "", "| function | group | why |", "|---|---|---|"]
    for e in entries:
        if not e.supported:
            out.append(f"| `{e.name}` | {e.group} | {e.reason} |")
    out += ["", "## Supported", "", ", ".join(f"`{e.name}`" for e in entries if e.supported),
            ""]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peer_list",
        description="Coverage of HIPS autograd's list of numpy functions with tested "
                    "gradients: per group, supported / total.")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite {DOCS_PATH.relative_to(DOCS_PATH.parents[1])}")
    parser.add_argument("--unsupported", action="store_true",
                        help="also list the functions left out, with the reasons")
    args = parser.parse_args(argv)
    print(table_text())
    if args.unsupported:
        for e in PEER_LIST:
            if not e.supported:
                print(f"  {e.name:<24} {e.group:<22} {e.reason}")
            elif not e.available():
                print(f"  {e.name:<24} {e.group:<22} supported, not runnable on this checkout")
    if args.write_docs:
        DOCS_PATH.write_text(docs_text(), encoding="utf-8")
        print(f"wrote {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
