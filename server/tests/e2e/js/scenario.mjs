// The official @qdrant/js-client-rest, unchanged, against a running Strata.
// Usage: STRATA_URL=http://127.0.0.1:PORT STRATA_TOKEN=... node scenario.mjs
import assert from "node:assert/strict";
import { QdrantClient } from "@qdrant/js-client-rest";

const client = new QdrantClient({ url: process.env.STRATA_URL, apiKey: process.env.STRATA_TOKEN, checkCompatibility: true });
const name = "js_docs";
const dim = 8;
const vec = (i) => Array.from({ length: dim }, (_, k) => Math.sin(i * 7 + k));

assert.equal(await client.createCollection(name, { vectors: { size: dim, distance: "Cosine" } }), true);
assert.equal((await client.collectionExists(name)).exists, true);
assert.ok((await client.getCollections()).collections.some((c) => c.name === name));

const points = Array.from({ length: 200 }, (_, i) => ({ id: i, vector: vec(i), payload: { parity: i % 2 ? "odd" : "even", i } }));
const up = await client.upsert(name, { wait: true, points });
assert.equal(up.status, "completed");
await client.upsert(name, { wait: true, batch: { ids: [1000, 1001], vectors: [vec(1000), vec(1001)], payloads: [{ i: 1000 }, { i: 1001 }] } });
assert.equal((await client.getCollection(name)).points_count, 202);

// Query: the nearest neighbour of point 5's vector is point 5.
const q = await client.query(name, { query: vec(5), limit: 3, with_payload: true });
assert.equal(q.points[0].id, 5);
assert.equal(q.points[0].payload.i, 5);
assert.ok(q.points[0].score > 0.999);

// Filtered query (the older search API is gone from this client; test_qdrant_client.py covers it).
const filter = { must: [{ key: "parity", match: { value: "odd" } }] };
const fq = await client.query(name, { query: vec(5), filter, limit: 10, with_payload: true });
assert.equal(fq.points.length, 10);
assert.ok(fq.points.every((p) => p.payload.parity === "odd"));
const batch = await client.queryBatch(name, { searches: [{ query: vec(7), limit: 1 }, { query: vec(9), limit: 2 }] });
assert.equal(batch[0].points[0].id, 7);
assert.equal(batch[1].points.length, 2);

// Retrieve, scroll, count.
const r = await client.retrieve(name, { ids: [3, 1000], with_vector: true });
assert.deepEqual(r.map((p) => p.id).sort((a, b) => a - b), [3, 1000]);
let seen = 0;
let offset = undefined;
do {
  const page = await client.scroll(name, { limit: 64, offset, with_payload: false });
  seen += page.points.length;
  offset = page.next_page_offset ?? undefined;
} while (offset !== undefined);
assert.equal(seen, 202);
assert.equal((await client.count(name, { filter })).count, 100);

// Set payload, delete by id and by filter, delete the collection.
await client.setPayload(name, { payload: { tag: "x" }, points: [4] });
assert.deepEqual((await client.retrieve(name, { ids: [4] }))[0].payload, { parity: "even", i: 4, tag: "x" });
await client.delete(name, { points: [0, 1] });
await client.delete(name, { filter });
assert.equal((await client.count(name, {})).count, 202 - 2 - 99);
assert.equal(await client.deleteCollection(name), true);
assert.equal((await client.collectionExists(name)).exists, false);
console.log("js scenario ok");
