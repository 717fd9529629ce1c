"""Sparse vectors and hybrid search against the `strata` binary: qdrant-client's sparse calls
checked against a brute-force reference (dot product, Qdrant's IDF), hybrid fusion against a
reference RRF, and LangChain's / LlamaIndex's sparse and hybrid modes with their code unchanged
(deterministic fake sparse encoders: no model downloads)."""

import hashlib
import math
import random

import httpx
import pytest
from qdrant_client import QdrantClient, models

from test_frameworks import bag_of_words, corpus, llama_documents, lc_embeddings, llama_settings  # noqa: F401
from test_query import reference_rrf

DIM = 64


def word_id(word):
    return int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % 100_000


def sparse_words(text):
    """A bag of words as a sparse vector: one dimension per word, its count as the value."""
    counts = {}
    for w in text.lower().replace(":", " ").split():
        counts[word_id(w)] = counts.get(word_id(w), 0) + 1
    idx = sorted(counts)
    return idx, [float(counts[i]) for i in idx]


def sv(pair):
    return models.SparseVector(indices=pair[0], values=pair[1])


def random_sparse(rng, dims=40, n=(1, 6)):
    k = rng.randint(*n)
    idx = sorted(rng.sample(range(dims), k))
    return idx, [round(rng.uniform(0.1, 3.0), 3) for _ in idx]


def reference(points, q, idf=False, keep=lambda pid: True):
    """Qdrant's sparse scoring written out: Σ q_i · v_i over shared dims (× idf(i) for `idf`),
    only points sharing a dimension with the query."""
    n = len(points)
    weight = {}
    for i in q[0]:
        df = sum(1 for v in points.values() if i in v[0])
        weight[i] = math.log((n - df + 0.5) / (df + 0.5) + 1) if idf else 1.0
    hits = []
    for pid, (idx, vals) in points.items():
        if not keep(pid):
            continue
        d = dict(zip(idx, vals))
        shared = [i for i in q[0] if i in d]
        if shared:
            qd = dict(zip(*q))
            hits.append((pid, sum(qd[i] * weight[i] * d[i] for i in shared)))
    return sorted(hits, key=lambda h: (-h[1], h[0]))


@pytest.mark.parametrize("modifier", [None, models.Modifier.IDF])
def test_sparse_search_matches_the_reference(server, modifier):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    name = f"sp_{modifier or 'none'}".lower().replace(".", "_")
    client.create_collection(name, vectors_config={"d": models.VectorParams(size=2, distance=models.Distance.DOT)},
                             sparse_vectors_config={"s": models.SparseVectorParams(modifier=modifier)})
    info = client.get_collection(name)
    assert "s" in info.config.params.sparse_vectors
    assert info.config.params.sparse_vectors["s"].modifier == modifier
    rng = random.Random(7)
    points = {}
    batch = []
    for i in range(300):
        vec = {"d": [float(i), 1.0]}
        if i % 9 != 4:
            points[i] = random_sparse(rng)
            vec["s"] = models.SparseVector(indices=points[i][0], values=points[i][1])
        batch.append(models.PointStruct(id=i, vector=vec, payload={"even": i % 2 == 0}))
    client.upsert(name, batch[:200])
    client.upsert(name, batch[200:])
    client.delete(name, points_selector=models.PointIdsList(points=[1, 2]))
    points.pop(1, None)
    points.pop(2, None)
    for qn in range(5):
        q = random_sparse(rng, n=(2, 5))
        for filt in [None, models.Filter(must=[models.FieldCondition(key="even", match=models.MatchValue(value=True))])]:
            got = client.query_points(name, query=models.SparseVector(indices=q[0], values=q[1]), using="s",
                                      query_filter=filt, limit=10).points
            want = reference(points, q, idf=modifier is not None,
                             keep=(lambda pid: pid % 2 == 0) if filt else (lambda pid: True))[:10]
            assert [round(p.score, 3) for p in got] == [round(s, 3) for _, s in want], (qn, filt)
    # Retrieved points carry their sparse vectors in Qdrant's shape.
    rec = client.retrieve(name, ids=[3], with_vectors=True)[0]
    assert rec.vector["s"].indices == points[3][0]
    assert [round(v, 3) for v in rec.vector["s"].values] == points[3][1]
    # Legacy search with a named sparse vector answers the same as query.
    q = random_sparse(rng)
    legacy = httpx.post(f"{server.http}/collections/{name}/points/search", headers={"api-key": server.admin_token},
                        json={"vector": {"name": "s", "vector": {"indices": q[0], "values": q[1]}}, "limit": 5}).json()
    assert [p["id"] for p in legacy["result"]] == [
        p.id for p in client.query_points(name, query=models.SparseVector(indices=q[0], values=q[1]), using="s", limit=5).points]


def test_hybrid_rrf_matches_a_reference_rrf(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("hy", vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
                             sparse_vectors_config={"sparse": models.SparseVectorParams()})
    texts = corpus(60)
    client.upsert("hy", [models.PointStruct(id=i, vector={"dense": bag_of_words(t),
                                                          "sparse": sv(sparse_words(t))},
                                            payload={"text": t}) for i, t in enumerate(texts)])
    query = texts[7]
    dense = client.query_points("hy", query=bag_of_words(query), using="dense", limit=20).points
    sparse = client.query_points("hy", query=sv(sparse_words(query)), using="sparse", limit=20).points
    fused = client.query_points("hy", prefetch=[models.Prefetch(query=bag_of_words(query), using="dense", limit=20),
                                                models.Prefetch(query=sv(sparse_words(query)),
                                                                using="sparse", limit=20)],
                                query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10).points
    want = reference_rrf([[p.id for p in dense], [p.id for p in sparse]])[:10]
    assert [(p.id, round(p.score, 5)) for p in fused] == [(i, round(s, 5)) for i, s in want]
    assert fused[0].id == 7


def test_sparse_errors_name_the_field(server):
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections"
    r = httpx.put(f"{url}/bad_sp", headers=h, json={"sparse_vectors": {"s": {"modifier": "bm25"}}})
    assert r.status_code == 400 and "sparse_vectors.s.modifier" in r.json()["status"]["error"], r.text
    assert httpx.put(f"{url}/sp_only", headers=h, json={"vectors": {}, "sparse_vectors": {"s": {}}}).status_code == 200
    r = httpx.put(f"{url}/sp_only/points", headers=h,
                  json={"points": [{"id": 1, "vector": {"s": {"indices": [1, 1], "values": [1, 2]}}}]})
    assert r.status_code == 400 and "points[0].vector.s.indices" in r.json()["status"]["error"], r.text
    r = httpx.put(f"{url}/sp_only/points", headers=h,
                  json={"points": [{"id": 1, "vector": {"s": {"indices": [1], "values": [1, 2]}}}]})
    assert r.status_code == 400 and "same length" in r.json()["status"]["error"], r.text
    r = httpx.post(f"{url}/sp_only/points/query", headers=h, json={"query": {"indices": [1], "values": [1]}, "using": "x"})
    assert r.status_code == 400 and "using" in r.json()["status"]["error"], r.text
    info = httpx.get(f"{url}/sp_only", headers=h).json()["result"]
    assert info["config"]["params"]["vectors"] == {} and "s" in info["config"]["params"]["sparse_vectors"]


# ------------------------------------------------------------------------ LangChain, LlamaIndex


def test_langchain_sparse_and_hybrid_retrieval_modes(server, lc_embeddings):  # noqa: F811
    from langchain_qdrant import QdrantVectorStore, RetrievalMode
    from langchain_qdrant.sparse_embeddings import SparseEmbeddings, SparseVector

    class Words(SparseEmbeddings):
        def embed_documents(self, texts):
            return [SparseVector(indices=i, values=v) for i, v in map(sparse_words, texts)]

        def embed_query(self, text):
            i, v = sparse_words(text)
            return SparseVector(indices=i, values=v)

    texts = corpus(40)
    metas = [{"n": i} for i in range(len(texts))]
    for mode, name in [(RetrievalMode.SPARSE, "lc_sparse"), (RetrievalMode.HYBRID, "lc_hybrid")]:
        kw = {"embedding": lc_embeddings} if mode == RetrievalMode.HYBRID else {}
        store = QdrantVectorStore.from_texts(texts, metadatas=metas, collection_name=name, url=server.http,
                                             api_key=server.admin_token, retrieval_mode=mode,
                                             sparse_embedding=Words(), **kw)
        hits = store.similarity_search("cherry item12", k=3)
        assert hits[0].page_content == texts[12], mode
        from qdrant_client import models as m
        only_high = m.Filter(must=[m.FieldCondition(key="metadata.n", range=m.Range(gte=30))])
        hits = store.similarity_search("cherry item12", k=5, filter=only_high)
        assert hits and all(h.metadata["n"] >= 30 for h in hits), mode
        store.add_texts(["zebra quartz unique"], metadatas=[{"n": 99}], ids=[
            "00000000-0000-0000-0000-000000000099"])
        assert store.similarity_search("zebra quartz", k=1)[0].metadata["n"] == 99
        assert store.delete(ids=["00000000-0000-0000-0000-000000000099"])
        again = QdrantVectorStore.from_existing_collection(collection_name=name, url=server.http,
                                                           api_key=server.admin_token, retrieval_mode=mode,
                                                           sparse_embedding=Words(), **kw)
        assert all(h.metadata["n"] != 99 for h in again.similarity_search("zebra quartz", k=3))
        assert again.similarity_search("cherry item12", k=1)[0].page_content == texts[12]


def test_llamaindex_hybrid(server, llama_settings):  # noqa: F811
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    def encode(texts):
        out = [sparse_words(t) for t in texts]
        return [i for i, _ in out], [v for _, v in out]

    client = QdrantClient(url=server.http, api_key=server.admin_token)
    store = QdrantVectorStore("li_hybrid", client=client, enable_hybrid=True, sparse_doc_fn=encode,
                              sparse_query_fn=encode)
    docs = llama_documents()
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))
    info = client.get_collection("li_hybrid")
    assert "text-sparse-new" in info.config.params.sparse_vectors
    rec = client.scroll("li_hybrid", limit=1, with_vectors=True)[0][0]
    assert "text-sparse-new" in rec.vector
    retriever = index.as_retriever(similarity_top_k=3, sparse_top_k=5, vector_store_query_mode="hybrid")
    hits = retriever.retrieve(docs[13].text)
    assert hits[0].node.ref_doc_id == "doc-13"
    index.delete_ref_doc("doc-13")
    assert all(h.node.ref_doc_id != "doc-13" for h in retriever.retrieve(docs[13].text))
