//! Memory of its own for each packed weight matrix: an anonymous mapping, page-aligned, that goes
//! back to the system the moment the matrix is dropped. Through the allocator, a disposed model's
//! hundreds of megabytes stayed in mimalloc's per-thread heaps (docs/reliability.md); a mapping
//! also lets the kernel back it with transparent huge pages (fewer page faults while a model
//! loads, fewer TLB misses while it decodes).

use memmap2::MmapMut;

/// Zero-filled bytes, page-aligned.
pub struct PageBuffer {
    map: MmapMut,
}

impl PageBuffer {
    /// `len` zero bytes (the system's fresh pages are zero).
    pub fn zeroed(len: usize) -> std::io::Result<Self> {
        // A zero-length mapping is refused by mmap; one page holds nothing just as well.
        let map = MmapMut::map_anon(len.max(1))?;
        #[cfg(target_os = "linux")]
        {
            // Advice only: where transparent huge pages are off, this is a no-op or an error that
            // changes nothing, so it is ignored.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        Ok(PageBuffer { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// The bytes as f32 values (whole values only).
    pub fn f32s(&self) -> &[f32] {
        // SAFETY: a mapping is page-aligned, so the prefix is empty, and every bit pattern is an f32.
        let (_, values, _) = unsafe { self.map.align_to::<f32>() };
        values
    }
}
