"""Convolutions, pooling, dropout and layer norm against torch.nn.functional in float64.

Each case compiles the forward and the gradients of ``sum(y * r)`` (``r`` fixed random
weights) in every input, and compares them with PyTorch eager autograd; the tape
(symgrad.tape, numpy rules of its own) is checked against the same numbers. Skipped as a
the torch comparisons are skipped when torch is not installed.
"""

import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape as tp

try:
    import torch
    F = torch.nn.functional
except ImportError:  # the comparisons skip; the other tests still run
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


_COUNT = iter(range(10**9))


def _run_symgrad(build, values):
    k = next(_COUNT)  # a name of its own per case: a parameter is its name, shape and dtype
    leaves = [sg.param(f"v{k}_{i}", v.shape, str(v.dtype)) for i, v in enumerate(values)]
    out = build(*leaves)
    rng = np.random.default_rng(1)
    r = rng.standard_normal(out.shape)
    loss = sg.sum(out * sg.constant(r))
    f = sg.compile([out, *sg.grad(loss, leaves)], inputs=leaves)
    y, *grads = f(*values)
    return y, grads, r


def _run_torch(build, values, r):
    ts = [torch.tensor(v, requires_grad=True) for v in values]
    y = build(*ts)
    (y * torch.tensor(r)).sum().backward()
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


def _run_tape(build, values, r):
    vs = [tp.Variable(v) for v in values]
    with tp.GradientTape() as tape:
        y = build(*vs)
        loss = tp.sum(y * r)
    grads = tape.gradient(loss, vs)
    return y.numpy(), [np.asarray(g.numpy() if hasattr(g, "numpy") else g) for g in grads]


def _check(sym, ref, tape=None, values=None):
    y, grads, r = _run_symgrad(sym, values)
    ty, tgrads = _run_torch(ref, values, r)
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-11)
    for g, tg in zip(grads, tgrads):
        assert g.shape == tg.shape
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-11)
    if tape is not None:
        py, pgrads = _run_tape(tape, values, r)
        np.testing.assert_allclose(py, ty, rtol=1e-10, atol=1e-11)
        for g, tg in zip(pgrads, tgrads):
            np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-11)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


CONV_CASES = [
    # (x shape, w shape, stride, padding, dilation, groups)
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0, 1, 1),
    ((2, 3, 8, 9), (5, 3, 3, 2), 2, 1, 1, 1),
    ((1, 2, 9, 8), (3, 2, 3, 3), (2, 3), (1, 2), (2, 1), 1),
    ((2, 4, 7, 6), (6, 2, 3, 2), (2, 1), 1, (1, 2), 2),
    ((2, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, 4),  # depthwise
    ((1, 3, 10, 11), (2, 3, 4, 3), 3, 2, 2, 1),  # rows no window reaches
    ((2, 3, 5, 5), (2, 3, 1, 1), 1, 0, 1, 1),
]


@needs_torch
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_matches_torch(xs, ws, stride, padding, dilation, groups):
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _check(lambda x, w, b: sg.conv2d(x, w, b, **kw),
           lambda x, w, b: F.conv2d(x, w, b, **kw),
           lambda x, w, b: tp.conv2d(x, w, **kw) + tp.reshape(b, (-1, 1, 1)),
           [_rand(*xs), _rand(*ws, seed=1), _rand(ws[0], seed=2)])


@needs_torch
@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((4, 3), (1, 2)), ((5, 5), 1)])
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv2d_same_and_valid(kernel, dilation):
    x, w = _rand(2, 3, 7, 8), _rand(4, 3, *kernel, seed=1)
    for padding in ("same", "valid"):
        kw = dict(padding=padding, dilation=dilation)
        _check(lambda x, w: sg.conv2d(x, w, **kw), lambda x, w: F.conv2d(x, w, **kw),
               lambda x, w: tp.conv2d(x, w, **kw), [x, w])


@needs_torch
def test_conv2d_same_with_stride_gives_ceil_outputs():
    # TensorFlow's rule: ceil(H / stride) outputs, the odd padding element at the end
    x, w = _rand(1, 2, 7, 8), _rand(3, 2, 3, 3, seed=1)
    y = sg.conv2d(sg.param("x", x.shape), sg.param("w", w.shape), stride=2, padding="same")
    assert y.shape == (1, 3, 4, 4)
    _check(lambda x, w: sg.conv2d(x, w, stride=2, padding="same"),
           lambda x, w: F.conv2d(F.pad(x, (0, 1, 1, 1)), w, stride=2),
           lambda x, w: tp.conv2d(x, w, stride=2, padding="same"), [x, w])


@needs_torch
def test_conv2d_explicit_per_side_padding():
    x, w = _rand(1, 2, 6, 6), _rand(3, 2, 3, 3, seed=1)
    _check(lambda x, w: sg.conv2d(x, w, padding=((0, 2), (1, 0))),
           lambda x, w: F.conv2d(F.pad(x, (1, 0, 0, 2)), w),
           lambda x, w: tp.conv2d(x, w, padding=((0, 2), (1, 0))), [x, w])


@needs_torch
def test_conv2d_nhwc():
    x, w, b = _rand(2, 7, 6, 4), _rand(6, 2, 3, 3, seed=1), _rand(6, seed=2)
    kw = dict(stride=(1, 2), padding=1, groups=2)
    _check(lambda x, w, b: sg.conv2d(x, w, b, data_format="NHWC", **kw),
           lambda x, w, b: F.conv2d(x.permute(0, 3, 1, 2), w, b, **kw).permute(0, 2, 3, 1),
           lambda x, w, b: tp.conv2d(x, w, data_format="NHWC", **kw) + b, [x, w, b])


CONVT_CASES = [
    # (x shape, w shape, stride, padding, output_padding, dilation, groups)
    ((2, 3, 4, 5), (3, 2, 3, 3), 1, 0, 0, 1, 1),
    ((2, 3, 4, 4), (3, 4, 3, 3), 2, 1, 1, 1, 1),
    ((1, 4, 3, 5), (4, 1, 3, 2), (2, 3), (1, 0), (1, 2), (2, 1), 2),
    ((1, 2, 5, 5), (2, 3, 2, 2), 2, 0, 0, 1, 1),
]


@needs_torch
@pytest.mark.parametrize("xs,ws,stride,padding,output_padding,dilation,groups", CONVT_CASES)
def test_conv_transpose2d_matches_torch(xs, ws, stride, padding, output_padding, dilation,
                                        groups):
    kw = dict(stride=stride, padding=padding, output_padding=output_padding,
              dilation=dilation, groups=groups)
    _check(lambda x, w, b: sg.conv_transpose2d(x, w, b, **kw),
           lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
           lambda x, w, b: tp.conv_transpose2d(x, w, **kw) + tp.reshape(b, (-1, 1, 1)),
           [_rand(*xs), _rand(*ws, seed=1), _rand(ws[1] * groups, seed=2)])


@needs_torch
def test_conv_transpose2d_and_avg_pool2d_nhwc():
    x, w, b = _rand(2, 4, 5, 3), _rand(3, 2, 3, 3, seed=1), _rand(2, seed=2)
    kw = dict(stride=2, padding=1, output_padding=1)
    _check(lambda x, w, b: sg.conv_transpose2d(x, w, b, data_format="NHWC", **kw),
           lambda x, w, b: F.conv_transpose2d(x.permute(0, 3, 1, 2), w, b,
                                              **kw).permute(0, 2, 3, 1),
           lambda x, w, b: tp.conv_transpose2d(x, w, data_format="NHWC", **kw) + b, [x, w, b])
    _check(lambda x: sg.avg_pool2d(x, 2, stride=1, data_format="NHWC"),
           lambda x: F.avg_pool2d(x.permute(0, 3, 1, 2), 2, stride=1).permute(0, 2, 3, 1),
           lambda x: tp.avg_pool2d(x, 2, stride=1, data_format="NHWC"), [x])


POOL_CASES = [
    # (x shape, kernel, stride, padding, dilation)
    ((2, 3, 8, 8), 2, None, 0, 1),
    ((2, 2, 7, 9), 3, 2, 1, 1),
    ((1, 2, 9, 8), (3, 2), (2, 1), (1, 1), (2, 1)),
    ((1, 1, 5, 5), 3, 1, 0, 1),  # overlapping windows: their adjoints add up
]


@needs_torch
@pytest.mark.parametrize("xs,kernel,stride,padding,dilation", POOL_CASES)
def test_max_pool2d_matches_torch(xs, kernel, stride, padding, dilation):
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    _check(lambda x: sg.max_pool2d(x, kernel, **kw), lambda x: F.max_pool2d(x, kernel, **kw),
           lambda x: tp.max_pool2d(x, kernel, **kw), [_rand(*xs)])


@needs_torch
def test_max_pool2d_ties_go_to_the_first_maximum_as_in_torch():
    x = np.array([[[[1.0, 1.0, 0.0, 2.0], [1.0, 0.5, 2.0, 2.0]]]])
    _check(lambda x: sg.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2),
           lambda x: tp.max_pool2d(x, 2), [x])


@needs_torch
def test_max_pool2d_nhwc():
    x = _rand(2, 6, 6, 3)
    _check(lambda x: sg.max_pool2d(x, 2, data_format="NHWC"),
           lambda x: F.max_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1),
           lambda x: tp.max_pool2d(x, 2, data_format="NHWC"), [x])


@needs_torch
@pytest.mark.parametrize("xs,kernel,stride,padding,dilation", [c for c in POOL_CASES
                                                               if c[4] == 1])
def test_avg_pool2d_matches_torch(xs, kernel, stride, padding, dilation):
    kw = dict(stride=stride, padding=padding)
    _check(lambda x: sg.avg_pool2d(x, kernel, **kw), lambda x: F.avg_pool2d(x, kernel, **kw),
           lambda x: tp.avg_pool2d(x, kernel, **kw), [_rand(*xs)])


@needs_torch
def test_dropout_matches_torch_with_its_mask():
    x = _rand(4, 5)
    mask = (np.random.default_rng(3).random((4, 5)) < 0.7).astype(np.float64)
    _check(lambda x, m: sg.dropout(x, m, 0.7), lambda x, m: x * m / 0.7,
           lambda x, m: tp.dropout(x, m, 0.7), [x, mask])


@needs_torch
@pytest.mark.parametrize("shape,normalized", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5))])
def test_layer_norm_matches_torch(shape, normalized):
    x = _rand(*shape) * 3 + 5
    w, b = _rand(*normalized, seed=1), _rand(*normalized, seed=2)
    _check(lambda x, w, b: sg.layer_norm(x, normalized, w, b),
           lambda x, w, b: F.layer_norm(x, normalized, w, b),
           lambda x, w, b: tp.layer_norm(x, normalized) * w + b, [x, w, b])
    _check(lambda x: sg.layer_norm(x, normalized), lambda x: F.layer_norm(x, normalized),
           lambda x: tp.layer_norm(x, normalized), [x])


@needs_torch
def test_second_order_through_conv_and_max_pool_matches_torch():
    # gradients of gradients stay in the conv nodes: d/dw of |d loss / dx|^2
    x, w = _rand(1, 2, 6, 6), _rand(3, 2, 3, 3, seed=1)
    xs, wsym = sg.param("x2", x.shape), sg.param("w2", w.shape)
    loss = sg.sum(sg.max_pool2d(sg.relu(sg.conv2d(xs, wsym, stride=1, padding=1)), 2) ** 2)
    (gx,) = sg.grad(loss, [xs])
    (gw,) = sg.grad(sg.sum(gx * gx), [wsym])
    got = sg.compile(gw, inputs=[xs, wsym])(x, w)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tl = (F.max_pool2d(F.relu(F.conv2d(tx, tw, padding=1)), 2) ** 2).sum()
    (tgx,) = torch.autograd.grad(tl, tx, create_graph=True)
    (tgw,) = torch.autograd.grad((tgx * tgx).sum(), tw)
    np.testing.assert_allclose(got, tgw.numpy(), rtol=1e-9, atol=1e-10)


def test_float32_stays_float32():
    x = _rand(2, 3, 6, 6).astype(np.float32)
    w = _rand(4, 3, 3, 3, seed=1).astype(np.float32)
    xs, ws = sg.param("xf", x.shape, "float32"), sg.param("wf", w.shape, "float32")
    y = sg.avg_pool2d(sg.max_pool2d(sg.conv2d(xs, ws, padding="same"), 2, stride=1), 2)
    f = sg.compile([y, *sg.grad(sg.sum(y), [xs, ws])], inputs=[xs, ws])
    for r in f(x, w):
        assert r.dtype == np.float32


@needs_torch
def test_symbolic_batch_dimension():
    xs, ws = sg.input("xb", ("N", 2, 6, 6)), sg.param("wb", (3, 2, 3, 3))
    y = sg.max_pool2d(sg.conv2d(xs, ws, padding=1), 2)
    assert y.shape[1:] == (3, 3, 3)
    f = sg.compile([y, sg.grad(sg.sum(y), ws)], inputs=[xs, ws])
    for batch in (1, 5):
        x, w = _rand(batch, 2, 6, 6), _rand(3, 2, 3, 3, seed=1)
        out, gw = f(x, w)
        tw = torch.tensor(w, requires_grad=True)
        ty = F.max_pool2d(F.conv2d(torch.tensor(x), tw, padding=1), 2)
        ty.sum().backward()
        np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-10)


def test_errors_name_the_op_and_the_shapes():
    x, w = sg.param("xe", (2, 3, 5, 5)), sg.param("we", (4, 2, 3, 3))
    with pytest.raises(sg.ShapeError, match=r"conv2d: weight of shape \(4, 2, 3, 3\)"):
        sg.conv2d(x, w)
    with pytest.raises(sg.ShapeError, match="conv2d: kernel 7x7"):
        sg.conv2d(x, sg.param("wbig", (1, 3, 7, 7)))
    with pytest.raises(ValueError, match="conv2d: padding must be"):
        sg.conv2d(x, sg.param("w3", (1, 3, 3, 3)), padding="full")
    with pytest.raises(ValueError, match="conv2d: data_format"):
        sg.conv2d(x, sg.param("w3", (1, 3, 3, 3)), data_format="CHWN")
    with pytest.raises(sg.ShapeError, match="max_pool2d: input must be 4-D"):
        sg.max_pool2d(sg.param("x3", (3, 5, 5)), 2)
    with pytest.raises(sg.ShapeError, match="layer_norm: normalized_shape"):
        sg.layer_norm(x, (4, 5))
    with pytest.raises(ValueError, match="max_pool2d: padding"):
        sg.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="dropout: keep_prob"):
        sg.dropout(x, x, 0.0)


def test_generated_code_has_no_loop_over_pixels():
    # the helpers loop over kernel taps only; the step itself has no loop at all
    x, w = sg.param("xl", (2, 3, 8, 8)), sg.param("wl", (4, 3, 3, 3))
    y = sg.max_pool2d(sg.conv2d(x, w, padding=1), 2)
    f = sg.compile([y, *sg.grad(sg.sum(y), [x, w])], inputs=[x, w])
    loops = [line.strip() for line in f.source.splitlines() if line.strip().startswith("for ")]
    taps = [s for s in loops if s in ("for i in range(kh):", "for j in range(kw):")]
    assert taps  # the conv helpers are in the module
    others = [s for s in loops if s not in taps]
    assert all("_INPUTS" in s or "value.shape" in s for s in others), others  # the input check


def test_w5_example_trains_and_matches_the_hand_written_step(monkeypatch):
    # the example's step against benchmarks/hand.py's W5 step (hand gradients), from the
    # same initial values on the same batches, with SGD
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(root / "examples"))
    from benchmarks import hand
    from symgrad import workloads
    spec = importlib.util.spec_from_file_location("w5_cnn", root / "examples" / "w5_cnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    loss, _, params = example.build(28, dtype="float64")
    step = sg.train_step(loss, sg.optim.SGD(0.05))
    init = workloads.cnn_params(0, "float64")
    state = step.init(init)
    ref = hand.W5Step(init, 0.05, "sgd")
    d = workloads.synthetic_mnist(96, seed=3, dtype="float64")
    x = d["x"].reshape(-1, 1, 28, 28)
    for i in range(3):
        b = slice(32 * i, 32 * (i + 1))
        got = float(step(state, x=x[b], onehot=d["onehot"][b]))
        want = ref.step(x[b], d["onehot"][b])
        assert got == pytest.approx(want, rel=1e-12)
    for name, value in ref.params.items():
        np.testing.assert_allclose(state.params[name], value, rtol=1e-10, atol=1e-12)
    result = example.main(["--quick", "--synthetic-rows", "400"])
    assert len(result["losses"]) == 4 and all(np.isfinite(result["losses"]))


# ---------------------------------------------------------------------------------------
# The planner's sharing: a convolution and its weight gradient build one im2col
# ---------------------------------------------------------------------------------------


def _compile_case(build, values, names):
    leaves = [sg.param(f"{names}_{i}", v.shape, str(v.dtype)) for i, v in enumerate(values)]
    out = build(*leaves)
    r = np.random.default_rng(1).standard_normal(out.shape)
    loss = sg.sum(out * sg.constant(r))
    return sg.compile([out, *sg.grad(loss, leaves)], inputs=leaves)


def _body(source: str) -> str:
    return source[source.index("def compute("):]


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CONV_CASES)
def test_shared_windows_give_the_unshared_results(monkeypatch, xs, ws, stride, padding,
                                                  dilation, groups):
    # the lowered program (one im2col read by the forward product and the weight gradient)
    # against the program of the unlowered nodes (each helper builds its own windows), in
    # float64, for every stride, padding, dilation and groups of the torch comparisons
    from symgrad.compiler import optimize
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    values = [_rand(*xs), _rand(*ws, seed=1)]
    k = next(_COUNT)
    shared = _compile_case(lambda x, w: sg.relu(sg.conv2d(x, w, **kw)), values, f"s{k}")
    body = _body(shared.source)
    assert body.count("_conv_cols(") == 1 and "_conv2d_filter_grad_from_cols(" in body
    assert "_conv2d(" not in body and "_conv2d_filter_grad(" not in body
    monkeypatch.setattr(optimize, "_lower_shared", lambda roots: roots)
    plain = _compile_case(lambda x, w: sg.relu(sg.conv2d(x, w, **kw)), values, f"u{k}")
    assert "_conv_cols(" not in _body(plain.source)
    assert "_conv2d_filter_grad(" in _body(plain.source)
    for got, want in zip(shared(*values), plain(*values)):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_a_lone_weight_gradient_is_not_lowered():
    # windows read once: nothing to share, the unlowered helper as before
    x, w = sg.param("xlone", (2, 3, 6, 6)), sg.param("wlone", (4, 3, 3, 3))
    gw = sg.grad(sg.sum(sg.conv2d(x, w) * sg.constant(_rand(2, 4, 4, 4))), w)
    body = _body(sg.compile(gw, inputs=[x, w]).source)
    assert "_conv2d_filter_grad(" in body and "_conv_cols(" not in body


@needs_torch
def test_shared_windows_of_a_transposed_convolution_match_torch():
    # conv_transpose2d's second-order terms hold a Conv2d and a Conv2dFilterGrad of the same
    # operand: d/dw of |d loss / dx|^2 through a transposed convolution
    x, w = _rand(1, 2, 4, 4), _rand(2, 3, 3, 3, seed=1)
    xs, wsym = sg.param("xct", x.shape), sg.param("wct", w.shape)
    kw = dict(stride=2, padding=1, output_padding=1)
    loss = sg.sum(sg.conv_transpose2d(xs, wsym, **kw) ** 2)
    (gx,) = sg.grad(loss, [xs])
    (gw,) = sg.grad(sg.sum(gx * gx), [wsym])
    got = sg.compile(gw, inputs=[xs, wsym])(x, w)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (tgx,) = torch.autograd.grad((F.conv_transpose2d(tx, tw, **kw) ** 2).sum(), tx,
                                 create_graph=True)
    (tgw,) = torch.autograd.grad((tgx * tgx).sum(), tw)
    np.testing.assert_allclose(got, tgw.numpy(), rtol=1e-9, atol=1e-10)


@needs_torch
def test_in_place_ops_on_conv_and_pool_results_match_torch():
    # conv and pool results are the step's own buffers: the bias add and relu run in the
    # conv's buffer and the relu mask in the pool gradient's, but only where nothing reads
    # the old value again (here the raw conv output is read by a second branch)
    x, w, b = _rand(2, 2, 8, 8), _rand(3, 2, 3, 3, seed=1), _rand(3, 1, 1, seed=2)

    def build(conv, pool, relu):
        def f(x, w, b):
            c = conv(x, w)
            return pool(relu(c + b), 2) * 2.0 + pool(c, 2)
        return f

    _check(build(lambda x, w: sg.conv2d(x, w, padding=1), sg.max_pool2d, sg.relu),
           build(lambda x, w: F.conv2d(x, w, padding=1), F.max_pool2d, F.relu),
           None, [x, w, b])
    f = _compile_case(build(lambda x, w: sg.conv2d(x, w, padding=1), sg.max_pool2d, sg.relu),
                      [x, w, b], "inplace")
    assert "out=_conv2dcols" not in _body(f.source)  # c is read again after c + b


@needs_torch
def test_float32_w5_step_matches_torch_and_stays_float32():
    # the generated W5 train step in float32, one SGD step, against torch in float32
    from symgrad import workloads
    init = workloads.cnn_params(0, "float32")
    d = workloads.synthetic_mnist(16, seed=2, dtype="float32")
    xb, yb = d["x"].reshape(-1, 1, 28, 28), d["onehot"]
    xs, ys = sg.input("xw5", ("N", 1, 28, 28), "float32"), sg.input("yw5", ("N", 10), "float32")
    p = {n: sg.param(f"{n}_w5f", v.shape, "float32") for n, v in init.items()}
    h = sg.max_pool2d(sg.relu(sg.conv2d(xs, p["k1"]) + p["b1"]), 2)
    h = sg.max_pool2d(sg.relu(sg.conv2d(h, p["k2"]) + p["b2"]), 2)
    logits = sg.reshape(h, (-1, 400)) @ p["w3"] + p["b3"]
    loss = sg.mean(sg.softmax_cross_entropy(logits, ys))
    step = sg.train_step(loss, sg.optim.SGD(0.1), params=list(p.values()), inputs=[xs, ys])
    state = step.init({f"{n}_w5f": v for n, v in init.items()})
    temporaries = {}

    def record(frame, event, arg):  # every array the step still names when it returns
        if event == "return" and frame.f_code.co_name == "train_step":
            temporaries.update({k: v.dtype for k, v in frame.f_locals.items()
                                if isinstance(v, (np.ndarray, np.generic))})

    sys.setprofile(record)
    try:
        got = step(state, xb, yb)
    finally:
        sys.setprofile(None)
    assert len(temporaries) > 20
    assert {k: d for k, d in temporaries.items() if d not in (np.float32, np.bool_)} == {}
    t = {n: torch.tensor(v, requires_grad=True) for n, v in init.items()}
    th = F.max_pool2d(F.relu(F.conv2d(torch.tensor(xb), t["k1"]) + t["b1"]), 2)
    th = F.max_pool2d(F.relu(F.conv2d(th, t["k2"]) + t["b2"]), 2)
    tl = -(torch.tensor(yb) * F.log_softmax(th.reshape(-1, 400) @ t["w3"] + t["b3"],
                                            dim=-1)).sum(-1).mean()
    tl.backward()
    assert got == pytest.approx(tl.item(), rel=1e-5)
    for n, v in init.items():
        new = state.params[f"{n}_w5f"]
        assert new.dtype == np.float32
        np.testing.assert_allclose(new, v - 0.1 * t[n].grad.numpy(), rtol=1e-4, atol=1e-6)
