"""numpy code runs unchanged on symgrad Tensors, and ``symgrad.numpy`` mirrors numpy's names.

* every spec row's numpy reference (``tests/test_op_spec.py``), run on Tensors instead of
  arrays, builds an expression whose compiled forward matches the reference on arrays and
  whose gradient matches float64 central finite differences;
* every op record with a numpy name is reached from numpy by some such code (the spec rows
  or the cases here), and is ``symgrad.numpy.<name>``;
* numpy's spellings (``np.clip(a, a_min=...)``, ``np.sum(a, 0)``, ``np.amax``,
  ``np.absolute``) build the same expression as the sg functions;
* ``ndarray <op> Tensor`` builds what Python's reflected operator built before numpy
  dispatch existed; scalars times Tensors and Tensors as dict keys are unchanged;
* unsupported functions, ufunc methods and arguments raise a TypeError naming them and
  pointing to docs/ops.md, raised by symgrad (not from inside numpy).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import symgrad as sg
import symgrad.numpy as snp
from symgrad.ops import RECORDS
from symgrad.ops.record import numpy_callables
from test_op_spec import SPEC, _values

ROOT = Path(__file__).resolve().parents[1]
_NAMES = itertools.count()  # a fresh param name per compile (no SharedParameterWarning)


def _spec_rows():
    for name, rows in SPEC.items():
        for k, row in enumerate(rows):
            yield pytest.param(name, row, id=f"{name}-{k}")


class _Spy:
    """Records the numpy callables dispatched to symgrad while active."""

    def __init__(self):
        self.called = set()

    def __enter__(self):
        ufunc, function = snp.array_ufunc, snp.array_function

        def spy_ufunc(uf, method, inputs, kwargs):
            self.called.add(uf)
            return ufunc(uf, method, inputs, kwargs)

        def spy_function(func, types, args, kwargs):
            self.called.add(func)
            return function(func, types, args, kwargs)

        self._patches = [mock.patch.object(snp, "array_ufunc", spy_ufunc),
                         mock.patch.object(snp, "array_function", spy_function)]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self._patches:
            p.stop()


def _is_unsupported(error: TypeError) -> bool:
    return "is not supported on symgrad Tensors" in str(error)


def _check_forward_and_gradient(build, reference, values, rng, name):
    """Compile ``build`` on float64 params; forward vs ``reference`` on arrays, gradient vs
    float64 central finite differences along random directions."""
    leaves = [sg.param(f"n{next(_NAMES)}", v.shape, "float64") for v in values]
    out = build(*leaves)
    assert isinstance(out, sg.Tensor), f"{name}: numpy gave a {type(out).__name__}"
    expected = reference(*values)
    assert out.shape == np.shape(expected), (out.shape, np.shape(expected))
    weights = rng.standard_normal(np.shape(expected))
    target = sg.sum(out * sg.constant(weights)) if out.shape else out * float(weights)
    grads = sg.grad(target, leaves)
    f = sg.compile([out, *grads], inputs=leaves)
    got, *got_grads = f(*values)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    for i, (v, g) in enumerate(zip(values, got_grads)):
        d = rng.standard_normal(v.shape)
        h = 1e-6
        plus = [x + h * d if j == i else x for j, x in enumerate(values)]
        minus = [x - h * d if j == i else x for j, x in enumerate(values)]
        fd = (np.sum(reference(*plus) * weights) - np.sum(reference(*minus) * weights)) / (2 * h)
        np.testing.assert_allclose(np.sum(g * d), fd, rtol=2e-6, atol=1e-7,
                                   err_msg=f"{name}: gradient of input {i}")


# ---------------------------------------------------------------------------------------
# numpy code, unchanged, on Tensors
# ---------------------------------------------------------------------------------------

#: the spec rows whose gradient is not the derivative of their numpy reference, by design
_NOT_A_DERIVATIVE = {"stop_gradient"}
#: references written as loops over pixels (tests/conv_reference.py), not numpy calls
_LOOP_REFERENCES = {"conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"}


@pytest.mark.parametrize("name,row", list(_spec_rows()))
def test_the_spec_rows_numpy_reference_runs_on_tensors(name, row):
    # the reference is numpy code written for arrays: run it on Tensors as it is
    _, reference, shapes, domain = row
    if name in _NOT_A_DERIVATIVE:
        pytest.skip("its spec row's gradient is not the derivative of its reference")
    if name in _LOOP_REFERENCES:
        pytest.skip("its reference is a loop over pixels that writes into arrays")
    try:
        reference(*[sg.input(f"probe{i}", s) for i, s in enumerate(shapes)])
    except TypeError as e:
        if not _is_unsupported(e):
            raise
        pytest.skip(f"its reference calls numpy symgrad does not implement: {e}")
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    _check_forward_and_gradient(reference, reference, _values(shapes, domain, rng), rng, name)


#: numpy code the spec rows' references do not write (np.reshape, numpy's keywords and
#: other spellings); builder on Tensors, the sg equivalent, input shapes
CASES = {
    "tanh of matmul": (lambda x, w: np.tanh(x @ w), lambda x, w: sg.tanh(x @ w),
                       [(5, 3), (3, 4)]),
    "matmul": (lambda a, b: np.matmul(a, b), sg.matmul, [(2, 3), (3,)]),
    "exp": (np.exp, sg.exp, [(3,)]),
    "add a float": (lambda t: np.add(t, 1.0), lambda t: t + 1.0, [(2, 3)]),
    "maximum with 0": (lambda t: np.maximum(t, 0), lambda t: sg.maximum(t, 0), [(2, 3)]),
    "sum axis=0": (lambda t: np.sum(t, axis=0), lambda t: sg.sum(t, axis=0), [(3, 4)]),
    "sum, axis positional": (lambda t: np.sum(t, 1), lambda t: sg.sum(t, 1), [(3, 4)]),
    "mean keepdims": (lambda t: np.mean(t, axis=-1, keepdims=True),
                      lambda t: sg.mean(t, -1, True), [(3, 4)]),
    "transpose": (np.transpose, sg.transpose, [(2, 3, 4)]),
    "reshape": (lambda t: np.reshape(t, (4, 6)), lambda t: sg.reshape(t, (4, 6)),
                [(2, 3, 4)]),
    "reshape -1": (lambda t: np.reshape(t, -1), lambda t: sg.reshape(t, -1), [(2, 3)]),
    "clip, numpy's keywords": (lambda t: np.clip(t, a_min=-0.5, a_max=0.5),
                               lambda t: sg.clip(t, -0.5, 0.5), [(6,)]),
    "absolute": (np.absolute, sg.abs, [(4,)]),
    "amax": (lambda t: np.amax(t, axis=0), lambda t: sg.max(t, 0), [(3, 4)]),
    "norm": (lambda t: np.linalg.norm(t, axis=1, keepdims=True),
             lambda t: sg.norm(t, axis=1, keepdims=True), [(3, 4)]),
    "where with a comparison": (lambda t: np.where(np.greater(t, 0), t, 0.1 * t),
                                lambda t: sg.where(t > 0, t, 0.1 * t), [(5,)]),
    "snp": (lambda x, w: snp.sum(snp.tanh(snp.matmul(x, w)) ** 2, axis=0),
            lambda x, w: sg.sum(sg.tanh(x @ w) ** 2, axis=0), [(5, 3), (3, 2)]),
    "snp.linalg.norm": (lambda t: snp.linalg.norm(t, axis=0), lambda t: sg.norm(t, axis=0),
                        [(3, 4)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_builds_the_expression_the_sg_function_does(case):
    numpy_code, sg_code, shapes = CASES[case]
    leaves = [sg.input(f"c{i}", s) for i, s in enumerate(shapes)]
    with _Spy() as spy:
        got = numpy_code(*leaves)
    assert spy.called or case.startswith("snp"), f"{case}: numpy dispatched nothing"
    want = sg_code(*leaves)
    assert isinstance(got, sg.Tensor)
    assert got.expr == want.expr, (str(got), str(want))
    assert (got.shape, got.dtype) == (want.shape, want.dtype)


@pytest.mark.parametrize("case", ["tanh of matmul", "reshape", "clip, numpy's keywords",
                                  "norm", "where with a comparison"])
def test_numpy_code_compiles_to_numpys_values_and_gradients(case):
    numpy_code, _, shapes = CASES[case]
    rng = np.random.default_rng(7)
    values = [rng.uniform(0.3, 1.5, size=s) * rng.choice([-1.0, 1.0], size=s) for s in shapes]
    # the same function, run by numpy on arrays, is the reference
    _check_forward_and_gradient(numpy_code, numpy_code, values, rng, case)


def test_every_record_with_a_numpy_name_is_reached_from_numpy():
    # through the spec rows' numpy references or the cases above: a new op with a numpy name
    # (np.concatenate) is covered once its spec row's reference calls it
    reached = set()
    with _Spy() as spy:
        for name, rows in SPEC.items():
            if name in _LOOP_REFERENCES:
                continue
            for _, reference, shapes, _ in rows:
                try:
                    reference(*[sg.input(f"r{i}", s) for i, s in enumerate(shapes)])
                except TypeError as e:
                    if not _is_unsupported(e):
                        raise
        for numpy_code, _, shapes in CASES.values():
            numpy_code(*[sg.input(f"r{i}", s) for i, s in enumerate(shapes)])
        reached = spy.called
    table = numpy_callables()
    assert table, "no record names a numpy function"
    missing = sorted(r.numpy for obj, r in table.items() if obj not in reached)
    assert not missing, (f"numpy functions of records that no numpy code here calls on a "
                         f"Tensor: {missing}; write the op's spec row reference with them, or "
                         f"add a case to CASES")


def test_the_table_is_built_from_the_records():
    table = numpy_callables()
    named = [r for r in RECORDS.values() if r.numpy.startswith("np.")]
    # every record's numpy function dispatches (np.true_divide is np.divide, np.remainder
    # is np.mod: one entry serves both records)
    import operator
    for r in named:
        function = operator.attrgetter(r.numpy[3:])(np)
        assert function in table, r.name
    assert {r.name for r in table.values()} <= {r.name for r in named}
    assert table[np.tanh] is RECORDS["tanh"]
    assert table[np.linalg.norm] is RECORDS["norm"]
    assert table[np.absolute] is RECORDS["abs"]  # np.abs is np.absolute


def _not_yet_an_op(*names):
    """A numpy function no record names (another branch may add ops): a stand-in's name."""
    table = numpy_callables()
    return next(n for n in names if getattr(np, n) not in table)


@pytest.mark.parametrize("star", [False, True], ids=["tensors", "*tensors"])
def test_a_new_record_is_dispatched_without_edits(monkeypatch, star):
    # an op declared later is found by its record alone: a binary elementwise one, and one
    # taking a sequence (as np.concatenate does), whether its function takes ``tensors`` or
    # ``*tensors``
    from symgrad.ops.record import OpRecord

    binary = _not_yet_an_op("logaddexp2", "hypot", "nextafter")
    sequence = _not_yet_an_op("column_stack", "dstack", "vstack")

    def binary_op(a, b):
        return sg.maximum(a, b)

    if star:
        def sequence_op(*tensors, axis=0):
            return sg.sum(tensors[0], axis) + sg.sum(tensors[1], axis)
    else:
        def sequence_op(tensors, axis=0):
            return sg.sum(tensors[0], axis) + sg.sum(tensors[1], axis)

    t, u = sg.input("t", (3,)), sg.input("u", (3,))
    with pytest.raises(TypeError, match=f"np.{binary} is not supported"):
        getattr(np, binary)(t, 0.0)
    with pytest.raises(TypeError, match=f"np.{sequence} is not supported"):
        getattr(np, sequence)([t, u])
    monkeypatch.setitem(RECORDS, "binary_stand_in", OpRecord(
        "binary_stand_in", "composite", binary_op, numpy=f"np.{binary}"))
    monkeypatch.setitem(RECORDS, "sequence_stand_in", OpRecord(
        "sequence_stand_in", "composite", sequence_op, numpy=f"np.{sequence}"))
    assert getattr(np, binary)(t, 0.0).expr == sg.maximum(t, 0.0).expr
    assert getattr(np, sequence)((t, u)).expr == (sg.sum(t, 0) + sg.sum(u, 0)).expr
    monkeypatch.delitem(RECORDS, "binary_stand_in")
    with pytest.raises(TypeError, match=f"np.{binary} is not supported"):
        getattr(np, binary)(t, 0.0)


# ---------------------------------------------------------------------------------------
# symgrad.numpy
# ---------------------------------------------------------------------------------------


def _resolve(module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def test_symgrad_numpy_mirrors_every_record_with_a_numpy_name():
    records = [r for r in RECORDS.values() if r.numpy.startswith("np.")]
    assert records
    for record in records:
        name = record.numpy[len("np."):]
        function = _resolve(snp, name)
        assert callable(function), name
        assert name.split(".")[0] in snp.__all__, name
        # called as numpy is (its operands positionally), it builds what sg.<name> does
        required = [p for p in _np_parameters(record.numpy) if p.default is p.empty]
        if len(required) != record.arity and record.kind == "elementwise":
            continue
        if record.kind != "elementwise" and len(required) != 1:
            continue
        if required and required[0].name in ("arrays", "tup", "condlist", "choicelist"):
            continue  # takes a sequence of arrays (np.concatenate): not a one-tensor probe
        # np.linalg's functions take square matrices (and some return tuples)
        shapes = [(3, 3) if name.startswith("linalg.") else (3, 4)] * len(required)
        leaves = [sg.input(f"m{i}", s) for i, s in enumerate(shapes)]
        if record.name == "where":
            leaves[0] = leaves[0] > 0
        got, want = function(*leaves), record.function(*leaves)
        if isinstance(want, tuple):
            assert [t.expr for t in got] == [t.expr for t in want], name
            continue
        assert got.expr == want.expr, name


def _np_parameters(numpy_name: str):
    import inspect
    return list(inspect.signature(_resolve(np, numpy_name[len("np."):])).parameters.values())


def test_symgrad_numpy_has_numpys_other_spellings():
    t = sg.input("t", (3, 4))
    assert snp.absolute(t).expr == sg.abs(t).expr
    assert snp.amax(t, axis=1).expr == sg.max(t, axis=1).expr
    assert snp.permute_dims(t).expr == sg.transpose(t).expr
    assert snp.less(t, 0.5).expr == (t < 0.5).expr
    import symgrad.numpy.linalg as sl
    assert sl.norm is snp.linalg.norm


def test_symgrad_numpy_refuses_what_it_does_not_have():
    with pytest.raises(AttributeError, match=r"symgrad.numpy has no 'polyfit'.*docs/ops.md"):
        snp.polyfit  # noqa: B018
    # np.fft's real-valued shifts only: the submodule names what it lacks
    assert snp.fft.__all__ == ["fftshift", "ifftshift"]
    with pytest.raises(AttributeError, match=r"symgrad.numpy.fft has no 'fft'.*np.fft.fft"):
        snp.fft.fft  # noqa: B018
    assert not hasattr(snp, "polyfit")


def test_symgrad_numpy_takes_numpys_signature():
    import inspect
    assert list(inspect.signature(snp.clip).parameters)[:3] == ["a", "a_min", "a_max"]
    assert "numpy's ``np.sum``" in snp.sum.__doc__ and "Parameters" in snp.sum.__doc__
    t = sg.input("t", (3, 4))
    with pytest.raises(TypeError, match=r"np.sum\(\.\.\., out=\.\.\.\)"):
        snp.sum(t, out=np.zeros(4))


# ---------------------------------------------------------------------------------------
# ndarray <op> Tensor; scalars; dict keys
# ---------------------------------------------------------------------------------------

#: ``ndarray <op> tensor`` and the reflected operator Python called before numpy dispatch
REFLECTED = {
    "+": (lambda a, t: a + t, "__radd__"), "-": (lambda a, t: a - t, "__rsub__"),
    "*": (lambda a, t: a * t, "__rmul__"), "/": (lambda a, t: a / t, "__rtruediv__"),
    "**": (lambda a, t: a ** t, "__rpow__"), "@": (lambda a, t: a @ t, "__rmatmul__"),
    "<": (lambda a, t: a < t, "__gt__"), "<=": (lambda a, t: a <= t, "__ge__"),
    ">": (lambda a, t: a > t, "__lt__"), ">=": (lambda a, t: a >= t, "__le__"),
}


@pytest.mark.parametrize("op", list(REFLECTED))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ndarray_op_tensor_builds_what_the_reflected_operator_did(op, dtype):
    write, reflected = REFLECTED[op]
    rng = np.random.default_rng(3)
    arr = rng.uniform(0.5, 1.5, size=(4, 4)).astype(dtype)
    t = sg.input("t", (4, 4), dtype)
    got = write(arr, t)
    want = getattr(t, reflected)(arr)
    # a comparison may come out mirrored (const < t for t > const): the same mask
    same = got.expr == want.expr or got.expr == want.expr.reversed
    assert same and (got.shape, got.dtype) == (want.shape, want.dtype)
    value = rng.uniform(0.5, 1.5, size=(4, 4)).astype(dtype)
    np.testing.assert_allclose(sg.compile(got)(value), write(arr, value), rtol=1e-6)


@pytest.mark.parametrize("scalar", [2.5, 3, np.float64(2.5), np.float32(2.5), np.int64(3)],
                         ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scalar_times_tensor_is_unchanged(scalar, dtype):
    t = sg.input("t", (2, 3), dtype)
    for write, reflected in [(lambda s, x: s * x, "__rmul__"), (lambda s, x: s + x, "__radd__"),
                             (lambda s, x: s - x, "__rsub__"), (lambda s, x: s / x,
                                                                "__rtruediv__")]:
        got, want = write(scalar, t), getattr(t, reflected)(scalar)
        assert got.expr == want.expr and (got.shape, got.dtype) == (want.shape, want.dtype)
        assert got.dtype == np.dtype(dtype)  # a scalar stays weak, as in numpy 2
    assert (t * scalar).expr == sg.multiply(t, scalar).expr


def test_a_tensor_is_still_a_dict_key_and_equality_is_identity():
    t, u = sg.input("t", (3,)), sg.input("u", (3,))
    arr = np.ones(3)
    table = {t: "t", u: "u"}
    assert table[t] == "t" and table[u] == "u"
    assert hash(t) == hash(t) and len({t, u, t}) == 2
    # numpy asked about == on a Tensor answers as Python did: identity, not a mask
    assert (arr == t) is False and (t == arr) is False
    assert (arr != t) is True and (t != arr) is True
    assert t in [arr, t] and u not in [arr, t]


def test_another_librarys_array_gets_its_turn():
    class Foreign:
        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            return "foreign"

        def __array_function__(self, func, types, args, kwargs):
            return "foreign"

    t = sg.input("t", (3,))
    assert np.add(t, Foreign()) == "foreign"
    assert np.concatenate([t, Foreign()]) == "foreign"


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

UNSUPPORTED = {
    "np.fft.fft": lambda t: np.fft.fft(t),
    "np.linalg.eig": lambda t: np.linalg.eig(t),
    "np.add.reduce": lambda t: np.add.reduce(t),
    "np.maximum.accumulate": lambda t: np.maximum.accumulate(t),
    "np.polyval": lambda t: np.polyval(t, t),
    "np.correlate": lambda t: np.correlate(t, t),
    "np.floor_divide": lambda t: np.ones((3, 3)) // t,
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_an_unsupported_numpy_function_names_itself_and_the_list(name):
    t = sg.input("t", (3, 3))
    with pytest.raises(TypeError) as info:
        UNSUPPORTED[name](t)
    message = str(info.value)
    assert message.startswith(name) and "not supported" in message
    assert "docs/ops.md" in message and (ROOT / "docs" / "ops.md").exists()
    _raised_by_symgrad(info)


def _raised_by_symgrad(info):
    # symgrad raises it, from symgrad/numpy.py: not a failure deep inside numpy
    assert Path(str(info.traceback[-1].path)).name == "numpy.py"
    assert Path(str(info.traceback[-1].path)).parent.name == "symgrad"


ARGUMENTS = {
    "ufunc out=": (lambda t: np.exp(t, out=np.empty(3)), r"^np.exp\(\.\.\., out=\.\.\.\)"),
    "binary ufunc out=": (lambda t: np.add(t, 1.0, out=np.empty(3)),
                          r"^np.add\(\.\.\., out=\.\.\.\)"),
    "function out=": (lambda t: np.sum(t, out=np.empty(())), r"^np.sum\(\.\.\., out=\.\.\.\)"),
    "ufunc where=": (lambda t: np.exp(t, where=np.array([True, False, True])),
                     r"^np.exp: .*argument where=.*np.where"),
    "function where=": (lambda t: np.sum(t, where=np.array([True, False, True])),
                        r"^np.sum: .*argument where=.*supports: a, axis, keepdims"),
    "dtype=": (lambda t: np.mean(t, dtype=np.float32), r"^np.mean: .*argument dtype="),
    "ufunc dtype=": (lambda t: np.exp(t, dtype=np.float32), r"^np.exp: .*argument dtype="),
    "reshape's order": (lambda t: np.reshape(t, (3, 1), order="F"),
                        r"^np.reshape: .*argument order='F'"),
    "clip's min=": (lambda t: np.clip(t, min=0.0, max=1.0), r"^np.clip: .*argument (min|max)="),
    "positional out": (lambda t: np.exp(t, np.empty(3)), r"^np.exp\(\.\.\., out=\.\.\.\)"),
    "too many arguments": (lambda t: snp.exp(t, t, t), r"^np.exp: too many positional"),
    "a missing argument": (lambda t: np.where(t > 0), r"^np.where: symgrad needs the argument 'x'"),
}


@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_an_unsupported_argument_names_the_function_and_the_argument(case):
    call, pattern = ARGUMENTS[case]
    t = sg.input("t", (3,))
    with pytest.raises(TypeError, match=pattern) as info:
        call(t)
    _raised_by_symgrad(info)


def test_numpys_default_values_are_accepted():
    t = sg.input("t", (3, 4))
    assert np.sum(t, axis=0, out=None, dtype=None).expr == sg.sum(t, 0).expr
    assert np.exp(t, where=True, casting="same_kind").expr == sg.exp(t).expr
    assert np.linalg.norm(t, None, 1).expr == sg.norm(t, axis=1).expr


def test_a_shape_error_is_symgrads_own():
    a, b = sg.input("a", (3, 4)), sg.input("b", (5,))
    with pytest.raises(sg.ShapeError) as info:
        np.add(a, b)
    assert "(3, 4)" in str(info.value) and "(5,)" in str(info.value)
