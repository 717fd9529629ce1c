//! Collection snapshots: a consistent copy of one collection — its manifest entry and its
//! segment files — in one archive, kept in the blob store beside the data (and so in the cold
//! store too when one is configured), and restored as a new collection (or in place of one).
//!
//! ```text
//! create:  flush (everything acknowledged goes into segments) ─▶ hold the collection's
//!          compaction and flush locks (its segment list cannot change) ─▶ the published
//!          manifest entry ─▶ tar: MANIFEST (a one-collection manifest) + segments/*.seg
//!          ─▶ put snapshots/{tenant}/{collection}/{name} + {name}.json (SHA-256, time)
//! recover: SHA-256 (if given) ─▶ untar, decode MANIFEST, every segment present and sized
//!          ─▶ WAL numbers past the snapshot's LSNs ─▶ each segment renumbered (new segment and
//!          collection ids), written create-only and verified in full ─▶ one manifest publish
//!          adds the collection or replaces the one of that name (whose files are retired)
//! ```
//! Byte layout: `docs/format.md` (Snapshot). The segment meta files are not in the archive:
//! they are derived data, rebuilt from the segments at restore.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use strata_tiering::{PutMode, layout};

use super::{Engine, ManifestChange, read, rebuild_shadows, write};
use crate::collection::Collection;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Aliases, CollectionEntry, Manifest, SegmentEntry};
use crate::segment::format::Layout;
use crate::segment::{Segment, Verify};
use crate::types::validate_name;

/// How far past this node's last LSN a restored snapshot's LSNs may reach.
const MAX_LSN_JUMP: u64 = 1 << 48;

/// Suffix of snapshot archives.
const SUFFIX: &str = ".snapshot";
/// Suffix of a snapshot's sidecar (its checksum and creation time, JSON).
const SIDECAR: &str = ".json";

/// A stored snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its name (`{collection}-{YYYY-MM-DD-HH-MM-SS}.snapshot`).
    pub name: String,
    /// Archive bytes.
    pub size: u64,
    /// When it was made (ms since the epoch, by the engine's clock).
    pub created_ms: u64,
    /// SHA-256 of the archive, lowercase hex.
    pub checksum: String,
}

fn dir(tenant: &str, collection: &str) -> String {
    format!("snapshots/{tenant}/{collection}/")
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_snapshot_name(name: &str) -> Result<()> {
    validate_name("snapshot name", name)?;
    if !name.ends_with(SUFFIX) {
        return Err(Error::invalid(format!(
            "snapshot name {name:?} is invalid: snapshots end in {SUFFIX}"
        )));
    }
    Ok(())
}

fn invalid_archive(what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("snapshot: {what}"))
}

impl Engine {
    /// The collection `name` (or the collection an alias names) of `tenant`.
    fn real(&self, tenant: &str, name: &str) -> Result<Arc<Collection>> {
        let h = self.collection(tenant, name)?;
        self.inner.lookup(tenant, h.name())
    }

    /// Makes a snapshot of collection `name` (or of the collection an alias names): every
    /// write acknowledged before the call is in it. Flushes and compactions of this collection
    /// wait while it is copied; writes do not.
    pub fn create_snapshot(&self, tenant: &str, name: &str) -> Result<SnapshotInfo> {
        let inner = &self.inner;
        inner.check_writable()?;
        let coll = self.real(tenant, name)?;
        crate::maintenance::flush(inner, &coll)?;
        let bytes = {
            let _compaction = coll.compaction_lock();
            let _flush = coll.flush_queue();
            let entry = {
                let m = inner.lock_manifest();
                m.m.collections.iter().find(|c| c.id == coll.id()).cloned()
            }
            .ok_or_else(|| Error::not_found(format!("collection {name:?} does not exist")))?;
            let last = entry
                .segments
                .iter()
                .map(|s| s.max_lsn)
                .fold(entry.flushed_lsn, u64::max);
            let one = Manifest {
                generation: 1,
                last_lsn: last,
                next_collection_id: entry.id + 1,
                next_segment_id: entry.segments.iter().map(|s| s.id + 1).max().unwrap_or(1),
                collections: vec![entry.clone()],
                aliases: Aliases::new(),
                actors: Vec::new(),
            };
            let mtime = inner.opts.clock.now_millis() / 1000;
            let mut tar = tar::Builder::new(Vec::new());
            let mut add = |path: &str, data: &[u8]| -> Result<()> {
                let mut h = tar::Header::new_ustar();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(mtime);
                h.set_cksum();
                tar.append_data(&mut h, path, data)
                    .map_err(|e| Error::new(ErrorKind::Internal, format!("snapshot archive: {e}")))
            };
            add(layout::MANIFEST, &one.encode())?;
            for s in &entry.segments {
                let seg = layout::segment(s.id);
                let blob = inner.blobs.open(&seg).map_err(|e| {
                    Error::store(
                        "reading a segment for a snapshot (was the collection dropped?)",
                        e,
                    )
                })?;
                add(&seg, blob.as_bytes())?;
            }
            tar.into_inner()
                .map_err(|e| Error::new(ErrorKind::Internal, format!("snapshot archive: {e}")))?
        };
        let created_ms = inner.opts.clock.now_millis();
        let checksum = sha256_hex(&bytes);
        let stamp = chrono::DateTime::from_timestamp_millis(created_ms as i64)
            .unwrap_or_default()
            .format("%Y-%m-%d-%H-%M-%S");
        let d = dir(tenant, coll.name());
        for n in 0u32.. {
            let snap = match n {
                0 => format!("{}-{stamp}{SUFFIX}", coll.name()),
                _ => format!("{}-{stamp}-{n}{SUFFIX}", coll.name()),
            };
            match inner
                .blobs
                .put(&format!("{d}{snap}"), &bytes, PutMode::Create)
            {
                Ok(_) => {
                    let side = serde_json::json!({"checksum": checksum, "created_ms": created_ms, "size": bytes.len()});
                    inner
                        .blobs
                        .put(
                            &format!("{d}{snap}{SIDECAR}"),
                            side.to_string().as_bytes(),
                            PutMode::Overwrite,
                        )
                        .map_err(|e| Error::store("writing a snapshot's checksum", e))?;
                    return Ok(SnapshotInfo {
                        name: snap,
                        size: bytes.len() as u64,
                        created_ms,
                        checksum,
                    });
                }
                Err(strata_tiering::StoreError::AlreadyExists { .. }) if n < 1000 => continue,
                Err(e) => return Err(Error::store("writing a snapshot", e)),
            }
        }
        unreachable!("the loop returns")
    }

    /// The snapshots of collection `name` (or of the collection an alias names), by name.
    pub fn list_snapshots(&self, tenant: &str, name: &str) -> Result<Vec<SnapshotInfo>> {
        let coll = self.real(tenant, name)?;
        let d = dir(tenant, coll.name());
        let metas = self
            .inner
            .blobs
            .list(&d)
            .map_err(|e| Error::store("listing snapshots", e))?;
        let mut out = Vec::new();
        for m in metas {
            let Some(snap) = m.name.strip_prefix(&d).filter(|n| n.ends_with(SUFFIX)) else {
                continue;
            };
            let side = self.inner.blobs.open(&format!("{}{SIDECAR}", m.name)).ok();
            let side: serde_json::Value = side
                .and_then(|b| serde_json::from_slice(b.as_bytes()).ok())
                .unwrap_or_default();
            out.push(SnapshotInfo {
                name: snap.to_string(),
                size: m.size,
                created_ms: side["created_ms"].as_u64().unwrap_or(0),
                checksum: side["checksum"].as_str().unwrap_or_default().to_string(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The bytes of a snapshot ([`ErrorKind::NotFound`] when absent).
    pub fn snapshot_bytes(
        &self,
        tenant: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<strata_tiering::Blob> {
        check_snapshot_name(snapshot)?;
        let coll = self.real(tenant, name)?;
        self.inner
            .blobs
            .open(&format!("{}{snapshot}", dir(tenant, coll.name())))
            .map_err(|e| match e.is_not_found() {
                true => Error::not_found(format!(
                    "snapshot {snapshot:?} of collection {name:?} does not exist"
                )),
                false => Error::store("reading a snapshot", e),
            })
    }

    /// Deletes a snapshot; false when it did not exist.
    pub fn delete_snapshot(&self, tenant: &str, name: &str, snapshot: &str) -> Result<bool> {
        check_snapshot_name(snapshot)?;
        self.inner.check_writable()?;
        let coll = self.real(tenant, name)?;
        let path = format!("{}{snapshot}", dir(tenant, coll.name()));
        match self.inner.blobs.head(&path) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(Error::store("looking for a snapshot", e)),
        }
        for p in [format!("{path}{SIDECAR}"), path] {
            self.inner
                .blobs
                .delete(&p)
                .map_err(|e| Error::store("deleting a snapshot", e))?;
        }
        Ok(true)
    }

    /// Restores `archive` (a snapshot made by [`Engine::create_snapshot`], here or on another
    /// node) as collection `name` of `tenant`: created, or replacing the collection of that
    /// name (its aliases kept) in one manifest publish. With `checksum`, the archive's SHA-256
    /// must match. Everything is checked before anything is published; on failure nothing
    /// changes.
    pub fn recover_snapshot(
        &self,
        tenant: &str,
        name: &str,
        archive: &[u8],
        checksum: Option<&str>,
    ) -> Result<()> {
        validate_name("tenant", tenant)?;
        validate_name("collection name", name)?;
        let inner = &self.inner;
        inner.check_writable()?;
        if let Some(want) = checksum {
            let got = sha256_hex(archive);
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(Error::invalid(format!(
                    "checksum: the snapshot's SHA-256 is {got}, not {want}"
                )));
            }
        }
        // Entries are located, not copied: a segment is copied (to be renumbered) only while
        // it is written, so a restore holds the archive plus one segment.
        let mut files: HashMap<String, Range<usize>> = HashMap::new();
        let mut tar = tar::Archive::new(archive);
        for entry in tar.entries().map_err(invalid_archive)? {
            let entry = entry.map_err(invalid_archive)?;
            let path = entry
                .path()
                .map_err(invalid_archive)?
                .to_str()
                .map(str::to_string)
                .ok_or_else(|| invalid_archive("an entry name is not UTF-8"))?;
            if path != layout::MANIFEST && layout::segment_id(&path).is_none() {
                return Err(invalid_archive(format!("unexpected entry {path:?}")));
            }
            let at = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX);
            let range = usize::try_from(entry.size())
                .ok()
                .and_then(|n| Some(at..at.checked_add(n)?))
                .filter(|r| r.end <= archive.len())
                .ok_or_else(|| invalid_archive(format!("entry {path:?} is truncated")))?;
            if files.insert(path.clone(), range).is_some() {
                return Err(invalid_archive(format!("entry {path:?} appears twice")));
            }
        }
        let m = Manifest::decode(
            &archive[files
                .get(layout::MANIFEST)
                .ok_or_else(|| invalid_archive("no MANIFEST entry"))?
                .clone()],
        )
        .map_err(|e| invalid_archive(format!("MANIFEST: {e}")))?;
        let [src] = m.collections.as_slice() else {
            return Err(invalid_archive(format!(
                "MANIFEST lists {} collections, a snapshot holds one",
                m.collections.len()
            )));
        };
        if files.len() != src.segments.len() + 1 {
            return Err(invalid_archive("entries other than the listed segments"));
        }
        let key = (tenant.to_string(), name.to_string());
        let alias_taken = || {
            read(&inner.aliases).contains_key(&key).then(|| {
                Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{name:?} is an alias; recover into a collection name"),
                )
            })
        };
        if let Some(e) = alias_taken() {
            return Err(e);
        }
        let new_id = inner.lock_manifest().take_collection_id();
        let mut entry = CollectionEntry {
            id: new_id,
            tenant: key.0.clone(),
            name: key.1.clone(),
            config: src.config.clone(),
            created_lsn: 0,
            flushed_lsn: 0,
            hint: src.hint,
            indexes: src.indexes.clone(),
            segments: Vec::new(),
        };
        let mut opts = inner.opts.clone();
        opts.verify_on_open = Verify::Full;
        let mut written: Vec<u64> = Vec::new();
        let discard = |ids: &[u64]| ids.iter().for_each(|id| inner.discard_segment(*id));
        let mut segs = Vec::with_capacity(src.segments.len());
        // New writes must number above every version the snapshot holds: the largest found in
        // the segments themselves (not only what the archive's manifest claims).
        let mut max_lsn = 0;
        for s in &src.segments {
            let opened = (|| -> Result<Segment> {
                let range = files.remove(&layout::segment(s.id)).ok_or_else(|| {
                    invalid_archive(format!("segment {} is listed but missing", s.id))
                })?;
                let mut bytes = archive[range].to_vec();
                let id = inner.new_segment_id();
                Layout::renumber(&mut bytes, id, new_id)
                    .map_err(|e| invalid_archive(format!("segment {}: {e}", s.id)))?;
                written.push(id);
                inner
                    .blobs
                    .put(&layout::segment(id), &bytes, PutMode::Create)
                    .map_err(|e| Error::store("writing a restored segment", e))?;
                let se = SegmentEntry { id, ..s.clone() };
                entry.segments.push(se.clone());
                let seg =
                    super::open_segment(&*inner.blobs, inner.tiered.as_deref(), &se, &entry, &opts)
                        .map_err(|e| match e.kind() {
                            ErrorKind::Corruption => invalid_archive(e.message()),
                            _ => e,
                        })?;
                let found = seg.meta.ids().max_version();
                if found > s.max_lsn {
                    return Err(invalid_archive(format!(
                        "segment {} holds LSN {found}, above its listed max LSN {}",
                        s.id, s.max_lsn
                    )));
                }
                Ok(seg)
            })();
            match opened {
                Ok(seg) => {
                    max_lsn = max_lsn.max(s.max_lsn);
                    segs.push(Arc::new(seg));
                }
                Err(e) => {
                    discard(&written);
                    return Err(e);
                }
            }
        }
        // LSNs are u64 and never wrap: a snapshot may be ahead of this node by a lot, not by
        // nearly 2^64 (which would leave no LSNs for new writes).
        let limit = inner.wal.last_lsn().saturating_add(MAX_LSN_JUMP);
        if max_lsn > limit {
            discard(&written);
            return Err(invalid_archive(format!(
                "its LSNs reach {max_lsn}, more than 2^48 past this node's {}",
                inner.wal.last_lsn()
            )));
        }
        rebuild_shadows(&segs);
        let mut m = inner.lock_manifest();
        // Checked again under the manifest lock (aliases change only under it).
        if let Some(e) = alias_taken() {
            drop(m);
            discard(&written);
            return Err(e);
        }
        if let Err(e) = inner.wal.skip_to(max_lsn) {
            drop(m);
            discard(&written);
            return Err(e);
        }
        let lsn = inner.wal.last_lsn();
        (entry.created_lsn, entry.flushed_lsn) = (lsn, lsn);
        let coll = Arc::new(Collection::new(&entry, segs));
        let old = read(&inner.catalog).get(&key).cloned();
        if let Some(o) = &old {
            o.set_dropped(true);
        }
        let change = match &old {
            Some(o) => ManifestChange::Replace(o.id(), &coll),
            None => ManifestChange::Add(&coll),
        };
        if let Err(e) = m.publish(change) {
            if let Some(o) = &old {
                o.set_dropped(false);
            }
            // The manifest write may have landed even though it reported failure: the
            // segments stay, and the next start removes them if no manifest names them.
            return Err(e);
        }
        write(&inner.catalog).insert(key, coll);
        if let Some(o) = old {
            for s in o.segments().iter() {
                s.retire();
            }
            m.retire(o.segments().iter().map(|s| s.id()));
            m.delete_retired();
        }
        drop(m);
        inner.release_wal_logged();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_TENANT;
    use crate::options::EngineOptions;
    use crate::types::{CollectionConfig, Distance, PointId, PointInput};

    /// `archive` with its MANIFEST changed by `f` (the segments kept byte for byte).
    fn with_manifest(archive: &[u8], f: impl Fn(&mut Manifest)) -> Vec<u8> {
        let mut out = tar::Builder::new(Vec::new());
        for entry in tar::Archive::new(archive).entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry
                .path()
                .expect("path")
                .to_str()
                .expect("utf8")
                .to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
            if path == layout::MANIFEST {
                let mut m = Manifest::decode(&data).expect("manifest");
                f(&mut m);
                data = m.encode();
            }
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            out.append_data(&mut h, &path, &data[..]).expect("append");
        }
        out.into_inner().expect("tar")
    }

    #[test]
    fn restored_lsns_come_from_the_segments_and_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = EngineOptions::new(dir.path());
        o.background = false;
        let engine = Engine::open(o).expect("open");
        let c = engine
            .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(2, Distance::Dot))
            .expect("create");
        let points = (0..10u64)
            .map(|i| PointInput::new(PointId::Num(i), vec![i as f32, 1.0], None))
            .collect();
        c.upsert(points).expect("upsert");
        c.delete(&[PointId::Num(4)]).expect("delete"); // a tombstone holds the largest LSN
        c.flush().expect("flush");
        let snap = engine
            .create_snapshot(DEFAULT_TENANT, "c")
            .expect("snapshot");
        let bytes = engine
            .snapshot_bytes(DEFAULT_TENANT, "c", &snap.name)
            .expect("bytes")
            .as_bytes()
            .to_vec();
        let last = engine.inner.wal.last_lsn();

        // A manifest that understates what its segments hold is refused.
        let under = with_manifest(&bytes, |m| {
            for s in &mut m.collections[0].segments {
                s.max_lsn = 1;
            }
        });
        let e = engine
            .recover_snapshot(DEFAULT_TENANT, "d", &under, None)
            .expect_err("understated LSNs");
        assert!(e.message().contains("above its listed max LSN"), "{e}");
        // LSNs so far ahead that this node would run out of them are refused.
        let far = with_manifest(&bytes, |m| {
            for s in &mut m.collections[0].segments {
                s.max_lsn = u64::MAX;
            }
        });
        let e = engine
            .recover_snapshot(DEFAULT_TENANT, "d", &far, None)
            .expect_err("LSNs near u64::MAX");
        assert!(e.message().contains("2^48"), "{e}");
        assert!(engine.collection(DEFAULT_TENANT, "d").is_err());
        assert_eq!(engine.inner.wal.last_lsn(), last, "nothing skipped");
        // Within the bound, the log skips past the claimed LSNs.
        let ahead = with_manifest(&bytes, |m| {
            for s in &mut m.collections[0].segments {
                s.max_lsn = last + (1 << 40);
            }
        });
        engine
            .recover_snapshot(DEFAULT_TENANT, "d", &ahead, None)
            .expect("recover");
        let d = engine.collection(DEFAULT_TENANT, "d").expect("d");
        let v = d
            .upsert(vec![PointInput::new(PointId::Num(4), vec![0.0, 0.0], None)])
            .expect("write");
        assert!(v > last + (1 << 40));
        assert!(
            engine.inner.wal.skip_to(u64::MAX).is_err(),
            "no LSN is left after u64::MAX"
        );
    }
}
