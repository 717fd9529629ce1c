//! [`Blob`]: immutable bytes, mapped or on the heap, aligned for in-place casting.

use std::fs::File;
use std::io;

/// Immutable bytes of one file.
///
/// The base address is always at least 64-byte aligned (page-aligned when mapped), so a format
/// that puts a section at an offset aligned to its element size can view it as `&[f32]`,
/// `&[u32]` or `&[u64]` in place, without decoding.
pub struct Blob {
    inner: Inner,
}

enum Inner {
    Mapped(memmap2::Mmap),
    /// Backed by cache lines so the bytes are 64-byte aligned, as a mapping's are (sections
    /// start at multiples of 64 and are used in place); `len` is the byte length.
    Heap {
        words: Vec<Line>,
        len: usize,
    },
    Empty,
}

/// 64 bytes aligned to 64: the unit of a heap blob.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Mapped(_) => "mapped",
            Inner::Heap { .. } => "heap",
            Inner::Empty => "empty",
        };
        f.debug_struct("Blob")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}

impl Blob {
    /// Maps an open file read-only. O(1): nothing is read until it is touched.
    ///
    /// The file must not be modified while mapped; Strata only maps immutable files it wrote
    /// atomically (temp file, fsync, rename) and never rewrites.
    pub(crate) fn map_file(file: &File) -> io::Result<Blob> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(Blob {
                inner: Inner::Empty,
            });
        }
        // SAFETY: the file is immutable by contract (written once, renamed into place, never
        // rewritten); a concurrent truncation by another process is outside that contract.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Blob {
            inner: Inner::Mapped(map),
        })
    }

    /// Copies bytes into an aligned heap buffer.
    pub fn from_bytes(bytes: &[u8]) -> Blob {
        if bytes.is_empty() {
            return Blob {
                inner: Inner::Empty,
            };
        }
        let mut words = vec![Line([0; 64]); bytes.len().div_ceil(64)];
        // SAFETY: `words` owns at least `bytes.len()` initialised bytes; u8 has no alignment.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
        dst.copy_from_slice(bytes);
        Blob {
            inner: Inner::Heap {
                words,
                len: bytes.len(),
            },
        }
    }

    /// An aligned heap blob of `len` bytes holding `parts` (each at its offset) and zeros
    /// elsewhere: the body of a partly fetched file. The zeros are never data: the caller
    /// records which ranges it filled and refuses reads of the rest. Untouched pages of a large
    /// zeroed allocation are not resident until written, so the holes cost no RAM. `None` if a
    /// part lies outside `len` or the allocation fails (never an abort).
    pub fn assemble(len: usize, parts: &[(usize, &[u8])]) -> Option<Blob> {
        if parts
            .iter()
            .any(|(at, b)| at.checked_add(b.len()).is_none_or(|end| end > len))
        {
            return None;
        }
        if len == 0 {
            return Some(Blob {
                inner: Inner::Empty,
            });
        }
        let n = len.div_ceil(64);
        let layout = std::alloc::Layout::array::<Line>(n).ok()?;
        // SAFETY: `layout` has a non-zero size (len > 0). A null pointer is a failed allocation,
        // answered with `None`. Otherwise the memory is zeroed (a valid `Line` array of `n`),
        // allocated by the global allocator with exactly the layout `Vec<Line>` of capacity `n`
        // uses, so the Vec owns and frees it correctly.
        let mut words = unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<Line>();
            if p.is_null() {
                return None;
            }
            Vec::from_raw_parts(p, n, n)
        };
        // SAFETY: `words` owns at least `len` initialised bytes; u8 has no alignment.
        let dst = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        for (at, b) in parts {
            dst[*at..*at + b.len()].copy_from_slice(b);
        }
        Some(Blob {
            inner: Inner::Heap { words, len },
        })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Mapped(m) => m,
            // SAFETY: `words` holds at least `len` initialised bytes (see `from_bytes`).
            Inner::Heap { words, len } => unsafe {
                std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len)
            },
            Inner::Empty => &[],
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True when the blob has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops this process's page-table entries of a mapped blob after a one-off scan, so the
    /// scanned bytes stop counting as its resident memory: the kernel keeps them in the page
    /// cache and the next touch maps them again, unchanged. A no-op on the heap.
    pub fn release_pages(&self) {
        if let Inner::Mapped(m) = &self.inner {
            // SAFETY: a read-only shared mapping of an immutable file: MADV_DONTNEED only
            // removes page-table entries; contents come back from the file on the next touch.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Tells the kernel that `range` of a mapped blob is read at random: a page fault there
    /// reads that page, not the pages around it (read-around would fill the cache with
    /// neighbours nobody asked for, evicting useful pages when memory is short). A no-op on
    /// the heap or for an empty or out-of-bounds range.
    pub fn advise_random(&self, range: std::ops::Range<usize>) {
        self.advise(range, memmap2::Advice::Random);
    }

    /// Asks the kernel to start reading `range` of a mapped blob into the page cache now, all
    /// of it (for a pass over a range advised random access). A no-op on the heap or for an
    /// empty or out-of-bounds range.
    pub fn advise_willneed(&self, range: std::ops::Range<usize>) {
        self.advise(range, memmap2::Advice::WillNeed);
    }

    /// `advice` for `range` of a mapping (advice only: failures are ignored).
    fn advise(&self, range: std::ops::Range<usize>, advice: memmap2::Advice) {
        if let Inner::Mapped(m) = &self.inner
            && range.start < range.end
            && range.end <= m.len()
        {
            let _ = m.advise_range(advice, range.start, range.end - range.start);
        }
    }

    /// True when every page of `range` is in RAM: always on the heap; for a mapping, the page
    /// cache's answer (`mincore`: one system call, no page is read). Out of bounds: false.
    /// Linux answers from the page cache only for files the process owns or may write (a data
    /// directory it writes); for others it reports every page resident, so a caller choosing
    /// between the mapping and a read then always takes the mapping (correct, only slower when
    /// the pages are not cached).
    pub fn is_resident(&self, range: std::ops::Range<usize>) -> bool {
        let Inner::Mapped(m) = &self.inner else {
            return range.end <= self.len();
        };
        if range.start >= range.end || range.end > m.len() {
            return range.start == range.end && range.end <= m.len();
        }
        static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let page = *PAGE.get_or_init(|| {
            // SAFETY: sysconf reads a constant of the system.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            usize::try_from(page).unwrap_or(4096).max(1)
        });
        let base = m.as_ptr() as usize;
        let first = (base + range.start) / page * page;
        let last = (base + range.end - 1) / page * page;
        let pages = (last - first) / page + 1;
        let mut small = [0u8; 4];
        let mut big = Vec::new();
        let vec: &mut [u8] = match pages <= small.len() {
            true => &mut small[..pages],
            false => {
                big.resize(pages, 0);
                &mut big
            }
        };
        // SAFETY: [first, last + page) lies within the mapping's pages (the mapping starts
        // page-aligned and covers `range`); `vec` holds one byte per page, as mincore needs.
        let rc = unsafe {
            libc::mincore(
                first as *mut libc::c_void,
                last + page - first,
                vec.as_mut_ptr(),
            )
        };
        rc == 0 && vec.iter().all(|b| b & 1 == 1)
    }

    /// True when the bytes are a memory map of a file (as opposed to the heap).
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_and_mapped_agree_and_are_aligned() {
        let d = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let path = d.path().join("b");
        std::fs::write(&path, &data).expect("write");
        let m = Blob::map_file(&File::open(&path).expect("open")).expect("map");
        let h = Blob::from_bytes(&data);
        assert!(m.is_mapped() && !h.is_mapped());
        assert_eq!(m.as_bytes(), &data[..]);
        assert_eq!(h.as_bytes(), &data[..]);
        assert_eq!(m.as_bytes().as_ptr() as usize % 16, 0);
        assert_eq!(h.as_bytes().as_ptr() as usize % 64, 0);
        assert!(Blob::from_bytes(&[]).is_empty());
        // Residency: the heap always; a mapping after its pages were read; bounds checked.
        assert!(h.is_resident(0..1000) && !h.is_resident(0..1001));
        let _ = m.as_bytes().iter().map(|b| u64::from(*b)).sum::<u64>();
        assert!(m.is_resident(0..1000) && m.is_resident(999..1000));
        assert!(!m.is_resident(0..1001) && m.is_resident(5..5));
    }

    #[test]
    fn assembled_parts_land_at_their_offsets_and_outside_parts_are_refused() {
        let b = Blob::assemble(40, &[(0, b"abc"), (16, b"xyz"), (37, b"end")]).expect("fits");
        assert_eq!(b.len(), 40);
        assert_eq!(&b.as_bytes()[..3], b"abc");
        assert_eq!(&b.as_bytes()[16..19], b"xyz");
        assert_eq!(&b.as_bytes()[37..], b"end");
        assert_eq!(b.as_bytes().as_ptr() as usize % 64, 0);
        assert!(Blob::assemble(40, &[(38, b"end")]).is_none());
        assert!(Blob::assemble(4, &[(usize::MAX, b"x")]).is_none());
        assert!(Blob::assemble(0, &[]).expect("empty").is_empty());
    }
}
