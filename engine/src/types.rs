//! The data model: point ids, distances, collection configuration, points and results.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::sparse::{SparseParams, SparseVector};

/// Log sequence number: the WAL position of a write, also the version (ETag) of what it wrote.
pub type Lsn = u64;

/// JSON payload of a point: always an object.
pub type Payload = Map<String, Value>;

/// A point id: an unsigned integer or a UUID, as in Qdrant. Integers sort before UUIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointId {
    /// An unsigned 64-bit id.
    Num(u64),
    /// A UUID, as its 128-bit value.
    Uuid(u128),
}

impl PointId {
    /// Kind tag used on disk: 0 = integer, 1 = UUID.
    pub(crate) fn kind_tag(self) -> u8 {
        match self {
            PointId::Num(_) => 0,
            PointId::Uuid(_) => 1,
        }
    }

    /// Value used on disk (integers zero-extended).
    pub(crate) fn value_u128(self) -> u128 {
        match self {
            PointId::Num(n) => n as u128,
            PointId::Uuid(u) => u,
        }
    }

    /// Rebuilds an id from its on-disk tag and value; `None` for an unknown tag or an integer
    /// that does not fit 64 bits.
    pub(crate) fn from_parts(tag: u8, value: u128) -> Option<PointId> {
        match tag {
            0 => u64::try_from(value).ok().map(PointId::Num),
            1 => Some(PointId::Uuid(value)),
            _ => None,
        }
    }

    /// Parses a JSON id: a non-negative integer or a UUID string.
    pub fn from_json(v: &Value) -> Result<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num).ok_or_else(|| {
                Error::invalid(format!(
                    "point id {n} is not an unsigned 64-bit integer or a UUID"
                ))
            }),
            Value::String(s) => s.parse(),
            other => Err(Error::invalid(format!(
                "point id must be an unsigned integer or a UUID string, got {other}"
            ))),
        }
    }

    /// The id as JSON (a number or a hyphenated UUID string).
    pub fn to_json(self) -> Value {
        match self {
            PointId::Num(n) => Value::from(n),
            PointId::Uuid(_) => Value::String(self.to_string()),
        }
    }
}

impl FromStr for PointId {
    type Err = Error;
    fn from_str(s: &str) -> Result<PointId> {
        if let Ok(n) = s.parse::<u64>() {
            return Ok(PointId::Num(n));
        }
        uuid::Uuid::parse_str(s)
            .map(|u| PointId::Uuid(u.as_u128()))
            .map_err(|_| {
                Error::invalid(format!(
                    "point id {s:?} is not an unsigned integer or a UUID"
                ))
            })
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{}", uuid::Uuid::from_u128(*u).hyphenated()),
        }
    }
}

impl Serialize for PointId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            PointId::Num(n) => s.serialize_u64(*n),
            PointId::Uuid(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        PointId::from_json(&v).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// Similarity function of a collection (Qdrant's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Distance {
    /// Cosine similarity. Vectors are normalised on write and searched by dot product.
    Cosine,
    /// Euclidean distance. Ranked by squared L2; the reported score is the L2 distance.
    Euclid,
    /// Dot product (larger is closer).
    Dot,
}

impl Distance {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Distance::Cosine => 0,
            Distance::Euclid => 1,
            Distance::Dot => 2,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<Distance> {
        match t {
            0 => Some(Distance::Cosine),
            1 => Some(Distance::Euclid),
            2 => Some(Distance::Dot),
            _ => None,
        }
    }

    /// True when a larger score means closer (Cosine, Dot); false for Euclid.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Distance::Euclid)
    }
}

impl FromStr for Distance {
    type Err = Error;
    fn from_str(s: &str) -> Result<Distance> {
        match s {
            "Cosine" | "cosine" => Ok(Distance::Cosine),
            "Euclid" | "euclid" | "Euclidean" => Ok(Distance::Euclid),
            "Dot" | "dot" => Ok(Distance::Dot),
            _ => Err(Error::invalid(format!(
                "distance {s:?} is not one of Cosine, Euclid, Dot"
            ))),
        }
    }
}

/// HNSW build parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswConfig {
    /// Neighbours per node on upper layers (layer 0 keeps up to `2 * m`). 4..=128, default 16;
    /// 0 builds no graph for the vector (searches scan, exactly), as in Qdrant.
    pub m: u32,
    /// Candidate list size while building. 4..=4096, default 100.
    pub ef_construct: u32,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construct: 100,
        }
    }
}

/// Maximum vector dimension.
pub const MAX_DIM: u32 = 65_536;

/// One named dense vector's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorParams {
    /// Vector dimension, 1..=65,536.
    pub dim: u32,
    /// Similarity function.
    pub distance: Distance,
    /// HNSW build parameters.
    pub hnsw: HnswConfig,
}

impl VectorParams {
    /// Parameters with default HNSW settings.
    pub fn new(dim: u32, distance: Distance) -> VectorParams {
        VectorParams {
            dim,
            distance,
            hnsw: HnswConfig::default(),
        }
    }

    /// Checks every field; the error names the bad one, under `at` (e.g. `vectors.dense`).
    pub fn validate(&self, at: &str) -> Result<()> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(Error::invalid(format!(
                "{at}.size (dim) must be in 1..={MAX_DIM}, got {}",
                self.dim
            )));
        }
        check_hnsw_m(self.hnsw.m, &format!("{at}.hnsw_config"))?;
        check_hnsw_ef(self.hnsw.ef_construct, &format!("{at}.hnsw_config"))
    }
}

/// Checks an HNSW `m` given at `at` (e.g. `hnsw_config`): 0 (no graph) or 4..=128.
pub(crate) fn check_hnsw_m(m: u32, at: &str) -> Result<()> {
    if m != 0 && !(4..=128).contains(&m) {
        return Err(Error::invalid(format!(
            "{at}.m must be 0 (no graph) or in 4..=128, got {m}"
        )));
    }
    Ok(())
}

/// Checks an HNSW `ef_construct` given at `at`: 4..=4096.
pub(crate) fn check_hnsw_ef(ef: u32, at: &str) -> Result<()> {
    if !(4..=4096).contains(&ef) {
        return Err(Error::invalid(format!(
            "{at}.ef_construct must be in 4..=4096, got {ef}"
        )));
    }
    Ok(())
}

/// Named dense vectors per collection at most.
pub const MAX_VECTORS: usize = 16;
/// Longest vector name, in bytes.
pub const MAX_VECTOR_NAME: usize = 255;

/// A collection's configuration: its named dense and sparse vectors, fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CollectionConfig {
    /// The named dense vectors, sorted by name (the unnamed vector is the name `""`). A point
    /// may carry any subset; a search uses one. Their order is their index on disk.
    pub vectors: Vec<(String, VectorParams)>,
    /// True when created as a map of names (Qdrant's `"vectors": {"name": {...}}`, also for
    /// the name `""`), false for one unnamed vector (`"vectors": {"size": ...}`): collection
    /// info answers in the form it was given.
    pub named: bool,
    /// The named sparse vectors, sorted by name (never also a dense vector's name). A
    /// collection may have sparse vectors only (then `vectors` is empty).
    pub sparse: Vec<(String, SparseParams)>,
}

impl CollectionConfig {
    /// One unnamed vector with default HNSW parameters.
    pub fn new(dim: u32, distance: Distance) -> CollectionConfig {
        CollectionConfig::single(VectorParams::new(dim, distance))
    }

    /// One unnamed vector.
    pub fn single(params: VectorParams) -> CollectionConfig {
        CollectionConfig {
            vectors: vec![(String::new(), params)],
            named: false,
            sparse: Vec::new(),
        }
    }

    /// Named vectors (sorted here; a repeated name is refused by [`Self::validate`]).
    pub fn named(mut vectors: Vec<(String, VectorParams)>) -> CollectionConfig {
        vectors.sort_by(|a, b| a.0.cmp(&b.0));
        CollectionConfig {
            vectors,
            named: true,
            sparse: Vec::new(),
        }
    }

    /// This configuration with these sparse vectors (sorted here).
    #[must_use]
    pub fn with_sparse(mut self, mut sparse: Vec<(String, SparseParams)>) -> CollectionConfig {
        sparse.sort_by(|a, b| a.0.cmp(&b.0));
        self.sparse = sparse;
        self
    }

    /// The index of the sparse vector named `name`.
    pub fn sparse_space(&self, name: &str) -> Option<usize> {
        self.sparse.iter().position(|(n, _)| n == name)
    }

    /// The index of the vector named `name`.
    pub fn space(&self, name: &str) -> Option<usize> {
        self.vectors.iter().position(|(n, _)| n == name)
    }

    /// The index of the vector named `name`, or an error naming `field` and the names there are.
    pub fn space_or_err(&self, name: &str, field: &str) -> Result<usize> {
        self.space(name)
            .ok_or_else(|| self.no_vector(name, field, "dense "))
    }

    /// The index of the sparse vector named `name`, or an error naming `field`.
    pub fn sparse_space_or_err(&self, name: &str, field: &str) -> Result<usize> {
        self.sparse_space(name)
            .ok_or_else(|| self.no_vector(name, field, "sparse "))
    }

    fn no_vector(&self, name: &str, field: &str, kind: &str) -> Error {
        let list = |v: Vec<&String>| {
            let v: Vec<String> = v.iter().map(|n| format!("{n:?}")).collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        Error::invalid(format!(
            "{field}: the collection has no {kind}vector named {name:?} (its vectors: {}; sparse: {})",
            list(self.vectors.iter().map(|v| &v.0).collect()),
            list(self.sparse.iter().map(|v| &v.0).collect()),
        ))
    }

    /// Parameters of vector `space`.
    pub fn params(&self, space: usize) -> &VectorParams {
        &self.vectors[space].1
    }

    /// The first dense vector's parameters (the unnamed one of a single-vector collection);
    /// `None` for a collection of sparse vectors only.
    pub fn first(&self) -> Option<&VectorParams> {
        self.vectors.first().map(|v| &v.1)
    }

    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.vectors.is_empty() && self.sparse.is_empty() {
            return Err(Error::invalid(
                "vectors: a collection needs at least one dense or sparse vector",
            ));
        }
        if self.sparse.len() > MAX_VECTORS {
            return Err(Error::invalid(format!(
                "sparse_vectors: {} sparse vectors, at most {MAX_VECTORS}",
                self.sparse.len()
            )));
        }
        for (i, (name, _)) in self.sparse.iter().enumerate() {
            if name.len() > MAX_VECTOR_NAME || name.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "sparse_vectors: name {name:?} is invalid (at most {MAX_VECTOR_NAME} bytes, no control characters)"
                )));
            }
            if i > 0 && self.sparse[i - 1].0 >= *name {
                return Err(Error::invalid(format!(
                    "sparse_vectors: name {name:?} is repeated or out of order"
                )));
            }
            if self.space(name).is_some() {
                return Err(Error::invalid(format!(
                    "sparse_vectors.{name}: the name is also a dense vector's"
                )));
            }
        }
        if self.vectors.len() > MAX_VECTORS {
            return Err(Error::invalid(format!(
                "vectors: {} named vectors, at most {MAX_VECTORS}",
                self.vectors.len()
            )));
        }
        if !self.named && (self.vectors.len() != 1 || !self.vectors[0].0.is_empty()) {
            if self.vectors.is_empty() {
                return Err(Error::invalid(
                    "vectors: a collection with sparse vectors only is created named",
                ));
            }
            return Err(Error::invalid(
                "vectors: an unnamed config has one vector named \"\"",
            ));
        }
        for (i, (name, p)) in self.vectors.iter().enumerate() {
            if name.len() > MAX_VECTOR_NAME || name.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "vectors: name {name:?} is invalid (at most {MAX_VECTOR_NAME} bytes, no control characters)"
                )));
            }
            if i > 0 && self.vectors[i - 1].0 >= *name {
                return Err(Error::invalid(format!(
                    "vectors: name {name:?} is repeated or out of order"
                )));
            }
            let at = match self.named {
                true => format!("vectors.{name}"),
                false => "vectors".to_string(),
            };
            p.validate(&at)?;
        }
        Ok(())
    }
}

/// Checks a collection (or tenant) name: `[A-Za-z0-9_.-]{1,128}`, and not `.` or `..`.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if name.is_empty() || name.len() > 128 || !ok_chars || name == "." || name == ".." {
        return Err(Error::invalid(format!(
            "{what} {name:?} is invalid: use 1 to 128 characters from [A-Za-z0-9_.-]"
        )));
    }
    Ok(())
}

/// A point's dense vectors by name (the unnamed vector is the name `""`).
pub type Vectors = std::collections::BTreeMap<String, Vec<f32>>;

/// A point's sparse vectors by name.
pub type SparseVectors = std::collections::BTreeMap<String, SparseVector>;

/// A point to upsert.
#[derive(Clone, Debug, PartialEq)]
pub struct PointInput {
    /// Its id.
    pub id: PointId,
    /// Its vectors by name: any subset of the collection's (`dim` finite components each).
    pub vectors: Vectors,
    /// Its sparse vectors by name: any subset of the collection's.
    pub sparse: SparseVectors,
    /// Its payload (an object; `None` is an empty payload).
    pub payload: Option<Payload>,
}

/// Parses a list of numbers at `at`.
pub fn parse_vector(v: &Value, at: &str) -> Result<Vec<f32>> {
    match v {
        Value::Array(xs) => xs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| Error::invalid(format!("{at}[{i}]: expected a number, got {x}")))
            })
            .collect(),
        other => Err(Error::invalid(format!(
            "{at}: expected a list of numbers, got {other}"
        ))),
    }
}

impl PointInput {
    /// A point with one unnamed vector.
    pub fn new(id: PointId, vector: Vec<f32>, payload: Option<Payload>) -> PointInput {
        PointInput {
            id,
            vectors: Vectors::from([(String::new(), vector)]),
            sparse: SparseVectors::new(),
            payload,
        }
    }

    /// Parses `{"id", "vector", "payload"?}` — `vector` a list (the unnamed vector) or an
    /// object of named lists; errors name the field as `{at}.vector.name` etc.
    pub fn from_json(v: &Value, at: &str) -> Result<PointInput> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::invalid(format!("{at}: expected an object")))?;
        let id = PointId::from_json(
            obj.get("id")
                .ok_or_else(|| Error::invalid(format!("{at}.id: missing")))?,
        )
        .map_err(|e| Error::invalid(format!("{at}.id: {}", e.message())))?;
        let (vectors, sparse) = match obj.get("vector") {
            Some(Value::Object(m)) => parse_named_vectors(m, &format!("{at}.vector"))?,
            Some(v) => (
                Vectors::from([(String::new(), parse_vector(v, &format!("{at}.vector"))?)]),
                SparseVectors::new(),
            ),
            None => return Err(Error::invalid(format!("{at}.vector: missing"))),
        };
        let payload = match obj.get("payload") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "{at}.payload: expected a JSON object, got {other}"
                )));
            }
        };
        Ok(PointInput {
            id,
            vectors,
            sparse,
            payload,
        })
    }
}

/// Parses `{"name": [numbers] | {"indices": [...], "values": [...]}, ...}`: dense and sparse
/// vectors by name.
pub fn parse_named_vectors(m: &Map<String, Value>, at: &str) -> Result<(Vectors, SparseVectors)> {
    let (mut dense, mut sparse) = (Vectors::new(), SparseVectors::new());
    for (name, v) in m {
        let at = format!("{at}.{name}");
        match v {
            Value::Object(o) => {
                sparse.insert(name.clone(), SparseVector::from_map(o, &at)?);
            }
            v => {
                dense.insert(name.clone(), parse_vector(v, &at)?);
            }
        }
    }
    Ok((dense, sparse))
}

/// A stored point as returned by reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Its id.
    pub id: PointId,
    /// The LSN of the write that produced it.
    pub version: Lsn,
    /// Its payload, when asked for.
    pub payload: Option<Payload>,
    /// Its vectors by name, when asked for (normalised for Cosine vectors).
    pub vectors: Option<Vectors>,
    /// Its sparse vectors by name, when vectors are asked for (else empty).
    pub sparse: SparseVectors,
}

impl Record {
    /// Its unnamed vector (name `""`), if asked for and present.
    pub fn vector(&self) -> Option<&[f32]> {
        self.vectors.as_ref()?.get("").map(Vec::as_slice)
    }
}

/// A search hit.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredPoint {
    /// Its id.
    pub id: PointId,
    /// The LSN of the write that produced it.
    pub version: Lsn,
    /// Similarity score: cosine similarity, dot product, or L2 distance (Euclid, lower is closer).
    pub score: f32,
    /// Its payload, when asked for.
    pub payload: Option<Payload>,
    /// Its vectors by name, when asked for.
    pub vectors: Option<Vectors>,
    /// Its sparse vectors by name, when vectors are asked for (else empty).
    pub sparse: SparseVectors,
}

impl ScoredPoint {
    /// Its unnamed vector (name `""`), if asked for and present.
    pub fn vector(&self) -> Option<&[f32]> {
        self.vectors.as_ref()?.get("").map(Vec::as_slice)
    }
}

/// A similarity search.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Vec<f32>,
    /// The name of the vector searched (`""`: the unnamed one).
    pub using: String,
    /// How many hits to return.
    pub limit: usize,
    /// How many of the best hits to skip first.
    pub offset: usize,
    /// HNSW candidate list size; default `max(ef_construct, limit + offset)`.
    pub ef: Option<usize>,
    /// Only points whose payload matches.
    pub filter: Option<Filter>,
    /// Scan every point exactly instead of using the graph.
    pub exact: bool,
    /// Walk the graph over full `f32` vectors instead of one-byte codes (Qdrant's
    /// `params.quantization.ignore`). Default false: the walk reads each segment's codes and
    /// re-ranks its best candidates exactly (unless [`Self::rescore`] is false).
    pub ignore_quantization: bool,
    /// Qdrant's `params.quantization.oversampling` (1..=1000): after a walk over codes,
    /// `oversampling × (limit + offset)` of its best candidates are re-scored with the full
    /// vectors (and `ef` is at least that). Default: twice `limit + offset`.
    pub oversampling: Option<f64>,
    /// Qdrant's `params.quantization.rescore`. Default true: a walk over codes re-ranks its
    /// best candidates by their exact distance, reading their full vectors (from disk, for a
    /// warm segment whose vectors are not cached). False: the hits keep their distance over
    /// the codes — approximate scores and order among near ties, no vector reads. Segments
    /// searched without codes (no graph, `exact`, `ignore_quantization`) score exactly either way.
    pub rescore: bool,
    /// Time allowed for reading cold segments, counted from the start of the search: cold
    /// segments not read by then are left out and the report says so (partial answer).
    /// Default none: every needed cold segment is read.
    pub cold_deadline: Option<std::time::Duration>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
    /// Drop hits worse than this score (for Euclid: farther than this distance).
    pub score_threshold: Option<f32>,
    /// Whether segments only in the cold store are read. Default [`ColdReads::Include`].
    pub cold: ColdReads,
}

/// How a search treats segments whose bytes are only in the cold store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColdReads {
    /// Read them as needed — except those whose summary proves that no row can enter the
    /// results (the answer is exactly that of reading them all).
    #[default]
    Include,
    /// Never read them: the answer covers the hot and warm data (and the memtable) only, and
    /// says how many cold segments it left out.
    Skip,
}

/// A search's results and what it read.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SearchReport {
    /// The hits, best first.
    pub points: Vec<ScoredPoint>,
    /// Cold segments the search read (streamed or promoted).
    pub cold_searched: u64,
    /// Cold segments whose summary proved they could not change the results.
    pub cold_skipped: u64,
    /// Cold segments left out because the request said [`ColdReads::Skip`] or its
    /// `cold_deadline` passed: when non-zero the answer may be partial.
    pub cold_left_out: u64,
}

impl SearchRequest {
    /// A plain top-`limit` search for `vector`.
    pub fn new(vector: Vec<f32>, limit: usize) -> SearchRequest {
        SearchRequest {
            vector,
            using: String::new(),
            limit,
            offset: 0,
            ef: None,
            filter: None,
            exact: false,
            ignore_quantization: false,
            oversampling: None,
            rescore: true,
            cold_deadline: None,
            with_payload: false,
            with_vector: false,
            score_threshold: None,
            cold: ColdReads::Include,
        }
    }
}

/// A page request for [`crate::CollectionHandle::scroll`].
#[derive(Clone, Debug, Default)]
pub struct ScrollRequest {
    /// First id of the page (inclusive); `None` starts at the smallest id.
    pub offset: Option<PointId>,
    /// Page size.
    pub limit: usize,
    /// Only points whose payload matches.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
}

/// One page of a scroll.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrollPage {
    /// The points, ordered by id.
    pub points: Vec<Record>,
    /// The id that starts the next page, if any.
    pub next_offset: Option<PointId>,
}

/// A facet request: how many points hold each value of an indexed payload field.
#[derive(Clone, Debug, PartialEq)]
pub struct FacetRequest {
    /// The field, as filters name it; it must have a keyword, integer, bool or uuid index.
    pub key: String,
    /// Only points matching it are counted.
    pub filter: Option<crate::filter::Filter>,
    /// How many values to return (the most frequent).
    pub limit: usize,
}

/// One value of a facet and the number of points holding it (a point holding several values
/// counts once under each).
#[derive(Clone, Debug, PartialEq)]
pub struct FacetHit {
    /// The value: a string, an integer or a boolean.
    pub value: serde_json::Value,
    /// Points holding it.
    pub count: u64,
}

/// How a grouped search groups (see `CollectionHandle::search_groups`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRequest {
    /// The payload field whose values name the groups.
    pub group_by: String,
    /// Most hits per group.
    pub group_size: usize,
    /// Most groups.
    pub limit: usize,
}

/// One group of a grouped search.
#[derive(Clone, Debug)]
pub struct PointGroup {
    /// The value of the field shared by its hits (a string or an integer).
    pub id: serde_json::Value,
    /// Its best hits, best first.
    pub hits: Vec<ScoredPoint>,
}

/// A change of HNSW build parameters (see `CollectionHandle::update_hnsw`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HnswUpdate {
    /// The named vector it applies to; `None`: every vector.
    pub vector: Option<String>,
    /// New `m`, if given.
    pub m: Option<u32>,
    /// New `ef_construct`, if given.
    pub ef_construct: Option<u32>,
}

/// Statistics of a collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// Its configuration.
    pub config: CollectionConfig,
    /// Live points.
    pub points: u64,
    /// Sealed segments (memtable excluded).
    pub segments: u64,
    /// Segments that carry an HNSW graph.
    pub indexed_segments: u64,
    /// Bytes of segment files plus an estimate of the memtable.
    pub bytes: u64,
    /// Points in the memtable (hot, unsealed).
    pub memtable_points: u64,
    /// The tier hint: `auto`, `pin_hot`, `warm` or `offload` (see [`crate::TierHint`]).
    pub tier_hint: String,
    /// Sealed segments per tier: hot, warm, cold.
    pub tier_segments: [u64; 3],
}
