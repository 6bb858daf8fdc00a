"""np.linalg ops (symgrad/ops/decompositions.py, norm in symgrad/ops/reductions.py) beyond
their spec rows: gradients against PyTorch's (torch.linalg, float64) and the tape's, batched
inputs, the matrix norms through svd against finite differences, invariance to the signs
of eigenvectors and singular vectors, numpy dispatch (``np.linalg.inv(tensor)``),
``sg.linalg``, the errors, and the generated code's calls."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape as tp
from symgrad.shapes import ShapeError

torch = pytest.importorskip("torch")

RTOL = 1e-8


def _rng(seed=0):
    return np.random.default_rng(seed)


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _well_conditioned(rng, shape):
    m = shape[-1]
    return rng.standard_normal(shape) + m * np.eye(m)


def _spd(rng, shape):
    a = rng.standard_normal(shape)
    return a @ _mT(a) + shape[-1] * np.eye(shape[-1])


def _separated_symmetric(rng, shape):
    """Symmetric, eigenvalues about 2 apart (and a random basis)."""
    m = shape[-1]
    q, _ = np.linalg.qr(rng.standard_normal(shape))
    w = np.arange(m) * 2.0 + rng.uniform(-0.3, 0.3, shape[:-1])
    return (q * w[..., None, :]) @ _mT(q)


def _separated_singular(rng, shape):
    """Singular values about 1.5 apart, the smallest about 1."""
    m, n = shape[-2:]
    k = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal(shape[:-2] + (m, k)))
    v, _ = np.linalg.qr(rng.standard_normal(shape[:-2] + (n, k)))
    s = 1.0 + 1.5 * np.arange(k)[::-1] + rng.uniform(-0.2, 0.2, shape[:-2] + (k,))
    return (u * s[..., None, :]) @ _mT(v)


def _sg_grads(build, values, seed=1):
    """(outputs, gradients) of ``sum(build(*leaves) * W)`` for random weights W."""
    leaves = [sg.param(f"x{i}", v.shape) for i, v in enumerate(values)]
    out = build(*leaves)
    weights = _rng(seed).standard_normal(out.shape)
    loss = sg.sum(out * sg.constant(weights)) if out.shape else out * float(weights)
    f = sg.compile([out, *sg.grad(loss, leaves)], inputs=leaves)
    value, *grads = f(*values)
    return value, grads, weights


def _torch_grads(build, values, weights):
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    out = build(*leaves)
    (out * torch.tensor(weights)).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in leaves]


def _tape_grads(build, values, weights):
    variables = [tp.Variable(v) for v in values]
    with tp.GradientTape() as t:
        out = build(*variables)
    return out.value, t.gradient(out, variables, output_gradients=weights)


def _agree(sg_build, torch_build, values, tape_build=None):
    value, grads, weights = _sg_grads(sg_build, values)
    t_value, t_grads = _torch_grads(torch_build, values, weights)
    np.testing.assert_allclose(value, t_value, rtol=1e-10, atol=1e-12)
    for g, tg in zip(grads, t_grads):
        np.testing.assert_allclose(g, tg, rtol=RTOL, atol=1e-10)
    if tape_build is not None:
        p_value, p_grads = _tape_grads(tape_build, values, weights)
        np.testing.assert_allclose(value, p_value, rtol=1e-10, atol=1e-12)
        for g, pg in zip(grads, p_grads):
            np.testing.assert_allclose(g, pg, rtol=RTOL, atol=1e-10)
    return grads


def _sym(x, swap):
    return (x + swap(x, -1, -2)) * 0.5


BATCHES = [(), (2,), (2, 3)]


# ---------------------------------------------------------------------------------------
# Agreement with torch.linalg and the tape (float64), single and batched
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", BATCHES)
def test_inv_det_slogdet_agree_with_torch_and_the_tape(batch):
    a = _well_conditioned(_rng(), batch + (4, 4))
    _agree(sg.inv, torch.linalg.inv, [a], tp.inv)
    _agree(sg.det, torch.linalg.det, [a], tp.det)
    _agree(lambda x: sg.slogdet(x)[1], lambda x: torch.linalg.slogdet(x)[1], [a],
           lambda x: tp.slogdet(x, 1))
    # the sign has no gradient: times logabsdet, the gradient is the sign's multiple of it
    _agree(lambda x: sg.slogdet(x)[0] * sg.slogdet(x)[1],
           lambda x: torch.linalg.slogdet(x)[0] * torch.linalg.slogdet(x)[1], [-a])


@pytest.mark.parametrize("sa,sb", [((4, 4), (4,)), ((2, 4, 4), (4,)), ((4, 4), (4, 3)),
                                   ((2, 1, 4, 4), (3, 4, 2)), ((2, 4, 4), (2, 4, 1))])
def test_solve_agrees_with_torch_and_the_tape(sa, sb):
    rng = _rng()
    a, b = _well_conditioned(rng, sa), rng.standard_normal(sb)
    want = np.linalg.solve(a, b)

    def torch_solve(x, y):
        if y.ndim == 1:  # numpy 2's vector rule, spelled for torch
            return torch.linalg.solve(x, y.expand(x.shape[:-1]))
        return torch.linalg.solve(x, y)

    _agree(sg.solve, torch_solve, [a, b], tp.solve)
    assert sg.solve(sg.input("a", sa), sg.input("b", sb)).shape == want.shape


@pytest.mark.parametrize("batch", BATCHES)
def test_cholesky_agrees_with_torch_and_the_tape(batch):
    a = _spd(_rng(), batch + (4, 4))
    # through a symmetrized input, the gradient in x is unique (numpy reads one triangle)
    _agree(lambda x: sg.cholesky(_sym(x, sg.swapaxes)),
           lambda x: torch.linalg.cholesky(_sym(x, torch.transpose)), [a],
           lambda x: tp.cholesky((x + tp.swapaxes(x, -1, -2)) * 0.5))


@pytest.mark.parametrize("batch", BATCHES)
def test_eigh_agrees_with_torch_and_the_tape(batch):
    a = _separated_symmetric(_rng(), batch + (4, 4))
    _agree(lambda x: sg.eigh(_sym(x, sg.swapaxes))[0],
           lambda x: torch.linalg.eigh(_sym(x, torch.transpose))[0], [a],
           lambda x: tp.eigh((x + tp.swapaxes(x, -1, -2)) * 0.5, 0))
    _agree(lambda x: sg.eigh(_sym(x, sg.swapaxes))[1] ** 2,
           lambda x: torch.linalg.eigh(_sym(x, torch.transpose))[1] ** 2, [a],
           lambda x: tp.eigh((x + tp.swapaxes(x, -1, -2)) * 0.5, 1) ** 2)


def _svd_loss(u, s, vh, swap):
    """Invariant to the signs of the singular pairs: U diag(s**2) Vh and U**2, Vh**2."""
    return (u * (s * s)[..., None, :]) @ vh + (u ** 2).sum() + (vh ** 2).sum() * s.sum()


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (2, 3, 5), (2, 2, 5, 3)])
def test_svd_agrees_with_torch_and_the_tape(shape):
    a = _separated_singular(_rng(), shape)
    _agree(lambda x: _svd_loss(*sg.svd(x, full_matrices=False), sg.swapaxes),
           lambda x: _svd_loss(*torch.linalg.svd(x, full_matrices=False), torch.transpose),
           [a])
    for part in range(3):  # each part on its own (squared: sign-free), against the tape
        _agree(lambda x, i=part: sg.svd(x, full_matrices=False)[i] ** 2,
               lambda x, i=part: torch.linalg.svd(x, full_matrices=False)[i] ** 2, [a],
               lambda x, i=part: tp.svd(x, i) ** 2)


NORMS = [(None, None, (3, 4)), (None, 1, (3, 4)), (2, -1, (2, 5)), (1, 0, (3, 4)),
         (np.inf, 1, (3, 4)), (-np.inf, -1, (3, 4)), (3, 1, (3, 4)), (1.5, None, (5,)),
         ("fro", None, (3, 4)), ("nuc", None, (3, 4)), (2, None, (4, 3)), (-2, None, (3, 4)),
         (1, None, (3, 4)), (-1, (1, 0), (3, 4)), (np.inf, None, (3, 4)),
         (-np.inf, (0, 2), (3, 2, 4)), ("nuc", (2, 0), (3, 2, 4)), (2, (-1, -2), (2, 3, 4)),
         (-2, (0, 1), (4, 3, 2))]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("ord,axis,shape", NORMS)
def test_norm_agrees_with_torch_and_the_tape(ord, axis, shape, keepdims):
    rng = _rng(3)
    x = rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if ord in ("nuc", 2, -2) and (axis is not None or len(shape) == 2):
        x = _separated_singular(rng, shape) if axis in (None, (-1, -2)) else x
    want = np.linalg.norm(x, ord, axis, keepdims)

    def torch_norm(t):
        if axis is None and ord is None:
            return torch.linalg.vector_norm(t, 2, None, keepdims)
        dims = tuple(range(t.ndim)) if axis is None else axis
        if isinstance(dims, int) or len(dims) == 1:
            return torch.linalg.vector_norm(t, 2 if ord is None else ord, dims, keepdims)
        return torch.linalg.matrix_norm(t, "fro" if ord is None else ord, dims, keepdims)

    grads = _agree(lambda t: sg.norm(t, ord, axis, keepdims), torch_norm, [x],
                   lambda t: tp.norm(t, ord, axis, keepdims))
    value, _, _ = _sg_grads(lambda t: sg.norm(t, ord, axis, keepdims), [x])
    np.testing.assert_allclose(value, want, rtol=1e-12)
    assert grads[0].shape == x.shape


def _finite_difference(f, x, d, h=1e-6):
    return (f(x + h * d) - f(x - h * d)) / (2 * h)


@pytest.mark.parametrize("ord", ["nuc", 2, -2])
def test_svd_norms_against_finite_differences(ord):
    rng = _rng(5)
    x = _separated_singular(rng, (2, 3, 4))
    _, (g,), weights = _sg_grads(lambda t: sg.norm(t, ord, (1, 2)), [x])
    for _ in range(3):
        d = rng.standard_normal(x.shape)
        fd = _finite_difference(lambda v: np.sum(np.linalg.norm(v, ord, (1, 2)) * weights),
                                x, d)
        np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------------------
# Signs of eigenvectors and singular vectors
# ---------------------------------------------------------------------------------------

def test_eigh_gradient_of_a_sign_invariant_loss_is_equivariant():
    # B = D A D with D = diag(+-1) has the eigenvectors D v (LAPACK picks their signs anew):
    # for L(B) = <W1, V f(w) V^T> + <W2, V**2>, L(D A D) = <D W1 D, ...> + <W2, ...> in A,
    # so its gradient in A is D grad_B D, whatever signs LAPACK chose for either matrix
    rng = _rng(7)
    a = _separated_symmetric(rng, (5, 5))
    dsign = np.diag([1.0, -1.0, -1.0, 1.0, -1.0])
    w1, w2 = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))

    def gradient(m, first, second):
        x = sg.param("m", (5, 5))
        w, v = sg.eigh(x)
        loss = sg.sum(((v * sg.exp(w * 0.2)[None, :]) @ v.T) * sg.constant(first)) \
            + sg.sum(v ** 2 * sg.constant(second))
        return sg.compile(sg.grad(loss, [x]), inputs=[x])(m)[0]

    g_b = gradient(dsign @ a @ dsign, w1, w2)
    g_a = gradient(a, dsign @ w1 @ dsign, w2)
    np.testing.assert_allclose(g_a, dsign @ g_b @ dsign, rtol=1e-9, atol=1e-11)


def test_svd_projection_gradient_matches_finite_differences_despite_signs():
    rng = _rng(8)
    a = _separated_singular(rng, (4, 6))
    value, (g,), weights = _sg_grads(
        lambda x: (lambda u, s, vh: (u * sg.log(s)[None, :]) @ vh)(
            *sg.svd(x, full_matrices=False)), [a])

    def f(m):
        u, s, vh = np.linalg.svd(m, full_matrices=False)
        return np.sum(((u * np.log(s)) @ vh) * weights)

    for _ in range(3):
        d = rng.standard_normal(a.shape)
        np.testing.assert_allclose(np.sum(g * d), _finite_difference(f, a, d), rtol=1e-7,
                                   atol=1e-9)


# ---------------------------------------------------------------------------------------
# numpy's names: np.linalg.<fn>(tensor), symgrad.numpy.linalg, sg.linalg
# ---------------------------------------------------------------------------------------

def test_numpy_linalg_calls_dispatch_to_symgrad():
    import symgrad.numpy as snp
    a = sg.input("a", (3, 3))
    b = sg.input("b", (3,))
    assert np.linalg.inv(a).expr == sg.inv(a).expr
    assert np.linalg.solve(a, b).expr == sg.solve(a, b).expr
    assert np.linalg.det(a).expr == sg.det(a).expr
    assert np.linalg.cholesky(a).expr == sg.cholesky(a).expr
    w, v = np.linalg.eigh(a)
    assert (w.expr, v.expr) == tuple(t.expr for t in sg.eigh(a))
    sign, logdet = np.linalg.slogdet(a)
    assert logdet.expr == sg.slogdet(a)[1].expr
    u, s, vh = snp.linalg.svd(a, full_matrices=False)
    assert s.expr == np.linalg.svd(a, compute_uv=False).expr
    assert np.linalg.norm(a, "nuc").expr == sg.norm(a, "nuc").expr
    assert np.linalg.norm(a, 1, 0, True).expr == sg.linalg.norm(a, 1, 0, True).expr
    for name in sg.linalg.__all__:
        assert getattr(sg.linalg, name) is getattr(sg, name)
        assert callable(getattr(snp.linalg, name))


def test_numpy_code_runs_unchanged_on_tensors_and_differentiates():
    def objective(x):  # numpy code, written for arrays
        s = x @ np.swapaxes(x, -1, -2) + 3 * np.eye(3)
        return np.linalg.slogdet(s)[1] + np.sum(np.linalg.inv(s)) \
            + np.linalg.norm(np.linalg.cholesky(s), "fro")

    x = _rng(9).standard_normal((3, 3))
    t = sg.param("t", (3, 3))
    loss = objective(t)
    value, grad = sg.compile([loss, *sg.grad(loss, [t])], inputs=[t])(x)
    np.testing.assert_allclose(value, objective(x), rtol=1e-12)
    d = _rng(10).standard_normal(x.shape)
    np.testing.assert_allclose(np.sum(grad * d), _finite_difference(objective, x, d),
                               rtol=1e-7)


def test_numpys_upper_triangle_options_are_refused():
    a = sg.input("a", (3, 3))
    with pytest.raises(TypeError, match=r"np.linalg.cholesky: .*upper=True"):
        np.linalg.cholesky(a, upper=True)
    with pytest.raises(ValueError, match=r"eigh: UPLO='U'"):
        np.linalg.eigh(a, "U")


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [sg.inv, sg.det, sg.slogdet, sg.cholesky, sg.eigh])
def test_non_square_and_non_matrix_operands_name_the_op_and_shape(fn):
    name = fn.__name__
    with pytest.raises(ShapeError, match=rf"^{name}: operand a of shape \(2, 3, 4\) is not "
                                         rf"square"):
        fn(sg.input("a", (2, 3, 4)))
    with pytest.raises(ShapeError, match=rf"^{name}: operand a of shape \(3,\) is not a"):
        fn(sg.input("v", (3,)))


def test_solve_and_svd_errors():
    with pytest.raises(ShapeError, match=r"^solve: operand b of shape \(4,\) does not fit "
                                         r"operand a of shape \(3, 3\)"):
        sg.solve(sg.input("a", (3, 3)), sg.input("b", (4,)))
    with pytest.raises(ShapeError, match=r"^solve: operand b of shape \(2, 4, 1\)"):
        sg.solve(sg.input("a", (3, 3)), sg.input("b", (2, 4, 1)))
    with pytest.raises(ShapeError, match=r"^solve: batch|^solve: .*broadcast"):
        sg.solve(sg.input("a", (2, 3, 3)), sg.input("b", (4, 3, 1)))
    with pytest.raises(ShapeError, match=r"^svd: operand a of shape \(3,\)"):
        sg.svd(sg.input("v", (3,)), full_matrices=False)
    with pytest.raises(ValueError, match=r"^svd: full_matrices=True is not supported for "
                                         r"operand a of shape \(2, 3, 4\)"):
        np.linalg.svd(sg.input("a", (2, 3, 4)))  # numpy's default
    square = sg.input("s", (2, 3, 3))  # complete and reduced factors are the same
    assert [t.expr for t in np.linalg.svd(square)] == \
        [t.expr for t in sg.svd(square, full_matrices=False)]
    with pytest.raises(ValueError, match=r"^svd: hermitian=True"):
        sg.svd(sg.input("a", (3, 3)), False, hermitian=True)


@pytest.mark.parametrize("call,error,pattern", [
    (lambda x: sg.norm(x, "nuc", 0), ValueError, r"^norm: invalid ord='nuc' for a vector"),
    (lambda x: sg.norm(x, 0, 1), ValueError, r"^norm: ord=0: .*p >= 1"),
    (lambda x: sg.norm(x, 0.5, 1), ValueError, r"^norm: ord=0.5"),
    (lambda x: sg.norm(x, 3, (0, 1)), ValueError, r"^norm: invalid ord=3 for a matrix"),
    (lambda x: sg.norm(x, 1, (0, 0)), ShapeError, r"^norm: "),
    (lambda x: sg.norm(x, 1, (0, 1, 2)), ShapeError, r"^norm: ord=1 needs one axis"),
    (lambda x: sg.norm(x, "fro"), ShapeError, r"^norm: ord='fro' without axis needs a 1-d or "
                                              r"2-d operand, got shape \(2, 3, 4\)"),
])
def test_norm_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(sg.input("x", (2, 3, 4)))


def test_the_array_api_target_prints_the_standards_linalg():
    # the forms themselves: parts by index, the calls without vectors, a 1-d b as a column;
    # their values on array-api-strict and torch are the spec rows of tests/test_array_api.py
    pytest.importorskip("array_api_compat")
    a, b = sg.input("a", (2, 3, 3)), sg.input("b", (3,))
    m = sg.input("m", (3, 4))
    outs = [sg.inv(a), sg.det(a), sg.slogdet(a)[1], sg.cholesky(a), sg.eigh(a)[1],
            sg.eigh(a)[0], sg.svd(m, False)[2], sg.svd(m, compute_uv=False),
            sg.solve(a, b), sg.norm(m, "nuc")]
    source = sg.compile(outs, backend="array_api").source
    for call in ("xp.linalg.inv(a)", "xp.linalg.det(a)", "xp.linalg.slogdet(a)[1]",
                 "xp.linalg.cholesky(a)", "xp.linalg.eigh(a)[1]", "xp.linalg.eigvalsh(a)",
                 "xp.linalg.svd(m, full_matrices=False)[2]", "xp.linalg.svdvals(m)",
                 "xp.linalg.solve(a, xp.expand_dims(b, axis=-1))[..., 0]"):
        assert call in source, call
    assert "np." not in source.split("def compute(")[1]


def test_the_array_api_target_computes_integer_matrices_in_float64():
    # the standard's linalg takes floating arrays only; numpy computes integers in float64
    xs = pytest.importorskip("array_api_strict")
    a, b = sg.input("a", (3, 3), "int64"), sg.input("b", (3, 2), "int64")
    outs = [sg.inv(a), sg.solve(a, b), sg.svd(a, compute_uv=False), sg.slogdet(a)[1]]
    f = sg.compile(outs, backend="array_api")
    av = np.array([[4, 1, 0], [1, 3, 1], [0, 2, 5]])
    bv = np.arange(6).reshape(3, 2)
    got = f(xs.asarray(av), xs.asarray(bv))
    want = [np.linalg.inv(av), np.linalg.solve(av, bv), np.linalg.svd(av, compute_uv=False),
            np.linalg.slogdet(av)[1]]
    for g, w in zip(got, want):
        assert g.dtype == xs.float64
        np.testing.assert_allclose(np.from_dlpack(g), w, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# The generated code and the allowlist
# ---------------------------------------------------------------------------------------

def test_generated_code_calls_numpy_linalg_and_passes_the_allowlist():
    a = sg.param("a", (3, 3))
    w, v = sg.eigh(a)
    loss = sg.sum(w) + sg.det(a) + sg.sum(sg.inv(a))
    f = sg.compile([loss, *sg.grad(loss, [a])])
    for call in ("np.linalg.eigh(", "np.linalg.det(", "np.linalg.inv("):
        assert call in f.source, call


def test_the_allowlist_admits_only_the_linalg_calls_symgrad_writes():
    from symgrad.runtime.safety import UnsafeModuleError, check_module_source
    ok = "import numpy as np\ndef f(a):\n    return np.linalg.svd(a, full_matrices=False)[1]\n"
    check_module_source(ok)
    for bad in ("    return np.linalg.lstsq(a, a)\n", "    m = np.linalg\n    return m.inv(a)\n",
                "    return np.linalg\n"):
        with pytest.raises(UnsafeModuleError):
            check_module_source("import numpy as np\ndef f(a):\n" + bad)


def test_float32_stays_float32_and_integers_compute_in_float64():
    a32 = sg.param("a", (2, 3, 3), "float32")
    for out in (sg.inv(a32), sg.det(a32), sg.eigh(a32)[1], sg.svd(a32, False)[0],
                sg.norm(a32, 2, (1, 2))):
        assert out.dtype == np.float32
    assert sg.inv(sg.input("i", (3, 3), "int64")).dtype == np.float64


def test_symbolic_batch_dims_work_and_symbolic_matrix_dims_are_named():
    a = sg.param("a", ("N", 3, 3))
    loss = sg.sum(sg.eigh(a)[0] ** 2) + sg.sum(sg.inv(a)) + sg.sum(sg.det(a))
    f = sg.compile([loss, *sg.grad(loss, [a])])
    x = _separated_symmetric(_rng(11), (5, 3, 3)) + 3 * np.eye(3)
    value, grad = f(x)
    v = tp.Variable(x)
    with tp.GradientTape() as t:  # the tape, on the concrete shape
        want = tp.sum(tp.eigh(v, 0) ** 2) + tp.sum(tp.inv(v)) + tp.sum(tp.det(v))
    np.testing.assert_allclose(value, want.value, rtol=1e-12)
    np.testing.assert_allclose(grad, t.gradient(want, [v])[0], rtol=1e-9)
    b = sg.param("b", ("N", "M", "M"))
    with pytest.raises(ShapeError, match=r"^eigh: operand a of shape \(N, M, M\): the matrix "
                                         r"dims must be known"):
        sg.grad(sg.sum(sg.eigh(b)[0]), [b])[0].expr


def test_the_sign_of_slogdet_has_zero_gradient():
    a = sg.param("a", (2, 3, 3))
    z = sg.sum(sg.sin(sg.slogdet(a)[0]))
    x = _well_conditioned(_rng(12), (2, 3, 3)) * np.array([1.0, -1.0])[:, None, None]
    value, grad = sg.compile([z, *sg.grad(z, [a])])(x)
    np.testing.assert_allclose(value, np.sum(np.sin(np.linalg.slogdet(x)[0])), rtol=1e-12)
    assert grad.shape == x.shape and not np.any(grad)
