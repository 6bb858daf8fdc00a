"""Walks over expression DAGs: one iterative post-order and one memoized bottom-up rebuild.

Every stage of the compiler walks SymPy expression graphs (shape inference, rewriting,
differentiation, planning, printing, the cache key). These graphs are DAGs with deep chains
(a training loop unrolled, ``y = sin(y)*0.5 + y`` a thousand times) and heavy sharing, so
every walk goes through this module, which promises:

* **No recursion.** The depth of an expression costs heap, never Python frames: any depth
  works at the default recursion limit.
* **Each distinct node once.** Nodes are told apart by ``==``/``hash`` (SymPy's structural
  equality), so a shared subexpression is entered once, however many parents read it. A DAG
  is never walked as the tree it unfolds to (exponential in the depth of a chain).
* **A fixed order.** :func:`post_order` yields a node after all of its children, and is the
  post-order of a depth-first walk that takes the roots, and each node's children, in the
  order given: the order a recursive walk would have, so the output is deterministic.

``children(node)`` chooses the edges: the default follows ``node.args``; a caller stops at
structural nodes by returning ``()`` for them, or follows only value arguments.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

__all__ = ["post_order", "rebuild", "args_of"]


def args_of(node) -> tuple:
    """The default edges: a SymPy node's ``args``.

    Parameters
    ----------
    node : sympy.Basic

    Returns
    -------
    tuple
        ``node.args``.
    """
    return node.args


def post_order(roots: Iterable, children: Optional[Callable[[Any], Iterable]] = None,
               seen: Optional[set] = None) -> Iterator:
    """Yield every distinct node reachable from ``roots``, each once, after its children.

    Parameters
    ----------
    roots : iterable
        Where the walk starts, taken in order (nodes shared between roots are yielded once,
        under the first root that reaches them).
    children : callable, optional
        ``children(node)`` gives the nodes to walk below ``node``, in order (default:
        ``node.args``). It is called once per distinct node, when the node is entered, so a
        caller may note something about the node there. Return ``()`` to stop at a node:
        it is still yielded.
    seen : set, optional
        Nodes already walked: they are neither entered nor yielded. Every node entered is
        added to it, so one set shared by several calls walks their union once.

    Yields
    ------
    node
        Each node after all the nodes below it: the order of a recursive depth-first walk.
    """
    children = args_of if children is None else children
    seen = set() if seen is None else seen
    enter = seen.add  # bound once, as are push and pop: this loop runs once per node
    for root in roots:
        if root in seen:
            continue
        enter(root)
        # each frame is a node and the iterator over its children still to enter
        stack = [(root, iter(children(root)))]
        push, pop = stack.append, stack.pop
        while stack:
            node, pending = stack[-1]
            for child in pending:
                if child not in seen:
                    enter(child)
                    push((child, iter(children(child))))
                    break
            else:  # every child done
                pop()
                yield node


def rebuild(expr, fn: Callable[[Any, tuple], Any],
            leaf: Optional[Callable[[Any], Any]] = None):
    """Compute ``fn`` bottom-up over ``expr``'s DAG: each distinct node once, no recursion.

    Parameters
    ----------
    expr : sympy.Basic
        The root.
    fn : callable
        ``fn(node, new_args)`` gives the result for ``node``, where ``new_args`` holds the
        results for ``node.args``, in order (``()`` for an atom). To rebuild an expression,
        return ``node.func(*new_args)`` when they changed and ``node`` otherwise; any other
        bottom-up value (a kind, a flag) works the same way.
    leaf : callable, optional
        ``leaf(node)`` gives a node's result without entering it (a replacement, a
        structural node left whole), or ``None`` to enter it and call ``fn``. It is asked
        first, once per distinct node.

    Returns
    -------
    object
        The result for ``expr``.
    """
    memo: dict = {}

    def enter(node):
        if leaf is not None:
            value = leaf(node)
            if value is not None:
                memo[node] = value
                return ()
        return node.args

    result = memo.__getitem__
    for node in post_order((expr,), enter):
        if node not in memo:
            memo[node] = fn(node, tuple(map(result, node.args)))
    return memo[expr]
