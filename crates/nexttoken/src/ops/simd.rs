//! The instruction set the CPU kernels use, decided once per process: the best this CPU has, or
//! a lower one named by the `NEXTTOKEN_SIMD` environment variable (`avx512`, `avx2`, `portable`),
//! so that one machine can run the tests on every path. AVX-512 BF16's and VNNI's dot products
//! are extensions of the AVX-512 level (`bf16_dot`, `int8_dot`): forcing a lower level turns them
//! off too (the integer one falls back to AVX2's, which `portable` turns off).

use std::sync::OnceLock;

/// Instruction sets the kernels are compiled for, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust, vectorised by the compiler for the build's baseline.
    Portable,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 Foundation.
    Avx512,
}

/// The variable that lowers the level.
pub const OVERRIDE: &str = "NEXTTOKEN_SIMD";

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Level::Portable, Level::Avx2, Level::Avx512].into_iter().find(|level| level.name() == name)
    }

    /// The best level this CPU runs.
    fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        Level::Portable
    }
}

/// The level in force, with the reason an override was refused (unknown name, or a level this
/// CPU lacks: forcing AVX-512 where there is none would crash, not test anything).
fn decide() -> &'static (Level, Option<String>) {
    static DECIDED: OnceLock<(Level, Option<String>)> = OnceLock::new();
    DECIDED.get_or_init(|| {
        let detected = Level::detected();
        let Ok(wanted) = std::env::var(OVERRIDE) else { return (detected, None) };
        match Level::parse(&wanted) {
            Some(level) if level <= detected => (level, None),
            Some(_) => (
                detected,
                Some(format!("{OVERRIDE}={wanted} asks for more than this CPU has ({})", detected.name())),
            ),
            None => (detected, Some(format!("{OVERRIDE}={wanted} is not one of avx512, avx2, portable"))),
        }
    })
}

/// The instruction set the kernels use.
pub fn level() -> Level {
    decide().0
}

/// The integer dot product q8 and q4 products use (`plan::Tile::Int8`), or `None`: then they
/// multiply the f32 activations by the weights decoded to f32 (`NEXTTOKEN_SIMD=portable`, or a
/// CPU without AVX2). Every number of rows takes the same one, so a row's numbers never depend on the
/// rows multiplied with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Dot {
    /// AVX-512 VNNI's `vpdpbusd` on 16 lanes (with BW), at the AVX-512 level (Zen 4, Cascade Lake,
    /// Ice Lake and later; not Skylake-X, which takes `Avx2`).
    Avx512Vnni,
    /// AVX2's `vpmaddubsw` + `vpmaddwd` on 8 lanes (F16C widens the scales), at the AVX2 level and
    /// above: `NEXTTOKEN_SIMD=avx2` runs it on an AVX-512 CPU, so one machine tests both.
    Avx2,
}

/// The integer dot product in force, decided once per process (see `Int8Dot`).
pub fn int8_dot() -> Option<Int8Dot> {
    static INT8: OnceLock<Option<Int8Dot>> = OnceLock::new();
    *INT8.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if level() >= Level::Avx512
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return Some(Int8Dot::Avx512Vnni);
            }
            if level() >= Level::Avx2 && std::arch::is_x86_feature_detected!("f16c") {
                return Some(Int8Dot::Avx2);
            }
        }
        None
    })
}

/// The paths in force, in words: what a packed-cache file records, since the kernels' packed
/// layouts may depend on them (`crate::packed_cache`).
pub fn paths() -> String {
    format!("{} bf16_dot={} int8_dot={:?}", level().name(), bf16_dot(), int8_dot())
}

/// Why `NEXTTOKEN_SIMD` was not followed, if it was set and could not be: loads fail with it
/// rather than run on a path the user did not ask for.
pub fn override_error() -> Option<&'static str> {
    decide().1.as_deref()
}

/// Whether products on bf16 weights, prompts and decoding alike, use AVX-512 BF16's dot product
/// (`vdpbf16ps`, `bf16_avx512`, on panels packed in input pairs: `layout::Order`): the CPU has it
/// and the level in force is AVX-512 (a lower `NEXTTOKEN_SIMD` turns it off, so that forcing a
/// level still tests the widening path and the input-by-input layout on bf16 weights).
pub fn bf16_dot() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    level() >= Level::Avx512 && *DETECTED.get_or_init(detect_bf16_dot)
}

/// The CPU has AVX-512 BF16 and the AVX-512 parts its kernel also uses (BW for 16-bit shuffles).
fn detect_bf16_dot() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The integration tests' helpers (crates/nexttoken/tests/common/mod.rs: logit comparisons,
/// `kernel_path`), shared with the library's unit tests from here.
#[cfg(test)]
#[path = "../../tests/common/mod.rs"]
pub(crate) mod test_common;

#[cfg(test)]
mod tests {
    use super::test_common as common;
    use super::*;

    #[test]
    fn the_paths_in_force_follow_the_cpu_and_the_override() {
        // A valid NEXTTOKEN_SIMD names the level in force (scripts/test-simd-paths.mjs sets it).
        if let Some(wanted) = std::env::var(OVERRIDE).ok().and_then(|name| Level::parse(&name)) {
            assert_eq!(level(), wanted.min(Level::detected()));
        }
        // The extensions come with the AVX-512 level only, the AVX2 integer dot with AVX2.
        assert!(!bf16_dot() || level() >= Level::Avx512);
        match int8_dot() {
            Some(Int8Dot::Avx512Vnni) => assert!(level() >= Level::Avx512),
            Some(Int8Dot::Avx2) => assert!(level() >= Level::Avx2),
            None => {}
        }
        // What this run's kernels and goldens exercise (`kernel_path` records the tests that
        // need a particular path one by one).
        let lacks =
            |what: &str| format!("not in force here: {what} (CPU or NEXTTOKEN_SIMD={})", level().name());
        common::kernel_path(level().name(), true, "");
        common::kernel_path("avx512bf16", bf16_dot(), &lacks("AVX-512 BF16"));
        common::kernel_path("avx512vnni", int8_dot() == Some(Int8Dot::Avx512Vnni), &lacks("AVX-512 VNNI"));
        common::kernel_path("avx2-int8", int8_dot() == Some(Int8Dot::Avx2), &lacks("the AVX2 integer dot"));
    }
}
