//! The payload of a WAL record: one batch, all or nothing. Byte layout in `docs/format.md`.

use crate::codec::{DecodeError, Reader, Writer};
use crate::types::PointId;

const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;

/// A point as it is logged and stored: vector already normalised (Cosine), payload as JSON bytes
/// (empty = empty object).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredPoint {
    pub(crate) id: PointId,
    pub(crate) vector: Vec<f32>,
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
                    .map(|p| 32 + p.vector.len() * 4 + p.payload.len())
                    .sum();
                let mut w = Writer::with_capacity(8 + approx);
                w.u8(OP_UPSERT);
                w.u32(points.len() as u32);
                for p in points {
                    w.point_id(p.id);
                    w.u32(p.vector.len() as u32);
                    w.f32s(&p.vector);
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
            OP_UPSERT => {
                let mut points = Vec::with_capacity(reserve);
                for _ in 0..count {
                    let id = r.point_id()?;
                    let dim = r.u32("vector dimension")? as usize;
                    if dim > r.remaining() / 4 {
                        return Err(r.err(format!("vector dimension {dim} exceeds the record")));
                    }
                    let vector = r.f32s(dim, "vector")?;
                    let payload = r.blob32("payload")?.to_vec();
                    points.push(StoredPoint {
                        id,
                        vector,
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
            prop::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 0..16),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(id, vector, payload)| StoredPoint {
                id,
                vector,
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
        fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = WalOp::decode(&bytes);
        }
    }
}
