"""Every float prints, large constants travel beside the module, exponentials cancel.

* ``inf``, ``-inf`` and ``nan`` print as ``np.inf`` / ``np.nan`` in expressions and in
  constants (the masking idiom of attention, ``where(mask, x, -inf)``);
* a constant above :data:`symgrad.compiler.codegen.INLINE_CONSTANT_LIMIT` elements is stored in the
  module's cache entry (under its HMAC) and read as ``_DATA[...]``, not printed: the module
  stays small, a new process loads it from the cache, and the numbers are the same;
* ``exp(a + b) * exp(-a)`` becomes ``exp(b)``: finite where the uncombined product is
  ``inf * 0``; compared with the form the rewrite replaces at moderate magnitudes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgrad as sg
from symgrad.compiler.codegen import INLINE_CONSTANT_LIMIT


def test_where_with_minus_inf_prints_and_runs():
    x = sg.input("x", (5,))
    f = sg.compile(sg.where(x > 0, x, -np.inf))
    X = np.array([1.0, -1.0, 2.0, -3.0, 0.0])
    np.testing.assert_array_equal(f(X), np.where(X > 0, X, -np.inf))
    assert "-np.inf" in f.source


def test_masked_softmax_the_attention_way(rng):
    s = sg.input("s", (2, 4))
    m = sg.input("m", (2, 4))
    p = sg.softmax(sg.where(m > 0, s, -np.inf), axis=-1)
    loss = sg.sum(p * s)
    f = sg.compile([loss, sg.grad(loss, s)])
    S, M = rng.normal(size=(2, 4)), np.array([[1, 1, 0, 1], [0, 1, 1, 0]], float)
    z = np.where(M > 0, S, -np.inf)
    P = np.exp(z - z.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    got_loss, got_grad = f(s=S, m=M)
    np.testing.assert_allclose(got_loss, np.sum(P * S), rtol=1e-12)
    assert np.all(np.isfinite(got_grad))
    assert np.all(got_grad[M == 0] == 0)  # masked entries get no gradient


def test_non_finite_constants_print():
    y = sg.input("y", (3,))
    f = sg.compile(y * sg.constant(np.array([np.inf, 1.0, np.nan])))
    got = f(np.array([1.0, 2.0, 3.0]))
    assert got[0] == np.inf and got[1] == 2.0 and np.isnan(got[2])
    g = sg.compile(y + sg.constant(np.array([-np.inf, 0.0, np.inf])))
    np.testing.assert_array_equal(g(np.ones(3)), [-np.inf, 1.0, np.inf])


def test_small_constants_stay_readable_literals():
    y = sg.input("y", (2,))
    f = sg.compile(y * sg.constant(np.array([-1.0, -2.0])))
    assert "np.array([-1.0, -2.0]" in f.source and "_DATA" not in f.source


def test_large_constant_is_stored_with_the_module(tmp_path):
    n = 200_000
    big = np.random.default_rng(1).normal(size=n)
    z = sg.input("z", (n,))
    loss = sg.sum(sg.exp(z) * sg.constant(big))
    f = sg.compile([loss, sg.grad(loss, z)])
    assert n > INLINE_CONSTANT_LIMIT
    assert "_DATA[" in f.source and len(f.source) < 20_000
    Z = np.linspace(-1, 1, n)
    got = f(z=Z)
    np.testing.assert_allclose(got[0], np.sum(np.exp(Z) * big), rtol=1e-10)
    np.testing.assert_allclose(got[1], np.exp(Z) * big, rtol=1e-14)
    # a new process finds it in the cache, arrays and all, without differentiating again
    script = textwrap.dedent(f"""
        import numpy as np, symgrad as sg
        import symgrad.api
        def refuse(*a, **k):
            raise AssertionError("differentiated on a cache hit")
        symgrad.api.gradients = refuse  # the name compile calls
        big = np.random.default_rng(1).normal(size={n})
        z = sg.input("z", ({n},))
        loss = sg.sum(sg.exp(z) * sg.constant(big))
        f = sg.compile([loss, sg.grad(loss, z)])
        Z = np.linspace(-1, 1, {n})
        print(repr(float(f(z=Z)[0])))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ), timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == float(got[0])


def test_partly_cancelling_exponentials_combine():
    a = sg.input("a", (3,))
    b = sg.input("b", (3,))
    out = sg.sum(sg.exp(a + b) * sg.exp(-a))
    ga, gb = sg.grad(out, [a, b])
    f = sg.compile([out, ga, gb])
    B = np.array([0.5, 1.0, 2.0])
    for A in (np.array([0.3, -0.2, 1.0]), np.array([800.0, 1.0, -800.0])):
        got = f(a=A, b=B)
        # exp(a + b) * exp(-a) is inf * 0 = nan at a = 800 without the rewrite
        np.testing.assert_allclose(got[0], np.sum(np.exp(B)), rtol=1e-14)
        np.testing.assert_array_equal(got[1], np.zeros(3))
        np.testing.assert_allclose(got[2], np.exp(B), rtol=1e-14)
    # at moderate magnitudes, the same numbers as the uncombined product
    A = np.array([0.3, -0.2, 1.0])
    np.testing.assert_allclose(f(a=A, b=B)[0], np.sum(np.exp(A + B) * np.exp(-A)),
                               rtol=1e-14)


@pytest.mark.parametrize("shift", [1.0, 30.0, 300.0, 700.0])
def test_softmax_cross_entropy_gradient_at_large_logits(shift):
    z = sg.input("z", (2, 3))
    y = sg.input("y", (2, 3))
    loss = sg.mean(sg.softmax_cross_entropy(z, y))
    f = sg.compile([loss, sg.grad(loss, z)])
    Z = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 1.0]]) * shift
    Y = np.eye(3)[[1, 0]]
    m = Z.max(-1, keepdims=True)
    P = np.exp(Z - m) / np.exp(Z - m).sum(-1, keepdims=True)
    got_loss, got_grad = f(z=Z, y=Y)
    assert np.isfinite(got_loss)
    np.testing.assert_allclose(got_grad, (P - Y) / 2, rtol=1e-12, atol=1e-300)
