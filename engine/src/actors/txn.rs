//! The WAL record of an actor transaction (op 5): several states of one actor, all or nothing.
//! Byte layout in `docs/format.md` (WAL, op 5).

use super::{ActorKey, MAX_CONTENT_TYPE, Value};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::Lsn;

/// Op code of an actor transaction in an actor store's WAL stream.
pub(crate) const OP_ACTOR_TXN: u8 = 5;

/// What must hold for an entry to apply (checked before the append; logged for audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    None,
    /// The state's current version is exactly this.
    IfMatch(Lsn),
    /// The state does not exist (or reads as absent: a tombstone, expired).
    IfNoneMatch,
    /// The state exists (any version: HTTP `If-Match: *`).
    IfExists,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TxnOp {
    Put {
        value: Value,
        expiry_ms: Option<u64>,
    },
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxnEntry {
    pub(crate) state: String,
    pub(crate) op: TxnOp,
    pub(crate) condition: Condition,
}

/// One logged transaction on one actor's states (unique state names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActorTxn {
    pub(crate) actor: String,
    pub(crate) entries: Vec<TxnEntry>,
}

impl ActorTxn {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let approx: usize = self
            .entries
            .iter()
            .map(|e| {
                32 + e.state.len()
                    + match &e.op {
                        TxnOp::Put { value, .. } => value.bytes.len() + value.content_type.len(),
                        TxnOp::Delete => 0,
                    }
            })
            .sum();
        let mut w = Writer::with_capacity(16 + self.actor.len() + approx);
        w.u8(OP_ACTOR_TXN);
        w.u16(self.actor.len() as u16);
        w.bytes(self.actor.as_bytes());
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.u8(e.state.len() as u8);
            w.bytes(e.state.as_bytes());
            w.u8(match e.op {
                TxnOp::Put { .. } => 0,
                TxnOp::Delete => 1,
            });
            match e.condition {
                Condition::None => w.u8(0),
                Condition::IfMatch(v) => {
                    w.u8(1);
                    w.u64(v);
                }
                Condition::IfNoneMatch => w.u8(2),
                Condition::IfExists => w.u8(3),
            }
            if let TxnOp::Put { value, expiry_ms } = &e.op {
                w.u64(expiry_ms.unwrap_or(0));
                w.u8(value.content_type.len() as u8);
                w.bytes(value.content_type.as_bytes());
                w.blob32(&value.bytes);
            }
        }
        w.buf
    }

    /// Decodes and checks a record: names valid, state names unique, no trailing bytes.
    pub(crate) fn decode(b: &[u8]) -> Result<ActorTxn, DecodeError> {
        let mut r = Reader::new(b);
        let op = r.u8("op code")?;
        if op != OP_ACTOR_TXN {
            return Err(DecodeError {
                offset: 0,
                what: format!("op code {op} is not an actor transaction"),
            });
        }
        let n = r.u16("actor id length")? as usize;
        let at = r.pos();
        let actor = utf8(r.take(n, "actor id")?, at)?;
        let count = r.u32("entry count")? as usize;
        // Each entry takes at least 4 bytes: refuse absurd counts before allocating.
        if count > r.remaining() / 4 + 1 {
            return Err(r.err(format!("entry count {count} exceeds the record size")));
        }
        let mut entries: Vec<TxnEntry> = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let n = r.u8("state name length")? as usize;
            let at = r.pos();
            let state = utf8(r.take(n, "state name")?, at)?;
            ActorKey::new(&actor, &state).map_err(|e| DecodeError {
                offset: at,
                what: e.message().to_string(),
            })?;
            if entries.iter().any(|e| e.state == state) {
                return Err(DecodeError {
                    offset: at,
                    what: format!("state {state:?} repeated in one transaction"),
                });
            }
            let kind = r.u8("entry kind")?;
            let condition = match r.u8("condition")? {
                0 => Condition::None,
                1 => Condition::IfMatch(r.u64("condition version")?),
                2 => Condition::IfNoneMatch,
                3 => Condition::IfExists,
                c => return Err(r.err(format!("unknown condition {c}"))),
            };
            let op = match kind {
                0 => {
                    let expiry = r.u64("expiry")?;
                    let n = r.u8("content type length")? as usize;
                    let at = r.pos();
                    let content_type = utf8(r.take(n, "content type")?, at)?;
                    if content_type.len() > MAX_CONTENT_TYPE {
                        return Err(r.err("content type too long"));
                    }
                    let bytes = r.blob32("value")?.to_vec();
                    TxnOp::Put {
                        value: Value {
                            content_type,
                            bytes,
                        },
                        expiry_ms: (expiry != 0).then_some(expiry),
                    }
                }
                1 => TxnOp::Delete,
                k => return Err(r.err(format!("unknown entry kind {k}"))),
            };
            entries.push(TxnEntry {
                state,
                op,
                condition,
            });
        }
        if r.remaining() != 0 {
            return Err(r.err(format!("{} trailing bytes", r.remaining())));
        }
        Ok(ActorTxn { actor, entries })
    }
}

fn utf8(b: &[u8], at: usize) -> Result<String, DecodeError> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| DecodeError {
            offset: at,
            what: "not UTF-8".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[a-zA-Z0-9_:/é-]{{1,{max}}}")).expect("regex")
    }

    fn entry() -> impl Strategy<Value = TxnEntry> {
        let op = prop_oneof![
            (
                name(20),
                prop::collection::vec(any::<u8>(), 0..64),
                prop::option::of(1u64..u64::MAX)
            )
                .prop_map(|(ct, bytes, expiry_ms)| TxnOp::Put {
                    value: Value {
                        content_type: ct,
                        bytes,
                    },
                    expiry_ms,
                }),
            Just(TxnOp::Delete),
        ];
        let condition = prop_oneof![
            Just(Condition::None),
            any::<u64>().prop_map(Condition::IfMatch),
            Just(Condition::IfNoneMatch),
            Just(Condition::IfExists),
        ];
        (name(30), op, condition).prop_map(|(state, op, condition)| TxnEntry {
            state,
            op,
            condition,
        })
    }

    proptest! {
        #[test]
        fn round_trips(actor in name(60), entries in prop::collection::vec(entry(), 0..6)) {
            let mut seen = std::collections::HashSet::new();
            let entries: Vec<TxnEntry> = entries.into_iter().filter(|e| seen.insert(e.state.clone())).collect();
            let t = ActorTxn { actor, entries };
            prop_assert_eq!(ActorTxn::decode(&t.encode()).expect("decodes"), t);
        }

        #[test]
        fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = ActorTxn::decode(&bytes);
        }
    }

    #[test]
    fn a_repeated_state_or_a_bad_name_is_refused() {
        let put = |s: &str| TxnEntry {
            state: s.into(),
            op: TxnOp::Delete,
            condition: Condition::None,
        };
        let t = ActorTxn {
            actor: "a".into(),
            entries: vec![put("x"), put("x")],
        };
        let e = ActorTxn::decode(&t.encode()).expect_err("repeated");
        assert!(e.what.contains("repeated"), "{}", e.what);
        let t = ActorTxn {
            actor: "a".into(),
            entries: vec![put("bad\u{1}")],
        };
        assert!(ActorTxn::decode(&t.encode()).is_err());
    }
}
