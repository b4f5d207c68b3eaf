"""The one walk over a filter tree (``nearkit.query.evaluate``).

- over random trees and documents, masks equal a plain one-document reference
  (``tests/query_reference.py``), both for the generic walk alone and for the store's
  field indexes as its leaf hook;
- a new leaf type is its class plus one leaf in the evaluator that answers it:
  parsing from dicts, binding, combining and collecting need no edit;
- ``Rewrite`` keeps each combinator's type, ``leaves`` goes left to right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nearkit.query import to_filter
from nearkit.query.evaluate import Rewrite, leaves, masks
from nearkit.query.nodes import (
    And, FilterError, Geo, MatchAll, Node, Not, Numeric, Optional, Or, Phrase, Tag, TextPattern,
    TextTerm, VectorRange,
)
from nearkit.query.parse_dict import from_python
from nearkit.store.fields import FieldIndex
from nearkit.store.schema import bind
from query_reference import GENRES, WORDS, matches, random_docs

SCHEMA = {"genre": "tag", "year": "numeric", "title": "text", "body": "text", "place": "geo"}
DOCS = random_docs(300, seed=11, geo=True)
LIVE = np.ones(len(DOCS), bool)
LIVE[::5] = False  # dead slots never match


def _field_index(cls=FieldIndex):
    fi = cls(SCHEMA)
    fi.reserve(len(DOCS))
    for i, d in enumerate(DOCS):
        fi.insert(i, fi.extract(d))
    return fi


FI = _field_index()

# -- random trees ---------------------------------------------------------------------------

_years = st.one_of(st.integers(1940, 2030).map(float), st.sampled_from([-np.inf, np.inf]))
_word = st.sampled_from(WORDS)
_text_field = st.sampled_from([None, "title", "body"])

LEAVES = st.one_of(
    st.builds(lambda vs, ps: Tag("genre", tuple(vs), tuple(ps)),
              st.lists(st.sampled_from(GENRES + ["DRAMA", "western"]), max_size=3),
              st.lists(st.sampled_from(["dr", "co", "s", "x"]), max_size=2))
    .filter(lambda t: t.values or t.prefixes),
    st.builds(Numeric, st.just("year"), _years, _years, st.booleans(), st.booleans()),
    st.builds(TextTerm, _text_field, st.one_of(_word, _word.map(lambda w: w[:3])), st.booleans()),
    st.builds(lambda f, w, k, d: TextPattern(f, w, k, d if k == "fuzzy" else 0), _text_field,
              st.one_of(_word, _word.map(lambda w: w[1:4])),
              st.sampled_from(["fuzzy", "contains", "suffix", "stem"]), st.integers(1, 2)),
    st.builds(Geo, st.just("place"), st.floats(-5, 5), st.floats(40, 50), st.floats(0, 600),
              st.sampled_from(["km", "mi"])),
    st.just(MatchAll()),
)


def _combine(kids):
    many = st.lists(kids, min_size=2, max_size=4).map(tuple)
    return st.one_of(many.map(And), many.map(Or), many.map(lambda c: Phrase(c, exact=True)),
                     kids.map(Not), kids.map(Optional))


TREES = st.recursive(LEAVES, _combine, max_leaves=12)


def _reference(tree, live=LIVE) -> np.ndarray:
    return np.array([bool(live[i]) and matches(tree, d, FI.schema) for i, d in enumerate(DOCS)])


@settings(max_examples=300, deadline=None)
@given(TREES)
def test_the_walk_combines_leaves_as_the_reference_does(tree):
    """The generic walk with a leaf hook that is the reference itself: only the
    combinators (And/Phrase/Or/Not/Optional/MatchAll) are under test."""
    def leaf(node, live):
        return _reference(node, np.ones_like(live))

    got = masks(tree, LIVE, leaf) & LIVE
    assert (got == _reference(tree)).all(), str(tree)


@settings(max_examples=300, deadline=None)
@given(TREES)
def test_field_index_masks_equal_the_reference(tree):
    """The store's evaluator: the walk with the field indexes as its leaf hook."""
    bound = bind(tree, FI.schema)
    assert (FI.mask(bound, LIVE) == _reference(bound)).all(), str(tree)


def test_random_trees_are_not_trivial():
    # the property tests above would pass vacuously if every tree matched all or nothing
    rng_trees = [And((Tag("genre", ("drama",)), Numeric("year", 1990, 2000))),
                 Or((TextTerm("title", "war"), Not(TextPattern(None, "pace", "fuzzy", 1)))),
                 Geo("place", 0.0, 45.0, 300.0, "km")]
    for tree in rng_trees:
        want = _reference(bind(tree, FI.schema))
        assert 0 < want.sum() < LIVE.sum(), str(tree)


# -- a new leaf type: its class plus one evaluator leaf --------------------------------------

@dataclass(frozen=True)
class Even(Node):
    """A leaf no module knows: the numeric field holds an even integer."""

    field_type: ClassVar[str | None] = "numeric"
    field: str

    def __str__(self):
        return f"even(@{self.field})"


class EvenFieldIndex(FieldIndex):
    """The one edit on the evaluating side: a leaf hook entry for ``Even``."""

    def _even_mask(self, node, n):
        return np.fmod(self._numeric[node.field][:n], 2) == 0

    _LEAF_MASKS = {**FieldIndex._LEAF_MASKS, Even: _even_mask}


def test_a_new_leaf_needs_only_its_class_and_one_leaf_mask():
    fi = _field_index(EvenFieldIndex)
    years = np.array([d.get("year", np.nan) for d in DOCS])
    even = np.fmod(years, 2) == 0
    drama = np.array(["drama" in d.get("genre", "") for d in DOCS])
    war = np.array(["war" in d.get("title", "").split() for d in DOCS])
    cases = [
        (Even("year"), even),
        (Not(Even("year")), ~even),
        (Optional(Even("year")), np.ones(len(DOCS), bool)),
        (And((Even("year"), Tag("genre", ("drama",)))), even & drama),
        (Phrase((Even("year"), Tag("genre", ("drama",))), exact=True), even & drama),
        (Or((Even("year"), Tag("genre", ("drama",)))), even | drama),
        # the dict front end passes nodes through: no edit there either
        (from_python({"$or": [Even("year"), {"title": ["war"]}]}), even | war),
        (to_filter(Even("year")), even),
    ]
    for tree, want in cases:
        bound = bind(tree, fi.schema)  # the schema check reads the leaf's field_type
        assert (fi.mask(bound, LIVE) == (want & LIVE)).all(), str(tree)
    assert 0 < (even & LIVE).sum() < LIVE.sum()
    # the schema check refuses it on a field of another type, or an unknown field
    with pytest.raises(FilterError, match="field 'genre' is tag, not numeric: even"):
        bind(Even("genre"), fi.schema)
    with pytest.raises(FilterError, match="unknown field 'rating'"):
        bind(Not(Even("rating")), fi.schema)
    # collecting leaves (the server's vector ranges) sees it like any leaf
    assert leaves(And((Even("year"), Not(VectorRange("v", 1.0, "b"))))) == [
        Even("year"), VectorRange("v", 1.0, "b")]
    # an evaluator without the leaf says so rather than guessing
    with pytest.raises(TypeError, match="not a filter node"):
        FI.mask(Even("year"), LIVE)


def test_the_server_evaluates_the_new_leaf_with_no_edit_either():
    """The server's leaf hook hands field leaves to the field index after checking the
    field's type against the leaf's ``field_type``: no server table names leaf types."""
    from types import SimpleNamespace

    pytest.importorskip("hiredis")  # the server's modules need the server extra
    from nearkit.server.ft.select import eval_mask

    fi = _field_index(EvenFieldIndex)
    fields = {"year": SimpleNamespace(type="NUMERIC", flags=(), alias="year"),
              "genre": SimpleNamespace(type="TAG", flags=(), alias="genre")}
    idx = SimpleNamespace(fi=fi, fields=list(fields.values()), field=fields.get)
    years = np.array([d.get("year", np.nan) for d in DOCS])
    even = (np.fmod(years, 2) == 0) & LIVE
    assert (eval_mask(idx, Even("year"), LIVE, {}) == even).all()
    assert (eval_mask(idx, Not(Even("year")), LIVE, {}) == (LIVE & ~even)).all()
    # on a field of another type Redis answers no match, not an error
    assert not eval_mask(idx, Even("genre"), LIVE, {}).any()


# -- Rewrite and leaves ---------------------------------------------------------------------

def test_rewrite_keeps_each_combinator_and_its_attributes():
    tree = Or((Phrase((TextTerm("t", "a"), TextTerm("t", "b")), exact=True),
               Not(Optional(Tag("g", ("x",))))), weight=2.0)

    class Upper(Rewrite):
        def leaf(self, node):
            return TextTerm(node.field, node.word.upper()) if isinstance(node, TextTerm) else node

    out = Upper().visit(tree)
    assert type(out.children[0]) is Phrase and out.children[0].exact and out.weight == 2.0
    assert [n.word for n in leaves(out) if isinstance(n, TextTerm)] == ["A", "B"]
    assert out.children[1] == Not(Optional(Tag("g", ("x",))))
    assert Rewrite().visit(tree) == tree


def test_leaves_go_left_to_right_and_skip_match_all():
    a, b, c = TextTerm(None, "a"), Tag("g", ("b",)), Numeric("n", 1, 2)
    assert leaves(Or((And((a, MatchAll())), Not(Optional(b)), c))) == [a, b, c]
    assert leaves(MatchAll()) == []
    with pytest.raises(TypeError, match="not a filter node"):
        leaves(And((a, "b")))
