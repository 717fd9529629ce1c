//! The payload of a WAL record: one batch, all or nothing. Byte layout in `docs/format.md`.

use crate::codec::{DecodeError, Reader, Writer};
use crate::sparse::{MAX_SPARSE_ENTRIES, SparseVector};
use crate::types::PointId;

/// Version-1 upsert: one vector per point (read only; it is the unnamed vector, space 0).
const OP_UPSERT_V1: u8 = 1;
const OP_DELETE: u8 = 2;
/// Upsert with named vectors: per point, a list of (space, vector).
const OP_UPSERT: u8 = 3;
/// Op 3 with each point's sparse vectors (written only when a point of the batch has one).
const OP_UPSERT_SPARSE: u8 = 4;

/// A point as it is logged and stored: vectors by space (the index of the name in the
/// collection's sorted vector names; ascending), already normalised for Cosine spaces; payload
/// as JSON bytes (empty = empty object).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredPoint {
    pub(crate) id: PointId,
    pub(crate) vectors: Vec<(u16, Vec<f32>)>,
    /// Sparse vectors by sparse space (index in the sorted sparse names; ascending).
    pub(crate) sparse: Vec<(u16, SparseVector)>,
    pub(crate) payload: Vec<u8>,
}

/// One logged mutation of a collection.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WalOp {
    Upsert(Vec<StoredPoint>),
    Delete(Vec<PointId>),
}

impl WalOp {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            WalOp::Upsert(points) => {
                let approx: usize = points
                    .iter()
                    .map(|p| {
                        32 + p.vectors.iter().map(|v| 6 + v.1.len() * 4).sum::<usize>()
                            + p.sparse.iter().map(|v| 6 + v.1.len() * 8).sum::<usize>()
                            + p.payload.len()
                    })
                    .sum();
                let sparse = points.iter().any(|p| !p.sparse.is_empty());
                let mut w = Writer::with_capacity(8 + approx);
                w.u8(if sparse { OP_UPSERT_SPARSE } else { OP_UPSERT });
                w.u32(points.len() as u32);
                for p in points {
                    w.point_id(p.id);
                    w.u16(p.vectors.len() as u16);
                    for (space, v) in &p.vectors {
                        w.u16(*space);
                        w.u32(v.len() as u32);
                        w.f32s(v);
                    }
                    if sparse {
                        w.u16(p.sparse.len() as u16);
                        for (space, v) in &p.sparse {
                            w.u16(*space);
                            w.u32(v.len() as u32);
                            v.indices.iter().for_each(|i| w.u32(*i));
                            w.f32s(&v.values);
                        }
                    }
                    w.blob32(&p.payload);
                }
                w.buf
            }
            WalOp::Delete(ids) => {
                let mut w = Writer::with_capacity(8 + ids.len() * 17);
                w.u8(OP_DELETE);
                w.u32(ids.len() as u32);
                for id in ids {
                    w.point_id(*id);
                }
                w.buf
            }
        }
    }

    pub(crate) fn decode(b: &[u8]) -> Result<WalOp, DecodeError> {
        let mut r = Reader::new(b);
        let op = r.u8("op code")?;
        let count = r.u32("point count")? as usize;
        // Each entry takes at least 9 bytes: reject absurd counts before allocating.
        if count > r.remaining() / 9 + 1 {
            return Err(r.err(format!("point count {count} exceeds the record size")));
        }
        // Never reserve from a count read off the disk: a hostile 64 MiB record could claim
        // millions of entries. Grow as entries actually decode.
        let reserve = count.min(1024);
        let out = match op {
            OP_UPSERT_V1 | OP_UPSERT | OP_UPSERT_SPARSE => {
                let vector = |r: &mut Reader<'_>| {
                    let dim = r.u32("vector dimension")? as usize;
                    if dim > r.remaining() / 4 {
                        return Err(r.err(format!("vector dimension {dim} exceeds the record")));
                    }
                    r.f32s(dim, "vector")
                };
                let mut points = Vec::with_capacity(reserve);
                for _ in 0..count {
                    let id = r.point_id()?;
                    let vectors = match op {
                        OP_UPSERT_V1 => vec![(0, vector(&mut r)?)],
                        _ => {
                            let n = r.u16("vector count")?;
                            let mut vs: Vec<(u16, Vec<f32>)> = Vec::new();
                            for _ in 0..n {
                                let space = r.u16("vector space")?;
                                if vs.last().is_some_and(|l| l.0 >= space) {
                                    return Err(r.err("vector spaces not ascending"));
                                }
                                vs.push((space, vector(&mut r)?));
                            }
                            vs
                        }
                    };
                    let mut sparse: Vec<(u16, SparseVector)> = Vec::new();
                    if op == OP_UPSERT_SPARSE {
                        let n = r.u16("sparse vector count")?;
                        for _ in 0..n {
                            let space = r.u16("sparse vector space")?;
                            if sparse.last().is_some_and(|l| l.0 >= space) {
                                return Err(r.err("sparse vector spaces not ascending"));
                            }
                            let len = r.u32("sparse vector length")? as usize;
                            if len > MAX_SPARSE_ENTRIES || len > r.remaining() / 8 {
                                return Err(r.err(format!(
                                    "sparse vector of {len} entries exceeds the record or the limit"
                                )));
                            }
                            let at = r.pos();
                            let indices: Vec<u32> = (0..len)
                                .map(|_| r.u32("sparse index"))
                                .collect::<Result<_, _>>()?;
                            let values = r.f32s(len, "sparse values")?;
                            SparseVector::check(&indices, &values)
                                .map_err(|what| DecodeError { offset: at, what })?;
                            sparse.push((space, SparseVector { indices, values }));
                        }
                    }
                    let payload = r.blob32("payload")?.to_vec();
                    points.push(StoredPoint {
                        id,
                        vectors,
                        sparse,
                        payload,
                    });
                }
                WalOp::Upsert(points)
            }
            OP_DELETE => {
                let mut ids = Vec::with_capacity(reserve);
                for _ in 0..count {
                    ids.push(r.point_id()?);
                }
                WalOp::Delete(ids)
            }
            other => {
                return Err(DecodeError {
                    offset: 0,
                    what: format!("unknown op code {other}"),
                });
            }
        };
        if r.remaining() != 0 {
            return Err(r.err(format!("{} trailing bytes", r.remaining())));
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn point_id() -> impl Strategy<Value = PointId> {
        prop_oneof![
            any::<u64>().prop_map(PointId::Num),
            any::<u128>().prop_map(PointId::Uuid)
        ]
    }

    fn op() -> impl Strategy<Value = WalOp> {
        let point = (
            point_id(),
            prop::collection::btree_map(
                any::<u16>(),
                prop::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 0..16),
                0..4,
            ),
            prop::collection::btree_map(
                any::<u16>(),
                prop::collection::btree_map(any::<u32>(), -1e6f32..1e6, 0..8),
                0..3,
            ),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(id, vectors, sparse, payload)| StoredPoint {
                id,
                vectors: vectors.into_iter().collect(),
                sparse: sparse
                    .into_iter()
                    .map(|(s, m)| {
                        let (indices, values) = m.into_iter().unzip();
                        (s, SparseVector { indices, values })
                    })
                    .collect(),
                payload,
            });
        prop_oneof![
            prop::collection::vec(point, 0..6).prop_map(WalOp::Upsert),
            prop::collection::vec(point_id(), 0..10).prop_map(WalOp::Delete),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(op in op()) {
            prop_assert_eq!(WalOp::decode(&op.encode()).expect("decodes"), op);
        }

        #[test]
        fn a_version_1_upsert_decodes_as_the_unnamed_vector(id in point_id(), v in prop::collection::vec(-1e6f32..1e6, 0..8), payload in prop::collection::vec(any::<u8>(), 0..20)) {
            // Op 1 as the version-1 writer laid it out: id, dim, floats, payload.
            let mut w = Writer::with_capacity(64);
            w.u8(OP_UPSERT_V1);
            w.u32(1);
            w.point_id(id);
            w.u32(v.len() as u32);
            w.f32s(&v);
            w.blob32(&payload);
            let want = WalOp::Upsert(vec![StoredPoint { id, vectors: vec![(0, v)], sparse: Vec::new(), payload }]);
            prop_assert_eq!(WalOp::decode(&w.buf).expect("decodes"), want);
        }

        #[test]
        fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = WalOp::decode(&bytes);
        }
    }
}
