//! Test helpers shared by the integration tests (`mod common;`) and the library's unit tests
//! (`ops::simd::tests::common`, the same file by `#[path]`):
//! - the one place that decides how two rows of logits are compared, so that a NaN or an
//!   infinity where the other side has none fails every bound, wherever it sits in the row
//!   (`fold(0.0, f32::max)` drops NaN: a row that is partly NaN compared as equal);
//! - `kernel_path`, which kernel tests call to say whether the SIMD path they test ran here;
//! - `logits_goldens`: transformers' logits at the golden positions, for every backend's tests.
#![allow(dead_code)] // each test binary uses some of these

use std::io::Write;

/// The variable naming a file that `kernel_path` appends to (scripts/test-simd-paths.mjs sets
/// it and prints which kernel paths ran from it).
pub const TESTED_PATHS: &str = "NEXTTOKEN_TESTED_PATHS";

/// Says whether a test of kernel path `path` (`avx512f`, `avx512bf16`, `avx512vnni`, `avx2`,
/// `avx2-int8`, `portable`) runs here, and returns `runs`: a test that cannot run on this CPU
/// (or under a lower `NEXTTOKEN_SIMD`) returns early, which cargo shows as `ok`. The line goes to
/// stderr and, where `NEXTTOKEN_TESTED_PATHS` names a file, to that file, so that the test run
/// can say which paths it exercised.
pub fn kernel_path(path: &str, runs: bool, why_not: &str) -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    if !runs {
        eprintln!("skipped ({path}): {why_not}");
    }
    if let Ok(file) = std::env::var(TESTED_PATHS) {
        let line = format!("{path}\t{}\t{test}\t{why_not}\n", if runs { "ran" } else { "skipped" });
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&file).unwrap();
        out.write_all(line.as_bytes()).unwrap(); // one short append: whole lines, even from threads
    }
    runs
}

/// Largest |a[i] - b[i]| over two equally long rows. Equal values, an infinity on both sides
/// included, differ by 0; a NaN on either side, or an infinity the other side does not equal,
/// gives `f32::INFINITY`, so no `<=` bound passes.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "rows of different lengths");
    let mut max = 0f32;
    for (&x, &y) in a.iter().zip(b) {
        if x == y {
            continue;
        }
        let d = (x - y).abs(); // NaN if either is NaN
        if d.is_nan() {
            return f32::INFINITY;
        }
        if d > max {
            max = d;
        }
    }
    max
}

/// Softmax of a row of logits, in f64.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| if (x as f64) > m { x as f64 } else { m });
    let exp: Vec<f64> = logits.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// KL(p || q) in nats of the distributions two rows of logits give: what `q` loses against the
/// reference `p`. `f64::INFINITY` where either row holds a NaN.
pub fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    assert_eq!(p.len(), q.len(), "rows of different lengths");
    if p.iter().chain(q).any(|x| x.is_nan()) {
        return f64::INFINITY; // which the softmax would spread, and `p > 0` below would skip
    }
    let (p, q) = (softmax(p), softmax(q));
    p.iter().zip(&q).filter(|(p, _)| **p > 0.0).map(|(p, q)| p * (p / q).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: [f32; 5] = [0.5, -1.0, 2.0, 3.25, -4.0];

    fn with(at: usize, value: f32) -> Vec<f32> {
        let mut row = ROW.to_vec();
        row[at] = value;
        row
    }

    #[test]
    fn max_abs_diff_fails_on_a_nan_first_middle_or_last() {
        assert_eq!(max_abs_diff(&ROW, &ROW), 0.0);
        assert_eq!(max_abs_diff(&ROW, &with(2, 2.25)), 0.25);
        for at in [0, 2, ROW.len() - 1] {
            let nan = with(at, f32::NAN);
            assert_eq!(max_abs_diff(&nan, &ROW), f32::INFINITY, "NaN at {at}, left");
            assert_eq!(max_abs_diff(&ROW, &nan), f32::INFINITY, "NaN at {at}, right");
            assert_eq!(max_abs_diff(&nan, &nan), f32::INFINITY, "NaN at {at}, both");
        }
        // The defect this replaced: `fold(0.0, f32::max)` gave 0 here.
        assert_eq!(max_abs_diff(&[f32::NAN, 1.0, 2.0], &[0.0, 1.0, 2.0]), f32::INFINITY);
    }

    #[test]
    fn max_abs_diff_matches_equal_infinities_only() {
        let inf = f32::INFINITY;
        assert_eq!(max_abs_diff(&[-inf, 1.0, inf], &[-inf, 1.0, inf]), 0.0);
        for at in [0, 2, ROW.len() - 1] {
            for bad in [inf, -inf] {
                assert_eq!(max_abs_diff(&with(at, bad), &ROW), inf, "{bad} at {at}");
            }
        }
        assert_eq!(max_abs_diff(&[inf], &[-inf]), inf);
    }

    #[test]
    fn kl_divergence_is_zero_for_equal_rows_and_infinite_with_a_nan() {
        assert_eq!(kl_divergence(&ROW, &ROW), 0.0);
        let halved = ROW.map(|x| x / 2.0);
        assert!(kl_divergence(&ROW, &halved) > 0.05);
        for at in [0, 2, ROW.len() - 1] {
            assert_eq!(kl_divergence(&ROW, &with(at, f32::NAN)), f64::INFINITY, "NaN at {at}");
            assert_eq!(kl_divergence(&with(at, f32::NAN), &ROW), f64::INFINITY, "NaN at {at}, reference");
        }
    }
}

/// transformers' logits at chosen positions of some inputs (`goldens/logits.json`), their rows
/// in `file` (f32, little-endian).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogitsGoldens {
    pub vocab_size: usize,
    pub file: String,
    pub cases: Vec<LogitsCase>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogitsCase {
    pub name: String,
    pub ids: Vec<u32>,
    pub positions: Vec<usize>,
    /// The first of this case's rows in the file.
    pub row: usize,
    pub greedy_next: u32,
}

/// The logits goldens and their rows (`__test__/fixtures/goldens`).
pub fn logits_goldens() -> (LogitsGoldens, Vec<f32>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/goldens");
    let goldens: LogitsGoldens =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(&goldens.file)).unwrap();
    let rows = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (goldens, rows)
}
