//! The manifest: which collections exist and which segment files hold their sealed data.
//!
//! It is the root of recovery. Every change (a collection created or dropped, a flush, a
//! compaction) writes a complete new manifest with a higher `generation`, atomically
//! through the blob store (`layout::MANIFEST`; locally: temp file, fsync, rename, fsync dir). In
//! cluster mode the same bytes become the object `manifest/{generation}` created with
//! If-None-Match. Byte layout: `docs/format.md`.
//!
//! Decoding trusts nothing: besides checksums, every collection's name and configuration is
//! checked as the API would check it, and duplicate ids, names or segments are refused.

use strata_tiering::policy::Hint;

use crate::codec::{DecodeError, Reader, Writer, crc};
use crate::index::{FieldType, PayloadIndexes};
use crate::types::{CollectionConfig, Distance, HnswConfig, Lsn, VectorParams, validate_name};

pub(crate) const MAGIC: &[u8; 8] = b"STRATMAN";
/// Version 2 added each collection's tier hint; version 3 named vectors (a list of name,
/// dim, distance, HNSW per collection, and whether it was created named); version 4 payload
/// indexes (a list of key, type per collection); version 5 collection aliases (a list of
/// tenant, alias, collection after the collections); version 6 sparse vectors (a list of
/// name, modifier per collection, after the dense ones); version 7 actor stores (a list of id,
/// tenant, actor type, created and flushed LSN after the aliases); version 8 each actor store's
/// tier hint and actor segments (id, records, LSN range, file length). Older versions still
/// open (hint `auto`; one unnamed vector; no payload index; no alias; no sparse vector; no
/// actor store; actor stores without segments).
pub(crate) const VERSION: u32 = 8;

/// The byte a tier hint is stored as.
pub(crate) fn hint_tag(h: Hint) -> u8 {
    match h {
        Hint::Auto => 0,
        Hint::PinHot => 1,
        Hint::Warm => 2,
        Hint::Offload => 3,
    }
}

/// The tier hint a stored byte stands for.
pub(crate) fn hint_of(tag: u8) -> Option<Hint> {
    Some(match tag {
        0 => Hint::Auto,
        1 => Hint::PinHot,
        2 => Hint::Warm,
        3 => Hint::Offload,
        _ => return None,
    })
}
pub(crate) const HEADER_LEN: usize = 32;

/// One sealed segment of a collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub(crate) id: u64,
    pub(crate) rows: u32,
    pub(crate) tombstones: u32,
    pub(crate) min_lsn: Lsn,
    pub(crate) max_lsn: Lsn,
    pub(crate) file_len: u64,
    pub(crate) has_graph: bool,
}

/// One collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CollectionEntry {
    pub(crate) id: u64,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) config: CollectionConfig,
    pub(crate) created_lsn: Lsn,
    /// Every WAL record of this collection with LSN <= this is in `segments`.
    pub(crate) flushed_lsn: Lsn,
    /// Where the tiering policy should keep this collection's segments.
    pub(crate) hint: Hint,
    /// Its payload indexes, sorted by key.
    pub(crate) indexes: PayloadIndexes,
    pub(crate) segments: Vec<SegmentEntry>,
}

/// One actor store: the states of one actor type of a tenant (`docs/actors.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActorStoreEntry {
    /// Its WAL stream id (from the collection id counter: never shared with a collection).
    pub(crate) id: u64,
    pub(crate) tenant: String,
    pub(crate) actor_type: String,
    pub(crate) created_lsn: Lsn,
    /// Every WAL record of this store with LSN <= this is in its segments.
    pub(crate) flushed_lsn: Lsn,
    /// Where the tiering policy should keep this actor type's segments.
    pub(crate) hint: Hint,
    /// Its actor segments, newest first.
    pub(crate) segments: Vec<ActorSegmentEntry>,
}

/// One actor segment (`docs/format.md`, actor segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActorSegmentEntry {
    pub(crate) id: u64,
    pub(crate) records: u32,
    pub(crate) min_lsn: Lsn,
    pub(crate) max_lsn: Lsn,
    pub(crate) file_len: u64,
}

/// Collection aliases: (tenant, alias) → collection name of that tenant.
pub(crate) type Aliases = std::collections::BTreeMap<(String, String), String>;

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Manifest {
    pub(crate) generation: u64,
    pub(crate) last_lsn: Lsn,
    pub(crate) next_collection_id: u64,
    pub(crate) next_segment_id: u64,
    pub(crate) collections: Vec<CollectionEntry>,
    pub(crate) aliases: Aliases,
    /// Actor stores, sorted by (tenant, actor type).
    pub(crate) actors: Vec<ActorStoreEntry>,
}

fn str16(w: &mut Writer, s: &str) {
    w.u16(s.len() as u16);
    w.bytes(s.as_bytes());
}

fn get_str16(r: &mut Reader<'_>, what: &str) -> Result<String, DecodeError> {
    let n = r.u16(what)? as usize;
    let at = r.pos();
    let b = r.take(n, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError {
        offset: at,
        what: format!("{what} is not UTF-8"),
    })
}

/// The blob names a manifest refers to, `None` if `bytes` is not a manifest (the cold tier's
/// garbage collector keeps what retained manifests name).
pub(crate) fn referenced_blobs(bytes: &[u8]) -> Option<Vec<String>> {
    let m = Manifest::decode(bytes).ok()?;
    Some(
        m.segment_ids()
            .flat_map(|id| {
                [
                    strata_tiering::layout::segment(id),
                    strata_tiering::layout::segment_meta(id),
                ]
            })
            .collect(),
    )
}

/// A manifest file: the header (magic, `version`, flags, body length and CRC, header CRC),
/// then `body`.
fn frame(version: u32, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(HEADER_LEN + body.len());
    w.bytes(MAGIC);
    w.u32(version);
    w.u32(0);
    w.u64(body.len() as u64);
    w.u32(crc(body));
    let hc = crc(&w.buf);
    w.u32(hc);
    w.bytes(body);
    w.buf
}

impl Manifest {
    /// Every segment the manifest names: collections' and actor stores'.
    pub(crate) fn segment_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.collections
            .iter()
            .flat_map(|c| c.segments.iter().map(|s| s.id))
            .chain(
                self.actors
                    .iter()
                    .flat_map(|a| a.segments.iter().map(|s| s.id)),
            )
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Writer::with_capacity(256);
        b.u64(self.generation);
        b.u64(self.last_lsn);
        b.u64(self.next_collection_id);
        b.u64(self.next_segment_id);
        b.u32(self.collections.len() as u32);
        for c in &self.collections {
            b.u64(c.id);
            str16(&mut b, &c.tenant);
            str16(&mut b, &c.name);
            b.u8(u8::from(c.config.named));
            b.u16(c.config.vectors.len() as u16);
            for (name, p) in &c.config.vectors {
                str16(&mut b, name);
                b.u32(p.dim);
                b.u8(p.distance.tag());
                b.u32(p.hnsw.m);
                b.u32(p.hnsw.ef_construct);
            }
            b.u16(c.config.sparse.len() as u16);
            for (name, p) in &c.config.sparse {
                str16(&mut b, name);
                b.u8(p.modifier.tag());
            }
            b.u64(c.created_lsn);
            b.u64(c.flushed_lsn);
            b.u8(hint_tag(c.hint));
            b.u16(c.indexes.len() as u16);
            for (key, ty) in &c.indexes {
                str16(&mut b, key);
                b.u8(ty.tag());
            }
            b.u32(c.segments.len() as u32);
            for s in &c.segments {
                b.u64(s.id);
                b.u32(s.rows);
                b.u32(s.tombstones);
                b.u64(s.min_lsn);
                b.u64(s.max_lsn);
                b.u64(s.file_len);
                b.u8(u8::from(s.has_graph));
            }
        }
        b.u32(self.aliases.len() as u32);
        for ((tenant, alias), target) in &self.aliases {
            str16(&mut b, tenant);
            str16(&mut b, alias);
            str16(&mut b, target);
        }
        b.u32(self.actors.len() as u32);
        for a in &self.actors {
            b.u64(a.id);
            str16(&mut b, &a.tenant);
            str16(&mut b, &a.actor_type);
            b.u64(a.created_lsn);
            b.u64(a.flushed_lsn);
            b.u8(hint_tag(a.hint));
            b.u32(a.segments.len() as u32);
            for s in &a.segments {
                b.u64(s.id);
                b.u32(s.records);
                b.u64(s.min_lsn);
                b.u64(s.max_lsn);
                b.u64(s.file_len);
            }
        }
        frame(VERSION, &b.buf)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(8, "manifest magic")? != MAGIC {
            return Err(DecodeError {
                offset: 0,
                what: "bad manifest magic".into(),
            });
        }
        let version = r.u32("manifest format version")?;
        if !(1..=VERSION).contains(&version) {
            return Err(DecodeError {
                offset: 8,
                what: format!("unsupported manifest format version {version}"),
            });
        }
        let _flags = r.u32("flags")?;
        let body_len = r.u64("body length")?;
        let body_crc = r.u32("body CRC")?;
        let header_crc = r.u32("header CRC")?;
        if crc(&bytes[..28]) != header_crc {
            return Err(DecodeError {
                offset: 28,
                what: "manifest header checksum mismatch".into(),
            });
        }
        if body_len != r.remaining() as u64 {
            return Err(DecodeError {
                offset: 16,
                what: format!(
                    "manifest body is {} bytes, header says {body_len}",
                    r.remaining()
                ),
            });
        }
        if crc(&bytes[HEADER_LEN..]) != body_crc {
            return Err(DecodeError {
                offset: HEADER_LEN,
                what: "manifest body checksum mismatch".into(),
            });
        }
        let mut m = Manifest {
            generation: r.u64("generation")?,
            last_lsn: r.u64("last LSN")?,
            next_collection_id: r.u64("next collection id")?,
            next_segment_id: r.u64("next segment id")?,
            collections: Vec::new(),
            aliases: Aliases::new(),
            actors: Vec::new(),
        };
        let n = r.u32("collection count")?;
        let mut seen_ids = std::collections::HashSet::new();
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_segments = std::collections::HashSet::new();
        for _ in 0..n {
            let entry_at = r.pos();
            let id = r.u64("collection id")?;
            let tenant = get_str16(&mut r, "tenant")?;
            let name = get_str16(&mut r, "collection name")?;
            // Nothing read from disk is trusted: a value the API would refuse is refused here,
            // before it can reach code that assumes it valid.
            let invalid = |what: String| DecodeError {
                offset: entry_at,
                what: format!("collection {tenant:?}/{name:?} (id {id}): {what}"),
            };
            validate_name("tenant", &tenant).map_err(|e| invalid(e.message().to_string()))?;
            validate_name("collection name", &name)
                .map_err(|e| invalid(e.message().to_string()))?;
            if !seen_ids.insert(id) || !seen_names.insert((tenant.clone(), name.clone())) {
                return Err(invalid("listed twice".into()));
            }
            let params = |r: &mut Reader<'_>| -> Result<VectorParams, DecodeError> {
                let dim = r.u32("dim")?;
                let at = r.pos();
                let tag = r.u8("distance")?;
                let distance = Distance::from_tag(tag).ok_or(DecodeError {
                    offset: at,
                    what: format!("unknown distance tag {tag}"),
                })?;
                let hnsw = HnswConfig {
                    m: r.u32("hnsw m")?,
                    ef_construct: r.u32("hnsw ef_construct")?,
                };
                Ok(VectorParams {
                    dim,
                    distance,
                    hnsw,
                })
            };
            let config = match version {
                1 | 2 => CollectionConfig::single(params(&mut r)?),
                _ => {
                    let named = r.u8("named flag")?;
                    let n = r.u16("vector count")?;
                    let mut vectors = Vec::new();
                    for _ in 0..n {
                        let name = get_str16(&mut r, "vector name")?;
                        vectors.push((name, params(&mut r)?));
                    }
                    if named > 1 {
                        return Err(invalid(format!("named flag {named}")));
                    }
                    let mut sparse = Vec::new();
                    if version >= 6 {
                        let n = r.u16("sparse vector count")?;
                        for _ in 0..n {
                            let name = get_str16(&mut r, "sparse vector name")?;
                            let at = r.pos();
                            let tag = r.u8("sparse modifier")?;
                            let modifier =
                                crate::sparse::Modifier::from_tag(tag).ok_or(DecodeError {
                                    offset: at,
                                    what: format!("unknown sparse modifier {tag}"),
                                })?;
                            sparse.push((name, crate::sparse::SparseParams { modifier }));
                        }
                    }
                    CollectionConfig {
                        vectors,
                        named: named == 1,
                        sparse,
                    }
                }
            };
            let created_lsn = r.u64("created LSN")?;
            let flushed_lsn = r.u64("flushed LSN")?;
            let hint = match version {
                1 => Hint::Auto,
                _ => {
                    let at = r.pos();
                    let tag = r.u8("tier hint")?;
                    hint_of(tag).ok_or(DecodeError {
                        offset: at,
                        what: format!("unknown tier hint {tag}"),
                    })?
                }
            };
            let mut indexes = Vec::new();
            if version >= 4 {
                let n = r.u16("payload index count")?;
                for _ in 0..n {
                    let key = get_str16(&mut r, "payload index key")?;
                    let at = r.pos();
                    let tag = r.u8("payload index type")?;
                    let ty = FieldType::from_tag(tag).ok_or(DecodeError {
                        offset: at,
                        what: format!("unknown payload index type {tag}"),
                    })?;
                    indexes.push((key, ty));
                }
            }
            crate::index::validate(&indexes).map_err(|e| invalid(e.message().to_string()))?;
            let segs = r.u32("segment count")?;
            let mut segments = Vec::new();
            for _ in 0..segs {
                segments.push(SegmentEntry {
                    id: r.u64("segment id")?,
                    rows: r.u32("rows")?,
                    tombstones: r.u32("tombstones")?,
                    min_lsn: r.u64("min LSN")?,
                    max_lsn: r.u64("max LSN")?,
                    file_len: r.u64("file length")?,
                    has_graph: r.u8("flags")? & 1 == 1,
                });
            }
            config
                .validate()
                .map_err(|e| invalid(e.message().to_string()))?;
            for s in &segments {
                if !seen_segments.insert(s.id) {
                    return Err(invalid(format!("segment {} is listed twice", s.id)));
                }
                if s.min_lsn > s.max_lsn && s.rows + s.tombstones > 0 {
                    return Err(invalid(format!(
                        "segment {} has LSN range {}..{}",
                        s.id, s.min_lsn, s.max_lsn
                    )));
                }
            }
            m.collections.push(CollectionEntry {
                id,
                tenant,
                name,
                config,
                created_lsn,
                flushed_lsn,
                hint,
                indexes,
                segments,
            });
        }
        if version >= 5 {
            let n = r.u32("alias count")?;
            for _ in 0..n {
                let at = r.pos();
                let tenant = get_str16(&mut r, "alias tenant")?;
                let alias = get_str16(&mut r, "alias name")?;
                let target = get_str16(&mut r, "alias collection")?;
                let bad = |what: String| DecodeError {
                    offset: at,
                    what: format!("alias {tenant:?}/{alias:?}: {what}"),
                };
                validate_name("alias name", &alias).map_err(|e| bad(e.message().to_string()))?;
                if seen_names.contains(&(tenant.clone(), alias.clone())) {
                    return Err(bad("is also a collection name".into()));
                }
                if !seen_names.contains(&(tenant.clone(), target.clone())) {
                    return Err(bad(format!(
                        "names collection {target:?}, which is not listed"
                    )));
                }
                if m.aliases.contains_key(&(tenant.clone(), alias.clone())) {
                    return Err(bad("listed twice".into()));
                }
                m.aliases.insert((tenant, alias), target);
            }
        }
        if version >= 7 {
            let n = r.u32("actor store count")?;
            for _ in 0..n {
                let at = r.pos();
                let mut a = ActorStoreEntry {
                    id: r.u64("actor store id")?,
                    tenant: get_str16(&mut r, "actor store tenant")?,
                    actor_type: get_str16(&mut r, "actor type")?,
                    created_lsn: r.u64("actor store created LSN")?,
                    flushed_lsn: r.u64("actor store flushed LSN")?,
                    hint: Hint::Auto,
                    segments: Vec::new(),
                };
                if version >= 8 {
                    let at = r.pos();
                    let tag = r.u8("actor store tier hint")?;
                    a.hint = hint_of(tag).ok_or(DecodeError {
                        offset: at,
                        what: format!("unknown tier hint {tag}"),
                    })?;
                    let n = r.u32("actor segment count")?;
                    for _ in 0..n.min(1 << 20) {
                        a.segments.push(ActorSegmentEntry {
                            id: r.u64("actor segment id")?,
                            records: r.u32("actor segment records")?,
                            min_lsn: r.u64("actor segment min LSN")?,
                            max_lsn: r.u64("actor segment max LSN")?,
                            file_len: r.u64("actor segment file length")?,
                        });
                    }
                    if n > 1 << 20 {
                        return Err(r.err("too many actor segments"));
                    }
                }
                let invalid = |what: String| DecodeError {
                    offset: at,
                    what: format!("actor store {:?}/{:?}: {what}", a.tenant, a.actor_type),
                };
                validate_name("tenant", &a.tenant).map_err(|e| invalid(e.message().to_string()))?;
                validate_name("actor type", &a.actor_type)
                    .map_err(|e| invalid(e.message().to_string()))?;
                if !seen_ids.insert(a.id)
                    || m.actors
                        .last()
                        .is_some_and(|p| (&p.tenant, &p.actor_type) >= (&a.tenant, &a.actor_type))
                {
                    return Err(invalid(
                        "listed twice, out of order, or sharing an id".into(),
                    ));
                }
                if a.flushed_lsn < a.created_lsn || a.flushed_lsn > m.last_lsn.max(a.created_lsn) {
                    return Err(invalid("flushed LSN out of range".into()));
                }
                for s in &a.segments {
                    if !seen_segments.insert(s.id) {
                        return Err(invalid(format!("segment {} is listed twice", s.id)));
                    }
                    if s.min_lsn > s.max_lsn || s.max_lsn > a.flushed_lsn {
                        return Err(invalid(format!(
                            "segment {} has LSN range {}..{} (flushed LSN {})",
                            s.id, s.min_lsn, s.max_lsn, a.flushed_lsn
                        )));
                    }
                }
                m.actors.push(a);
            }
        }
        if r.remaining() != 0 {
            return Err(r.err("trailing bytes in manifest"));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn manifest() -> impl Strategy<Value = Manifest> {
        let seg = (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(
                |(id, rows, tombstones, a, b, file_len, has_graph)| SegmentEntry {
                    id,
                    rows,
                    tombstones,
                    min_lsn: a.min(b),
                    max_lsn: a.max(b),
                    file_len,
                    has_graph,
                },
            );
        let coll = (
            any::<u64>(),
            "[a-z]{1,8}",
            "[A-Za-z0-9_-]{1,20}",
            1u32..5000,
            0u8..3,
            4u32..64,
            4u32..500,
            any::<u64>(),
            (any::<u64>(), 0u8..4),
            prop::collection::btree_map("[a-z]{1,6}(\\.[a-z]{1,4}){0,2}", 0u8..6, 0..4),
            prop::collection::vec(seg, 0..4),
        )
            .prop_map(
                |(
                    id,
                    tenant,
                    name,
                    dim,
                    d,
                    m,
                    ef,
                    created_lsn,
                    (flushed_lsn, hint),
                    indexes,
                    segments,
                )| {
                    let indexes = indexes
                        .into_iter()
                        .map(|(k, t)| (k, FieldType::from_tag(t).expect("tag")))
                        .collect();
                    CollectionEntry {
                        id,
                        tenant,
                        name,
                        config: {
                            let p = VectorParams {
                                dim,
                                distance: Distance::from_tag(d).expect("tag"),
                                hnsw: HnswConfig {
                                    m,
                                    ef_construct: ef,
                                },
                            };
                            match dim % 3 {
                                0 => CollectionConfig::single(p),
                                1 => CollectionConfig::named(vec![(String::new(), p)]),
                                _ => CollectionConfig::named(vec![
                                    ("dense".into(), p),
                                    ("other".into(), VectorParams::new(dim + 1, Distance::Dot)),
                                ]),
                            }
                        },
                        created_lsn,
                        flushed_lsn,
                        hint: hint_of(hint).expect("tag"),
                        indexes,
                        segments,
                    }
                },
            );
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(coll, 0..4),
            prop::collection::vec(("[a-z]{1,6}", any::<prop::sample::Index>()), 0..4),
        )
            .prop_map(
                |(
                    generation,
                    last_lsn,
                    next_collection_id,
                    next_segment_id,
                    mut collections,
                    aliases,
                )| {
                    // Ids, names and segment ids are unique in a real manifest.
                    let mut seg = 0;
                    for (i, c) in collections.iter_mut().enumerate() {
                        c.id = i as u64 + 1;
                        c.name = format!("{i}{}", c.name);
                        for s in &mut c.segments {
                            seg += 1;
                            s.id = seg;
                        }
                    }
                    // Aliases name a collection of their tenant, never a collection name.
                    let aliases = match collections.is_empty() {
                        true => Aliases::new(),
                        false => aliases
                            .into_iter()
                            .map(|(a, i)| {
                                let c = &collections[i.index(collections.len())];
                                ((c.tenant.clone(), format!("alias-{a}")), c.name.clone())
                            })
                            .collect(),
                    };
                    // Actor stores: ids apart from the collections', LSNs within the manifest's.
                    let actors = (0..generation % 3)
                        .map(|i| ActorStoreEntry {
                            id: (1 << 40) + i,
                            tenant: "t".into(),
                            actor_type: format!("type{i}"),
                            created_lsn: last_lsn / 2,
                            flushed_lsn: last_lsn / 2 + i.min(last_lsn - last_lsn / 2),
                            hint: hint_of((i % 4) as u8).expect("a tag"),
                            segments: (0..i)
                                .map(|j| ActorSegmentEntry {
                                    id: (1 << 41) + i * 8 + j,
                                    records: j as u32 + 1,
                                    min_lsn: last_lsn / 2,
                                    max_lsn: last_lsn / 2,
                                    file_len: 200 + j,
                                })
                                .collect(),
                        })
                        .collect();
                    Manifest {
                        generation,
                        last_lsn,
                        next_collection_id,
                        next_segment_id,
                        collections,
                        aliases,
                        actors,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(m in manifest()) {
            prop_assert_eq!(Manifest::decode(&m.encode()).expect("decodes"), m);
        }

        #[test]
        fn any_single_byte_corruption_is_detected(m in manifest(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let mut b = m.encode();
            let i = pos.index(b.len());
            b[i] ^= flip;
            prop_assert!(Manifest::decode(&b).is_err(), "byte {} flipped unnoticed", i);
        }

        #[test]
        fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::decode(&bytes);
        }
    }

    fn one(config: CollectionConfig, tenant: &str, name: &str) -> Manifest {
        Manifest {
            generation: 1,
            next_collection_id: 2,
            next_segment_id: 1,
            collections: vec![CollectionEntry {
                id: 1,
                tenant: tenant.into(),
                name: name.into(),
                config,
                created_lsn: 0,
                flushed_lsn: 0,
                hint: Hint::Auto,
                indexes: Vec::new(),
                segments: Vec::new(),
            }],
            ..Manifest::default()
        }
    }

    #[test]
    fn a_checksummed_manifest_with_values_the_api_refuses_is_refused() {
        let ok = CollectionConfig::new(4, Distance::Dot);
        assert!(Manifest::decode(&one(ok.clone(), "t", "c").encode()).is_ok());
        let mut bad = Vec::new();
        for (dim, m, ef) in [(0, 16, 100), (65_537, 16, 100), (4, 2, 100), (4, 16, 0)] {
            let mut c = ok.clone();
            c.vectors[0].1.dim = dim;
            c.vectors[0].1.hnsw.m = m;
            c.vectors[0].1.hnsw.ef_construct = ef;
            bad.push(one(c, "t", "c"));
        }
        let mut repeated = CollectionConfig::named(vec![
            ("a".into(), VectorParams::new(4, Distance::Dot)),
            ("b".into(), VectorParams::new(4, Distance::Dot)),
        ]);
        repeated.vectors[1].0 = "a".into();
        bad.push(one(repeated, "t", "c"));
        bad.push(one(ok.clone(), "", "c"));
        bad.push(one(ok.clone(), "t", "../x"));
        for indexes in [
            vec![
                ("b".to_string(), FieldType::Bool),
                ("a".to_string(), FieldType::Bool),
            ],
            vec![
                ("a".to_string(), FieldType::Bool),
                ("a".to_string(), FieldType::Uuid),
            ],
            vec![("a..b".to_string(), FieldType::Keyword)],
        ] {
            let mut m = one(ok.clone(), "t", "c");
            m.collections[0].indexes = indexes;
            bad.push(m);
        }
        let mut twice = one(ok, "t", "c");
        twice.collections.push(twice.collections[0].clone());
        bad.push(twice);
        for m in bad {
            let e = Manifest::decode(&m.encode()).expect_err("must be refused");
            assert!(
                e.offset >= HEADER_LEN + 36,
                "points at a collection entry: {e}"
            );
            assert!(e.what.contains("collection"), "names the collection: {e}");
        }
    }

    /// A one-collection manifest body as versions 1 to 6 wrote it (one unnamed vector; the
    /// hint byte from version 2; the vector list from version 3; the index list from 4; the
    /// alias list from 5; the sparse list from 6).
    fn legacy_body(version: u32, hint: Hint) -> Vec<u8> {
        let mut b = Writer::with_capacity(128);
        for v in [1u64, 0, 2, 1] {
            b.u64(v); // generation, last LSN, next collection id, next segment id
        }
        b.u32(1);
        b.u64(1);
        str16(&mut b, "t");
        str16(&mut b, "c");
        if version >= 3 {
            b.u8(0); // not named
            b.u16(1);
            str16(&mut b, "");
        }
        b.u32(4);
        b.u8(Distance::Dot.tag());
        b.u32(16);
        b.u32(100);
        if version >= 6 {
            b.u16(0); // no sparse vector
        }
        b.u64(0);
        b.u64(0);
        if version >= 2 {
            b.u8(hint_tag(hint));
        }
        if version >= 4 {
            b.u16(0); // no payload index
        }
        b.u32(0);
        if version >= 5 {
            b.u32(0); // no alias
        }
        b.buf
    }

    #[test]
    fn version_1_to_7_manifests_open_without_indexes_aliases_sparse_vectors_actors_or_actor_segments()
     {
        let mut want = one(CollectionConfig::new(4, Distance::Dot), "t", "c");
        let v1 = Manifest::decode(&frame(1, &legacy_body(1, Hint::Offload))).expect("v1 opens");
        assert_eq!(v1, want, "version 1: hint auto");
        want.collections[0].hint = Hint::Offload;
        for version in [2, 3, 4, 5, 6] {
            let old = Manifest::decode(&frame(version, &legacy_body(version, Hint::Offload)));
            assert_eq!(old.expect("opens"), want, "version {version}");
        }
        assert!(!want.collections[0].config.named);
        assert!(want.collections[0].indexes.is_empty() && want.aliases.is_empty());
        // Version 7: actor stores without hint or segments (auto, none).
        let mut body = legacy_body(6, Hint::Offload);
        let mut w = Writer::with_capacity(64);
        w.u32(1);
        w.u64(99);
        str16(&mut w, "t");
        str16(&mut w, "player");
        w.u64(0);
        w.u64(0);
        body.extend_from_slice(&w.buf);
        let v7 = Manifest::decode(&frame(7, &body)).expect("v7 opens");
        let mut with_actor = want.clone();
        with_actor.actors.push(ActorStoreEntry {
            id: 99,
            tenant: "t".into(),
            actor_type: "player".into(),
            created_lsn: 0,
            flushed_lsn: 0,
            hint: Hint::Auto,
            segments: Vec::new(),
        });
        assert_eq!(v7, with_actor);
        // Written again, it is version 8 and reads back the same.
        let v8 = with_actor.encode();
        assert_eq!(u32::from_le_bytes(v8[8..12].try_into().expect("4")), 8);
        assert_eq!(Manifest::decode(&v8).expect("v8"), with_actor);
    }
}
