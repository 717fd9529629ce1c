//! The OpenAPI 3.0 document of the HTTP API, served at `GET /openapi.json` (no auth).
//!
//! Built from [`crate::http::ROUTES`] and the schemas below; a test checks that every route is
//! documented with its method, and the end-to-end suite validates the document with
//! `openapi-spec-validator`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `{"result": <schema>, "status": "ok", "time": number}`.
fn envelope(result: Value) -> Value {
    json!({"type": "object", "required": ["result", "status", "time"], "properties": {
        "result": result, "status": {"type": "string", "enum": ["ok"]}, "time": {"type": "number"}}})
}

fn schemas() -> Value {
    let point_id = json!({"oneOf": [{"type": "integer", "format": "uint64", "minimum": 0, "maximum": 18_446_744_073_709_551_615u64}, {"type": "string", "format": "uuid"}]});
    let payload =
        json!({"type": "object", "additionalProperties": true, "description": "A JSON object"});
    let with_payload = json!({"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}},
        {"type": "object", "properties": {"include": {"type": "array", "items": {"type": "string"}}, "exclude": {"type": "array", "items": {"type": "string"}}},
            "oneOf": [{"required": ["include"], "properties": {"include": {"type": "array"}}, "not": {"required": ["exclude"], "properties": {"exclude": {"type": "array"}}}},
                {"required": ["exclude"], "properties": {"exclude": {"type": "array"}}, "not": {"required": ["include"], "properties": {"include": {"type": "array"}}}}]}]});
    let vector =
        json!({"type": "array", "minItems": 1, "items": {"type": "number", "format": "float"}});
    let search_params = json!({"type": "object", "properties": {"hnsw_ef": {"type": "integer", "minimum": 1, "maximum": 100_000}, "exact": {"type": "boolean"},
        "indexed_only": {"type": "boolean"},
        "quantization": {"type": "object", "additionalProperties": false, "description": "The graph walk reads one-byte codes of the vectors and re-scores its candidates with the full vectors (exact scores unless rescore is false).",
            "properties": {"ignore": {"type": "boolean", "description": "Walk the full vectors instead of the codes."},
                "rescore": {"type": "boolean", "description": "Default true: the walk's best candidates are re-scored with the full vectors (exact scores). False: hits keep their distance over one-byte codes (approximate scores, no full vector read)."},
                "oversampling": {"type": "number", "minimum": 1, "maximum": 1000, "description": "Re-score oversampling × (limit + offset) of the walk's candidates (default 2; hnsw_ef is raised to at least as many)."}}},
        "cold": {"type": "string", "enum": ["include", "skip"], "description": "Strata extension: `skip` leaves segments only in the cold store out (a partial answer: header `strata-partial: true`). Default `include`: cold segments are read unless their summary proves they cannot change the answer."},
        "cold_deadline_ms": {"type": "integer", "minimum": 0, "description": "Strata extension: cold segments not read within this many milliseconds of the search's start are left out (header `strata-partial: true`)."}}});
    let field_types = ["keyword", "integer", "float", "bool", "uuid", "datetime"];
    let tier = json!({"type": "object", "properties": {"segments": {"type": "integer"}, "bytes": {"type": "integer"},
        "budget_bytes": {"type": "integer", "nullable": true}, "hits": {"type": "integer"}, "misses": {"type": "integer"}, "moves_in": {"type": "integer"}}});
    let tiers_report = json!({"type": "object", "required": ["tiers", "collections", "cold_store"], "properties": {
            "tiers": {"type": "object", "properties": {"hot": r("Tier"), "warm": r("Tier"), "cold": r("Tier")}},
            "cold_reads": {"type": "object", "properties": {"streamed": {"type": "integer"}, "promoted": {"type": "integer"}, "streamed_bytes": {"type": "integer"}}},
            "move_failures": {"type": "integer"},
            "search_cold_segments": {"type": "object", "properties": {"searched": {"type": "integer"}, "skipped": {"type": "integer"}, "left_out": {"type": "integer"}}},
            "cold_store": {"type": "object", "properties": {"configured": {"type": "boolean"}, "reachable": {"type": "boolean"}, "error": {"type": "string"}}},
            "io": {"type": "object", "nullable": true, "description": "batched reads of local files (STRATA_IO_MODE); null without a local data directory", "properties": {"backend": {"type": "string", "enum": ["io_uring", "pread"]}, "depth": {"type": "integer"}, "fallback_reason": {"type": "string", "nullable": true}}},
            "collections": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"},
                "hint": {"type": "string", "enum": ["auto", "pin_hot", "warm", "offload"]},
                "segments": {"type": "object", "properties": {"hot": {"type": "integer"}, "warm": {"type": "integer"}, "cold": {"type": "integer"}}}}}},
            "actor_types": {"type": "array", "items": {"type": "object", "properties": {"actor_type": {"type": "string"},
                "hint": {"type": "string", "enum": ["auto", "pin_hot", "warm", "offload"]},
                "segments": {"type": "object", "properties": {"hot": {"type": "integer"}, "warm": {"type": "integer"}, "cold": {"type": "integer"}}}}}}}});
    let tier_hint_request = json!({"type": "object", "required": ["hint"], "additionalProperties": false, "properties": {
            "hint": {"type": "string", "enum": ["auto", "pin_hot", "warm", "offload"], "description": "auto: by use; pin_hot: in RAM as far as STRATA_HOT_BYTES allows, never demoted; warm: on local disk, fetched now; offload: cold only, reads stream without caching"}}});
    let mut all = json!({
        "PointId": point_id,
        "Payload": payload,
        "Vector": vector,
        "WithPayload": with_payload,
        "Filter": {"type": "object", "description": "Qdrant filter: must / should / must_not of conditions (match value/any/except, range, has_id, is_empty, is_null, nested filters)",
            "properties": {"must": {}, "should": {}, "must_not": {}}, "additionalProperties": false},
        "SearchParams": search_params,
        "ErrorResponse": {"type": "object", "properties": {"status": {"type": "object", "properties": {"error": {"type": "string"}}}, "time": {"type": "number"}}},
        "VersionInfo": {"type": "object", "required": ["title", "version"], "properties": {"title": {"type": "string"}, "version": {"type": "string"}, "strata_version": {"type": "string"}}},
        "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
        "UpdateResult": {"type": "object", "required": ["status"], "properties": {"operation_id": {"type": "integer", "description": "The LSN (version) of the write"}, "status": {"type": "string", "enum": ["completed"]}}},
        "VectorParams": {"type": "object", "required": ["size", "distance"], "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 65536},
            "distance": {"type": "string", "enum": ["Cosine", "Euclid", "Dot"]}, "on_disk": {"type": "boolean"}, "hnsw_config": r("HnswConfig"), "datatype": {"type": "string", "enum": ["float32"]}}},
        "HnswConfig": {"type": "object", "properties": {"m": {"type": "integer", "minimum": 0, "maximum": 128, "not": {"minimum": 1, "maximum": 3}, "description": "0 (no graph) or 4..=128"}, "ef_construct": {"type": "integer", "minimum": 4, "maximum": 4096},
            "full_scan_threshold": {"type": "integer", "minimum": 0}, "max_indexing_threads": {"type": "integer", "minimum": 0}, "on_disk": {"type": "boolean"}, "payload_m": {"type": "integer", "minimum": 0}}},
        "CreateCollection": {"type": "object", "description": "`vectors` (one unnamed vector, or named ones) and/or `sparse_vectors`; at least one vector",
            "anyOf": [{"required": ["vectors"], "properties": {"vectors": {"type": "object"}}}, {"required": ["sparse_vectors"], "properties": {"sparse_vectors": {"type": "object", "minProperties": 1}}}],
            "properties": {"vectors": r("VectorParams"), "hnsw_config": r("HnswConfig"),
            "sparse_vectors": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "index": {"type": "object", "properties": {"on_disk": {"type": "boolean"}, "full_scan_threshold": {"type": "integer", "minimum": 0}, "datatype": {"type": "string", "enum": ["float32"]}}},
                "modifier": {"type": "string", "enum": ["none", "idf"]}}}},
            "shard_number": {"type": "integer", "minimum": 0}, "replication_factor": {"type": "integer", "minimum": 0}, "write_consistency_factor": {"type": "integer", "minimum": 0},
            "on_disk_payload": {"type": "boolean"}, "optimizers_config": {"type": "object"}, "wal_config": {"type": "object"}}},
        "CollectionInfo": {"type": "object", "required": ["status", "optimizer_status", "segments_count", "config", "payload_schema"], "properties": {
            "status": {"type": "string"}, "optimizer_status": {"type": "string"}, "points_count": {"type": "integer"}, "indexed_vectors_count": {"type": "integer"},
            "segments_count": {"type": "integer"}, "config": {"type": "object"}, "payload_schema": {"type": "object"}}},
        "CollectionsList": {"type": "object", "required": ["collections"], "properties": {"collections": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
        "Exists": {"type": "object", "required": ["exists"], "properties": {"exists": {"type": "boolean"}}},
        "PointStruct": {"type": "object", "required": ["id", "vector"], "properties": {"id": r("PointId"), "vector": r("Vector"), "payload": r("Payload")}},
        "UpsertPoints": {"type": "object", "description": "Either `points` or the columnar `batch`",
            "oneOf": [{"required": ["points"], "properties": {"points": {"type": "array"}}, "not": {"required": ["batch"], "properties": {"batch": {"type": "object"}}}}, {"required": ["batch"], "properties": {"batch": {"type": "object"}}, "not": {"required": ["points"], "properties": {"points": {"type": "array"}}}}], "properties": {
            "points": {"type": "array", "items": r("PointStruct")},
            "batch": {"type": "object", "required": ["ids", "vectors"], "properties": {"ids": {"type": "array", "items": r("PointId")},
                "vectors": {"oneOf": [{"type": "array", "items": r("Vector")}, {"type": "object", "description": "Named vectors: a list per name (null where a point has none)",
                    "additionalProperties": {"type": "array", "items": {"oneOf": [r("Vector"), {"type": "object", "required": ["indices", "values"], "additionalProperties": false, "properties": {"indices": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64}}, "values": {"type": "array", "items": {"type": "number"}}}}]}}}]},
                "payloads": {"type": "array", "items": r("Payload")}}}}},
        "Record": {"type": "object", "required": ["id"], "properties": {"id": r("PointId"), "payload": r("Payload"), "vector": r("Vector")}},
        "ScoredPoint": {"type": "object", "required": ["id", "version", "score"], "properties": {"id": r("PointId"), "version": {"type": "integer"},
            "score": {"type": "number"}, "payload": r("Payload"), "vector": r("Vector")}},
        "PointRequest": {"type": "object", "required": ["ids"], "properties": {"ids": {"type": "array", "items": r("PointId")}, "with_payload": r("WithPayload"), "with_vector": {"type": "boolean"}}},
        "DeletePoints": {"type": "object", "description": "Either `points` (ids) or `filter`", "properties": {"points": {"type": "array", "items": r("PointId")}, "filter": r("Filter")},
            "oneOf": [{"required": ["points"], "properties": {"points": {"type": "array"}}, "not": {"required": ["filter"], "properties": {"filter": {"type": "object"}}}}, {"required": ["filter"], "properties": {"filter": {"type": "object"}}, "not": {"required": ["points"], "properties": {"points": {"type": "array"}}}}]},
        "SetPayload": {"type": "object", "required": ["payload"], "properties": {"payload": r("Payload"), "points": {"type": "array", "items": r("PointId")}, "filter": r("Filter")},
            "oneOf": [{"required": ["points"], "properties": {"points": {"type": "array"}}, "not": {"required": ["filter"], "properties": {"filter": {"type": "object"}}}}, {"required": ["filter"], "properties": {"filter": {"type": "object"}}, "not": {"required": ["points"], "properties": {"points": {"type": "array"}}}}]},
        "QueryRequest": {"type": "object", "properties": {"query": {"description": "A vector, a point id, or a query object ({\"nearest\": …}, {\"recommend\": …}, {\"fusion\": …}, …: docs/api.md)",
                "oneOf": [{"type": "array", "minItems": 1, "items": {"type": "number"}}, {"type": "integer", "minimum": 0}, {"type": "string", "format": "uuid"}, {"type": "object", "minProperties": 1}]},
            "filter": r("Filter"), "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "limit + offset must be at most the server's max result window (STRATA_MAX_LIMIT, 10,000 by default)"}, "offset": {"type": "integer", "minimum": 0}, "with_payload": r("WithPayload"),
            "with_vector": {"type": "boolean"}, "params": r("SearchParams"), "score_threshold": {"type": "number"}, "using": {"type": "string"}}},
        "QueryResponse": {"type": "object", "required": ["points"], "properties": {"points": {"type": "array", "items": r("ScoredPoint")}}},
        "QueryBatch": {"type": "object", "required": ["searches"], "properties": {"searches": {"type": "array", "items": r("QueryRequest")}}},
        "SearchRequest": {"type": "object", "required": ["vector", "limit"], "properties": {"vector": r("Vector"), "filter": r("Filter"),
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "limit + offset must be at most the server's max result window (STRATA_MAX_LIMIT, 10,000 by default)"}, "offset": {"type": "integer", "minimum": 0}, "with_payload": r("WithPayload"), "with_vector": {"type": "boolean"},
            "params": r("SearchParams"), "score_threshold": {"type": "number"}}},
        "SearchBatch": {"type": "object", "required": ["searches"], "properties": {"searches": {"type": "array", "items": r("SearchRequest")}}},
        "ScrollRequest": {"type": "object", "properties": {"offset": r("PointId"), "limit": {"type": "integer", "minimum": 1, "maximum": 10000}, "filter": r("Filter"),
            "with_payload": r("WithPayload"), "with_vector": {"type": "boolean"}}},
        "ScrollResult": {"type": "object", "required": ["points"], "properties": {"points": {"type": "array", "items": r("Record")}, "next_page_offset": {"oneOf": [{"type": "integer", "format": "uint64", "minimum": 0, "maximum": 18_446_744_073_709_551_615u64}, {"type": "string", "format": "uuid"}], "nullable": true, "description": "null on the last page"}}},
        "CountRequest": {"type": "object", "properties": {"filter": r("Filter"), "exact": {"type": "boolean"}}},
        "CountResult": {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}},
    });
    // Added apart: one json! of all of them exceeds the macro recursion limit.
    all["CreateFieldIndex"] = json!({"type": "object", "required": ["field_name", "field_schema"], "properties": {
        "field_name": {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,255}$"},
        "field_schema": {"oneOf": [{"type": "string", "enum": field_types},
            {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": field_types}}}]}}});
    all["FacetRequest"] = json!({"type": "object", "required": ["key"], "properties": {
        "key": {"type": "string", "minLength": 1, "description": "A payload field with a keyword, integer, bool or uuid index"},
        "filter": r("Filter"), "limit": {"type": "integer", "minimum": 1, "default": 10},
        "exact": {"type": "boolean", "description": "Accepted; counts are always exact"}}});
    all["FacetResponse"] = json!({"type": "object", "required": ["hits"], "properties": {"hits": {"type": "array", "items": {
        "type": "object", "required": ["value", "count"], "properties": {"value": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}, "count": {"type": "integer"}}}}}});
    let group_fields = json!({"group_by": {"type": "string", "minLength": 1, "description": "Payload field whose string or integer values name the groups"},
        "group_size": {"type": "integer", "minimum": 1, "default": 3},
        "with_lookup": {"oneOf": [{"type": "string", "pattern": "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"}, {"type": "object", "required": ["collection"], "properties": {"collection": {"type": "string", "pattern": "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"}, "with_payload": r("WithPayload"), "with_vectors": {"type": "boolean"}}}]}});
    for (name, base) in [
        ("QueryGroupsRequest", "QueryRequest"),
        ("SearchGroupsRequest", "SearchRequest"),
    ] {
        let mut g = all[base].clone();
        for (k, v) in group_fields.as_object().into_iter().flatten() {
            g["properties"][k] = v.clone();
        }
        let mut req = vec![json!("group_by")];
        if base == "QueryRequest" {
            // Groups are formed from a query's nearest points.
            req.push(json!("query"));
        }
        if base == "SearchRequest" {
            req.extend([json!("vector"), json!("limit")]);
        }
        g["required"] = Value::Array(req);
        // Groups have no offset (a 400 names it).
        if let Some(p) = g["properties"].as_object_mut() {
            p.remove("offset");
        }
        all[name] = g;
    }
    all["GroupsResult"] = json!({"type": "object", "required": ["groups"], "properties": {"groups": {"type": "array", "items": {
        "type": "object", "required": ["id", "hits"], "properties": {"id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "hits": {"type": "array", "items": r("ScoredPoint")}, "lookup": r("Record")}}}}});
    let selector =
        json!({"points": {"type": "array", "items": r("PointId")}, "filter": r("Filter")});
    let with = |extra: Value, required: &[&str]| {
        let mut props = selector.clone();
        for (k, v) in extra.as_object().into_iter().flatten() {
            props[k] = v.clone();
        }
        let mut o = json!({"type": "object", "description": "Give either `points` (ids) or `filter`", "properties": props,
            "oneOf": [{"required": ["points"], "properties": {"points": {"type": "array"}}, "not": {"required": ["filter"], "properties": {"filter": {"type": "object"}}}}, {"required": ["filter"], "properties": {"filter": {"type": "object"}}, "not": {"required": ["points"], "properties": {"points": {"type": "array"}}}}]});
        if !required.is_empty() {
            o["required"] = json!(required);
        }
        o
    };
    all["PointsSelector"] = with(json!({}), &[]);
    all["DeletePayload"] = with(
        json!({"keys": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "Keys to remove; `a.b` removes a nested key"}}),
        &["keys"],
    );
    all["DeleteVectors"] = with(
        json!({"vector": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "Names of the vectors to remove"}}),
        &["vector"],
    );
    all["UpdateVectors"] = json!({"type": "object", "required": ["points"], "properties": {"points": {"type": "array", "items": {
        "type": "object", "required": ["id", "vector"], "properties": {"id": r("PointId"), "vector": {"oneOf": [r("Vector"), {"type": "object", "minProperties": 1, "additionalProperties": r("Vector")}]}}}}}});
    all["UpdateOperations"] = json!({"type": "object", "required": ["operations"], "properties": {"operations": {"type": "array", "maxItems": 1000, "items": {
        "type": "object", "minProperties": 1, "maxProperties": 1, "properties": {
            "upsert": r("UpsertPoints"), "delete": r("PointsSelector"), "set_payload": r("SetPayload"), "overwrite_payload": r("SetPayload"),
            "delete_payload": r("DeletePayload"), "clear_payload": r("PointsSelector"), "update_vectors": r("UpdateVectors"), "delete_vectors": r("DeleteVectors")}}}}});
    let alias_name = json!({"type": "string", "pattern": "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"});
    all["ChangeAliases"] = json!({"type": "object", "required": ["actions"], "properties": {"actions": {"type": "array", "items": {
        "type": "object", "minProperties": 1, "maxProperties": 1, "properties": {
            "create_alias": {"type": "object", "required": ["collection_name", "alias_name"], "properties": {"collection_name": alias_name, "alias_name": alias_name}},
            "delete_alias": {"type": "object", "required": ["alias_name"], "properties": {"alias_name": alias_name}},
            "rename_alias": {"type": "object", "required": ["old_alias_name", "new_alias_name"], "properties": {"old_alias_name": alias_name, "new_alias_name": alias_name}}}}}}});
    all["AliasList"] = json!({"type": "object", "required": ["aliases"], "properties": {"aliases": {"type": "array", "items": {
        "type": "object", "required": ["alias_name", "collection_name"], "properties": {"alias_name": {"type": "string"}, "collection_name": {"type": "string"}}}}}});
    all["UpdateCollection"] = json!({"type": "object", "properties": {"hnsw_config": r("HnswConfig"),
        "vectors": {"type": "object", "additionalProperties": {"type": "object", "properties": {"hnsw_config": r("HnswConfig"), "on_disk": {"type": "boolean"}}}},
        "optimizers_config": {"type": "object"}, "params": {"type": "object"}, "strict_mode_config": {"type": "object"}, "metadata": {"type": "object"},
        "sparse_vectors": {"type": "object", "maxProperties": 0}}});
    all["SnapshotDescription"] = json!({"type": "object", "required": ["name", "size"], "properties": {"name": {"type": "string"},
        "creation_time": {"type": "string", "description": "UTC, YYYY-MM-DDTHH:MM:SS"}, "size": {"type": "integer"}, "checksum": {"type": "string", "description": "SHA-256, hex"}}});
    all["SnapshotRecover"] = json!({"type": "object", "required": ["location"], "properties": {"location": {"type": "string", "pattern": "^(file|http|https)://[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$"},
        "checksum": {"type": "string"}, "priority": {"type": "string", "enum": ["replica", "snapshot", "no_sync"]}, "api_key": {"type": "string"}}});
    all["Tier"] = tier;
    all["TiersReport"] = tiers_report;
    all["TierHintRequest"] = tier_hint_request;
    all
}

/// (summary, request schema, result schema, authenticated) of a route.
fn describe(method: &str, path: &str) -> (&'static str, Option<Value>, Value, bool) {
    let arr = |v: Value| json!({"type": "array", "items": v});
    match (
        method,
        path.trim_start_matches("/collections/{collection_name}"),
    ) {
        ("GET", "/") if path == "/" => (
            "Server name and the Qdrant API version it follows",
            None,
            r("VersionInfo"),
            true,
        ),
        ("GET", "/health" | "/healthz" | "/livez") => ("Liveness", None, r("Health"), false),
        ("GET", "/health/ready" | "/readyz") => (
            "Readiness: recovered and the WAL writable",
            None,
            r("Health"),
            false,
        ),
        ("GET", "/openapi.json") => ("This document", None, json!({"type": "object"}), false),
        ("GET", "/collections") => (
            "Collections the caller may read",
            None,
            r("CollectionsList"),
            true,
        ),
        ("POST", "/collections/aliases") => (
            "Create, delete or rename aliases, all or nothing (access m)",
            Some(r("ChangeAliases")),
            json!({"type": "boolean"}),
            true,
        ),
        ("GET", "/aliases") if path == "/aliases" => (
            "Aliases of the collections the caller may read",
            None,
            r("AliasList"),
            true,
        ),
        ("GET", "/aliases") => ("Aliases of the collection", None, r("AliasList"), true),
        ("PATCH", "") => (
            "Change HNSW parameters, collection-wide or per vector (access m); graphs built from then on use them",
            Some(r("UpdateCollection")),
            json!({"type": "boolean"}),
            true,
        ),
        ("PUT", "") => (
            "Create a collection (access m)",
            Some(r("CreateCollection")),
            json!({"type": "boolean"}),
            true,
        ),
        ("GET", "") => ("Collection information", None, r("CollectionInfo"), true),
        ("DELETE", "") => (
            "Delete a collection (access m); false if it did not exist",
            None,
            json!({"type": "boolean"}),
            true,
        ),
        ("GET", "/exists") => ("Whether the collection exists", None, r("Exists"), true),
        ("PUT", "/index") => (
            "Index a payload field (keyword, integer, float, bool, uuid, datetime); replaces its type if indexed",
            Some(r("CreateFieldIndex")),
            r("UpdateResult"),
            true,
        ),
        ("DELETE", "/index/{field_name}") => (
            "Stop indexing a payload field (no error if it was not indexed)",
            None,
            r("UpdateResult"),
            true,
        ),
        ("PUT", "/points") => (
            "Upsert points; durable before the response (wait is accepted and has no effect)",
            Some(r("UpsertPoints")),
            r("UpdateResult"),
            true,
        ),
        ("POST", "/points") => (
            "Retrieve points by id",
            Some(r("PointRequest")),
            arr(r("Record")),
            true,
        ),
        ("GET", "/points/{id}") => ("Retrieve one point", None, r("Record"), true),
        ("POST", "/points/delete") => (
            "Delete points by id or filter",
            Some(r("DeletePoints")),
            r("UpdateResult"),
            true,
        ),
        ("POST", "/points/payload") => (
            "Merge keys into the payload of points",
            Some(r("SetPayload")),
            r("UpdateResult"),
            true,
        ),
        ("PUT", "/points/payload") => (
            "Replace the payload of points (by ids or filter)",
            Some(r("SetPayload")),
            r("UpdateResult"),
            true,
        ),
        ("POST", "/points/payload/delete") => (
            "Remove payload keys from points (by ids or filter)",
            Some(r("DeletePayload")),
            r("UpdateResult"),
            true,
        ),
        ("POST", "/points/payload/clear") => (
            "Remove the whole payload of points (by ids or filter)",
            Some(r("PointsSelector")),
            r("UpdateResult"),
            true,
        ),
        ("PUT", "/points/vectors") => (
            "Set named vectors of existing points, keeping the others and the payload; all or nothing (404 naming an absent point)",
            Some(r("UpdateVectors")),
            r("UpdateResult"),
            true,
        ),
        ("POST", "/points/vectors/delete") => (
            "Remove named vectors from points (by ids or filter)",
            Some(r("DeleteVectors")),
            r("UpdateResult"),
            true,
        ),
        ("POST", "/points/batch") => (
            "Several updates in order, each durable before the next; a failure stops the batch and says how many were applied",
            Some(r("UpdateOperations")),
            arr(r("UpdateResult")),
            true,
        ),
        ("POST", "/points/query") => (
            "Nearest neighbours (the query API)",
            Some(r("QueryRequest")),
            r("QueryResponse"),
            true,
        ),
        ("POST", "/points/query/batch") => (
            "Several queries",
            Some(r("QueryBatch")),
            arr(r("QueryResponse")),
            true,
        ),
        ("POST", "/points/query/groups") => (
            "Query grouped by a payload field: the best hits of each of the best groups",
            Some(r("QueryGroupsRequest")),
            r("GroupsResult"),
            true,
        ),
        ("POST", "/points/search/groups") => (
            "Search grouped by a payload field (the older search API)",
            Some(r("SearchGroupsRequest")),
            r("GroupsResult"),
            true,
        ),
        ("POST", "/facet") => (
            "Count the points holding each value of an indexed payload field",
            Some(r("FacetRequest")),
            r("FacetResponse"),
            true,
        ),
        ("POST", "/points/search") => (
            "Nearest neighbours (the older search API)",
            Some(r("SearchRequest")),
            arr(r("ScoredPoint")),
            true,
        ),
        ("POST", "/points/search/batch") => (
            "Several searches",
            Some(r("SearchBatch")),
            arr(arr(r("ScoredPoint"))),
            true,
        ),
        ("POST", "/points/scroll") => (
            "Points in id order, a page at a time",
            Some(r("ScrollRequest")),
            r("ScrollResult"),
            true,
        ),
        ("POST", "/points/count") => (
            "Count points (exact)",
            Some(r("CountRequest")),
            r("CountResult"),
            true,
        ),
        ("POST", "/snapshots") => (
            "Snapshot the collection: flush, then copy its manifest entry and segments into one archive (access m)",
            None,
            r("SnapshotDescription"),
            true,
        ),
        ("GET", "/snapshots") => (
            "The collection's snapshots",
            None,
            arr(r("SnapshotDescription")),
            true,
        ),
        ("PUT", "/snapshots/recover") => (
            "Create or replace the collection from a snapshot at a file:// (inside the data directory's snapshots/) or http:// location (access m)",
            Some(r("SnapshotRecover")),
            json!({"type": "boolean"}),
            true,
        ),
        ("GET", "/snapshots/{snapshot_name}") => (
            "Download a snapshot archive (application/octet-stream)",
            None,
            json!({"type": "string", "format": "binary"}),
            true,
        ),
        ("DELETE", "/snapshots/{snapshot_name}") => (
            "Delete a snapshot (404 if absent; access m)",
            None,
            json!({"type": "boolean"}),
            true,
        ),
        ("GET", "/v1/tiers") => (
            "Strata extension (access m): segments, bytes, budgets, hits, misses and moves per tier; cold store status; each collection's and actor type's hint",
            None,
            r("TiersReport"),
            true,
        ),
        ("PUT", "/v1/collections/{collection_name}/tier") => (
            "Strata extension (access m): set the collection's tier hint (persisted; applied by the mover within a second)",
            Some(r("TierHintRequest")),
            json!({"type": "boolean"}),
            true,
        ),
        ("PUT", "/v1/actor_types/{actor_type}/tier") => (
            "Strata extension (access m): set the actor type's tier hint (persisted; the type is created if it was never written)",
            Some(r("TierHintRequest")),
            json!({"type": "boolean"}),
            true,
        ),
        ("GET", "/v1/actors/{actor_type}") => (
            "Strata extension: actor ids of the type with a live state, in order (`after`, `limit` ≤ 10000 query parameters) → {actors, next}",
            None,
            json!({"type": "object", "properties": {"actors": {"type": "array", "items": {"type": "string"}}, "next": {"type": "string", "nullable": true}}}),
            true,
        ),
        (
            "GET",
            "/v1/actors/{actor_type}/{actor_id}" | "/v1/actors/{actor_type}/{actor_id}/{state}",
        ) => (
            "Strata extension: the state's value as stored (raw bytes, its Content-Type, ETag = its version; 404 if absent or expired) — not the JSON envelope",
            None,
            json!({}),
            true,
        ),
        (
            "PUT",
            "/v1/actors/{actor_type}/{actor_id}" | "/v1/actors/{actor_type}/{actor_id}/{state}",
        ) => (
            "Strata extension: set the state to the request body (its Content-Type kept); If-Match / If-None-Match: * conditions (412 with the current ETag); TTL by `ttl` (seconds) or `strata-ttl` → {version}",
            None,
            json!({"type": "object", "properties": {"version": {"type": "integer"}}}),
            true,
        ),
        (
            "DELETE",
            "/v1/actors/{actor_type}/{actor_id}" | "/v1/actors/{actor_type}/{actor_id}/{state}",
        ) => (
            "Strata extension: remove the state (If-Match condition) → {version}",
            None,
            json!({"type": "object", "properties": {"version": {"type": "integer"}}}),
            true,
        ),
        ("POST", "/v1/actors/{actor_type}/{actor_id}/transaction") => (
            "Strata extension: several states of one actor, all or nothing: {operations: [{op: put|delete, state, value | value_base64, content_type, ttl, if_match, if_none_match}]} → {version}",
            Some(
                json!({"type": "object", "required": ["operations"], "properties": {"operations": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["op"], "properties": {"op": {"type": "string", "enum": ["put", "delete"]}, "state": {"type": "string", "description": "Default: the actor's default state", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,63}$"},
                    "value": {"description": "Any JSON value but null, stored as JSON", "oneOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
                    "value_base64": {"type": "string", "format": "byte"}, "content_type": {"type": "string", "pattern": "^[!-~]{0,255}$"}, "ttl": {"type": "integer", "minimum": 1, "maximum": 315360000},
                    "if_match": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": ["*"]}]}, "if_none_match": {"type": "boolean"}},
                    "not": {"required": ["if_match", "if_none_match"]},
                    "oneOf": [{"properties": {"op": {"enum": ["delete"]}}, "not": {"anyOf": [{"required": ["value"]}, {"required": ["value_base64"]}, {"required": ["content_type"]}, {"required": ["ttl"]}]}},
                        {"properties": {"op": {"enum": ["put"]}}, "oneOf": [{"required": ["value"], "properties": {"value": {"oneOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}, {"type": "number"}, {"type": "boolean"}]}}, "not": {"required": ["value_base64"], "properties": {"value_base64": {"type": "string"}}}},
                            {"required": ["value_base64"], "properties": {"value_base64": {"type": "string"}}, "not": {"required": ["value"], "properties": {"value": {"oneOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}, {"type": "number"}, {"type": "boolean"}]}}}}]}]}}}}),
            ),
            json!({"type": "object", "properties": {"version": {"type": "integer", "nullable": true, "description": "null when nothing was written (deletes of absent states)"}}}),
            true,
        ),
        _ => ("", None, json!({}), true),
    }
}

/// Builds the document.
pub fn document() -> Value {
    let mut schemas = schemas();
    let mut paths = serde_json::Map::new();
    for (method, path) in crate::http::ROUTES {
        let (summary, body, result, authed) = describe(method, path);
        assert!(
            !summary.is_empty(),
            "route {method} {path} is not described in openapi.rs"
        );
        let mut params = Vec::new();
        if path.contains("{collection_name}") {
            params.push(json!({"name": "collection_name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"}}));
        }
        if path.contains("{id}") {
            params.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^([0-9]{1,20}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"}, "description": "An unsigned integer or a UUID"}));
        }
        for (name, pattern) in [
            ("actor_type", "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"),
            // At most 1,024 (ids) and 255 (states) UTF-8 bytes, no control characters: the
            // patterns bound characters at a quarter of that, which always fits.
            ("actor_id", "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
            ("state", "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,63}$"),
        ] {
            if path.contains(&format!("{{{name}}}")) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "pattern": pattern}}));
            }
        }
        if path.contains("{snapshot_name}") {
            params.push(json!({"name": "snapshot_name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"}}));
        }
        if path.contains("{field_name}") {
            params.push(json!({"name": "field_name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The indexed payload key"}));
        }
        if *method == "PUT" && path.ends_with("/points")
            || path.ends_with("/delete")
            || path.contains("/payload")
            || path.contains("/vectors")
            || path.ends_with("/points/batch")
            || path.contains("/index")
        {
            params.push(json!({"name": "wait", "in": "query", "required": false, "schema": {"type": "boolean"}, "description": "Accepted for compatibility: every write is durable before the response"}));
        }
        // Bare objects, as Qdrant answers them (`GET /` included).
        let plain = matches!(
            *path,
            "/" | "/health" | "/healthz" | "/livez" | "/health/ready" | "/readyz" | "/openapi.json"
        );
        let binary = *method == "GET" && path.ends_with("/snapshots/{snapshot_name}");
        // An actor state is returned as stored, with the Content-Type it was written with.
        let stored_bytes = *method == "GET"
            && path.starts_with("/v1/actors/{actor_type}/{actor_id}")
            && !path.ends_with("/states");
        let ok_schema = if plain || binary {
            result
        } else {
            envelope(result)
        };
        let err = json!({"description": "Error", "content": {"application/json": {"schema": r("ErrorResponse")}}});
        let (media, ok_schema) = match (binary, stored_bytes) {
            (true, _) => ("application/octet-stream", ok_schema),
            (_, true) => ("*/*", json!({"type": "string", "format": "binary"})),
            _ => ("application/json", ok_schema),
        };
        let mut responses = json!({"200": {"description": "Success", "content": {media: {"schema": ok_schema.clone()}}}});
        if authed {
            for code in ["400", "401", "403", "404", "413", "501", "503"] {
                responses[code] = err.clone();
            }
        }
        // Route-specific answers: a collection that exists already; an actor state created
        // (201) or a condition that does not hold (412).
        if *method == "PUT" && *path == "/collections/{collection_name}" {
            responses["409"] = err.clone();
        }
        if path.starts_with("/v1/actors/{actor_type}/{actor_id}") && *method != "GET" {
            responses["412"] = err.clone();
            if *method == "PUT" {
                responses["201"] =
                    json!({"description": "Created", "content": {media: {"schema": ok_schema}}});
            }
        }
        let mut op = json!({"summary": summary, "operationId": format!("{}{}", method.to_lowercase(), path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params, "responses": responses});
        if let Some(b) = body {
            // Required when the schema requires a field or one of several (an absent body
            // reads as `{}`).
            let needs = |v: &Value| {
                v.get("required")
                    .is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty()))
                    || v.get("anyOf").is_some()
                    || v.get("oneOf").is_some()
            };
            let required = match b.get("$ref").and_then(Value::as_str) {
                Some(r) => needs(&schemas[r.trim_start_matches("#/components/schemas/")]),
                None => needs(&b),
            };
            op["requestBody"] =
                json!({"required": required, "content": {"application/json": {"schema": b}}});
        }
        if !authed {
            op["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_lowercase()] = op;
    }
    // Request schemas (the bodies and every schema they reach) are closed; all get nullable
    // optional fields.
    let mut requests = std::collections::BTreeSet::new();
    let mut todo: Vec<Value> = Vec::new();
    for op in paths
        .values_mut()
        .flat_map(|p| p.as_object_mut().into_iter().flat_map(|m| m.values_mut()))
    {
        if let Some(b) = op.pointer_mut("/requestBody/content/application~1json/schema") {
            todo.push(b.clone());
            as_served(b, true);
        }
    }
    while let Some(v) = todo.pop() {
        for name in refs(&v) {
            if requests.insert(name.clone()) {
                todo.push(schemas[&name].clone());
            }
        }
    }
    if let Some(m) = schemas.as_object_mut() {
        for (name, schema) in m.iter_mut() {
            as_served(schema, requests.contains(name));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Strata", "version": env!("CARGO_PKG_VERSION"),
            "description": "A Qdrant-compatible REST API for vectors. Authenticate with a JWT: `Authorization: Bearer <token>` or the `api-key` header."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"}
            },
            "schemas": schemas
        }
    })
}

/// What the server does with every object: fields it does not know are refused (closed objects,
/// except where a schema says otherwise: payloads, filters), and an optional field may be
/// `null`, read as absent (Qdrant's schema makes them nullable, and clients send it).
fn as_served(schema: &mut Value, closed: bool) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    let required: Vec<String> = o
        .get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // Request integers are read as u64: a larger number is refused.
    if closed
        && o.get("type").and_then(Value::as_str) == Some("integer")
        && !o.contains_key("maximum")
    {
        o.insert("maximum".into(), json!(u64::MAX));
    }
    // An object of exactly one key (an action, an operation): that key's value is the point.
    let one_key = o.contains_key("maxProperties");
    // Only object schemas: a `oneOf` branch without a type constrains its parent's fields.
    let object = o.get("type").and_then(Value::as_str) == Some("object");
    if let Some(props) = o
        .get_mut("properties")
        .filter(|_| object)
        .and_then(Value::as_object_mut)
    {
        for (name, p) in props.iter_mut() {
            as_served(p, closed);
            if name == "limit" && p.get("type").and_then(Value::as_str) == Some("integer") {
                // Every limit is bounded by STRATA_MAX_LIMIT (10,000 by default).
                p["maximum"] = json!(10_000);
            }
            if one_key || required.contains(name) || p.as_object().is_some_and(|m| m.is_empty()) {
                continue;
            }
            if p.get("$ref").is_some() {
                // OpenAPI 3.0 ignores a `$ref`'s siblings: wrap it.
                *p = json!({"allOf": [p.take()], "nullable": true});
            } else {
                p["nullable"] = json!(true);
                // With an enum, null is valid only if listed.
                if let Some(Value::Array(e)) = p.get_mut("enum")
                    && !e.contains(&Value::Null)
                {
                    e.push(Value::Null);
                }
            }
        }
        if closed && !o.contains_key("additionalProperties") {
            o.insert("additionalProperties".into(), json!(false));
        }
    }
    for k in ["items", "additionalProperties", "not"] {
        if let Some(v) = o.get_mut(k) {
            as_served(v, closed);
        }
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(a)) = o.get_mut(k) {
            a.iter_mut().for_each(|v| as_served(v, closed));
        }
    }
}

/// The component schemas `v` names (`$ref`s), anywhere in it.
fn refs(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v.as_str()) {
                ("$ref", Some(r)) => {
                    vec![r.trim_start_matches("#/components/schemas/").to_string()]
                }
                _ => refs(v),
            })
            .collect(),
        Value::Array(a) => a.iter().flat_map(refs).collect(),
        _ => Vec::new(),
    }
}

static DOC: OnceLock<String> = OnceLock::new();

/// Serves the document.
pub(crate) async fn serve() -> impl IntoResponse {
    let body = DOC.get_or_init(|| document().to_string()).clone();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_with_its_method() {
        let doc = super::document();
        for (method, path) in crate::http::ROUTES {
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|p| p.as_object().expect("ops").len())
            .sum();
        assert_eq!(documented, crate::http::ROUTES.len());
    }
}
