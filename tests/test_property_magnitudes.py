"""Property test at the magnitudes where wrong code shows: exponents of 5 to 700.

The first property test draws values in [-1.5, 1.5], where a read of an overwritten buffer
can still give the right numbers (``exp(x @ w + b)`` read as ``x @ w`` is harmless until
``exp(exp(z))`` overflows). Here every program is an affine layer shifted far from zero,
``z = x @ w + b`` with ``b`` around 5, 20, 80, 300 or 700, followed by a random chain of
elementwise and reducing ops that stay meaningful there (exp, tanh, sigmoid, softplus,
log-sigmoid, relu, products and sums with another input, logsumexp, softmax, a mean).

For ``loss = mean(u * chain)``, in float64:

* the compiled function and its no-reuse twin (``inplace=False``) agree (``tests/conftest.py``
  compares every compiled function with its twin);
* wherever the tape's loss and gradients are finite, symgrad's are finite too and equal them:
  relative 1e-8 of the largest element of each gradient, plus 1e-12 of the loss scale
  (``max(1, |loss|)``: a saturated softmax leaves gradients of 1e-10 that are the
  round-off residue of order-one terms). symgrad may be more stable than the tape (its
  stable rewrites), never less.

``SYMGRAD_PROPERTY_MAGNITUDE_EXAMPLES`` sets the number of programs (default 150).
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import tape as tp

N_EXAMPLES = int(os.environ.get("SYMGRAD_PROPERTY_MAGNITUDE_EXAMPLES", "150"))
SHIFTS = (5.0, 20.0, 80.0, 300.0, 700.0)
RTOL = 1e-8

#: name -> (symgrad form, tape form); each maps (value, other input) to a value
CHAIN_OPS = {
    "exp": (lambda v, y: sg.exp(v), lambda v, y: tp.exp(v)),
    "exp_neg": (lambda v, y: sg.exp(-v), lambda v, y: tp.exp(-v)),
    "tanh": (lambda v, y: sg.tanh(v), lambda v, y: tp.tanh(v)),
    "sigmoid": (lambda v, y: sg.sigmoid(v), lambda v, y: tp.sigmoid(v)),
    "softplus": (lambda v, y: sg.softplus(v), lambda v, y: tp.softplus(v)),
    "log_sigmoid": (lambda v, y: sg.log_sigmoid(v), lambda v, y: tp.log_sigmoid(v)),
    "relu": (lambda v, y: sg.relu(v), lambda v, y: tp.relu(v)),
    "mul_y": (lambda v, y: v * y, lambda v, y: v * y),
    "add_y": (lambda v, y: v + y, lambda v, y: v + y),
    "sub_self_scaled": (lambda v, y: v - 0.5 * v, lambda v, y: v - 0.5 * v),
    "logsumexp": (lambda v, y: sg.logsumexp(v, axis=-1, keepdims=True),
                  lambda v, y: tp.logsumexp(v, axis=-1, keepdims=True)),
    "softmax": (lambda v, y: sg.softmax(v, axis=-1), lambda v, y: tp.softmax(v, axis=-1)),
    "log_softmax": (lambda v, y: sg.log_softmax(v, axis=-1),
                    lambda v, y: tp.log_softmax(v, axis=-1)),
}


@st.composite
def programs(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    shift = draw(st.sampled_from(SHIFTS))
    sign = draw(st.sampled_from([1.0, -1.0]))
    chain = draw(st.lists(st.sampled_from(sorted(CHAIN_OPS)), min_size=1, max_size=4))
    return seed, sign * shift, chain


def _values(seed, shift):
    rng = np.random.default_rng(seed)
    n, k, m = 3, 4, 2
    return {"x": rng.uniform(-1, 1, (n, k)), "w": rng.uniform(-0.5, 0.5, (k, m)),
            "b": shift + rng.uniform(-1, 1, m), "y": rng.uniform(0.5, 1.5, (n, m)),
            "u": rng.standard_normal((n, m))}


def _build(chain, ops, leaves):
    x, w, b, y, u = (leaves[k] for k in "xwbyu")
    v = x @ w + b
    for name in chain:
        v = CHAIN_OPS[name][ops](v, y)
    prod = u * v
    return (sg.mean(prod) if ops == 0 else tp.mean(prod))


def _symbolic(chain, vals):
    leaves = {"x": sg.input("x", (3, 4)), "y": sg.input("y", (3, 2)),
              "u": sg.input("u", (3, 2)), "w": sg.param("w", (4, 2), shared=True),
              "b": sg.param("b", (2,), shared=True)}
    loss = _build(chain, 0, leaves)
    gw, gb = sg.grad(loss, [leaves["w"], leaves["b"]])
    f = sg.compile([loss, gw, gb], [leaves[k] for k in "xyuwb"])
    return f(*(vals[k] for k in "xyuwb"))


def _taped(chain, vals):
    with np.errstate(all="ignore"):
        with tp.GradientTape() as tape:
            w, b = tp.Variable(vals["w"]), tp.Variable(vals["b"])
            leaves = {"x": tp.constant(vals["x"]), "y": tp.constant(vals["y"]),
                      "u": tp.constant(vals["u"]), "w": w, "b": b}
            loss = _build(chain, 1, leaves)
        return [np.asarray(loss.numpy()), *tape.gradient(loss, [w, b])]


@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None)
@given(programs())
def test_symbolic_matches_the_tape_wherever_the_tape_is_finite(program):
    seed, shift, chain = program
    vals = _values(seed, shift)
    with np.errstate(all="ignore"):
        got = _symbolic(chain, vals)
    want = _taped(chain, vals)
    loss_scale = max(1.0, float(abs(want[0]))) if np.isfinite(want[0]) else 1.0
    for what, g, t in zip(("loss", "d/dw", "d/db"), got, want):
        g, t = np.asarray(g), np.asarray(t)
        if not np.all(np.isfinite(t)):
            continue  # the tape overflowed: nothing to hold symgrad to
        context = f"{what} of chain {chain} at shift {shift}"
        assert np.all(np.isfinite(g)), f"{context}: symgrad {g} where the tape is {t}"
        scale = float(np.max(np.abs(t))) if t.size else 0.0
        np.testing.assert_allclose(g, t, rtol=RTOL, atol=RTOL * scale + 1e-12 * loss_scale,
                                   err_msg=context)
