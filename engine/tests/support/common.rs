//! Helpers shared by the engine's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// `testdata/` at the repository root.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn read_vecs(path: &std::path::Path) -> Vec<Vec<[u8; 4]>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let d = i32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes")) as usize;
        i += 4;
        out.push(
            bytes[i..i + 4 * d]
                .chunks_exact(4)
                .map(|c| c.try_into().expect("4 bytes"))
                .collect(),
        );
        i += 4 * d;
    }
    out
}

/// Reads a TEXMEX `.fvecs` file.
pub fn fvecs(path: &std::path::Path) -> Vec<Vec<f32>> {
    read_vecs(path)
        .into_iter()
        .map(|r| r.into_iter().map(f32::from_le_bytes).collect())
        .collect()
}

/// Reads a TEXMEX `.ivecs` file.
pub fn ivecs(path: &std::path::Path) -> Vec<Vec<i32>> {
    read_vecs(path)
        .into_iter()
        .map(|r| r.into_iter().map(i32::from_le_bytes).collect())
        .collect()
}

/// Rows of vectors.
pub type Vectors = Vec<Vec<f32>>;

/// bigann10k: (base, queries, ground truth ids).
pub fn bigann10k() -> (Vectors, Vectors, Vec<Vec<i32>>) {
    let d = testdata().join("bigann10k");
    (
        fvecs(&d.join("bigann10k_base.fvecs")),
        fvecs(&d.join("bigann10k_query.fvecs")),
        ivecs(&d.join("bigann10k_groundtruth.ivecs")),
    )
}
