//! Little-endian encoding helpers shared by the WAL, segment and manifest codecs.
//!
//! Decoding never panics: every read is bounds-checked and a failure names what was being read
//! and at which offset, so that a corruption report can point at the byte.

use crate::types::PointId;

/// CRC32C (Castagnoli), hardware-accelerated by the `crc32c` crate.
#[inline]
pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Appends little-endian values to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// A length-prefixed (u32) byte string.
    pub(crate) fn blob32(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.bytes(v);
    }
    /// A point id: tag u8, then u64 (integer) or u128 (UUID).
    pub(crate) fn point_id(&mut self, id: PointId) {
        self.u8(id.kind_tag());
        match id {
            PointId::Num(n) => self.u64(n),
            PointId::Uuid(u) => self.u128(u),
        }
    }
    /// Pads with zeros to a multiple of `align`.
    pub(crate) fn pad_to(&mut self, align: usize) {
        let n = self.buf.len().next_multiple_of(align);
        self.buf.resize(n, 0);
    }
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// A decode failure: what was expected and where (offset relative to the decoded buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub(crate) offset: usize,
    pub(crate) what: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte offset {}", self.what, self.offset)
    }
}

/// Reads little-endian values from a byte slice, bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

macro_rules! get_int {
    ($name:ident, $t:ty) => {
        pub(crate) fn $name(&mut self, what: &str) -> Result<$t, DecodeError> {
            let b = self.take(std::mem::size_of::<$t>(), what)?;
            Ok(<$t>::from_le_bytes(
                b.try_into().expect("take returned the exact size"),
            ))
        }
    };
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn err(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what: what.into(),
        }
    }
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.err(format!(
                "truncated {what}: need {n} bytes, have {}",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    get_int!(u8, u8);
    get_int!(u16, u16);
    get_int!(u32, u32);
    get_int!(u64, u64);
    get_int!(u128, u128);

    /// Reads and checks the 8-byte magic and the u32 format version every Strata file starts
    /// with; `what` names the file kind in errors ("WAL", "segment", "manifest").
    pub(crate) fn magic_and_version(
        &mut self,
        magic: &[u8; 8],
        version: u32,
        what: &str,
    ) -> Result<(), DecodeError> {
        if self.take(8, &format!("{what} magic"))? != magic {
            return Err(DecodeError {
                offset: 0,
                what: format!("bad {what} magic"),
            });
        }
        let v = self.u32(&format!("{what} format version"))?;
        if v != version {
            return Err(DecodeError {
                offset: 8,
                what: format!("unsupported {what} format version {v}"),
            });
        }
        Ok(())
    }

    pub(crate) fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, DecodeError> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.err("vector length overflows"))?,
            what,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("chunks of 4")))
            .collect())
    }
    pub(crate) fn blob32(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    pub(crate) fn point_id(&mut self) -> Result<PointId, DecodeError> {
        let at = self.pos;
        let tag = self.u8("point id tag")?;
        match tag {
            0 => Ok(PointId::Num(self.u64("point id")?)),
            1 => Ok(PointId::Uuid(self.u128("point id")?)),
            t => Err(DecodeError {
                offset: at,
                what: format!("unknown point id tag {t}"),
            }),
        }
    }
}

/// Views little-endian bytes as `&[T]` in place. `None` if misaligned or not a whole number of
/// elements. (Strata only supports little-endian targets; see `lib.rs`.) `bytemuck` checks
/// that every bit pattern is a valid `T` (`Pod`), so no unsafe code is needed here.
pub(crate) fn cast_slice<T: bytemuck::Pod>(bytes: &[u8]) -> Option<&[T]> {
    if bytes.is_empty() {
        return Some(&[]);
    }
    bytemuck::try_cast_slice(bytes).ok()
}
