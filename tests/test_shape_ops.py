"""The shape ops of issue 12 against the tape, the independent oracle: the compiled gradient
of each op equals the tape's (whose rules are stated in numpy), and the tape's own
gradient equals float64 central finite differences. Plus the errors and edge cases."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import tape as tp

IDX = np.array([[0, 2, 2], [1, 1, 0]])

#: name -> (symgrad builder, tape builder, input shapes)
CASES = {
    "moveaxis": (lambda a: sg.moveaxis(a, (0, 1), (2, 0)),
                 lambda a: tp.moveaxis(a, (0, 1), (2, 0)), [(2, 3, 4)]),
    "swapaxes": (lambda a: sg.swapaxes(a, 0, -1), lambda a: tp.swapaxes(a, 0, -1), [(2, 3, 4)]),
    "squeeze": (sg.squeeze, tp.squeeze, [(3, 1, 4, 1)]),
    "expand_dims": (lambda a: sg.expand_dims(a, (0, -1)), lambda a: tp.expand_dims(a, (0, -1)),
                    [(3, 4)]),
    "ravel": (sg.ravel, tp.ravel, [(2, 3, 4)]),
    "atleast_3d": (sg.atleast_3d, tp.atleast_3d, [(4,)]),
    "flip": (lambda a: sg.flip(a, (0, 2)), lambda a: tp.flip(a, (0, 2)), [(2, 3, 4)]),
    "fliplr": (sg.fliplr, tp.fliplr, [(3, 4)]),
    "flipud": (sg.flipud, tp.flipud, [(3, 4)]),
    "rot90": (lambda a: sg.rot90(a, 3, (1, 2)), lambda a: tp.rot90(a, 3, (1, 2)), [(2, 3, 4)]),
    "roll": (lambda a: sg.roll(a, (1, -5), (0, 1)), lambda a: tp.roll(a, (1, -5), (0, 1)),
             [(3, 4)]),
    "roll_flat": (lambda a: sg.roll(a, 7), lambda a: tp.roll(a, 7), [(3, 4)]),
    "repeat": (lambda a: sg.repeat(a, [1, 3, 0], 1), lambda a: tp.repeat(a, [1, 3, 0], 1),
               [(2, 3)]),
    "repeat_flat": (lambda a: sg.repeat(a, 2), lambda a: tp.repeat(a, 2), [(2, 3)]),
    "tile": (lambda a: sg.tile(a, (2, 1, 3)), lambda a: tp.tile(a, (2, 1, 3)), [(3, 2)]),
    "diff": (lambda a: sg.diff(a, 2, 0), lambda a: tp.diff(a, 2, 0), [(5, 3)]),
    "sort": (lambda a: sg.sort(a, 0), lambda a: tp.sort(a, 0), [(4, 3)]),
    "sort_flat": (lambda a: sg.sort(a, None), lambda a: tp.sort(a, None), [(4, 3)]),
    "diagonal": (lambda a: sg.diagonal(a, -1, 2, 0), lambda a: tp.diagonal(a, -1, 2, 0),
                 [(3, 2, 5)]),
    "trace": (lambda a: sg.trace(a, 1), lambda a: tp.trace(a, 1), [(3, 4, 2)]),
    "diag_1d": (lambda a: sg.diag(a, -2), lambda a: tp.diag(a, -2), [(3,)]),
    "diag_2d": (lambda a: sg.diag(a, 1), lambda a: tp.diag(a, 1), [(4, 3)]),
    "tril": (lambda a: sg.tril(a, 1), lambda a: tp.tril(a, 1), [(2, 3, 4)]),
    "triu": (lambda a: sg.triu(a, -1), lambda a: tp.triu(a, -1), [(3, 4)]),
    "pad": (lambda a: sg.pad(a, ((1, 0), (2, 3)), constant_values=-2.0),
            lambda a: tp.pad(a, ((1, 0), (2, 3)), -2.0), [(2, 3)]),
    "take": (lambda a: sg.take(a, IDX, 1), lambda a: tp.take(a, IDX, 1), [(2, 3)]),
    "take_flat": (lambda a: sg.take(a, [5, 5, -6]), lambda a: tp.take(a, [5, 5, -6]), [(2, 3)]),
    "getitem_int_array": (lambda a: a[[1, 1, 0]], lambda a: a[[1, 1, 0]], [(3, 2)]),
    "take_along_axis": (lambda a: sg.take_along_axis(a, IDX, 1),
                        lambda a: tp.take_along_axis(a, IDX, 1), [(2, 3)]),
    "take_along_axis_broadcast": (lambda a: sg.take_along_axis(a, np.array([[2], [0]]), 0),
                                  lambda a: tp.take_along_axis(a, np.array([[2], [0]]), 0),
                                  [(3, 4)]),
    "select": (lambda a, b: sg.select([a > 0, b > 0], [a * 2.0, b], -1.0),
               lambda a, b: tp.select([a.value > 0, b.value > 0], [a * 2.0, b], -1.0),
               [(3, 4), (4,)]),
    "concatenate": (lambda a, b, c: sg.concatenate([a, b, c], 1),
                    lambda a, b, c: tp.concatenate([a, b, c], 1), [(2, 1), (2, 3), (2, 2)]),
    "concatenate_flat": (lambda a, b: sg.concatenate([a, b], None),
                         lambda a, b: tp.concatenate([a, b], None), [(2, 2), (3,)]),
    "stack": (lambda a, b: sg.stack([a, b, a], 1), lambda a, b: tp.stack([a, b, a], 1),
              [(2, 3), (2, 3)]),
    "vstack": (lambda a, b: sg.vstack([a, b]), lambda a, b: tp.vstack([a, b]), [(3,), (2, 3)]),
    "hstack": (lambda a, b: sg.hstack([a, b]), lambda a, b: tp.hstack([a, b]), [(2, 3), (2, 1)]),
    "column_stack": (lambda a, b: sg.column_stack([a, b]), lambda a, b: tp.column_stack([a, b]),
                     [(3,), (3, 2)]),
    "append": (lambda a, b: sg.append(a, b), lambda a, b: tp.append(a, b), [(2, 3), (4,)]),
    "split": (lambda a: sg.split(a, [1, 3], 1)[1],
              lambda a: tp.rules.FUNCTIONS["split"](a, [1, 3], 1, 1), [(2, 5)]),
    "array_split": (lambda a: sg.array_split(a, 3)[0],
                    lambda a: tp.rules.FUNCTIONS["array_split"](a, 3, 0, 0), [(7, 2)]),
}


def _tape_value_and_grads(build, values, weights):
    variables = [tp.Variable(v) for v in values]
    with tp.GradientTape() as t:
        y = build(*variables)
        loss = tp.sum(y * weights)
    return y.value, t.gradient(loss, variables)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_gradient_equals_the_tapes(name):
    sg_build, tp_build, shapes = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    values = [rng.standard_normal(s) for s in shapes]
    leaves = [sg.input(f"x{i}", s, "float64") for i, s in enumerate(shapes)]
    out = sg_build(*leaves)
    weights = rng.standard_normal(out.shape)
    grads = sg.grad(sg.sum(out * sg.constant(weights)), leaves)
    got, *got_grads = sg.compile([out, *grads], inputs=leaves)(*values)
    want, want_grads = _tape_value_and_grads(tp_build, values, weights)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # and the tape's rule is right on its own: central differences along a direction
    for i, v in enumerate(values):
        d = rng.standard_normal(v.shape)

        def f(x, i=i):
            vals = [x if j == i else u for j, u in enumerate(values)]
            return float(np.sum(_tape_value_and_grads(tp_build, vals, weights)[0] * weights))
        h = 1e-6
        fd = (f(v + h * d) - f(v - h * d)) / (2 * h)
        np.testing.assert_allclose(np.sum(want_grads[i] * d), fd, rtol=1e-6, atol=1e-8)


def test_an_integer_input_gathers_and_repeats_add_up():
    x = sg.input("x", (4, 3))
    idx = sg.input("idx", (5,), "int64")
    y = x[idx]
    (g,) = sg.grad(sg.sum(y), [x])
    f = sg.compile([y, g], inputs=[x, idx])
    xv = np.arange(12.0).reshape(4, 3)
    iv = np.array([3, 0, 3, 3, -1])
    got, grad = f(xv, iv)
    np.testing.assert_array_equal(got, xv[iv])
    np.testing.assert_array_equal(grad[:, 0], [1, 0, 0, 4])  # index 3 four times (-1 too)


def test_gather_second_order():
    x = sg.input("x", (3,))
    y = sg.sum(sg.take(x, [0, 0, 2]) ** 3)
    (g,) = sg.grad(y, [x])
    (h,) = sg.grad(sg.sum(g), [x])
    f = sg.compile([g, h], inputs=[x])
    gv, hv = f(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(gv, [6.0, 0.0, 27.0])
    np.testing.assert_allclose(hv, [12.0, 0.0, 18.0])


def test_float32_stays_float32_through_the_gather_and_concatenate():
    x = sg.param("x", (3, 2), "float32")
    y = sg.concatenate([sg.take(x, [2, 0], 0), x * 2], 0)
    (g,) = sg.grad(sg.sum(y), [x])
    out, gv = sg.compile([y, g], inputs=[x])(np.ones((3, 2), np.float32))
    assert out.dtype == np.float32 and gv.dtype == np.float32


def test_errors_name_the_op_and_the_shapes():
    a, b = sg.input("a", (2, 3)), sg.input("b", (3, 3))
    with pytest.raises(sg.ShapeError, match=r"concatenate: operand 1 of shape \(3, 3\)"):
        sg.concatenate([a, b], 1)
    with pytest.raises(sg.ShapeError, match="stack: operand 1"):
        sg.stack([a, b])
    with pytest.raises(ValueError, match="split: an axis of length 3 does not split into 2"):
        sg.split(a, 2, 1)
    with pytest.raises(IndexError, match="take: index 3 is out of bounds for axis 1 with size 3"):
        sg.take(a, [0, 3], 1)
    with pytest.raises(IndexError, match="boolean masks"):
        a[np.array([True, False])]
    with pytest.raises(IndexError, match="take"):
        a[[0, 1], [1, 2]]
    with pytest.raises(sg.ShapeError, match=r"squeeze: cannot select axis 1"):
        sg.squeeze(a, 1)
    with pytest.raises(ValueError, match="pad: only mode='constant'"):
        sg.pad(a, 1, mode="reflect")
    with pytest.raises(sg.ShapeError, match="take_along_axis: indices of shape"):
        sg.take_along_axis(a, np.zeros((2,), int), 1)


def test_split_pieces_and_array_split_sizes_match_numpy():
    x = sg.input("x", (7, 2))
    pieces = sg.array_split(x, 3)
    assert [p.shape for p in pieces] == [p.shape for p in np.array_split(np.ones((7, 2)), 3)]
    pieces = sg.split(x, [2, 10])
    assert [p.shape for p in pieces] == [p.shape for p in np.split(np.ones((7, 2)), [2, 10])]
