"""LangChain (`langchain-qdrant`) and LlamaIndex (`llama-index-vector-stores-qdrant`) against the
`strata` binary, their code unchanged: only the embeddings are fakes (no model downloads here).

The fake embedding is a bag of words hashed into 64 buckets and normalised, so texts that share
words are near each other and a query for a document's words finds that document first."""

import asyncio
import hashlib
import math

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

DIM = 64


def bag_of_words(text: str) -> list:
    v = [0.0] * DIM
    for word in text.lower().replace(":", " ").split():
        v[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % DIM] += 1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


WORDS = ["apple", "banana", "cherry", "delta", "echo", "falcon", "granite", "harbor", "iris", "jungle"]


def corpus(n=40):
    # Each text: two words from WORDS and its own number, so most texts share a word with others.
    return [f"{WORDS[i % 10]} {WORDS[(i * 3 + 1) % 10]} item{i}" for i in range(n)]


# ---------------------------------------------------------------------------------- LangChain


@pytest.fixture
def lc_embeddings():
    from langchain_core.embeddings import Embeddings

    class BagOfWords(Embeddings):
        def embed_documents(self, texts):
            return [bag_of_words(t) for t in texts]

        def embed_query(self, text):
            return bag_of_words(text)

    return BagOfWords()


def reference_mmr(query, vectors, k, diversity):
    """Qdrant's MMR over cosine similarity, written out (vectors are unit length)."""
    q = np.asarray(query) / np.linalg.norm(query)
    vs = np.asarray(vectors)
    rel = vs @ q
    picked = [int(np.argmax(rel))]
    while len(picked) < min(k, len(vs)):
        best, best_score = None, -np.inf
        for i in range(len(vs)):
            if i in picked:
                continue
            score = (1 - diversity) * rel[i] - diversity * max(float(vs[i] @ vs[p]) for p in picked)
            if score > best_score:
                best, best_score = i, score
        picked.append(best)
    return picked


def test_langchain_dense_store_search_filter_mmr_delete(server, lc_embeddings):
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    texts = corpus()
    metas = [{"n": i, "fruit": i % 10 < 3} for i in range(len(texts))]
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(texts))]
    store = QdrantVectorStore.from_texts(texts, lc_embeddings, metadatas=metas, ids=ids, url=server.http,
                                         api_key=server.admin_token, collection_name="lc",
                                         retrieval_mode=RetrievalMode.DENSE)
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    assert client.count("lc").count == len(texts)
    # The text itself is the best match; scores are cosine similarities.
    hits = store.similarity_search_with_score(texts[7], k=3)
    assert hits[0][0].page_content == texts[7] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert hits[0][0].metadata["n"] == 7 and hits[0][0].metadata["_id"] == ids[7]
    # A metadata filter, in Qdrant's syntax, on the nested metadata key.
    flt = models.Filter(must=[models.FieldCondition(key="metadata.fruit", match=models.MatchValue(value=True))])
    hits = store.similarity_search(texts[7], k=5, filter=flt)
    assert len(hits) == 5 and all(h.metadata["fruit"] for h in hits)
    # add_texts with ids, then a search finds the new text.
    new_ids = store.add_texts(["kiwi lemon mango"], metadatas=[{"n": 99, "fruit": True}], ids=[ids[0][:-3] + "999"])
    assert store.similarity_search("kiwi lemon mango", k=1)[0].metadata["_id"] == new_ids[0]
    # MMR: the same picks as the formula over the same candidates.
    query = "apple echo"
    fetch_k, k, lam = 12, 4, 0.3
    mmr = store.max_marginal_relevance_search(query, k=k, fetch_k=fetch_k, lambda_mult=lam)
    candidates = client.query_points("lc", query=bag_of_words(query), limit=fetch_k, with_vectors=True,
                                     search_params=models.SearchParams(exact=True)).points
    picked = reference_mmr(bag_of_words(query), [c.vector for c in candidates], k, 1 - lam)
    assert [d.metadata["_id"] for d in mmr] == [candidates[i].id for i in picked]
    assert [d.metadata["_id"] for d in mmr] != [c.id for c in candidates[:k]], "diversity changed nothing"
    # The MMR retriever goes through the same call.
    docs = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 10}).invoke(query)
    direct = store.max_marginal_relevance_search(query, k=3, fetch_k=10)  # lambda_mult 0.5 in both
    assert [d.metadata["_id"] for d in docs] == [d.metadata["_id"] for d in direct] and len(docs) == 3
    # delete by ids, then from_existing_collection sees the rest.
    assert store.delete(ids=ids[:5])
    again = QdrantVectorStore.from_existing_collection(embedding=lc_embeddings, collection_name="lc",
                                                       url=server.http, api_key=server.admin_token)
    assert client.count("lc").count == len(texts) + 1 - 5
    assert all(h.metadata["n"] >= 5 for h in again.similarity_search(texts[2], k=10))


# ---------------------------------------------------------------------------------- LlamaIndex


@pytest.fixture
def llama_settings():
    from llama_index.core import Settings
    from llama_index.core.embeddings import BaseEmbedding

    class BagOfWords(BaseEmbedding):
        def _get_query_embedding(self, query):
            return bag_of_words(query)

        def _get_text_embedding(self, text):
            return bag_of_words(text)

        async def _aget_query_embedding(self, query):
            return bag_of_words(query)

    Settings.embed_model = BagOfWords()
    Settings.llm = None
    # The default splitter counts tokens with tiktoken, which downloads its tables.
    Settings.tokenizer = str.split
    return Settings


def llama_documents():
    from llama_index.core import Document

    return [Document(text=t, doc_id=f"doc-{i}", metadata={"n": i, "kind": "even" if i % 2 == 0 else "odd"})
            for i, t in enumerate(corpus(20))]


def test_llamaindex_from_documents_retrieve_filter_delete(server, llama_settings):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    client = QdrantClient(url=server.http, api_key=server.admin_token)
    store = QdrantVectorStore("li", client=client)
    docs = llama_documents()
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))
    assert client.count("li").count == len(docs)
    # LlamaIndex indexes doc_id at creation: the index is in the collection's payload schema.
    schema = client.get_collection("li").payload_schema
    assert schema["doc_id"].data_type == models.PayloadSchemaType.KEYWORD and schema["doc_id"].points == len(docs)
    hits = index.as_retriever(similarity_top_k=3).retrieve(docs[5].text)
    assert hits[0].node.ref_doc_id == "doc-5"
    filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="even")])
    hits = index.as_retriever(similarity_top_k=4, filters=filters).retrieve(docs[5].text)
    assert len(hits) == 4 and all(h.node.metadata["kind"] == "even" for h in hits)
    filters = MetadataFilters(filters=[MetadataFilter(key="n", value=15, operator=FilterOperator.GTE)])
    hits = index.as_retriever(similarity_top_k=10, filters=filters).retrieve(docs[5].text)
    assert sorted(h.node.metadata["n"] for h in hits) == [15, 16, 17, 18, 19]
    index.delete_ref_doc("doc-5")
    assert client.count("li").count == len(docs) - 1
    assert all(h.node.ref_doc_id != "doc-5" for h in index.as_retriever(similarity_top_k=5).retrieve(docs[5].text))


def test_llamaindex_async(server, llama_settings):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    async def run():
        aclient = AsyncQdrantClient(url=server.http, api_key=server.admin_token)
        store = QdrantVectorStore("li_async", aclient=aclient)
        docs = llama_documents()
        index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                                use_async=True)
        assert (await aclient.count("li_async")).count == len(docs)
        hits = await index.as_retriever(similarity_top_k=3).aretrieve(docs[8].text)
        assert hits[0].node.ref_doc_id == "doc-8"
        filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="odd")])
        hits = await index.as_retriever(similarity_top_k=3, filters=filters).aretrieve(docs[8].text)
        assert len(hits) == 3 and all(h.node.metadata["kind"] == "odd" for h in hits)
        await index.adelete_ref_doc("doc-8")
        assert (await aclient.count("li_async")).count == len(docs) - 1
        await aclient.close()

    asyncio.run(run())
