"""The ops of the peer-list round (degrees, radians, rollaxis, fftshift, ifftshift, gradient,
linspace, vsplit, hsplit, dsplit; flatten; one-sided clip, heaviside at 0, tril/triu of a
vector, np.array of Tensors): the tape's own rules against finite differences, and symgrad's
compiled gradients against the tape's where numpy's behaviour has a corner."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape as tp
from test_tape import check_gradients

RNG = np.random.default_rng(7)


def _x(*shape):
    return RNG.uniform(0.3, 2.0, shape) * RNG.choice([-1.0, 1.0], shape)


TAPE_CASES = {
    "degrees": (lambda x: tp.degrees(x), [(3, 4)]),
    "radians": (lambda x: tp.radians(x), [(3, 4)]),
    "rollaxis": (lambda x: tp.rollaxis(x, 2), [(2, 3, 4)]),
    "rollaxis_start": (lambda x: tp.rollaxis(x, 0, 3), [(2, 3, 4)]),
    "rollaxis_negative": (lambda x: tp.rollaxis(x, -1, -2), [(2, 3, 4)]),
    "fftshift": (lambda x: tp.fftshift(x), [(3, 5)]),
    "ifftshift_axis": (lambda x: tp.ifftshift(x, 1), [(3, 5)]),
    "gradient_1d": (lambda x: tp.rules.FUNCTIONS["gradient"](x), [(6,)]),
    "gradient_axis": (lambda x: tp.rules.FUNCTIONS["gradient"](x, 0.5, None, 1, 1), [(4, 5)]),
    "gradient_order2": (lambda x: tp.rules.FUNCTIONS["gradient"](x, (2.0,), 0, 2, 0), [(5, 3)]),
    "linspace": (lambda a, b: tp.linspace(a, b, 5), [(3,), (3,)]),
    "linspace_open_axis": (lambda a, b: tp.linspace(a, b, 4, False, 1), [(), (2,)]),
    "vsplit": (lambda x: tp.rules.FUNCTIONS["vsplit"](x, 2, 1), [(4, 3)]),
    "hsplit_1d": (lambda x: tp.rules.FUNCTIONS["hsplit"](x, [2], 1), [(5,)]),
    "dsplit": (lambda x: tp.rules.FUNCTIONS["dsplit"](x, 2, 0), [(2, 1, 4)]),
    "tril_1d": (lambda x: tp.tril(x, -1), [(4,)]),
    "partition": (lambda x: tp.partition(x, [1, 3]), [(2, 6)]),
    "partition_flat": (lambda x: tp.partition(x, 4, None), [(3, 3)]),
    "astype": (lambda x: tp.astype(x, "float64") * 2.0, [(3,)]),
    "triu_1d": (lambda x: tp.triu(x, 1), [(4,)]),
}


@pytest.mark.parametrize("name", sorted(TAPE_CASES))
def test_tape_rules_match_finite_differences(name):
    fn, shapes = TAPE_CASES[name]
    check_gradients(fn, [_x(*s) for s in shapes])


#: name -> (symgrad builder, tape builder, input shapes): the compiled value and gradient
#: equal the tape's
VERSUS_TAPE = {
    "degrees": (lambda a: np.degrees(a), tp.degrees, [(3, 4)]),
    "radians": (lambda a: np.radians(a), tp.radians, [(3, 4)]),
    "rollaxis": (lambda a: np.rollaxis(a, -1, 1), lambda a: tp.rollaxis(a, -1, 1),
                 [(2, 3, 4)]),
    "fftshift": (lambda a: np.fft.fftshift(a), tp.fftshift, [(3, 5)]),
    "ifftshift": (lambda a: np.fft.ifftshift(a, axes=(0,)), lambda a: tp.ifftshift(a, (0,)),
                  [(5, 2)]),
    "gradient": (lambda a: np.gradient(a, 0.5)[1],
                 lambda a: tp.rules.FUNCTIONS["gradient"](a, 0.5, None, 1, 1), [(3, 4)]),
    "gradient_order2": (lambda a: np.gradient(a, edge_order=2),
                        lambda a: tp.rules.FUNCTIONS["gradient"](a, 1.0, None, 2, 0), [(5,)]),
    "linspace": (lambda a, b: np.linspace(a, b, 5, axis=-1),
                 lambda a, b: tp.linspace(a, b, 5, True, -1), [(2, 1), (3,)]),
    "hsplit": (lambda a: np.hsplit(a, [1])[1], lambda a: tp.rules.FUNCTIONS["hsplit"](a, [1], 1),
               [(2, 3)]),
    "heaviside_at_zero": (lambda a, b: sg.heaviside(sg.floor(a * 0.0), b) * b,
                          lambda a, b: tp.heaviside(tp.floor(a * 0.0), b) * b, [(3, 4), (4,)]),
    "clip_below": (lambda a: np.clip(a, 0.1, None), lambda a: tp.clip(a, 0.1, None), [(3, 4)]),
    "clip_above": (lambda a: sg.clip(a, None, -0.2), lambda a: tp.clip(a, None, -0.2), [(3, 4)]),
    "tril_1d": (lambda a: np.tril(a, 1), lambda a: tp.tril(a, 1), [(4,)]),
    "triu_1d": (lambda a: np.triu(a), tp.triu, [(3,)]),
    "partition": (lambda a: np.partition(a, -2, axis=0), lambda a: tp.partition(a, -2, 0),
                  [(7, 3)]),
}


@pytest.mark.parametrize("name", sorted(VERSUS_TAPE))
def test_compiled_value_and_gradient_equal_the_tapes(name):
    sg_build, tp_build, shapes = VERSUS_TAPE[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    values = [rng.standard_normal(s) for s in shapes]
    leaves = [sg.input(f"x{i}", s, "float64") for i, s in enumerate(shapes)]
    out = sg_build(*leaves)
    weights = rng.standard_normal(out.shape)
    grads = sg.grad(sg.sum(out * sg.constant(weights)), leaves)
    got, *got_grads = sg.compile([out, *grads], inputs=leaves)(*values)
    variables = [tp.Variable(v) for v in values]
    with tp.GradientTape() as t:
        y = tp_build(*variables)
        loss = tp.sum(y * weights)
    want_grads = t.gradient(loss, variables)
    np.testing.assert_allclose(got, y.value, rtol=1e-12, atol=1e-12)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_heaviside_gradient_flows_to_b_only_where_a_is_zero():
    a, b = sg.input("a", (4,)), sg.input("b", (4,))
    ga, gb = sg.grad(sg.sum(sg.heaviside(a, b) * sg.constant(np.arange(1.0, 5.0))), [a, b])
    got_a, got_b = sg.compile([ga, gb], inputs=[a, b])(np.array([0.0, 1.0, -1.0, 0.0]),
                                                       np.full(4, 0.5))
    np.testing.assert_array_equal(got_a, 0.0)
    np.testing.assert_array_equal(got_b, [1.0, 0.0, 0.0, 4.0])


def test_clip_with_both_bounds_none_is_the_identity_as_in_numpy():
    a = sg.input("a", (3,))
    y = np.clip(a, None, None)
    v = np.array([-1.0, 0.5, 2.0])
    got, g = sg.compile([y, sg.grad(sg.sum(y), [a])[0]], inputs=[a])(v)
    np.testing.assert_array_equal(got, np.clip(v, None, None))
    np.testing.assert_array_equal(g, 1.0)
    with pytest.raises(TypeError, match="clip: the bound lo must be a number or None"):
        sg.clip(a, sg.input("lo", (3,)), 1.0)


def test_np_array_of_tensors_raises_and_points_to_stack():
    a, b = sg.input("a", (3,)), sg.input("b", (3,))
    for make in (lambda: np.array([a, b]), lambda: np.asarray(a), lambda: np.array(a)):
        with pytest.raises(TypeError, match=r"cannot become a numpy array.*sg\.stack"):
            make()
    assert np.stack([a, b]).shape == (2, 3)  # the dispatched form still works


def test_flatten_method_and_numpy_spellings_route_to_the_records():
    a = sg.input("a", (2, 3))
    assert a.flatten().shape == (6,)
    v = np.arange(6.0).reshape(2, 3)
    outs = [a.flatten(), np.degrees(a), np.radians(a), np.fft.fftshift(a)]
    got = sg.compile(outs, inputs=[a])(v)
    for g, w in zip(got, [v.flatten(), np.degrees(v), np.radians(v), np.fft.fftshift(v)]):
        np.testing.assert_allclose(g, w, rtol=1e-15)


def test_linspace_retstep_and_num_edges_match_numpy():
    s, e = sg.input("s", ()), sg.input("e", (2,))
    sv, ev = 0.5, np.array([2.0, -1.0])
    for kw in ({"num": 1}, {"num": 4, "endpoint": False}):
        got = sg.compile([np.linspace(s, e, **kw)], inputs=[s, e])(sv, ev)[0]
        np.testing.assert_allclose(got, np.linspace(sv, ev, **kw), rtol=1e-15)
    y, step = np.linspace(s, e, 5, retstep=True)
    got = sg.compile([step], inputs=[s, e])(sv, ev)[0]
    np.testing.assert_allclose(got, np.linspace(sv, ev, 5, retstep=True)[1])


def test_errors_name_the_op_and_shape():
    v, m = sg.input("v", (4,)), sg.input("m", (4, 6))
    with pytest.raises(sg.ShapeError, match=r"vsplit: .*2 or more dimensions.*\(4,\)"):
        sg.vsplit(v, 2)
    with pytest.raises(sg.ShapeError, match=r"dsplit: .*3 or more"):
        np.dsplit(m, 2)
    with pytest.raises(ValueError, match="split: an axis of length 6 does not split into 4"):
        np.hsplit(m, 4)
    with pytest.raises(sg.ShapeError, match="rollaxis: start must be in"):
        np.rollaxis(m, 0, 3)
    with pytest.raises(TypeError, match="gradient: symgrad supports scalar sample distances"):
        np.gradient(v, np.arange(4.0))
    with pytest.raises(ValueError, match="gradient: axis 0 of shape \\(2,\\) is too short"):
        sg.gradient(sg.input("w", (2,)), edge_order=2)
    with pytest.raises(TypeError, match="linspace: symgrad does not support dtype"):
        sg.linspace(0.0, v, 3, dtype=np.float32)


def test_astype_float32_to_float64_and_back_casts_the_gradient():
    a = sg.input("a", (3,), "float32")
    y = np.sin(a.astype("float64")) * sg.constant(np.array([1.0, 2.0, 3.0]))
    (g,) = sg.grad(sg.sum(y), [a])
    v = np.array([0.1, 0.2, 0.3], np.float32)
    out, gv = sg.compile([y, g], inputs=[a])(v)
    assert out.dtype == np.float64 and gv.dtype == np.float32
    want = np.cos(v.astype(np.float64)) * [1.0, 2.0, 3.0]
    np.testing.assert_allclose(gv, want.astype(np.float32), rtol=1e-7)
    # the tape agrees
    x = tp.Variable(v)
    with tp.GradientTape() as t:
        loss = tp.sum(tp.sin(tp.astype(x, "float64")) * np.array([1.0, 2.0, 3.0]))
    tg = t.gradient(loss, [x])[0]
    assert tg.dtype == np.float32
    np.testing.assert_allclose(gv, tg, rtol=1e-7)
    with pytest.raises(TypeError, match="astype: symgrad tensors hold numbers or bools"):
        a.astype(complex)


def test_partition_is_numpys_arrangement_and_refuses_bad_kth():
    a = sg.input("a", (4, 9))
    v = np.random.default_rng(3).standard_normal((4, 9))
    for kth, axis in ((3, -1), ([0, 4, -1], 1), (1, 0), (10, None)):
        got = sg.compile([np.partition(a, kth, axis)], inputs=[a])(v)[0]
        np.testing.assert_array_equal(got, np.partition(v, kth, axis))
    with pytest.raises(ValueError, match=r"partition: kth 9 is out of bounds .*length 9"):
        np.partition(a, 9)
    with pytest.raises(ValueError, match="partition: symgrad supports kind='introselect'"):
        sg.partition(a, 1, kind="heapsort")
