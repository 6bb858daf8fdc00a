"""Differentiate stage: reverse mode over the tensor DAG, ``sympy.diff`` inside regions.

The DAG's nodes are tensor leaves, structural nodes (:class:`~symgrad.nodes.TensorOp`) and
*regions*: maximal elementwise subtrees that are a target or an operand of a structural
node. Nodes are visited once each, in reverse topological order (an iterative walk, no
recursion limit), accumulating adjoints as SymPy expressions:

* a region is differentiated as a whole by ``sympy.diff`` with respect to its frontier
  (the leaves and structural nodes it reads); the local derivative times the adjoint is
  summed back over broadcast axes (:func:`~symgrad.ops.shape.sum_to_shape`);
* a structural node applies its own ``vjp`` rule from the op registry.

Conventions at kinks follow PyTorch (the ``DiracDelta`` of a step is 0). The result is a
list of expressions: gradients are expressions too, so they can be differentiated again.
"""

from __future__ import annotations

import sympy
from sympy import DiracDelta, S

from ..graph import post_order
from ..nodes import TensorOp, TensorSymbol, is_tensor_free, shape_of, xreplace_dag
from ..ops import ensure_shape, sum_to_shape
from .stable import rewrite

__all__ = ["gradients", "GradientError"]


class GradientError(ValueError):
    """A gradient was asked for that cannot be formed (bad target, source or cotangent)."""


def _is_node(e) -> bool:
    return isinstance(e, (TensorSymbol, TensorOp))


def _frontier(region) -> list:
    """The leaves and structural nodes an elementwise region reads, in a stable order."""
    return [e for e in post_order((region,), lambda e: () if _is_node(e) else e.args)
            if _is_node(e) and not (isinstance(e, TensorSymbol) and e.role == "hyper")]


def _children(node) -> list:
    if isinstance(node, TensorSymbol):
        return []
    if isinstance(node, TensorOp):
        return [a for a in node.operand_exprs() if not is_tensor_free(a)]
    return _frontier(node)


def _topological(targets) -> list:
    """Nodes reachable from the targets, every node after all of its consumers."""
    # children last to first, as before: it sets the order adjoints are summed in, and so the
    # generated code
    order = list(post_order(targets, lambda node: reversed(_children(node))))
    order.reverse()
    return order


def _relevant(order, wrt) -> set:
    """Nodes from which some source can be reached (the only ones worth visiting)."""
    wanted = set(wrt)
    relevant = set()
    for node in reversed(order):  # children before parents
        if node in wanted or any(c in relevant for c in _children(node)):
            relevant.add(node)
    return relevant


def _kink_conventions(d):
    """PyTorch's conventions: the derivative of a step (sign, Heaviside) is 0."""
    if d.has(DiracDelta):
        d = d.replace(lambda e: isinstance(e, DiracDelta), lambda e: S.Zero)
    if d.has(sympy.Derivative):
        # sign(z) of a z SymPy cannot prove real (sqrt(p), log(p) of a placeholder p) keeps
        # an unevaluated derivative: sign is piecewise constant, so it is 0 here too
        d = d.replace(lambda e: isinstance(e, sympy.Derivative)
                      and isinstance(e.expr, sympy.sign), lambda e: S.Zero)
    if d.has(sympy.Derivative):
        bad = next(a for a in sympy.preorder_traversal(d) if isinstance(a, sympy.Derivative))
        raise GradientError(f"no derivative rule for {bad.expr.func.__name__!r}: {bad}")
    return d


def _region_vjp(region, adj, frontier, relevant):
    """Adjoint contributions of an elementwise region to its frontier nodes."""
    # Every frontier node (leaf or structural) is renamed by its position: ``_p0``, ``_p1``.
    # Regions that differ only in their leaves (``tanh(w_k * x)`` for k = 1..M, the layers of
    # an MLP) then become the same SymPy expression, and SymPy's cache answers ``diff`` for
    # all but the first: a fresh derivative costs ~20 ms of assumption queries (is_zero).
    placeholders, back = {}, {}
    for i, f in enumerate(frontier):
        s = TensorSymbol(f"_p{i}", f.shape, f.dtype.name if f.dtype else "", "placeholder")
        placeholders[f], back[s] = s, f
    local = rewrite(xreplace_dag(region, placeholders) if placeholders else region)
    out_shape = shape_of(region)
    for f in frontier:
        if f not in relevant:
            continue
        d = sympy.diff(local, placeholders.get(f, f))
        if d == 0:
            continue
        d = _kink_conventions(d)
        if back:
            d = xreplace_dag(d, back)
        yield f, sum_to_shape(adj * d, out_shape, shape_of(f))


def _seed(target, grad_y):
    if grad_y is None:
        return S.One  # a non-scalar target is differentiated as the sum of its elements
    gshape, tshape = shape_of(grad_y), shape_of(target)
    if gshape != tshape:
        raise GradientError(f"grad: grad_ys of shape {gshape} does not match its target of "
                            f"shape {tshape}")
    return grad_y


def gradients(targets: list, wrt: list, grad_ys: list | None = None) -> list:
    """d(sum of targets, weighted by grad_ys)/d(each of wrt), as SymPy expressions.

    A source the targets do not depend on gets ``0``. The expressions may have a smaller
    shape than their source where they are constant along an axis; the caller broadcasts.

    Parameters
    ----------
    targets : list of sympy.Expr
        What to differentiate; a non-scalar target counts as the sum of its elements.
    wrt : list of sympy.Expr
        Leaves or structural nodes to differentiate with respect to.
    grad_ys : list, optional
        One cotangent per target (``None`` entries: ones), each of its target's shape.

    Returns
    -------
    list of sympy.Expr
        One gradient per entry of ``wrt``.

    Raises
    ------
    GradientError
        When a ``wrt`` entry is an elementwise expression, or a cotangent's shape differs
        from its target's.
    """
    if grad_ys is None:
        grad_ys = [None] * len(targets)
    for w in wrt:
        if not _is_node(w):
            raise GradientError(
                f"grad: can only differentiate with respect to a leaf (sg.input, sg.param) or "
                f"a non-elementwise node, not {w}")
    adjoints: dict = {}
    for t, gy in zip(targets, grad_ys):
        if is_tensor_free(t):
            continue
        adjoints.setdefault(t, []).append(_seed(t, gy))
    live = [t for t in targets if not is_tensor_free(t)]
    order = _topological(live)
    relevant = _relevant(order, wrt)
    wanted = set(wrt)
    for node in order:
        contribs = adjoints.get(node)
        if not contribs or node not in relevant or isinstance(node, TensorSymbol):
            continue
        adj = sympy.Add(*contribs)
        if isinstance(node, TensorOp):
            if node in wanted and not _children(node):
                continue
            g = ensure_shape(adj, node.shape, node.dtype)
            for operand, contrib in zip(node.operand_exprs(), node.vjp(g)):
                if contrib is None or contrib == 0 or is_tensor_free(operand):
                    continue
                adjoints.setdefault(operand, []).append(contrib)
        else:
            for f, contrib in _region_vjp(node, adj, _children(node), relevant):
                adjoints.setdefault(f, []).append(contrib)
    return [sympy.Add(*adjoints[w]) if w in adjoints else S.Zero for w in wrt]
