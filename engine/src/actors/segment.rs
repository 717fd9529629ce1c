//! The actor segment: an immutable file of actor records sorted by key, in checksummed blocks of
//! about 4 KiB, with a sparse index (each block's first key) and a bloom filter over the keys.
//! Byte layout in `docs/format.md` (actor segment).
//!
//! ```text
//! [block 0][block 1]...   records sorted by key, each block ends with its CRC32C
//! [index]                 per block: offset, length, records, first key
//! [bloom]                 k, words, bits
//! [footer: 96 bytes]      magic, version, ids, counts, LSN range, where index and bloom lie, CRCs
//! ```
//! The footer, index and bloom are the segment's meta (kept local when the blocks are cold): a
//! point read asks the bloom, finds the one block that may hold the key from the index, and
//! reads that block alone — one positional read warm, one ranged GET cold.

use std::ops::Range;

use super::{ActorKey, ActorRecord, Value, key_hash};
use crate::codec::{DecodeError, Reader, Writer, crc};
use crate::types::Lsn;

pub(crate) const MAGIC: &[u8; 8] = b"STRATACT";
pub(crate) const VERSION: u32 = 1;
pub(crate) const FOOTER_LEN: usize = 96;
/// A block is closed once it holds at least this many bytes (a block holds one record at least).
pub(crate) const BLOCK_TARGET: usize = 4096;
/// Bloom bits per key and hash functions: about 1 % false positives.
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_K: u32 = 7;

fn err(offset: usize, what: impl Into<String>) -> DecodeError {
    DecodeError {
        offset,
        what: what.into(),
    }
}

fn put_record(w: &mut Writer, r: &ActorRecord) {
    w.u16(r.key.actor.len() as u16);
    w.u8(r.key.state.len() as u8);
    w.u8(u8::from(r.value.is_none()));
    w.u64(r.version);
    w.u64(r.expiry_ms.unwrap_or(0));
    if let Some(v) = &r.value {
        w.u8(v.content_type.len() as u8);
        w.u32(v.bytes.len() as u32);
        w.bytes(v.content_type.as_bytes());
        w.bytes(&v.bytes);
    }
    w.bytes(r.key.actor.as_bytes());
    w.bytes(r.key.state.as_bytes());
}

fn utf8(r: &mut Reader<'_>, n: usize, what: &str) -> Result<String, DecodeError> {
    let at = r.pos();
    std::str::from_utf8(r.take(n, what)?)
        .map(str::to_string)
        .map_err(|_| err(at, format!("{what} is not UTF-8")))
}

fn get_record(r: &mut Reader<'_>) -> Result<ActorRecord, DecodeError> {
    let actor_len = r.u16("actor id length")? as usize;
    let state_len = r.u8("state name length")? as usize;
    let kind = r.u8("record kind")?;
    let version = r.u64("version")?;
    let expiry = r.u64("expiry")?;
    let value = match kind {
        0 => {
            let ct_len = r.u8("content type length")? as usize;
            let len = r.u32("value length")? as usize;
            let content_type = utf8(r, ct_len, "content type")?;
            let bytes = r.take(len, "value")?.to_vec();
            Some(Value {
                content_type,
                bytes,
            })
        }
        1 => None,
        k => return Err(r.err(format!("unknown record kind {k}"))),
    };
    let actor = utf8(r, actor_len, "actor id")?;
    let state = utf8(r, state_len, "state name")?;
    Ok(ActorRecord {
        key: ActorKey { actor, state },
        version,
        expiry_ms: (expiry != 0).then_some(expiry),
        value,
    })
}

/// A bloom filter: `k` probes by double hashing of [`key_hash`] over `words.len() × 64` bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bloom {
    k: u32,
    words: Vec<u64>,
}

impl Bloom {
    fn with_keys(n: usize) -> Bloom {
        Bloom {
            k: BLOOM_K,
            words: vec![0; (n * BLOOM_BITS_PER_KEY).div_ceil(64).max(1)],
        }
    }
    fn probes(&self, key: &ActorKey) -> impl Iterator<Item = usize> + '_ {
        let h = key_hash(key);
        let (h1, h2) = (h, h.rotate_left(32) | 1);
        let m = (self.words.len() * 64) as u64;
        (0..u64::from(self.k)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }
    fn insert(&mut self, key: &ActorKey) {
        let bits: Vec<usize> = self.probes(key).collect();
        for b in bits {
            self.words[b / 64] |= 1 << (b % 64);
        }
    }
    /// False when the key is certainly absent.
    pub(crate) fn may_contain(&self, key: &ActorKey) -> bool {
        self.probes(key).all(|b| {
            self.words
                .get(b / 64)
                .is_some_and(|w| w & (1 << (b % 64)) != 0)
        })
    }
}

/// Encodes `records` (sorted by key, unique keys) as an actor segment file.
pub(crate) fn encode(segment_id: u64, store_id: u64, records: &[ActorRecord]) -> Vec<u8> {
    debug_assert!(records.windows(2).all(|w| w[0].key < w[1].key));
    let mut w = Writer::with_capacity(records.iter().map(|r| 40 + r.key.actor.len()).sum());
    let mut index = Writer::with_capacity(64 * (records.len() / 32 + 1));
    let mut bloom = Bloom::with_keys(records.len());
    let mut blocks = 0u32;
    let mut i = 0;
    while i < records.len() {
        let start = w.len();
        let first = &records[i].key;
        let mut n = 0u32;
        while i < records.len() && (n == 0 || w.len() - start < BLOCK_TARGET) {
            put_record(&mut w, &records[i]);
            bloom.insert(&records[i].key);
            i += 1;
            n += 1;
        }
        let sum = crc(&w.buf[start..]);
        w.u32(sum);
        index.u64(start as u64);
        index.u32((w.len() - start) as u32);
        index.u32(n);
        index.u16(first.actor.len() as u16);
        index.u8(first.state.len() as u8);
        index.bytes(first.actor.as_bytes());
        index.bytes(first.state.as_bytes());
        blocks += 1;
    }
    let blocks_len = w.len() as u64;
    let mut b = Writer::with_capacity(8 + bloom.words.len() * 8);
    b.u32(bloom.k);
    b.u32(bloom.words.len() as u32);
    bloom.words.iter().for_each(|x| b.u64(*x));
    let (lo, hi) = records.iter().fold((u64::MAX, 0), |(lo, hi), r| {
        (lo.min(r.version), hi.max(r.version))
    });
    w.bytes(&index.buf);
    w.bytes(&b.buf);
    let footer_at = w.len();
    w.bytes(MAGIC);
    w.u32(VERSION);
    w.u32(0);
    w.u64(segment_id);
    w.u64(store_id);
    w.u32(records.len() as u32);
    w.u32(blocks);
    w.u64(if lo == u64::MAX { 0 } else { lo });
    w.u64(hi);
    w.u64(blocks_len);
    w.u32(index.buf.len() as u32);
    w.u32(crc(&index.buf));
    w.u32(b.buf.len() as u32);
    w.u32(crc(&b.buf));
    w.bytes(&[0; 12]);
    let sum = crc(&w.buf[footer_at..]);
    w.u32(sum);
    debug_assert_eq!(w.len() - footer_at, FOOTER_LEN);
    w.buf
}

/// The fixed footer's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) segment_id: u64,
    pub(crate) store_id: u64,
    pub(crate) records: u32,
    pub(crate) blocks: u32,
    pub(crate) min_lsn: Lsn,
    pub(crate) max_lsn: Lsn,
    pub(crate) blocks_len: u64,
    index_len: u32,
    index_crc: u32,
    bloom_len: u32,
    bloom_crc: u32,
}

impl Footer {
    /// Where the footer of a file of `file_len` bytes lies.
    pub(crate) fn range(file_len: u64) -> Option<Range<u64>> {
        Some(file_len.checked_sub(FOOTER_LEN as u64)?..file_len)
    }

    pub(crate) fn decode(b: &[u8], file_len: u64) -> Result<Footer, DecodeError> {
        if b.len() != FOOTER_LEN {
            return Err(err(0, format!("footer of {} bytes", b.len())));
        }
        if crc(&b[..92]) != u32::from_le_bytes(b[92..96].try_into().expect("4 bytes")) {
            return Err(err(92, "actor segment footer checksum mismatch"));
        }
        let mut r = Reader::new(b);
        if r.take(8, "magic")? != MAGIC {
            return Err(err(0, "bad actor segment magic"));
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(err(
                8,
                format!("unsupported actor segment version {version}"),
            ));
        }
        if r.u32("flags")? != 0 {
            return Err(err(12, "unknown flags"));
        }
        let f = Footer {
            segment_id: r.u64("segment id")?,
            store_id: r.u64("store id")?,
            records: r.u32("records")?,
            blocks: r.u32("blocks")?,
            min_lsn: r.u64("min LSN")?,
            max_lsn: r.u64("max LSN")?,
            blocks_len: r.u64("blocks length")?,
            index_len: r.u32("index length")?,
            index_crc: r.u32("index checksum")?,
            bloom_len: r.u32("bloom length")?,
            bloom_crc: r.u32("bloom checksum")?,
        };
        let meta = u64::from(f.index_len) + u64::from(f.bloom_len) + FOOTER_LEN as u64;
        if f.blocks_len.checked_add(meta) != Some(file_len) || f.blocks > f.records {
            return Err(err(56, "actor segment lengths do not add up to the file"));
        }
        Ok(f)
    }

    /// Where the index and bloom (the rest of the meta) lie.
    pub(crate) fn meta_range(&self) -> Range<u64> {
        self.blocks_len..self.blocks_len + u64::from(self.index_len) + u64::from(self.bloom_len)
    }
}

/// One block's place and first key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BlockRef {
    at: u64,
    len: u32,
    records: u32,
    first: ActorKey,
}

/// What stays local of an actor segment: footer, index, bloom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) footer: Footer,
    blocks: Vec<BlockRef>,
    bloom: Bloom,
}

impl Meta {
    /// Decodes the meta from the footer and the bytes of [`Footer::meta_range`], checking
    /// checksums, that blocks tile the block area in key order, and the bloom's shape.
    pub(crate) fn decode(footer: Footer, meta: &[u8]) -> Result<Meta, DecodeError> {
        let (il, bl) = (footer.index_len as usize, footer.bloom_len as usize);
        if meta.len() != il + bl {
            return Err(err(0, "meta bytes of the wrong length"));
        }
        let (ib, bb) = meta.split_at(il);
        if crc(ib) != footer.index_crc {
            return Err(err(0, "actor segment index checksum mismatch"));
        }
        if crc(bb) != footer.bloom_crc {
            return Err(err(il, "actor segment bloom checksum mismatch"));
        }
        let mut r = Reader::new(ib);
        let mut blocks: Vec<BlockRef> = Vec::with_capacity((footer.blocks as usize).min(1 << 16));
        let (mut next, mut total) = (0u64, 0u64);
        for i in 0..footer.blocks {
            let at = r.u64("block offset")?;
            let len = r.u32("block length")?;
            let records = r.u32("block records")?;
            let actor_len = r.u16("first actor id length")? as usize;
            let state_len = r.u8("first state name length")? as usize;
            let actor = utf8(&mut r, actor_len, "first actor id")?;
            let state = utf8(&mut r, state_len, "first state name")?;
            let first = ActorKey { actor, state };
            if at != next
                || len < 4
                || records == 0
                || blocks.last().is_some_and(|b| b.first >= first)
            {
                return Err(err(r.pos(), format!("block {i} out of place or order")));
            }
            next = at + u64::from(len);
            total += u64::from(records);
            blocks.push(BlockRef {
                at,
                len,
                records,
                first,
            });
        }
        if r.remaining() != 0 || next != footer.blocks_len || total != u64::from(footer.records) {
            return Err(err(r.pos(), "index does not cover the blocks"));
        }
        let mut r = Reader::new(bb);
        let k = r.u32("bloom hashes")?;
        let n = r.u32("bloom words")? as usize;
        if k == 0 || k > 32 || n == 0 || n * 8 != r.remaining() {
            return Err(err(il, "bloom of a bad shape"));
        }
        let words = (0..n)
            .map(|_| r.u64("bloom word"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Meta {
            footer,
            blocks,
            bloom: Bloom { k, words },
        })
    }

    /// The byte range of the one block that may hold `key`, or `None` when the bloom or the
    /// index proves it absent.
    pub(crate) fn block_for(&self, key: &ActorKey) -> Option<Range<u64>> {
        if !self.bloom.may_contain(key) {
            return None;
        }
        let i = self
            .blocks
            .partition_point(|b| b.first <= *key)
            .checked_sub(1)?;
        let b = &self.blocks[i];
        Some(b.at..b.at + u64::from(b.len))
    }

    /// The index of the block whose keys start at or before `key` (0 when `key` is before
    /// every block): a scan from `key` on starts there.
    pub(crate) fn first_block_at_or_before(&self, key: &ActorKey) -> usize {
        self.blocks
            .partition_point(|b| b.first <= *key)
            .saturating_sub(1)
    }

    /// Every block's byte range, in key order.
    pub(crate) fn block_ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.blocks.iter().map(|b| b.at..b.at + u64::from(b.len))
    }
}

/// A block's records bytes, once its checksum matches.
fn checked_body(block: &[u8]) -> Result<&[u8], DecodeError> {
    let body_len = block
        .len()
        .checked_sub(4)
        .ok_or_else(|| err(0, "block shorter than its checksum"))?;
    let (body, sum) = block.split_at(body_len);
    if crc(body) != u32::from_le_bytes(sum.try_into().expect("4 bytes")) {
        return Err(err(body_len, "actor block checksum mismatch"));
    }
    Ok(body)
}

/// The records of one block (its bytes as read), checked: checksum, sorted keys, exact length.
pub(crate) fn block_records(block: &[u8]) -> Result<Vec<ActorRecord>, DecodeError> {
    let mut r = Reader::new(checked_body(block)?);
    let mut out: Vec<ActorRecord> = Vec::new();
    while r.remaining() > 0 {
        let rec = get_record(&mut r)?;
        if out.last().is_some_and(|p| p.key >= rec.key) {
            return Err(r.err("records not sorted by key"));
        }
        out.push(rec);
    }
    Ok(out)
}

/// The record of `key` in `block` (its bytes as read), if there: the checksum is checked, then
/// records are walked without decoding any but the one asked for (keys compared in place, their
/// order checked up to it).
pub(crate) fn find(block: &[u8], key: &ActorKey) -> Result<Option<ActorRecord>, DecodeError> {
    let body = checked_body(block)?;
    let want = (key.actor.as_bytes(), key.state.as_bytes());
    let mut r = Reader::new(body);
    let mut prev: Option<(&[u8], &[u8])> = None;
    while r.remaining() > 0 {
        let start = r.pos();
        let actor_len = r.u16("actor id length")? as usize;
        let state_len = r.u8("state name length")? as usize;
        let kind = r.u8("record kind")?;
        r.take(16, "version and expiry")?;
        match kind {
            0 => {
                let ct_len = r.u8("content type length")? as usize;
                let len = r.u32("value length")? as usize;
                r.take(ct_len + len, "content type and value")?;
            }
            1 => {}
            k => return Err(r.err(format!("unknown record kind {k}"))),
        }
        let here = (
            r.take(actor_len, "actor id")?,
            r.take(state_len, "state name")?,
        );
        if prev.is_some_and(|p| p >= here) {
            return Err(r.err("records not sorted by key"));
        }
        match here.cmp(&want) {
            std::cmp::Ordering::Less => prev = Some(here),
            std::cmp::Ordering::Equal => {
                return get_record(&mut Reader::new(&body[start..r.pos()])).map(Some);
            }
            std::cmp::Ordering::Greater => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(actor: &str, state: &str, version: u64, value: Option<Vec<u8>>) -> ActorRecord {
        ActorRecord {
            key: ActorKey {
                actor: actor.into(),
                state: state.into(),
            },
            version,
            expiry_ms: version.is_multiple_of(3).then_some(version * 10),
            value: value.map(|bytes| Value {
                content_type: "application/octet-stream".into(),
                bytes,
            }),
        }
    }

    /// Opens a file through ranges only, counting them: (footer, meta) then one per lookup.
    fn meta_of(file: &[u8]) -> Meta {
        let len = file.len() as u64;
        let fr = Footer::range(len).expect("long enough");
        let footer = Footer::decode(&file[fr.start as usize..], len).expect("footer");
        let mr = footer.meta_range();
        Meta::decode(footer, &file[mr.start as usize..mr.end as usize]).expect("meta")
    }

    proptest! {
        #[test]
        fn every_key_is_found_with_one_block_read_and_absent_keys_are_not(
            keys in prop::collection::btree_map(("[a-z]{1,12}", "[a-z]{1,4}"), (1u64..1_000_000, prop::option::of(prop::collection::vec(any::<u8>(), 0..900))), 0..300),
            absent in prop::collection::vec(("[A-Z]{1,12}", "[a-z]{1,4}"), 0..20),
        ) {
            let records: Vec<ActorRecord> = keys
                .iter()
                .map(|((a, s), (v, value))| record(a, s, *v, value.clone()))
                .collect();
            let file = encode(7, 3, &records);
            let meta = meta_of(&file);
            prop_assert_eq!(meta.footer.records as usize, records.len());
            for r in &records {
                let range = meta.block_for(&r.key).expect("a present key has a block");
                let all = block_records(&file[range.start as usize..range.end as usize]).expect("block");
                prop_assert!(all.contains(r));
                let block = &file[range.start as usize..range.end as usize];
                prop_assert_eq!(find(block, &r.key).expect("block"), Some(r.clone()));
            }
            for (a, s) in absent {
                let key = ActorKey { actor: a, state: s };
                if let Some(range) = meta.block_for(&key) {
                    prop_assert_eq!(find(&file[range.start as usize..range.end as usize], &key).expect("block"), None);
                }
            }
            // The blocks hold every record, in order.
            let all: Vec<ActorRecord> = meta
                .block_ranges()
                .flat_map(|r| block_records(&file[r.start as usize..r.end as usize]).expect("block"))
                .collect();
            prop_assert_eq!(all, records);
        }

        #[test]
        fn damage_is_refused_never_trusted(flip in 0usize..4000, bit in 0u8..8) {
            let records: Vec<ActorRecord> = (0..60)
                .map(|i| record(&format!("actor{i:03}"), "state", i + 1, Some(vec![i as u8; 40])))
                .collect();
            let mut file = encode(1, 1, &records);
            let at = flip % file.len();
            file[at] ^= 1 << bit;
            let len = file.len() as u64;
            let fr = Footer::range(len).expect("long enough");
            let Ok(footer) = Footer::decode(&file[fr.start as usize..], len) else { return Ok(()) };
            let mr = footer.meta_range();
            let Ok(meta) = Meta::decode(footer, &file[mr.start as usize..mr.end as usize]) else { return Ok(()) };
            // Meta intact: the damage is in a block, whose checksum refuses it.
            for r in &records {
                if let Some(range) = meta.block_for(&r.key) {
                    match find(&file[range.start as usize..range.end as usize], &r.key) {
                        Ok(found) => prop_assert_eq!(found, Some(r.clone())),
                        Err(e) => prop_assert!(e.what.contains("checksum"), "{}", e.what),
                    }
                }
            }
        }
    }

    #[test]
    fn the_bloom_spares_most_reads_of_absent_keys() {
        let records: Vec<ActorRecord> = (0..10_000)
            .map(|i| record(&format!("a{i:05}"), "state", i + 1, Some(vec![1])))
            .collect();
        let meta = meta_of(&encode(1, 1, &records));
        let misses = (0..10_000)
            .filter(|i| {
                let key = ActorKey {
                    actor: format!("b{i:05}"),
                    state: "state".into(),
                };
                meta.block_for(&key).is_some()
            })
            .count();
        // 10 bits per key, 7 hashes: about 1 % false positives (allow 2 %).
        assert!(misses < 200, "{misses} of 10,000 absent keys needed a read");
        assert!(meta.footer.blocks > 1, "several blocks");
    }
}
