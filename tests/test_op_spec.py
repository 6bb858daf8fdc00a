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
    "clip": [(lambda a: sg.clip(a, -1.0, 1.0), lambda a: np.clip(a, -1, 1), [(6,)], ANY)],
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
    "transpose": [(lambda a: a.T, lambda a: a.T, [(3, 4)], ANY),
                  (lambda a: sg.transpose(a, (1, 2, 0)), lambda a: np.transpose(a, (1, 2, 0)),
                   [(2, 3, 4)], ANY)],
    "reshape": [(lambda a: a.reshape(4, -1), lambda a: a.reshape(4, -1), [(2, 3, 4)], ANY)],
    "index": [(lambda a: a[1], lambda a: a[1], [(3, 4)], ANY),
              (lambda a: a[:, 0], lambda a: a[:, 0], [(3, 4)], ANY),
              (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 4)], ANY)],
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
    "norm": [(lambda a, ax=ax: sg.norm(a, ax), lambda a, ax=ax: np.linalg.norm(a, axis=ax),
              [(3, 4)], ANY) for ax in (None, 0, 1)],
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
    "one_hot", "softmax_cross_entropy", "sigmoid_cross_entropy")])
def test_float32_in_float32_out(name, case):
    build, _, shapes, domain = case
    values = [v.astype(np.float32) for v in _values(shapes, domain, np.random.default_rng(0))]
    leaves = [sg.param(f"b{i}", s, "float32") for i, s in enumerate(shapes)]
    out = build(*leaves)
    target = sg.sum(out) if out.shape else out
    f = sg.compile([out, *sg.grad(target, leaves)], inputs=leaves)
    for r in f(*values):
        assert np.asarray(r).dtype == np.float32, (name, np.asarray(r).dtype)
