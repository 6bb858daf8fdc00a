"""symgrad.graph: the one iterative post-order and memoized rebuild every stage walks with."""

from __future__ import annotations

import sys

import sympy

from symgrad.graph import post_order, rebuild


def _chain(depth: int):
    """``y = sin(y)*0.5 + y``: each level reads the one below twice (a tree of 2**depth)."""
    x = sympy.Symbol("x")
    y = x
    for _ in range(depth):
        y = sympy.sin(y) * sympy.Rational(1, 2) + y
    return x, y


def test_post_order_yields_each_distinct_node_once_after_its_children():
    x, y = _chain(40)  # as a tree: about 2**40 nodes, so a tree walk would never finish
    order = list(post_order([y]))
    assert len(order) == len(set(order))
    position = {e: i for i, e in enumerate(order)}
    for e in order:
        for a in e.args:
            assert position[a] < position[e]
    assert order[-1] == y and x in position


def test_post_order_is_a_left_to_right_depth_first_walk_with_a_stop():
    a, b, c = sympy.symbols("a b c")
    f = sympy.Function("f")
    g = sympy.Function("g")
    e = f(g(a, b), c, g(a, b))  # the shared g(a, b) once, under its first reader
    assert list(post_order([e])) == [a, b, g(a, b), c, e]
    # children() chooses the edges: stop at g (it is still yielded)
    stop = list(post_order([e], lambda n: () if n.func == g else n.args))
    assert stop == [g(a, b), c, e]
    # a seen set shared between calls walks the union once
    seen: set = set()
    assert list(post_order([g(a, b)], seen=seen)) == [a, b, g(a, b)]
    assert list(post_order([e], seen=seen)) == [c, e]


def test_deep_chains_walk_and_rebuild_at_the_default_recursion_limit():
    depth = 4 * sys.getrecursionlimit()
    x, f = sympy.Symbol("x"), sympy.Function("f")
    y = x
    for _ in range(depth):
        y = f(y)  # one node per level: depth far beyond Python's frame limit
        hash(y)  # SymPy hashes recursively: cache each level's hash while it is shallow
    assert len(list(post_order([y]))) == depth + 1
    z = sympy.Symbol("z")
    calls = []

    def swap(node, new_args):
        calls.append(node)
        changed = any(new is not old for new, old in zip(new_args, node.args))
        return node.func(*new_args) if changed else node  # == on deep trees recurses

    out = rebuild(y, swap, leaf=lambda n: z if n == x else None)
    assert len(calls) == depth  # x is a leaf: replaced without entering it
    n, e = 0, out
    while e is not z:
        assert e.func == f
        e, n = e.args[0], n + 1
    assert n == depth


def test_rebuild_visits_each_distinct_node_once_and_folds_any_value():
    x, y = _chain(60)
    visits: dict = {}

    def count(node, sizes):
        visits[node] = visits.get(node, 0) + 1
        return 1 + sum(sizes)  # the size of the tree this DAG unfolds to

    size = rebuild(y, count)
    assert set(visits.values()) == {1}
    assert size > 2 ** 60  # computed on the DAG, in linear time
