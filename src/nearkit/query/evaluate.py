"""The one walk over a filter tree, with a leaf hook.

The combinators (``And``, a ``Phrase`` too; ``Or``, ``Not``, ``Optional``,
``MatchAll``) are taken apart here and nowhere else; every other node is a leaf and
goes to the walker's ``leaf``. So a new leaf type is its class in ``nodes.py`` plus
an answer in the leaf hook of whoever evaluates it; no walk has to learn it.

- ``masks(tree, live, leaf)``: boolean masks over rows. The store answers leaves
  from its field indexes (``store/fields.py``), the server from its own index.
- ``Rewrite``: a tree from a tree (the store's check against its declared fields,
  the server's INFIELDS).
- ``leaves(tree)``: the leaves, left to right (the server's vector ranges).
"""

from __future__ import annotations

import dataclasses

from .nodes import And, MatchAll, Node, Not, Optional, Or


class Walk:
    """Folds a tree into one value. A subclass says what each combinator makes of its
    children (``everything``, ``all_of``, ``any_of``, ``negate``, ``optional``) and
    answers ``leaf``."""

    __slots__ = ()

    def visit(self, node):
        if isinstance(node, And):
            return self.all_of(node)
        if isinstance(node, Or):
            return self.any_of(node)
        if isinstance(node, Not):
            return self.negate(node)
        if isinstance(node, Optional):
            return self.optional(node)
        if isinstance(node, MatchAll):
            return self.everything(node)
        if isinstance(node, Node):
            return self.leaf(node)
        raise TypeError(f"not a filter node: {node!r}")

    def leaf(self, node):
        raise NotImplementedError

    def everything(self, node):
        raise NotImplementedError

    def all_of(self, node):
        raise NotImplementedError

    def any_of(self, node):
        raise NotImplementedError

    def negate(self, node):
        raise NotImplementedError

    def optional(self, node):
        raise NotImplementedError


class MaskWalk(Walk):
    """Boolean masks over rows. ``leaf_mask(node, live)`` answers a leaf with a fresh
    array (the combinators update masks in place); rows outside ``live`` may be set
    in a leaf's mask, so the caller ANDs the result with ``live``."""

    __slots__ = ("live", "leaf_mask")  # one walker per evaluation: cheap to make

    def __init__(self, live, leaf_mask):
        self.live = live
        self.leaf_mask = leaf_mask

    def leaf(self, node):
        return self.leaf_mask(node, self.live)

    def everything(self, node):
        return self.live.copy()

    def optional(self, node):
        return self.live.copy()  # ~x changes ranking only: as a filter it passes every row

    def all_of(self, node):
        kids = node.children
        m = self.visit(kids[0])
        for c in kids[1:]:
            if not m.any():  # nothing left to intersect: skip the rest of the children
                break
            m &= self.visit(c)
        return m

    def any_of(self, node):
        kids = node.children
        m = self.visit(kids[0])
        for c in kids[1:]:
            m |= self.visit(c)
        return m

    def negate(self, node):
        return self.live & ~self.visit(node.child)


def masks(tree: Node, live, leaf_mask):
    """The mask of ``tree`` over the rows of ``live`` (not yet ANDed with ``live``)."""
    return MaskWalk(live, leaf_mask).visit(tree)


class Rewrite(Walk):
    """A tree from a tree: each combinator is rebuilt around its rewritten children
    (keeping its own type and attributes: a phrase stays a phrase); ``leaf`` rewrites a
    leaf and returns it as is unless overridden."""

    def leaf(self, node):
        return node

    def everything(self, node):
        return node

    def all_of(self, node):
        return dataclasses.replace(node, children=tuple(self.visit(c) for c in node.children))

    any_of = all_of

    def negate(self, node):
        return dataclasses.replace(node, child=self.visit(node.child))

    optional = negate


class _Leaves(Walk):
    __slots__ = ("found",)

    def __init__(self):
        self.found = []

    def leaf(self, node):
        self.found.append(node)

    def everything(self, node):
        pass

    def all_of(self, node):
        for c in node.children:
            self.visit(c)

    any_of = all_of

    def negate(self, node):
        self.visit(node.child)

    optional = negate


def leaves(tree: Node) -> list:
    """Every leaf under ``tree``, left to right (``MatchAll`` is not a leaf)."""
    walk = _Leaves()
    walk.visit(tree)
    return walk.found
