//! A packed-cache file, as bytes. Whatever it holds, reading it hands out only matrices whose
//! place, size and hash check out, or none (never a panic, an abort, a hang, or a read outside the
//! file), whatever key its footer holds.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, rewritten for each input.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("nexttoken-fuzz-packed-{}.packed", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    // Written under a temporary name and renamed, as the cache writes its files: a mapping of the
    // previous input is never truncated under it.
    let temp = path().with_extension("tmp");
    std::fs::write(&temp, data).unwrap();
    std::fs::rename(&temp, path()).unwrap();
    nexttoken::load::packed_cache::read_any(path());
});
