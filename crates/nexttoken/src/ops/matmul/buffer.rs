//! Memory of its own for each packed weight matrix: an anonymous mapping, page-aligned, that goes
//! back to the system the moment the matrix is dropped. Through the allocator, a disposed model's
//! hundreds of megabytes stayed in mimalloc's per-thread heaps (docs/reliability.md).
//!
//! Not advised as transparent huge pages (`MADV_HUGEPAGE`), which it was: where the kernel's THP
//! defrag setting is `madvise` (the default), every fault in such a mapping may compact memory
//! first, and 124M fp32 loads took 350–1,230 ms (median 546 of 5) against 418–479 ms (median 442)
//! without the advice, with no difference in decoding speed measured (`forward_timing`).

use std::sync::Arc;

use memmap2::{Mmap, MmapMut};

/// Zero-filled bytes, page-aligned.
pub struct PageBuffer {
    map: MmapMut,
}

impl PageBuffer {
    /// `len` zero bytes (the system's fresh pages are zero).
    pub fn zeroed(len: usize) -> std::io::Result<Self> {
        // A zero-length mapping is refused by mmap; one page holds nothing just as well.
        let map = MmapMut::map_anon(len.max(1))?;
        Ok(PageBuffer { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

/// A packed matrix's bytes: memory of its own, or its part of a packed-cache file mapped by the
/// load (`crate::packed_cache`), shared with the model's other matrices.
pub enum WeightBytes {
    Own(PageBuffer),
    /// `len` bytes of `map` from `start`, a multiple of the page size.
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

impl WeightBytes {
    pub fn bytes(&self) -> &[u8] {
        match self {
            WeightBytes::Own(buffer) => buffer.bytes(),
            WeightBytes::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }

    /// The bytes as f32 values (whole values only).
    pub fn f32s(&self) -> &[f32] {
        // SAFETY: both kinds start on a page boundary (a mapping, and a page-aligned offset into
        // one), so the prefix is empty; every bit pattern is an f32.
        let (head, values, _) = unsafe { self.bytes().align_to::<f32>() };
        debug_assert!(head.is_empty());
        values
    }
}
