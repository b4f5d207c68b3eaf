"""Full-text features of the server (issue 16): Redis's text scorers with WITHSCORES,
EXPLAINSCORE, SCORER and ADDSCORES, query weights, stems, SLOP/INORDER and phrases,
SUMMARIZE/HIGHLIGHT, suggestions, FT.SPELLCHECK, synonyms, phonetic matching, FT.PROFILE,
FT.MGET and FT.DEL.

Each scenario has its expected answer written out (checked against Redis Stack 7.4 with
search 2.10 when they were written) and, when the reference Redis can be started here,
also runs on both servers, whose answers must be equal."""


import pytest

redis = pytest.importorskip("redis")

from server_helpers import scenario_registry  # noqa: E402


SCENARIOS, scenario = scenario_registry()  # nk and ref: tests/server/conftest.py


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_matches_reference":
        metafunc.parametrize("name", sorted(SCENARIOS))


def _small_index(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "t", "TEXT", "n", "NUMERIC")
    r.hset("a", mapping={"t": "foo foo foo bar"})
    r.hset("b", mapping={"n": "3"})
    r.hset("c", mapping={"t": "foo bar baz qux"})
    r.hset("d", mapping={"t": "foo"})


def _scored(r, query, scorer, *extra):
    return r.execute_command("FT.SEARCH", "idx", query, "WITHSCORES", "NOCONTENT", "SCORER",
                             scorer, *extra, "DIALECT", "2")


@scenario
def scorers(r):
    _small_index(r)
    out = {}
    for q in ["*", "foo", "foo|bar", "bar foo"]:
        for sc in ["TFIDF", "TFIDF.DOCNORM", "BM25", "BM25STD", "DISMAX", "DOCSCORE", "HAMMING"]:
            out[f"{q} {sc}"] = _scored(r, q, sc)
    return out


def test_scorers(nk):
    got = scorers(nk)
    assert got["* TFIDF"] == [4, "b", "inf", "c", "1", "d", "1", "a", "0.3333333333333333"]
    assert got["* BM25STD"] == [4, "b", "1.3750000093132255", "d", "1.1785714323727452",
                                "a", "0.8249999973922969", "c", "0.8249999973922969"]
    assert got["foo TFIDF.DOCNORM"] == [3, "d", "1", "a", "0.75", "c", "0.25"]
    assert got["foo BM25"] == [3, "a", "0.606060596573488", "c", "0.33898304194357526",
                               "d", "0.33898304194357526"]
    assert got["foo BM25STD"] == [3, "a", "0.504440315350049", "d", "0.4203669276686727",
                                  "c", "0.2942568474888843"]
    assert got["foo|bar TFIDF"] == [3, "c", "2", "a", "1.3333333333333333", "d", "1"]
    assert got["foo|bar DISMAX"] == [3, "a", "3", "c", "1", "d", "1"]
    assert got["bar foo DISMAX"] == [2, "a", "4", "c", "2"]
    assert got["bar foo BM25STD"] == [2, "a", "1.0762867375044816", "c", "0.8661032696433171"]
    assert got["foo DOCSCORE"] == [3, "a", "1", "c", "1", "d", "1"]
    assert got["foo HAMMING"] == [3, "a", "0", "c", "0", "d", "0"]


@scenario
def explain_score(r):
    _small_index(r)
    return [r.execute_command("FT.SEARCH", "idx", "foo", "WITHSCORES", "EXPLAINSCORE",
                              "NOCONTENT", "LIMIT", "0", "1", "DIALECT", "2"),
            r.execute_command("FT.SEARCH", "idx", "foo bar", "WITHSCORES", "EXPLAINSCORE",
                              "NOCONTENT", "SCORER", "BM25STD", "LIMIT", "0", "1",
                              "DIALECT", "2")]


def test_explain_score(nk):
    tfidf, bm25 = explain_score(nk)
    assert tfidf == [3, "a", ["1", [
        "Final TFIDF : words TFIDF 3.00 * document score 1.00 / norm 3 / slop 1",
        ["(TFIDF 3.00 = Weight 1.00 * TF 3 * IDF 1.00)"]]]]
    assert bm25[1] == "a"
    assert bm25[2][0] == "1.0762867375044816"
    final, ((agg, terms),) = bm25[2][1]
    assert final == "Final BM25 : words BM25 1.08 * document score 1.00"
    assert agg == "(Weight 1.00 * children BM25 1.08)"
    # the intersection visits its rarer word first, as Redis's does
    assert terms[0].startswith("bar: (0.57 = IDF 0.69 * (F 1.00 * (k1 1.2 + 1))")
    assert terms[1].startswith("foo: (0.50 = IDF 0.36 * (F 3.00")


def _weighted_index(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "title", "TEXT", "WEIGHT", "3", "body",
                      "TEXT", "n", "NUMERIC", "tag", "TAG", "kw", "TEXT", "NOSTEM")
    docs = {
        "d1": {"title": "Running foxes jump", "body": "the quick brown fox jumps over the "
               "lazy dog", "n": "1", "tag": "a", "kw": "running"},
        "d2": {"title": "Lazy dogs", "body": "dogs are lazy and foxes are quick; a fox runs",
               "n": "2", "tag": "b", "kw": "runs"},
        "d3": {"title": "Cats", "body": "cats sleep all day long, cats run at night", "n": "3",
               "tag": "a"},
        "d4": {"title": "The fox", "body": "fox fox fox", "n": "4", "tag": "c", "kw": "fox"},
        "d5": {"body": "an unrelated document about nothing in particular running", "n": "5"},
    }
    for k, v in docs.items():
        r.hset(k, mapping=v)


@scenario
def weights_stems_and_filters(r):
    _weighted_index(r)
    out = {}
    for q in ["fox", "running", "run*", "%fox%", "fox dog", "fox|cat", "@title:fox",
              "(fox)=>{$weight: 2.0}", "fox (dog)=>{$weight: 0.5}", "@n:[1 3] fox",
              "@tag:{a} fox", "fox -dog", "fox ~lazy", "@kw:running", '"lazy dogs"',
              '"brown quick"']:
        for sc in ["TFIDF", "BM25STD", "DISMAX"]:
            out[f"{q} {sc}"] = _scored(r, q, sc)
    for q, extra in [("fox dog", ["SLOP", "0"]), ("fox dog", ["SLOP", "3"]),
                     ("fox quick", ["INORDER"]), ("fox", ["INFIELDS", "1", "title"]),
                     ("foxes", ["VERBATIM"])]:
        out[f"{q} {extra}"] = _scored(r, q, "TFIDF", *extra)
    out["aggregate"] = r.execute_command("FT.AGGREGATE", "idx", "fox", "ADDSCORES", "SCORER",
                                         "BM25STD", "SORTBY", "2", "@__score", "DESC",
                                         "DIALECT", "2")
    return out


def test_weights_stems_and_filters(nk):
    got = weights_stems_and_filters(nk)
    # "fox" also finds "foxes" (indexed with its stem entry "+fox")
    assert got["fox TFIDF"] == [3, "d4", "1", "d2", "0.375", "d1", "0.1875"]
    assert got["fox BM25STD"] == [3, "d2", "1.340019745022356", "d1", "1.2229874510529797",
                                  "d4", "1.0390113717684617"]
    assert got["fox dog TFIDF"] == [2, "d2", "0.875", "d1", "0.3125"]
    assert got["fox|cat TFIDF"] == [4, "d3", "1.2", "d4", "1", "d1", "0.75", "d2", "0.75"]
    assert got["%fox% TFIDF"] == [3, "d4", "1", "d1", "0.5", "d2", "0.5"]
    # $weight weighs the query's own word, not its stem expansions
    assert got["(fox)=>{$weight: 2.0} TFIDF"] == [3, "d4", "2", "d2", "0.5", "d1", "0.25"]
    assert got["fox (dog)=>{$weight: 0.5} DISMAX"] == [2, "d2", "3", "d1", "1.5"]
    assert got["@tag:{a} fox TFIDF"] == [1, "d1", "1.25"]
    assert got["@n:[1 3] fox TFIDF"] == [2, "d1", "1", "d2", "1"]
    # negated and optional words are not expanded
    assert got["fox -dog TFIDF"] == [2, "d4", "1", "d2", "0.75"]
    assert got["fox ~lazy TFIDF"] == [3, "d2", "2.75", "d4", "1", "d1", "0.4166666666666667"]
    assert got["@kw:running TFIDF"] == [1, "d1", "2"]
    assert got['"lazy dogs" TFIDF'] == [1, "d2", "4"]
    assert got['"brown quick" TFIDF'] == [0]
    assert got["fox dog ['SLOP', '0']"] == [0]
    assert got["fox dog ['SLOP', '3']"] == [2, "d2", "0.875", "d1", "0.3125"]
    assert got["fox quick ['INORDER']"] == [2, "d2", "1.25", "d1", "0.625"]
    assert got["fox ['INFIELDS', '1', 'title']"] == [2, "d4", "1", "d1", "0.5"]
    assert got["foxes ['VERBATIM']"] == [2, "d1", "1.5", "d2", "0.5"]
    assert got["aggregate"][1:] == [["__score", "1.34001974502"], ["__score", "1.22298745105"],
                                    ["__score", "1.03901137177"]]


def test_scorer_errors_and_aggregate_default(nk):
    _small_index(nk)
    with pytest.raises(redis.ResponseError, match="Scoring function"):
        _scored(nk, "foo", "NOPE")
    rows = nk.execute_command("FT.AGGREGATE", "idx", "foo", "ADDSCORES", "SORTBY", "2",
                              "@__score", "DESC", "DIALECT", "2")
    assert [row[1] for row in rows[1:]] == ["1", "1", "1"]


LONG = ("The history of the fox is long. In ancient times, people told stories of the clever "
        "fox who outwitted hunters and dogs alike. Many years later, farmers still complain "
        "about foxes raiding their chicken coops, while children read books where a quick "
        "brown fox jumps over a lazy dog. Scientists study the red fox, the arctic fox and the "
        "fennec fox; each species adapted to its climate. In the end, the fox remains a symbol "
        "of cunning across cultures, from Aesop's fables to modern cartoons about dogs and "
        "foxes.")


@scenario
def summarize_highlight(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "title", "TEXT", "body", "TEXT", "n",
                      "NUMERIC")
    r.hset("d1", mapping={"title": "All about the fox", "body": LONG, "n": 1})
    r.hset("d2", mapping={"title": "Dogs", "body": "dogs bark at night and the fox runs away "
                          "quickly into the woods", "n": 2})
    out = {}
    for q, extra in [("fox dogs", ["SUMMARIZE", "FRAGS", "2", "LEN", "8", "SEPARATOR", " | "]),
                     ("fox", ["SUMMARIZE", "FIELDS", "1", "body", "HIGHLIGHT", "TAGS", "[", "]"]),
                     ("clever|cartoons", ["SUMMARIZE", "LEN", "5", "HIGHLIGHT"]),
                     ("chicken", ["SUMMARIZE", "FRAGS", "1"]),
                     ('"red fox"', ["HIGHLIGHT", "FIELDS", "1", "body"])]:
        reply = r.execute_command("FT.SEARCH", "idx", q, *extra, "DIALECT", "2")
        # field order aside (Redis lists processed fields first)
        out[f"{q} {extra}"] = [reply[0]] + [
            (reply[i], dict(zip(reply[i + 1][::2], reply[i + 1][1::2])))
            for i in range(1, len(reply), 2)]
    return out


def test_summarize_highlight(nk):
    got = summarize_highlight(nk)
    d1 = dict(got["fox dogs ['SUMMARIZE', 'FRAGS', '2', 'LEN', '8', 'SEPARATOR', ' | ']"][1:])
    assert d1["d1"]["body"] == ("fox jumps over a lazy dog. Scientists study the red fox, the "
                                "arctic fox and the fennec fox; each species adapted to its "
                                "climate. In the end, the fox | modern cartoons about dogs and "
                                "foxes. | ")
    assert d1["d1"]["title"] == "about the fox | "
    assert d1["d2"]["title"] == "Dogs | "
    d2 = dict(got["fox ['SUMMARIZE', 'FIELDS', '1', 'body', 'HIGHLIGHT', 'TAGS', '[', ']']"][1:])
    assert d2["d2"]["body"] == "bark at night and the [fox] runs away quickly into the... "
    assert d2["d1"]["title"] == "All about the fox"  # not listed in FIELDS: untouched
    d3 = dict(got["clever|cartoons ['SUMMARIZE', 'LEN', '5', 'HIGHLIGHT']"][1:])
    assert d3["d1"]["body"] == ("of the <b>clever</b> fox who... to modern <b>cartoons</b> "
                                "about dogs... ")
    assert d3["d1"]["n"] == "1"
    d4 = dict(got["chicken ['SUMMARIZE', 'FRAGS', '1']"][1:])
    assert d4["d1"]["title"] == "All about the"  # no match: the field's head, whole words
    d5 = dict(got["\"red fox\" ['HIGHLIGHT', 'FIELDS', '1', 'body']"][1:])
    assert "study the <b>red</b> <b>fox</b>, the arctic <b>fox</b>" in d5["d1"]["body"]


def test_summarize_refused_without_offsets(nk):
    nk.flushall()
    nk.execute_command("FT.CREATE", "idx", "NOOFFSETS", "SCHEMA", "t", "TEXT")
    nk.hset("k", "t", "foo bar")
    with pytest.raises(redis.ResponseError, match="NOOFFSETS"):
        nk.execute_command("FT.SEARCH", "idx", "foo", "SUMMARIZE")


@scenario
def suggestions(r):
    r.flushall()
    out = [r.execute_command("FT.SUGADD", "ac", w, s) for w, s in
           [("hello", 1), ("help", 3), ("helmet", 2), ("hello world", 1.5), ("world", 1)]]
    out.append(r.execute_command("FT.SUGADD", "ac", "help", 2, "INCR", "PAYLOAD", "p1"))
    out.append(r.execute_command("FT.SUGLEN", "ac"))
    out.append(r.execute_command("FT.SUGGET", "ac", "hel"))
    out.append(r.execute_command("FT.SUGGET", "ac", "hel", "WITHSCORES", "WITHPAYLOADS"))
    out.append(r.execute_command("FT.SUGGET", "ac", "hepl", "FUZZY", "WITHSCORES", "MAX", "2"))
    out.append(r.execute_command("FT.SUGGET", "ac", "help", "WITHSCORES"))
    out.append(r.execute_command("FT.SUGDEL", "ac", "help"))
    out.append(r.execute_command("FT.SUGDEL", "ac", "help"))
    out.append(r.execute_command("FT.SUGLEN", "ac"))
    out.append(r.execute_command("FT.SUGGET", "nosuch", "he"))
    out.append(r.execute_command("FT.SUGLEN", "nosuch"))
    out.append(r.type("ac"))
    return out


def test_suggestions(nk):
    got = suggestions(nk)
    assert got[:7] == [1, 2, 3, 4, 5, 5, 5]
    assert got[7] == ["help", "helmet", "hello", "hello world"]
    assert got[8] == ["help", "3.535533905029297", "p1", "helmet", "1", None,
                      "hello", "0.5773502588272095", None, "hello world", "0.5", None]
    # Redis's "exact match" test looks at the first half of the word only
    assert got[9] == ["help", "290630304", "helmet", "0.15627172589302063"]
    assert got[10] == ["help", "2147483648"]
    assert got[11:] == [1, 0, 4, None, 0, "trietype0"]


def test_suggestions_survive_a_restart():
    from nearkit.server.fulltext.suggest import SugDict
    from nearkit.server.persist import decode_record, encode_record

    d = SugDict()
    d.add(b"hello", 2.0, False, b"pay")
    d.add(b"h\xc3\xa9llo", 1.0, False, None)
    back, exp = decode_record(encode_record(d, 1234))
    assert exp == 1234 and back.entries == d.entries


@scenario
def spellcheck(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "f1", "TEXT", "f2", "TEXT")
    r.hset("doc1", mapping={"f1": "some valid content", "f2": "this is sample text"})
    r.hset("doc2", mapping={"f1": "very important", "f2": "lorem ipsum"})
    r.execute_command("FT.DICTADD", "dict", "lore", "lorem", "lorm")
    return [r.execute_command("FT.SPELLCHECK", "idx", "impornant contnt is valid"),
            r.execute_command("FT.SPELLCHECK", "idx", "vlis"),
            r.execute_command("FT.SPELLCHECK", "idx", "vlis", "DISTANCE", "2"),
            r.execute_command("FT.SPELLCHECK", "idx", "lorm", "TERMS", "INCLUDE", "dict"),
            r.execute_command("FT.SPELLCHECK", "idx", "lorm", "TERMS", "EXCLUDE", "dict")]


def test_spellcheck(nk):
    got = spellcheck(nk)
    assert got[0] == [["TERM", "impornant", [["0.5", "important"]]],
                      ["TERM", "contnt", [["0.5", "content"]]], ["TERM", "is", []]]
    assert got[1] == [["TERM", "vlis", []]]
    assert got[2] == [["TERM", "vlis", [["0.5", "valid"]]]]
    assert got[3] == [["TERM", "lorm", [["0.5", "lorem"], ["0", "lore"], ["0", "lorm"]]]]
    assert got[4] == []


@scenario
def synonyms(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "title", "TEXT", "body", "TEXT")
    out = [r.execute_command("FT.SYNUPDATE", "idx", "id1", "SKIPINITIALSCAN", "boy", "child",
                             "offspring")]
    r.hset("doc1", mapping={"title": "he is a baby", "body": "this is a test"})
    r.execute_command("FT.SYNUPDATE", "idx", "id1", "SKIPINITIALSCAN", "baby")
    r.hset("doc2", mapping={"title": "he is another baby", "body": "another test"})
    r.hset("doc3", mapping={"title": "the boy", "body": "offspring"})
    out.append(r.execute_command("FT.SEARCH", "idx", "child", "NOCONTENT", "WITHSCORES"))
    r.execute_command("FT.SYNUPDATE", "idx", "id2", "SKIPINITIALSCAN", "tree", "wood")
    dump = r.execute_command("FT.SYNDUMP", "idx")
    out.append(dict(zip(dump[::2], dump[1::2])))
    return out


def test_synonyms(nk):
    got = synonyms(nk)
    assert got[0] == "OK"
    # doc1 was indexed before "baby" joined the group: only doc2 and doc3 match
    assert got[1] == [2, "doc3", "1", "doc2", "0.5"]
    assert got[2] == {"boy": ["id1"], "child": ["id1"], "offspring": ["id1"], "baby": ["id1"],
                      "tree": ["id2"], "wood": ["id2"]}


@scenario
def phonetic(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "name", "TEXT", "PHONETIC", "dm:en",
                      "plain", "TEXT")
    r.hset("doc1", mapping={"name": "Jon", "plain": "Jon"})
    r.hset("doc2", mapping={"name": "John", "plain": "John"})
    r.hset("doc3", mapping={"name": "Smith", "plain": "Smyth"})
    return [r.execute_command("FT.SEARCH", "idx", q, "NOCONTENT", "DIALECT", "2")
            for q in ["Jon", "@name:Jon", "@plain:Jon", "@name:Smyth", "@plain:Smith"]]


def test_synupdate_rescans(nk):
    nk.flushall()
    nk.execute_command("FT.CREATE", "idx", "SCHEMA", "title", "TEXT")
    nk.hset("doc1", "title", "he is a baby")
    nk.execute_command("FT.SYNUPDATE", "idx", "id1", "child", "baby")  # no SKIPINITIALSCAN
    assert nk.execute_command("FT.SEARCH", "idx", "child", "NOCONTENT") == [1, "doc1"]


def test_phonetic(nk):
    import doublemetaphone  # noqa: F401  (in the test extra: this must not skip in CI)

    got = phonetic(nk)
    assert got[0][0] == 2 and sorted(got[0][1:]) == ["doc1", "doc2"]
    assert got[1][0] == 2
    assert got[2] == [1, "doc1"]
    assert got[3] == [1, "doc3"]
    assert got[4] == [0]
    with pytest.raises(redis.ResponseError, match="Matcher Format"):
        nk.execute_command("FT.CREATE", "bad", "SCHEMA", "x", "TEXT", "PHONETIC", "xx")


@scenario
def profile(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "t", "TEXT")
    for k, v in [("1", "hello"), ("2", "world"), ("3", "help"), ("4", "helowa"), ("5", "hell")]:
        r.hset(k, "t", v)
    return [r.execute_command("FT.PROFILE", "idx", "SEARCH", "QUERY", "hello|world",
                              "NOCONTENT", "DIALECT", "2"),
            r.execute_command("FT.PROFILE", "idx", "SEARCH", "LIMITED", "QUERY", "%hell% hel*",
                              "NOCONTENT", "DIALECT", "2")]


def test_profile(nk):
    first, limited = profile(nk)
    assert first[0] == [2, "1", "2"]
    assert first[1][:4] == [["Total profile time", "0"], ["Parsing time", "0"],
                            ["Pipeline creation time", "0"], ["Warning"]]
    assert first[1][4] == ["Iterators profile", [
        "Type", "UNION", "Query type", "UNION", "Time", "0", "Counter", 2, "Child iterators",
        ["Type", "TEXT", "Term", "hello", "Time", "0", "Counter", 1, "Size", 1],
        ["Type", "TEXT", "Term", "world", "Time", "0", "Counter", 1, "Size", 1]]]
    assert first[1][5] == ["Result processors profile",
                           ["Type", "Index", "Time", "0", "Counter", 2],
                           ["Type", "Scorer", "Time", "0", "Counter", 2],
                           ["Type", "Sorter", "Time", "0", "Counter", 2]]
    it = limited[1][4][1]
    assert it[:2] == ["Type", "INTERSECT"]
    assert it[7][:4] == ["Type", "UNION", "Query type", "FUZZY - hell"]
    assert it[7][9] == "The number of iterators in the union is 3"
    assert it[8][9] == "The number of iterators in the union is 4"


@scenario
def mget_and_del(r):
    r.flushall()
    r.execute_command("FT.CREATE", "idx", "SCHEMA", "f1", "TEXT")
    r.hset("doc1", mapping={"f1": "one", "x": "y"})
    return [r.execute_command("FT.MGET", "idx", "doc1", "nosuch"),
            r.execute_command("FT.DEL", "idx", "doc1"),
            r.execute_command("FT.DEL", "idx", "doc1"),
            r.exists("doc1")]


def test_mget_and_del(nk):
    assert mget_and_del(nk) == [[["f1", "one", "x", "y"], None], 1, 0, 0]


def test_matches_reference(nk, ref, name):
    assert SCENARIOS[name](nk) == SCENARIOS[name](ref)
