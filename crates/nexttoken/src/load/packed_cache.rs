//! A model's packed weight matrices kept in a file of their own (`LoadOptions::packed_cache_dir`),
//! so that later loads map them instead of reading, converting and packing the checkpoint again.
//!
//! Packing copies every weight into fresh memory, which the system faults in and zeroes page by
//! page: 0.4–0.5 s for the 124M model, growing with the weights. A mapped file in the page cache
//! costs its page tables alone (about 45 ms for 500 MB here), shares its pages with other
//! processes that map it, and gives them back to the system with the mapping.
//!
//! The trade-off, why it is an option: a checkpoint that is read cannot kill the process, but a
//! mapped file truncated under it can (SIGBUS; issue 15's first defect, which is why loads read
//! the checkpoint). The cache file is ours: written under a temporary name, synced, then renamed
//! into place, never opened for writing again — replacing or deleting it leaves a mapping intact,
//! only truncating it in place would not. Every failure to write it is ignored (the load goes on
//! with its own copy), and a file that does not match what this load would pack (another
//! checkpoint file size or modification time, dtype, layout version or CPU path) is packed and
//! written again.
//!
//! The file is not trusted as it is: its key (paths, sizes, times) can be reproduced by anyone
//! who can stat the checkpoint, and the folder may be shared. So it is opened without following a
//! link or waiting on a FIFO, used only if it is a regular file owned by this user, and every
//! matrix's bytes are checked against the XXH3 hash recorded with them before any is used; a file
//! that fails any of these is packed and written again, as a stale one is. The folder is created
//! readable by this user alone (0700). Hashing costs a read of the file at XXH3's speed, ~10 GB/s
//! a core (bench/load measures it), and is spread over the compute pool.
//!
//! File layout: each matrix's packed bytes at a multiple of `PAGE`, then a JSON footer (the key
//! and where each matrix is, with its hash), its length as a little-endian u64, and `MAGIC`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use memmap2::{Mmap, MmapOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::dtype::WeightDtype;
use crate::ops::{PackedMatrix, WeightBytes, LAYOUT_VERSION};

/// The file's last bytes (version 2: matrices carry their hash).
const MAGIC: &[u8; 8] = b"NTPACK\x02\n";

/// Matrices start on page boundaries, as fresh mappings do (the kernels read f32 panels as
/// aligned values). 16 KiB covers the page sizes of x86_64 and Apple's arm64.
const PAGE: u64 = 16 << 10;

/// What a file was packed from and for: a file matches a load only if every field is equal.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Key {
    layout_version: u32,
    /// The CPU paths in force (`simd::paths`), which may choose layouts.
    paths: String,
    /// The dtype asked for (`None`: each matrix in its stored type).
    dtype: Option<String>,
    sources: Vec<SourceFile>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct SourceFile {
    path: PathBuf,
    len: u64,
    modified_ns: u128,
}

/// Where a matrix is in the file.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// `WeightDtype::name`.
    dtype: String,
    k: usize,
    n: usize,
    start: u64,
    len: u64,
    /// XXH3-64 of the `len` bytes at `start`.
    xxh3: u64,
}

#[derive(Serialize, Deserialize)]
struct Footer {
    key: Key,
    matrices: BTreeMap<String, Entry>,
}

/// The cache file of one load: read from, or being written.
pub struct PackedCache {
    state: State,
}

enum State {
    /// A file that matches: its matrices are handed out from the mapping.
    Found { map: Arc<Mmap>, matrices: BTreeMap<String, Entry> },
    /// None that matches: matrices are appended to `temp` as they are packed, and `finish`
    /// renames it to `path`.
    Writing { temp: TempFile, path: PathBuf, footer: Footer, end: u64 },
    /// Writing failed, or a matrix was missing from a file found: nothing more to do.
    Off,
}

impl PackedCache {
    /// The cache in `dir` for a checkpoint of `sources` loaded in `dtype` (None: the stored
    /// types); None when a source cannot be described (its metadata unreadable).
    pub fn open(dir: &Path, sources: &[PathBuf], dtype: Option<WeightDtype>) -> Option<Self> {
        let key = Key {
            layout_version: LAYOUT_VERSION,
            paths: crate::ops::simd::paths(),
            dtype: dtype.map(|d| d.name().to_string()),
            sources: sources.iter().map(|path| describe(path)).collect::<Option<_>>()?,
        };
        let path = dir.join(file_name(&key));
        if let Some(state) = read(&path, Some(&key)) {
            return Some(PackedCache { state });
        }
        let state = match TempFile::create(dir, &path) {
            Ok(temp) => {
                State::Writing { temp, path, footer: Footer { key, matrices: BTreeMap::new() }, end: 0 }
            }
            Err(_) => State::Off,
        };
        Some(PackedCache { state })
    }

    /// The matrix `name` from the file found, if it is there as (k, n) in `dtype`.
    pub fn take(&mut self, name: &str, dtype: WeightDtype, k: usize, n: usize) -> Option<PackedMatrix> {
        let State::Found { map, matrices } = &self.state else { return None };
        let entry = matrices.get(name).filter(|e| (e.dtype.as_str(), e.k, e.n) == (dtype.name(), k, n))?;
        let data =
            WeightBytes::Mapped { map: map.clone(), start: entry.start as usize, len: entry.len as usize };
        let matrix = PackedMatrix::from_packed_bytes(data, dtype, k, n);
        if matrix.is_none() {
            self.state = State::Off; // a file of another layout under the same version: not used again
        }
        matrix
    }

    /// Appends `matrix`, just packed as `name`, to the file being written.
    pub fn record(&mut self, name: &str, matrix: &PackedMatrix) {
        let State::Writing { temp, footer, end, .. } = &mut self.state else { return };
        let start = end.next_multiple_of(PAGE);
        let bytes = matrix.packed_bytes();
        let written =
            temp.file.seek(std::io::SeekFrom::Start(start)).and_then(|_| temp.file.write_all(bytes));
        if written.is_err() {
            self.state = State::Off;
            return;
        }
        let (dtype, k, n, len) =
            (matrix.dtype().name().to_string(), matrix.k(), matrix.n(), bytes.len() as u64);
        let xxh3 = xxh3_64(bytes);
        footer.matrices.insert(name.to_string(), Entry { dtype, k, n, start, len, xxh3 });
        *end = start + len;
    }

    /// Completes the file being written, once every matrix of the model is in it: the footer,
    /// a sync, and the rename that makes it visible to later loads.
    pub fn finish(self) {
        let State::Writing { mut temp, path, footer, .. } = self.state else { return };
        let Ok(json) = serde_json::to_vec(&footer) else { return };
        let done = temp
            .file
            .seek(std::io::SeekFrom::End(0))
            .and_then(|_| temp.file.write_all(&json))
            .and_then(|_| temp.file.write_all(&(json.len() as u64).to_le_bytes()))
            .and_then(|_| temp.file.write_all(MAGIC))
            .and_then(|_| temp.file.sync_data()) // a crash must not leave a renamed file of holes
            .and_then(|_| std::fs::rename(&temp.path, &path));
        if done.is_ok() {
            temp.kept = true;
        }
    }
}

/// `path`'s identity for the key: canonical path, length and modification time.
fn describe(path: &Path) -> Option<SourceFile> {
    let path = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    let modified_ns = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    Some(SourceFile { path, len: meta.len(), modified_ns })
}

/// One file per checkpoint, dtype and CPU path (not per modification: a changed checkpoint's file
/// replaces the old one). The hash only spreads names; the footer's key decides a match.
fn file_name(key: &Key) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (key.layout_version, &key.paths, &key.dtype).hash(&mut hasher);
    key.sources.iter().for_each(|source| source.path.hash(&mut hasher));
    format!("{:016x}.packed", hasher.finish())
}

/// The file at `path` opened for reading, if it is a regular file owned by this user: opened
/// without following a symlink (O_NOFOLLOW) and without waiting for a FIFO's writer (O_NONBLOCK,
/// which reads of a regular file ignore), then checked on the open file itself (fstat), so that
/// nothing can be swapped in between the check and the use.
fn open_own_file(path: &Path) -> Option<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let file = OpenOptions::new().read(true).custom_flags(flags).open(path).ok()?;
        let meta = file.metadata().ok()?;
        // SAFETY: geteuid has no preconditions and always succeeds.
        let user = unsafe { libc::geteuid() };
        (meta.file_type().is_file() && meta.uid() == user).then_some(file)
    }
    #[cfg(not(unix))]
    {
        let file = File::open(path).ok()?;
        file.metadata().ok()?.file_type().is_file().then_some(file)
    }
}

/// The file at `path`, mapped, if it is whole, its key is `key` (any key for `None`) and every
/// matrix's bytes have the hash recorded with them.
fn read(path: &Path, key: Option<&Key>) -> Option<State> {
    let file = open_own_file(path)?;
    let len = file.metadata().ok()?.len();
    let tail = len.checked_sub(16)?;
    let mut trailer = [0u8; 16];
    crate::files::read_at(&file, tail, &mut trailer).ok()?;
    if &trailer[8..] != MAGIC {
        return None;
    }
    let footer_len = u64::from_le_bytes(trailer[..8].try_into().ok()?);
    let footer_start = tail.checked_sub(footer_len)?;
    let mut json = vec![0u8; usize::try_from(footer_len).ok()?];
    crate::files::read_at(&file, footer_start, &mut json).ok()?;
    let footer: Footer = serde_json::from_slice(&json).ok()?;
    let inside = |e: &Entry| {
        e.start.is_multiple_of(PAGE) && e.start.checked_add(e.len).is_some_and(|end| end <= footer_start)
    };
    if key.is_some_and(|key| footer.key != *key) || !footer.matrices.values().all(inside) {
        return None;
    }
    // SAFETY: the mapping is only read. The file is this cache's, renamed into place once written
    // and never written again; a process that replaces or deletes it leaves this mapping's pages
    // intact. One that truncates it in place would end this process with SIGBUS on the next read
    // of a lost page: the trade-off the option documents (module docs, README).
    let map = unsafe { MmapOptions::new().len(footer_start as usize).populate().map(&file) }.ok()?;
    // Truncated between the checks and the mapping: not used (its lost pages would be a SIGBUS).
    if file.metadata().ok()?.len() < len {
        return None;
    }
    // Before any matrix is used: one whose bytes changed (a disk error, another hand) would give
    // wrong numbers, or NaN, silently. Matrices are hashed in parallel, the largest first.
    let mut entries: Vec<&Entry> = footer.matrices.values().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.len));
    let intact = |e: &&Entry| xxh3_64(&map[e.start as usize..(e.start + e.len) as usize]) == e.xxh3;
    if !entries.par_iter().all(intact) {
        return None;
    }
    Some(State::Found { map: Arc::new(map), matrices: footer.matrices })
}

/// `dir` and any missing parents, readable and writable by this user alone (0700), as ssh and
/// gpg make theirs: other users can then neither read nor replace what is in it. An existing
/// folder keeps its own mode (its owner chose it).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A file being written under a name of its own, removed unless `kept`.
struct TempFile {
    file: File,
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    /// A new file in `dir` (created if need be) next to `target`, unique to this process and load.
    fn create(dir: &Path, target: &Path) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let unique = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let path = dir.join(format!(".{name}.{}.{unique}.tmp", std::process::id()));
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok(TempFile { file, path, kept: false })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The reader on the file at `path`, whatever key its footer holds, then every matrix it lists
/// taken as a load takes it (shapes as large as a model's config allows): how many were handed
/// out. For the fuzz target (fuzz/fuzz_targets/packed_cache.rs), which writes its input there.
#[doc(hidden)]
pub fn read_any(path: &Path) -> usize {
    /// Larger than any matrix dimension `Config` accepts.
    const MAX_DIM: usize = 1 << 20;
    let Some(State::Found { map, matrices }) = read(path, None) else { return 0 };
    let wanted: Vec<(String, String, usize, usize)> =
        matrices.iter().map(|(name, e)| (name.clone(), e.dtype.clone(), e.k, e.n)).collect();
    let mut cache = PackedCache { state: State::Found { map, matrices } };
    let mut taken = 0;
    for (name, dtype, k, n) in wanted {
        let Ok(dtype) = WeightDtype::parse(&dtype) else { continue };
        if k <= MAX_DIM && n <= MAX_DIM && cache.take(&name, dtype, k, n).is_some() {
            taken += 1;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 64;
    const N: usize = 96;

    /// A q8 matrix (packed on every CPU path) of known values.
    fn matrix() -> PackedMatrix {
        let read = |rows: std::ops::Range<usize>, values: &mut Vec<f32>| -> std::result::Result<(), ()> {
            values.clear();
            values.extend(rows.flat_map(|r| (0..N).map(move |c| ((r * N + c) % 13) as f32 - 6.0)));
            Ok(())
        };
        PackedMatrix::pack(WeightDtype::Q8_0, K, N, false, read).unwrap()
    }

    /// A folder with a checkpoint stand-in, and the cache's folder inside it.
    struct Dirs {
        root: PathBuf,
        source: PathBuf,
        cache: PathBuf,
    }

    impl Dirs {
        fn new(name: &str) -> Self {
            let root = std::env::temp_dir().join(format!("nexttoken-packed-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            let source = root.join("model.safetensors");
            std::fs::write(&source, b"weights").unwrap();
            Dirs { cache: root.join("cache/packed"), source, root }
        }

        fn open(&self) -> PackedCache {
            PackedCache::open(&self.cache, std::slice::from_ref(&self.source), Some(WeightDtype::Q8_0))
                .unwrap()
        }

        /// Writes the cache file (a load that found none), returning its path.
        fn write(&self) -> PathBuf {
            let mut cache = self.open();
            assert!(matches!(cache.state, State::Writing { .. }));
            let State::Writing { path, .. } = &cache.state else { unreachable!() };
            let path = path.clone();
            cache.record("wte", &matrix());
            cache.finish();
            path
        }

        /// Whether a load now takes the matrix from the file.
        fn found(&self) -> bool {
            let mut cache = self.open();
            let taken = cache.take("wte", WeightDtype::Q8_0, K, N);
            if let Some(taken) = &taken {
                assert_eq!(taken.packed_bytes(), matrix().packed_bytes());
            }
            taken.is_some()
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn a_file_written_is_found_by_the_next_load_in_a_private_folder() {
        let dirs = Dirs::new("found");
        dirs.write();
        assert!(dirs.found());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dirs.cache).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_matrix_whose_bytes_changed_is_not_used_and_the_file_is_rebuilt() {
        let dirs = Dirs::new("changed");
        let path = dirs.write();
        let mut bytes = std::fs::read(&path).unwrap();
        // NaN bytes over the matrix, which starts the file: its q8 scales become NaN.
        bytes[..16].fill(0xff);
        std::fs::write(&path, &bytes).unwrap();
        assert!(!dirs.found(), "a changed matrix must not be handed out");
        dirs.write();
        assert!(dirs.found(), "the rebuilt file is used");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_the_files_place_is_passed_over_without_waiting() {
        let dirs = Dirs::new("fifo");
        let path = dirs.write();
        std::fs::remove_file(&path).unwrap();
        let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK, opening the FIFO waits forever for a writer.
        assert!(!dirs.found());
        dirs.write();
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file(), "replaced by a file");
        assert!(dirs.found());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_in_the_files_place_is_not_followed() {
        let dirs = Dirs::new("symlink");
        let path = dirs.write();
        let elsewhere = dirs.root.join("elsewhere.packed");
        std::fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(!dirs.found(), "a link, even to a good file, is not read");
        dirs.write();
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file(), "replaced by a file");
        assert!(dirs.found());
    }

    /// Writes fuzz/seeds/packed_cache/q8 (run with `--ignored` after a change to the format).
    #[test]
    #[ignore]
    fn write_the_fuzz_seed() {
        let dirs = Dirs::new("seed");
        let path = dirs.write();
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/packed_cache");
        std::fs::create_dir_all(&seeds).unwrap();
        std::fs::copy(&path, seeds.join("q8")).unwrap();
        assert_eq!(read_any(&seeds.join("q8")), 1);
    }
}
