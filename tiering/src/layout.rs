//! The one module that names every file and object Strata persists.
//!
//! Nothing else spells a file name: the engine asks for `layout::segment(id)`, the WAL for
//! `layout::wal_file(lsn)`, and a backend maps these names to paths (local directory) or keys
//! (object store, `{prefix}/{name}`). Names are relative, `/`-separated, ASCII.
//!
//! ```text
//! MANIFEST                      the root of recovery (blob store, replaced atomically)
//! manifests/{generation:020}    cold store only: every manifest written, create-only
//! segments/{id:020}.seg         immutable segment files (blob store)
//! segments/{id:020}.meta        a segment's meta file: what stays local when the segment is cold
//! {first_lsn:020}.wal           write-ahead log files (log store; locally under wal/)
//! LOCK                          flock of the process owning a local data directory
//! jwt-secret                    the generated HS256 secret of the server (local only)
//! ```

/// The manifest blob.
pub const MANIFEST: &str = "MANIFEST";

/// Prefix (a "directory") of segment blobs.
pub const SEGMENTS: &str = "segments/";

/// Prefix of the manifest generations in a cold store.
pub const MANIFESTS: &str = "manifests/";

/// Sub-directory of a local data directory that holds the WAL files.
pub const WAL_DIR: &str = "wal";

/// Lock file of a local data directory.
pub const LOCK: &str = "LOCK";

/// The server's generated HS256 secret, in the data directory.
pub const JWT_SECRET: &str = "jwt-secret";

/// Suffix of temporary files. A local store never lists them, and removes those a crash left.
pub const TMP_SUFFIX: &str = ".tmp";

const SEGMENT_EXT: &str = ".seg";
const META_EXT: &str = ".meta";
const WAL_EXT: &str = ".wal";

/// Blob name of segment `id`.
pub fn segment(id: u64) -> String {
    format!("{SEGMENTS}{id:020}{SEGMENT_EXT}")
}

/// The segment id a blob name stands for, if it is a segment name.
pub fn segment_id(name: &str) -> Option<u64> {
    parse_number(name.strip_prefix(SEGMENTS)?.strip_suffix(SEGMENT_EXT)?)
}

/// Blob name of segment `id`'s meta file.
pub fn segment_meta(id: u64) -> String {
    format!("{SEGMENTS}{id:020}{META_EXT}")
}

/// The segment id a meta file name stands for, if it is one.
pub fn segment_meta_id(name: &str) -> Option<u64> {
    parse_number(name.strip_prefix(SEGMENTS)?.strip_suffix(META_EXT)?)
}

/// The segment id of a segment file or of its meta file: both are immutable once written, and
/// both follow the segment through the tiers (the meta file is never evicted).
pub fn segment_blob_id(name: &str) -> Option<u64> {
    segment_id(name).or_else(|| segment_meta_id(name))
}

/// Cold-store name of manifest generation `g`.
pub fn manifest_generation(g: u64) -> String {
    format!("{MANIFESTS}{g:020}")
}

/// The generation a cold-store name stands for, if it is a manifest generation.
pub fn manifest_generation_of(name: &str) -> Option<u64> {
    parse_number(name.strip_prefix(MANIFESTS)?)
}

/// Log file name of the WAL file whose first record is `first_lsn`.
pub fn wal_file(first_lsn: u64) -> String {
    format!("{first_lsn:020}{WAL_EXT}")
}

/// The first LSN a log file name stands for, if it is a WAL file name.
pub fn wal_first_lsn(name: &str) -> Option<u64> {
    parse_number(name.strip_suffix(WAL_EXT)?)
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        assert_eq!(segment(7), "segments/00000000000000000007.seg");
        assert_eq!(segment_id(&segment(u64::MAX)), Some(u64::MAX));
        assert_eq!(wal_first_lsn(&wal_file(42)), Some(42));
        assert_eq!(manifest_generation_of(&manifest_generation(9)), Some(9));
        assert_eq!(manifest_generation_of("manifests/x"), None);
        assert_eq!(segment_meta_id(&segment_meta(7)), Some(7));
        assert_eq!(segment_id(&segment_meta(7)), None);
        assert_eq!(segment_blob_id(&segment_meta(7)), Some(7));
        assert_eq!(segment_blob_id(&segment(8)), Some(8));
        assert_eq!(segment_meta_id(&segment(8)), None);
        for bad in [
            "segments/x.seg",
            "segments/.seg",
            "7.seg",
            "segments/+7.seg",
        ] {
            assert_eq!(segment_id(bad), None, "{bad}");
        }
        for bad in ["7.wal.tmp", ".wal", "-1.wal", "99999999999999999999999.wal"] {
            assert_eq!(wal_first_lsn(bad), None, "{bad}");
        }
    }
}
