"""Targeted rewrites into numerically stable forms (no blanket ``simplify``).

``rewrite(expr)`` replaces, anywhere in an elementwise region:

* ``log(1 + exp(a))``        -> ``softplus(a)``           (= logaddexp(0, a))
* ``1 / (1 + exp(-a))``      -> ``sigmoid(a)``
* ``exp(a) / (1 + exp(a))``  -> ``sigmoid(a)``
* ``log(sigmoid(a))``        -> ``-softplus(-a)``
* ``log(1 - sigmoid(a))``    -> ``-softplus(a)``
* ``log(sum(exp(a), axes))`` -> ``logsumexp(a, axes)``    (shifted by the max)
* ``exp(a + b) * exp(-a)``   -> ``exp(b)``                 (exponents that cancel in part)
* ``a/D + b/D**2``           -> ``(a + b/D) / D``          (quotient derivatives factored)

Both the differentiation stage (so that derivatives come out stable) and the optimize
stage (so that the printed forward is stable) apply it.
"""

from __future__ import annotations

import sympy
from sympy import S, exp, log

from ..ops import Sigmoid, Softplus
from ..graph import rebuild
from ..nodes import TensorOp, TensorSymbol, shape_of

__all__ = ["rewrite", "rewrite_program"]


def _one_plus(e):
    """If ``e`` is ``1 + t``, return ``t``."""
    if e.is_Add and len(e.args) == 2 and S.One in e.args:
        return e.args[0] if e.args[1] is S.One else e.args[1]
    return None


def _rewrite_log(e):
    (arg,) = e.args
    t = _one_plus(arg)
    if isinstance(t, exp):
        return Softplus(t.args[0])
    if isinstance(arg, Sigmoid):
        return -Softplus(-arg.args[0])
    if arg.is_Add and len(arg.args) == 2 and S.One in arg.args:
        other = arg.args[0] if arg.args[1] is S.One else arg.args[1]
        # 1 - Sigmoid(a)
        if other.is_Mul and len(other.args) == 2 and S.NegativeOne in other.args:
            s = other.args[1] if other.args[0] is S.NegativeOne else other.args[0]
            if isinstance(s, Sigmoid):
                return -Softplus(s.args[0])
    from ..ops import LogSumExp, ReduceSum
    if isinstance(arg, ReduceSum) and isinstance(arg.args[0], exp):
        inner = arg.args[0].args[0]
        # only where the exponent is the summed tensor itself: after common subexpressions
        # are named, it may be a temporary whose shape this rewrite cannot see
        if shape_of(inner) == shape_of(arg.args[0]):
            return LogSumExp(inner, arg.axes, arg.keepdims)
    return None


def _rewrite_pow(e):
    base, power = e.args
    if power is not S.NegativeOne:
        return None
    t = _one_plus(base)
    if isinstance(t, exp):
        return Sigmoid(-t.args[0])
    return None


def _combine_exps(e):
    """``exp(a) * exp(b) * rest -> exp(a + b) * rest`` when the exponents cancel in part.

    ``exp(x + y) * exp(-x)`` is ``exp(y)``: one call instead of two, and no ``inf * 0`` when
    ``x`` is large (SymPy cancels ``exp(a) * exp(-a)`` itself, but not a partial overlap).
    Exponents that share nothing are left apart: combining them would only trade two
    shared exps for a new one."""
    exps = [f for f in e.args if isinstance(f, exp)]
    if len(exps) < 2:
        return None
    exponents = [f.args[0] for f in exps]
    combined = sympy.Add(*exponents)
    if len(sympy.Add.make_args(combined)) >= sum(len(sympy.Add.make_args(a))
                                                  for a in exponents):
        return None
    rest = [f for f in e.args if not isinstance(f, exp)]
    return sympy.Mul(exp(combined), *rest)


def _rewrite_mul(e):
    combined = _combine_exps(e)
    if combined is not None:
        return combined
    # exp(a) * (1 + exp(a))**-1  ->  Sigmoid(a)
    factors = list(e.args)
    for i, f in enumerate(factors):
        if f.is_Pow and f.exp is S.NegativeOne:
            t = _one_plus(f.base)
            if isinstance(t, exp) and t in factors:
                rest = [g for j, g in enumerate(factors) if j != i and g != t]
                return sympy.Mul(Sigmoid(t.args[0]), *rest)
    return None


def _negative_powers(term) -> dict:
    """{base: exponent} for the factors ``base**exponent`` of ``term`` with a negative
    rational exponent and a base that is not a number."""
    out = {}
    for f in sympy.Mul.make_args(term):
        if f.is_Pow and f.exp.is_Rational and f.exp.is_negative and not f.base.is_number:
            out[f.base] = f.exp
    return out


def _rewrite_add(e):
    # a/D + b/D**2  ->  (a + b/D) / D: the quotient rule's f'/g - f*g'/g**2 kept factored.
    # Expanded, g**2 underflows or overflows long before g does: d/dx x/(x*x + 1e-300) at
    # x = 1e-100 is -1e200, but 1/g - 2*x**2/g**2 gives -inf (g**2 = 1e-400 is 0), and at
    # x = 1e100 it gives +1e-200 for -1e-200 (g**2 overflows, its term is lost). Each step
    # of the factored form divides once. Only terms that divide by the same base with
    # different powers are grouped; nothing else about the sum changes.
    terms = e.args
    seen: dict = {}
    for i, t in enumerate(terms):
        for base, k in _negative_powers(t).items():
            seen.setdefault(base, []).append((i, k))
    for base, uses in seen.items():
        if len(uses) < 2 or len({k for _, k in uses}) < 2:
            continue
        kmin = max(k for _, k in uses)  # the smallest power (exponents are negative)
        grouped = {i for i, _ in uses}
        inner = sympy.Add(*[terms[i] * base ** (-kmin) for i in sorted(grouped)])
        rest = [t for i, t in enumerate(terms) if i not in grouped]
        return sympy.Add(sympy.Mul(base ** kmin, inner, evaluate=False), *rest)
    return None


_RULES = {log: _rewrite_log, sympy.Pow: _rewrite_pow, sympy.Mul: _rewrite_mul,
          sympy.Add: _rewrite_add}


def _rule_for(e):
    rule = _RULES.get(type(e))
    return rule(e) if rule is not None else None


def rewrite_program(expr):
    """:func:`rewrite` applied inside structural nodes' operands too, so that a node a rule
    makes (``log(sum(exp(u)))`` -> ``logsumexp(u)`` under a reshape) is part of the DAG the
    planner collects structural nodes from, not a node hidden in an operand region.

    Parameters
    ----------
    expr : sympy.Expr

    Returns
    -------
    sympy.Expr
    """
    for _ in range(4):
        new = rebuild(expr, _rewrite_node, leaf=_atom)
        if new == expr:
            return new
        expr = new
    return expr


def _atom(e):
    return e if not e.args or isinstance(e, TensorSymbol) else None


def _rewrite_once(expr):
    """One bottom-up pass. Each distinct subexpression is visited once (a region is a DAG:
    walked as a tree, a shared subtree costs exponential time), iteratively, and structural
    nodes are not entered: their operands are regions of their own, rewritten when they are
    planned or differentiated."""
    return rebuild(expr, _rewrite_node, leaf=_whole)


def _whole(e):
    """Atoms and structural nodes are left as they are (see :func:`_rewrite_once`)."""
    return e if not e.args or isinstance(e, TensorOp) else None


def _rewrite_node(e, args):
    """``e`` over its rewritten ``args``, then the rule for its type, if any."""
    new = e.func(*args) if args != e.args else e
    out = _rule_for(new)
    return new if out is None else out


def rewrite(expr):
    """Apply the stable rewrites everywhere in ``expr`` (bottom-up, to a fixed point).

    Parameters
    ----------
    expr : sympy.Expr

    Returns
    -------
    sympy.Expr
        The rewritten expression (after at most four passes).
    """
    for _ in range(4):
        new = _rewrite_once(expr)
        if new == expr:
            return new
        expr = new
    return expr
