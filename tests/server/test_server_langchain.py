"""LangChain's RedisVectorStore (langchain-redis) and LlamaIndex's RedisVectorStore against
nearkit's server, with deterministic fake embeddings (no model download).

langchain-redis is in the test extra: under CI (``CI`` set) its test must run, not skip.
LlamaIndex's Redis store cannot share the test extra's environment on Python 3.11: every
llama-index-vector-stores-redis release needs numpy<2 there (through redisvl 0.4 or
llama-index-core 0.11), and the releases since 0.5 also redis-py<6 and redisvl<0.5, which
langchain-redis>=0.2.1 refuses. So it has its own extra, ``llamaindex``, which .ci/run
installs into a second venv and runs this file's LlamaIndex test there with
NEARKIT_REQUIRE_LLAMAINDEX=1 (then it must run, not skip)."""

import importlib
import os

import pytest

from server_helpers import ThreadServer

TEXTS = ["the cat sat on the mat", "dogs chase cats", "a red bicycle in the rain",
         "quantum physics for poets", "how to bake sourdough bread", "cats and dogs are pets"]
META = [{"genre": "pets" if "cat" in t or "dog" in t else "other", "year": 1990 + i}
        for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def server():
    s = ThreadServer()
    yield s
    s.stop()


def _import(module: str, required: bool):
    if required:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def test_langchain_vector_store(server):
    _import("langchain_redis", bool(os.environ.get("CI")))
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_redis import RedisConfig, RedisVectorStore
    from redisvl.query.filter import Num, Tag

    config = RedisConfig(index_name="lc", redis_url=f"redis://127.0.0.1:{server.port}",
                         metadata_schema=[{"name": "genre", "type": "tag"},
                                          {"name": "year", "type": "numeric"}])
    store = RedisVectorStore(DeterministicFakeEmbedding(size=16), config=config)
    ids = store.add_texts(TEXTS, metadatas=META)
    assert len(ids) == len(TEXTS)

    # The fake embedding maps a text to one fixed vector: its own document comes first.
    for i in (0, 3, 5):
        docs = store.similarity_search(TEXTS[i], k=3)
        assert docs[0].page_content == TEXTS[i] and len(docs) == 3
    scored = store.similarity_search_with_score(TEXTS[2], k=2)
    assert scored[0][0].page_content == TEXTS[2] and abs(scored[0][1]) < 1e-5
    assert scored[1][1] > scored[0][1]

    pets = store.similarity_search(TEXTS[4], k=6, filter=Tag("genre") == "pets")
    assert {d.page_content for d in pets} == {t for t, m in zip(TEXTS, META) if m["genre"] == "pets"}
    recent = store.similarity_search(TEXTS[0], k=6, filter=Num("year") >= 1993)
    assert {d.page_content for d in recent} == set(TEXTS[3:])

    mmr = store.max_marginal_relevance_search(TEXTS[1], k=3, fetch_k=6)
    assert mmr[0].page_content == TEXTS[1] and len({d.page_content for d in mmr}) == 3

    retrieved = store.as_retriever(search_kwargs={"k": 2}).invoke(TEXTS[3])
    assert retrieved[0].page_content == TEXTS[3]

    assert store.delete([ids[3]])
    after = store.similarity_search(TEXTS[3], k=6)
    assert TEXTS[3] not in {d.page_content for d in after} and len(after) == 5


def test_llamaindex_vector_store(server):
    _import("llama_index.vector_stores.redis", os.environ.get("NEARKIT_REQUIRE_LLAMAINDEX") == "1")
    import inspect

    import redis
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import (
        MetadataFilter, MetadataFilters, VectorStoreQuery)
    from llama_index.vector_stores.redis import RedisVectorStore

    def embed(text):  # deterministic, distinct per text, no model
        import hashlib

        import numpy as np
        seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
        v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
        return (v / np.linalg.norm(v)).tolist()

    url = f"redis://127.0.0.1:{server.port}"
    if "schema" in inspect.signature(RedisVectorStore.__init__).parameters:
        from redisvl.schema import IndexSchema

        schema = IndexSchema.from_dict({
            "index": {"name": "li", "prefix": "li_doc"},
            "fields": [{"name": "id", "type": "tag"}, {"name": "doc_id", "type": "tag"},
                       {"name": "text", "type": "text"}, {"name": "genre", "type": "tag"},
                       {"name": "vector", "type": "vector",
                        "attrs": {"dims": 8, "algorithm": "flat", "distance_metric": "cosine"}}]})
        store = RedisVectorStore(schema=schema, redis_client=redis.Redis.from_url(url),
                                 overwrite=True)
    else:  # the 0.1 API
        store = RedisVectorStore(index_name="li", index_prefix="li_doc", redis_url=url,
                                 metadata_fields=["genre"], overwrite=True,
                                 index_args={"algorithm": "FLAT", "dims": 8,
                                             "distance_metric": "COSINE"})
    nodes = [TextNode(text=t, id_=f"n{i}", embedding=embed(t), metadata={"genre": m["genre"]},
                      relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc{i}")})
             for i, (t, m) in enumerate(zip(TEXTS, META))]
    assert len(store.add(nodes)) == len(TEXTS)

    res = store.query(VectorStoreQuery(query_embedding=embed(TEXTS[2]), similarity_top_k=3))
    assert res.nodes[0].get_content() == TEXTS[2] and len(res.nodes) == 3
    assert res.similarities[0] == pytest.approx(1.0, abs=1e-5)

    only_pets = store.query(VectorStoreQuery(
        query_embedding=embed(TEXTS[4]), similarity_top_k=6,
        filters=MetadataFilters(filters=[MetadataFilter(key="genre", value="pets")])))
    assert {n.get_content() for n in only_pets.nodes} == {
        t for t, m in zip(TEXTS, META) if m["genre"] == "pets"}

    store.delete("doc2")
    res = store.query(VectorStoreQuery(query_embedding=embed(TEXTS[2]), similarity_top_k=6))
    assert TEXTS[2] not in {n.get_content() for n in res.nodes}
