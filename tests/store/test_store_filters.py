"""Filters on a store's field indexes: the check against declared fields (``bind``) and
masks over slots agreeing with a one-document-at-a-time reference."""

import numpy as np
import pytest

from nearkit.query import parse_filter
from nearkit.query.nodes import FilterError, Or, TextTerm
from nearkit.query.parse_dict import from_python
from nearkit.store.fields import FieldIndex
from nearkit.store.schema import bind
from query_reference import matches, random_docs

SCHEMA = {"genre": "tag", "year": "numeric", "title": "text", "body": "text"}


def test_bind_checks_fields_and_types():
    with pytest.raises(FilterError, match="unknown field 'rating'"):
        bind(parse_filter("@rating:[1 2]"), SCHEMA)
    with pytest.raises(FilterError, match="is numeric, not tag"):
        bind(parse_filter("@year:{x}"), SCHEMA)
    with pytest.raises(FilterError, match="is tag, not text"):
        bind(parse_filter("@genre:drama"), SCHEMA)
    with pytest.raises(FilterError, match="not numeric"):
        bind(parse_filter("@genre:[1 2]"), SCHEMA)
    with pytest.raises(FilterError, match="needs a text field"):
        bind(parse_filter("word"), {"genre": "tag"})
    # a Python-form list on a text field means "any of these words"
    assert bind(from_python({"title": ["War", "peace"]}), SCHEMA) == Or(
        (TextTerm("title", "war"), TextTerm("title", "peace")))


QUERIES = [
    "*", "@genre:{drama}", "@genre:{DRAMA|noir}", r"@genre:{sci\ fi}", "@genre:{ho*}",
    "@year:[1990 2000]", "@year:[(1990 (2000]", "@year:[-inf 1960]", "@title:war", "@title:war*",
    "@title:(war peace)", "@title:(war | love)", "@title:(war -peace)", "war", "space*",
    "-@genre:{drama}", "@genre:{drama} @year:[1990 (2000] -@title:war",
    "@genre:{comedy} | @year:[2010 +inf] @title:time", "~@title:war @genre:{noir}",
    "-(@genre:{drama} | @title:love)",
]


@pytest.mark.parametrize("query", QUERIES)
def test_mask_agrees_with_single_document_evaluation(query):
    docs = random_docs(400, seed=7)
    fi = FieldIndex(SCHEMA)
    fi.reserve(len(docs))
    for i, d in enumerate(docs):
        fi.insert(i, fi.extract(d))
    live = np.ones(len(docs), bool)
    live[::7] = False  # dead slots never match
    tree = fi.bind(parse_filter(query))
    got = fi.mask(tree, live)
    want = np.array([live[i] and matches(tree, d, fi.schema) for i, d in enumerate(docs)])
    assert (got == want).all()
    if query not in ("*",):
        assert 0 < want.sum() < live.sum() or query.startswith("~")


def test_field_index_removal_and_payload_validation():
    fi = FieldIndex(SCHEMA)
    fi.reserve(3)
    recs = [fi.extract({"genre": "a,b", "year": "1999", "title": "Hello world"}),
            fi.extract({"genre": ["B"], "year": 5})]
    for i, r in enumerate(recs):
        fi.insert(i, r)
    live = np.array([True, True, False])
    assert fi.mask(fi.bind(parse_filter("@genre:{b}")), live).tolist() == [True, True, False]
    fi.remove(0, recs[0])
    assert fi.mask(fi.bind(parse_filter("@genre:{b}")), live).tolist() == [False, True, False]
    assert fi.mask(fi.bind(parse_filter("@year:[1 2000]")), live).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="payload field 'year': invalid numeric value 'abc'"):
        fi.extract({"year": "abc"})
    with pytest.raises(TypeError, match="payload must be a dict"):
        fi.extract(["x"])
