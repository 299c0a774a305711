//! The register tile for bf16 weights with AVX-512 BF16's dot product (`plan::Tile::Bf16Dot`)
//! (`vdpbf16ps`), for every number of rows: per 32-bit lane it multiplies two bf16 pairs and
//! adds both products to an f32 sum, so one instruction does the work of two f32 fused
//! multiply-adds on 16 columns.
//!
//! The instruction wants both operands as pairs of consecutive inputs. The weights are packed so
//! at load (`layout::Order::Pairs`: for each input pair and column the 32-bit element
//! (w[k][j], w[k+1][j])), and the activations are rounded to bf16 once per product
//! (`pair_rows`: a row of bf16 is already its input pairs). Rounding is to nearest even, as
//! PyTorch and oneDNN round activations for their bf16 products; the sums stay f32. Decoded
//! tokens are rounded as prompts are, so that a row's numbers do not depend on how many rows
//! share its product.
//!
//! An odd number of inputs is padded with a zero in both operands: the activations explicitly,
//! the weights by the packed blocks' own zero padding past the last input.

use super::layout::MAX_TILE_ROWS;
use super::layout::{PAIR, PANEL};
use crate::ops::simd;

/// 32-bit elements (input pairs of one column) per pair of inputs of a paired panel.
const PAIRED_WIDTH: usize = PANEL;

/// `x`'s first `k` values of each of `m` rows (`ldx` apart) rounded to bf16, into `out`: row r
/// at `r * k.div_ceil(PAIR)` 32-bit elements, each holding inputs 2q (low half) and 2q + 1
/// (high half), an odd last input paired with zero.
pub fn pair_rows(x: &[f32], ldx: usize, m: usize, k: usize, out: &mut [u32]) {
    let pairs = k.div_ceil(PAIR);
    assert!(simd::bf16_dot(), "the bf16 tile needs AVX-512 BF16");
    assert!(m == 0 || x.len() >= (m - 1) * ldx + k, "x is too short");
    assert!(out.len() >= m * pairs, "out is too short");
    #[cfg(target_arch = "x86_64")]
    for (r, row) in out.chunks_exact_mut(pairs).take(m).enumerate() {
        // SAFETY: the CPU has AVX-512 BF16, F and BW (`bf16_dot`); row r of x holds k values and
        // `row` k.div_ceil(2) pairs (asserted above).
        unsafe { x86::pair_row(x[r * ldx..].as_ptr(), k, row.as_mut_ptr()) }
    }
}

/// `tile[r][..] = sum over pairs q of a[r][q] . w[q][..]` for `mr` rows (1 to 6, `lda` elements
/// apart) and `panels` (1 or 2) paired panels of `pairs` pairs each; `tile` receives the sums,
/// `panels * PANEL` per row.
pub fn run(mr: usize, a: &[u32], lda: usize, w: [&[u32]; 2], panels: usize, pairs: usize, tile: &mut [f32]) {
    assert!(simd::bf16_dot(), "the bf16 tile needs AVX-512 BF16");
    assert!((1..=MAX_TILE_ROWS).contains(&mr) && (1..=2).contains(&panels));
    assert!(
        a.len() >= (mr - 1) * lda + pairs
            && w.iter().all(|w| w.len() >= pairs * PAIRED_WIDTH)
            && tile.len() >= mr * panels * PANEL
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 BF16 and F (`bf16_dot`); the operands and tile are as long as the kernel
    // reads and writes (asserted above).
    unsafe {
        x86::run(mr, a.as_ptr(), lda, [w[0].as_ptr(), w[1].as_ptr()], panels, pairs, tile.as_mut_ptr())
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MAX_TILE_ROWS, PAIR, PAIRED_WIDTH};

    /// f32 values per conversion of `pair_row`: two registers, one register of bf16.
    const CHUNK: usize = 32;

    /// One row of `super::pair_rows`.
    ///
    /// # Safety
    /// AVX-512 BF16, F and BW; `x` holds `k` values, `out` `k.div_ceil(2)` elements.
    #[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
    pub unsafe fn pair_row(x: *const f32, k: usize, out: *mut u32) {
        let out = out.cast::<u16>();
        for start in (0..k).step_by(CHUNK) {
            let len = CHUNK.min(k - start);
            // Loads past k (masked off) read zeros, so an odd last input is paired with 0.
            let (first, second) =
                (lanes(len.min(16)) as __mmask16, lanes(len.saturating_sub(16)) as __mmask16);
            // SAFETY: the masked loads read inputs start..k only (masked-off lanes are not
            // read, and the pointers are not dereferenced past them); the masked store writes
            // the bf16 of those inputs and the zero padding up to a whole pair, within `out`.
            unsafe {
                let first = _mm512_maskz_loadu_ps(first, x.wrapping_add(start));
                let second = _mm512_maskz_loadu_ps(second, x.wrapping_add(start + 16));
                // The instruction takes the low 16 bf16 from its second operand.
                let bf16 = _mm512_cvtne2ps_pbh(second, first);
                let store = lanes(len.div_ceil(PAIR) * PAIR);
                _mm512_mask_storeu_epi16(
                    out.add(start).cast(),
                    store,
                    std::mem::transmute::<__m512bh, __m512i>(bf16),
                );
            }
        }
    }

    /// The mask of the first `len` (at most 32) lanes.
    fn lanes(len: usize) -> u32 {
        ((1u64 << len) - 1) as u32
    }

    /// See `super::run`.
    ///
    /// # Safety
    /// AVX-512 BF16 and F; `mr` in 1..=6, `panels` 1 or 2; `a` holds `mr` rows of `pairs`
    /// elements `lda` apart, each `w[p]` `pairs * PANEL` elements, `tile` `mr * panels * PANEL`.
    pub unsafe fn run(
        mr: usize,
        a: *const u32,
        lda: usize,
        w: [*const u32; 2],
        panels: usize,
        pairs: usize,
        tile: *mut f32,
    ) {
        macro_rules! by_shape {
            ($($rows:literal)*) => {
                // SAFETY: the caller's conditions are the kernel's.
                unsafe {
                    match (mr, panels) {
                        $(($rows, 1) => kernel::<$rows, 2>(a, lda, w, pairs, tile),)*
                        $(($rows, 2) => kernel::<$rows, 4>(a, lda, w, pairs, tile),)*
                        _ => unreachable!("a tile has 1 to {MAX_TILE_ROWS} rows and 1 or 2 panels"),
                    }
                }
            };
        }
        by_shape!(1 2 3 4 5 6)
    }

    /// The tile for `MR` rows and `V / 2` panels (`V` registers of 16 columns per row).
    ///
    /// # Safety
    /// As `run`.
    #[target_feature(enable = "avx512bf16,avx512f")]
    unsafe fn kernel<const MR: usize, const V: usize>(
        a: *const u32,
        lda: usize,
        w: [*const u32; 2],
        pairs: usize,
        tile: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for q in 0..pairs {
            let mut ws = [_mm512_setzero_si512(); V];
            for (v, wv) in ws.iter_mut().enumerate() {
                // SAFETY: pair q < pairs of panel v / 2 (the caller's conditions).
                *wv = unsafe { _mm512_loadu_si512(w[v / 2].add(q * PAIRED_WIDTH + (v % 2) * 16).cast()) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < MR, pair q < pairs.
                let pair = _mm512_set1_epi32(unsafe { *a.add(r * lda + q) } as i32);
                for (s, &wv) in acc.iter_mut().zip(&ws) {
                    *s = _mm512_dpbf16_ps(*s, bf16s(pair), bf16s(wv));
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &s) in acc.iter().enumerate() {
                // SAFETY: the tile holds MR * V * 16 values (caller).
                unsafe { _mm512_storeu_ps(tile.add(r * V * 16 + v * 16), s) };
            }
        }
    }

    /// The same 512 bits as 32 bf16.
    #[inline(always)]
    fn bf16s(v: __m512i) -> __m512bh {
        // SAFETY: both are 512 bits of plain data; any bits are valid bf16.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }
}

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::super::pack::PackedMatrix;
    use super::super::panels::matmul;
    use super::super::plan;
    use super::*;
    use crate::dtype::WeightDtype;

    /// Whether this run can test the tile, with the reason printed when it cannot.
    fn available() -> bool {
        let why_not = "this CPU has no AVX-512 BF16 (or NEXTTOKEN_SIMD lowers the level)";
        simd::test_common::kernel_path("avx512bf16", simd::bf16_dot(), why_not)
    }

    /// xorshift64: the same shapes and values on every run.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn value(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    fn rounded(v: f32) -> f64 {
        bf16::from_f32(v).to_f64()
    }

    #[test]
    fn products_equal_f64_products_of_bf16_activations_and_weights_on_random_shapes() {
        if !available() {
            return;
        }
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        // Odd k (a zero-padded pair), k across input blocks, n with a partial or lone last panel,
        // m from one row (decoding) to more than a row block.
        let mut shapes = vec![(1, 1, 1), (3, 2049, 40), (7, 1, 1), (300, 2049, 65), (259, 33, 31)];
        shapes.extend(
            (0..12).map(|_| (1 + random.below(300), 1 + 2 * random.below(700), 1 + random.below(200))),
        );
        for (m, k, n) in shapes {
            let ldx = k + random.below(5);
            let x: Vec<f32> = (0..m * ldx).map(|_| random.value() * 4.0).collect();
            let w: Vec<f32> = (0..k * n).map(|_| random.value()).collect();
            let packed = PackedMatrix::from_values(WeightDtype::Bf16, &w, k, n, false).unwrap();
            let mut out = vec![f32::NAN; m * n];
            matmul(&x, ldx, m, &packed, plan::tile(&packed, m), &mut out, &|_, _, _| {});
            for r in 0..m {
                for j in 0..n {
                    let terms = (0..k).map(|i| rounded(x[r * ldx + i]) * rounded(w[i * n + j]));
                    let (sum, size) = terms.fold((0f64, 0f64), |(s, a), t| (s + t, a + t.abs()));
                    // The products are exact in f32; only the f32 sums round, by a few ulp of
                    // the terms' size.
                    let got = out[r * n + j] as f64;
                    assert!(
                        (got - sum).abs() <= 1e-5 * size + 1e-30,
                        "({m},{k},{n}) [{r},{j}]: {got} vs {sum} (terms' size {size})"
                    );
                }
            }
        }
    }

    #[test]
    fn every_number_of_rows_rounds_activations_to_bf16() {
        if !available() {
            return;
        }
        // 1 + 2^-10 is between bf16's neighbours 1 and 1 + 2^-7, nearer 1: rounded, three of
        // them times 1 make 3 (unrounded, 3 + 3 * 2^-10), decoding a row as for a prompt.
        let (k, n, most) = (3, 40, 8);
        let x = vec![1.0 + 2f32.powi(-10); most * k];
        let packed = PackedMatrix::from_values(WeightDtype::Bf16, &vec![1.0; k * n], k, n, false).unwrap();
        for m in 1..=most {
            let mut out = vec![0f32; m * n];
            matmul(&x, k, m, &packed, plan::tile(&packed, m), &mut out, &|_, _, _| {});
            assert!(out.iter().all(|&v| v == 3.0), "{m} rows: {:?}, not 3", &out[..4]);
        }
    }

    #[test]
    fn packed_panels_hold_each_column_s_two_inputs_in_order() {
        if !available() {
            return;
        }
        let (k, n) = (37, 32); // odd: the last pair's second input is the block's zero padding
        let w: Vec<f32> = (0..k * n).map(|v| (v % 256) as f32).collect(); // exact in bf16
        let packed = PackedMatrix::from_values(WeightDtype::Bf16, &w, k, n, false).unwrap();
        let panel = packed.paired_panel(0, 0);
        for q in 0..k.div_ceil(PAIR) {
            for j in 0..PANEL {
                let value = |i: usize| if i < k { bf16::from_f32(w[i * n + j]).to_bits() as u32 } else { 0 };
                let expected = value(2 * q) | value(2 * q + 1) << 16;
                assert_eq!(panel[q * PAIRED_WIDTH + j], expected, "pair {q}, column {j}");
            }
        }
    }

    #[test]
    fn paired_rows_round_to_nearest_even_and_pad_an_odd_input_with_zero() {
        if !available() {
            return;
        }
        let (m, k, ldx) = (3usize, 67usize, 70);
        let mut random = Random(7);
        let mut x: Vec<f32> = (0..m * ldx).map(|_| random.value() * 100.0).collect();
        // Ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to the even 1; 1 + 3 * 2^-8
        // goes up to the even 1 + 2^-6.
        x[0] = 1.0 + 2f32.powi(-8);
        x[1] = 1.0 + 3.0 * 2f32.powi(-8);
        let pairs = k.div_ceil(PAIR);
        let mut out = vec![u32::MAX; m * pairs];
        pair_rows(&x, ldx, m, k, &mut out);
        assert_eq!(out[0], 0x3F80 | 0x3F82 << 16);
        for r in 0..m {
            for q in 0..pairs {
                let value =
                    |i: usize| if i < k { bf16::from_f32(x[r * ldx + i]).to_bits() as u32 } else { 0 };
                assert_eq!(out[r * pairs + q], value(2 * q) | value(2 * q + 1) << 16, "row {r}, pair {q}");
            }
        }
    }
}

/// The products' speed per second of CPU time on one thread (Linux), which a busy machine
/// slows less than wall time: `cargo test --release -p nexttoken --lib speed -- --ignored
/// --nocapture`. On the 2-vCPU AMD EPYC (Zen 4), two runs: fp32 102-108 GFLOP/s, bf16 179-202
/// (the dot product's 2x on one core is 1.8x here).
#[cfg(test)]
mod speed {
    use super::super::layout::Order;
    use super::super::pack::PackedMatrix;
    use super::super::panels::matmul;
    use super::super::plan;
    use crate::dtype::WeightDtype;

    /// Seconds of CPU time this thread has used (user + system), to 10 ms.
    fn thread_cpu() -> f64 {
        const TICKS_PER_SECOND: f64 = 100.0;
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command's closing parenthesis: state is 0, utime 11, stime 12.
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / TICKS_PER_SECOND
    }

    #[test]
    #[ignore = "a measurement, not a check"]
    fn prompt_products_per_cpu_second() {
        const SECONDS: f64 = 3.0;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        // The 124M shape's MLP up and down projections and its attention input, for 512 tokens.
        for (m, k, n) in [(512, 768, 3072), (512, 3072, 768), (512, 768, 2304)] {
            let x: Vec<f32> = (0..m * k).map(|v| ((v * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let w: Vec<f32> = (0..k * n).map(|v| ((v * 53 % 97) as f32 - 48.0) / 48.0).collect();
            for dtype in [WeightDtype::F32, WeightDtype::Bf16] {
                let packed = PackedMatrix::from_values(dtype, &w, k, n, false).unwrap();
                let mut out = vec![0f32; m * n];
                let (cpu, reps) = pool.install(|| {
                    matmul(&x, k, m, &packed, plan::tile(&packed, m), &mut out, &|_, _, _| {}); // warm-up
                    let start = thread_cpu();
                    let mut reps = 0;
                    while thread_cpu() - start < SECONDS {
                        matmul(&x, k, m, &packed, plan::tile(&packed, m), &mut out, &|_, _, _| {});
                        reps += 1;
                    }
                    (thread_cpu() - start, reps)
                });
                let gflops = 2.0 * (m * k * n) as f64 * reps as f64 / cpu / 1e9;
                eprintln!("({m}, {k}) @ ({k}, {n}) {dtype}: {gflops:.1} GFLOP/s per CPU second");
            }
        }
    }

    /// Decoding's products on bf16 weights, widened input by input (`half_avx512`, what CPUs
    /// without AVX-512 BF16 run) against the dot product on panels in pairs (this tile), in
    /// alternating rounds: `cargo test --release -p nexttoken --lib decoding_speed -- --ignored
    /// --nocapture`. Eight layers of the 124M shape (94 MB in bf16), more than the L3 cache
    /// holds, so that every step streams its weights from memory as a model's decoding does.
    /// On the 2-vCPU AMD EPYC (Zen 4), eight runs, ms per step: one row 4.8-5.8 widened,
    /// 4.8-6.3 paired (paired 3% slower in 6 of 8: memory-bound either way); four rows
    /// 5.9-7.4 widened, 4.8-7.4 paired (paired 15-20% faster in 6 of 8). With the weights in
    /// L2 (not this test's shapes), paired is 1.3x as fast on one row and 1.7x on four.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn decoding_speed_widened_and_paired() {
        const LAYERS: usize = 8;
        const ROUNDS: usize = 7;
        const SECONDS_PER_ROUND: f64 = 0.5;
        if !crate::ops::simd::bf16_dot() {
            eprintln!("skipped: this CPU has no AVX-512 BF16 (or NEXTTOKEN_SIMD lowers the level)");
            return;
        }
        let shapes = [(768, 2304), (768, 768), (768, 3072), (3072, 768)];
        let layers = |order: Order| -> Vec<PackedMatrix> {
            (0..LAYERS)
                .flat_map(|l| shapes.map(|(k, n)| (l, k, n)))
                .map(|(l, k, n)| {
                    let w: Vec<f32> =
                        (0..k * n).map(|v| (((v + l) * 53 % 97) as f32 - 48.0) / 480.0).collect();
                    PackedMatrix::from_values_in(WeightDtype::Bf16, order, &w, k, n)
                })
                .collect()
        };
        let orders = [("widened", layers(Order::Inputs)), ("paired", layers(Order::Pairs))];
        let bytes: usize = orders[0].1.iter().map(|w| w.k() * w.n() * 2).sum();
        for m in [1, 4] {
            let x: Vec<f32> = (0..m * 3072).map(|v| ((v * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let mut out = vec![0f32; m * 3072];
            let step = |ws: &[PackedMatrix], out: &mut [f32]| {
                for w in ws {
                    matmul(&x, w.k(), m, w, plan::tile(w, m), &mut out[..m * w.n()], &|_, _, _| {});
                }
            };
            let mut times = [Vec::new(), Vec::new()];
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
            for _ in 0..ROUNDS {
                for (times, (_, ws)) in times.iter_mut().zip(&orders) {
                    times.push(pool.install(|| {
                        step(ws, &mut out); // warm-up
                        let (start, mut steps) = (thread_cpu(), 0);
                        while thread_cpu() - start < SECONDS_PER_ROUND {
                            step(ws, &mut out);
                            steps += 1;
                        }
                        (thread_cpu() - start) / steps as f64
                    }));
                }
            }
            for (times, (name, _)) in times.iter_mut().zip(&orders) {
                times.sort_by(f64::total_cmp);
                let t = times[ROUNDS / 2];
                eprintln!("{m} row(s), {name}: {:.2} ms per step, {:.1} GB/s of weights per CPU second (median of {ROUNDS})", t * 1e3, bytes as f64 / t / 1e9);
            }
        }
    }
}
