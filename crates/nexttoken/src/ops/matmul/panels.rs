//! The panel driver: `x @ W` for a packed `W`, one loop for every number of rows, from a decoded
//! token to a 1024-token prompt, and for every dtype, around the register tile the plan chose
//! (`plan::Tile`, one file per dtype and instruction set).
//!
//! A tile keeps up to 6 rows by two panels (64 columns) of sums in registers while it walks the
//! inputs. One row streams the weights at memory speed (decoding); sixteen rows still read them
//! once; hundreds of rows (a prompt) are compute-bound at the FMA units' pace. Threads take
//! disjoint ranges of panels, so each streams its own part of the weights. Weights held in another
//! dtype are decoded to f32 (`Tile::Decoded`), a pair of panels and up to `INPUT_BLOCK` inputs at
//! a time (256 KB, in L2), once for every row of a row block: the multiply-adds stay f32, and the
//! conversion costs once per weight read, not once per row. bf16 panels packed in pairs
//! (`Tile::Bf16Dot`) are read as they are, with the activations rounded to bf16 once per
//! product; q8 and q4 panels (`Tile::Int8`) likewise, with the activations quantized to int8 once
//! per call (`int8::QuantizedRows`). Every row is summed the same way (pair by pair within each
//! `INPUT_BLOCK`, the blocks added in order) whichever tile it is in, so a row's numbers are the
//! same bits alone and among any number of rows; the AVX2 f32 tile gives the AVX-512 one's bits.

use std::cell::RefCell;

use rayon::prelude::*;

use super::bf16_avx512;
use super::f32_portable;
use super::format::block_bytes;
#[cfg(target_arch = "x86_64")]
use super::format::{Q4, Q8};
#[cfg(target_arch = "x86_64")]
use super::int8::{self, QuantizedRows};
use super::layout::{BLOCK, MAX_TILE_ROWS, PAIR, PANEL, TILE_PANELS};
use super::pack::PackedMatrix;
use super::plan::Tile;
#[cfg(target_arch = "x86_64")]
use super::{f32_avx2, f32_avx512, half_avx512, int8_avx2, int8_avx512};
use crate::dtype::WeightDtype;
use crate::ops::simd::{self, Int8Dot, Level};
use crate::ops::SharedOut;

/// Rows per block, about 256: the block's inputs (up to 1 MB per `INPUT_BLOCK`) stay in L2 while
/// each pair of panels streams past once, so a prompt of up to 256 tokens reads every weight from
/// memory once. (Blocks of 60 rows made 128-token prompts 8% slower, 512-token ones 2%.)
const ROW_BLOCK: usize = 43 * MAX_TILE_ROWS;

/// Inputs per pass over a block (a multiple of the packed blocks' 32 inputs).
const INPUT_BLOCK: usize = 1024;

/// Rows of activations rounded to bf16 per task: a few hundred KB, enough to be worth a task
/// (fewer rows, decoding, are rounded on the calling thread).
const ROWS_PER_PAIRING: usize = 32;

/// Panel ranges per thread: enough to even out threads that are slowed down, few enough that
/// each range is a long sequential read.
const TASKS_PER_THREAD: usize = 4;

thread_local! {
    /// A pair of panels decoded to f32 (`INPUT_BLOCK` inputs each, `Tile::Decoded`), reused by
    /// every task on this thread.
    static DECODED: RefCell<Vec<f32>> = RefCell::new(vec![0f32; TILE_PANELS * INPUT_BLOCK * PANEL]);
}

/// The tile the plan chose, with the activations prepared once for all tasks where it reads them
/// in another form.
enum Path {
    F32(Level),
    Widened,
    Decoded(Level),
    /// The activations as bf16 pairs (row r at `r * k.div_ceil(PAIR)`).
    Paired(Vec<u32>),
    /// The activations quantized to int8.
    Quantized(Int8Dot, QuantizedRows),
}

impl Path {
    fn new(tile: Tile, x: &[f32], x_row_stride: usize, m: usize, k: usize) -> Self {
        match tile {
            Tile::F32(level) => Path::F32(level),
            Tile::Widened => Path::Widened,
            Tile::Decoded(level) => Path::Decoded(level),
            Tile::Bf16Dot => Path::Paired(paired_rows(x, x_row_stride, m, k)),
            Tile::Int8(dot) => Path::Quantized(dot, QuantizedRows::new(x, x_row_stride, m, k)),
        }
    }
}

/// `m` rows of `x` (`ldx` apart) rounded to bf16 pairs (`bf16_avx512::pair_rows`), row r at
/// `r * k.div_ceil(PAIR)`: on this thread for a few rows (decoding waits for them), else in
/// tasks of `ROWS_PER_PAIRING` rows. Each row is rounded alone, so the split changes nothing.
fn paired_rows(x: &[f32], ldx: usize, m: usize, k: usize) -> Vec<u32> {
    let pairs = k.div_ceil(PAIR);
    let mut paired = vec![0u32; m * pairs];
    if pairs == 0 {
        return paired;
    }
    if m <= ROWS_PER_PAIRING {
        bf16_avx512::pair_rows(x, ldx, m, k, &mut paired);
        return paired;
    }
    paired.par_chunks_mut(pairs * ROWS_PER_PAIRING).enumerate().for_each(|(chunk, out)| {
        let rows = out.len() / pairs;
        bf16_avx512::pair_rows(&x[chunk * ROWS_PER_PAIRING * ldx..], ldx, rows, k, out)
    });
    paired
}

/// `out (m, n) = x (m, k) @ w`, then `finish(row, first column, values)` on every piece of a
/// row once it is complete, with the register tile `kernel` (`plan::tile`). `x` rows are
/// `x_row_stride` apart; `out` is row-major.
pub fn matmul(
    x: &[f32],
    x_row_stride: usize,
    m: usize,
    w: &PackedMatrix,
    kernel: Tile,
    out: &mut [f32],
    finish: &(dyn Fn(usize, usize, &mut [f32]) + Sync),
) {
    let (k, n) = (w.k(), w.n());
    assert!(m == 0 || x.len() >= (m - 1) * x_row_stride + k, "x is too short");
    assert_eq!(out.len(), m * n, "out is not (m, n)");
    let panels = w.panels();
    // Tasks take whole tile widths of panels, so that only the very last panel can be alone.
    let widths = panels.div_ceil(TILE_PANELS);
    let tasks = (rayon::current_num_threads() * TASKS_PER_THREAD).min(widths).max(1);
    let out_ptr = SharedOut(out.as_mut_ptr());
    let path = Path::new(kernel, x, x_row_stride, m, k);
    (0..tasks).into_par_iter().for_each(|task| {
        let out = out_ptr;
        let (p0, p1) =
            (task * widths / tasks * TILE_PANELS, ((task + 1) * widths / tasks * TILE_PANELS).min(panels));
        let mut tile = [0f32; MAX_TILE_ROWS * TILE_PANELS * PANEL];
        DECODED.with_borrow_mut(|decoded| {
            for rows in blocks(m, ROW_BLOCK) {
                for inputs in blocks(k, INPUT_BLOCK) {
                    let first = inputs.start == 0;
                    for pair in blocks(p1 - p0, TILE_PANELS) {
                        let (pa, pb) = (p0 + pair.start, p0 + pair.end - 1); // the same panel if alone
                        let source = source(&path, w, [pa, pb], inputs.clone(), decoded);
                        let (col, cols) = (pa * PANEL, (pb * PANEL + PANEL).min(n) - pa * PANEL);
                        let width = pair.len() * PANEL;
                        for tile_rows in tiles(rows.clone()) {
                            let x = &x[tile_rows.start * x_row_stride + inputs.start..];
                            match source {
                                Source::F32(level, weights) => run_tile(
                                    level,
                                    tile_rows.len(),
                                    x,
                                    x_row_stride,
                                    weights,
                                    pair.len(),
                                    &mut tile,
                                ),
                                Source::Paired(weights, pairs) => {
                                    let rows =
                                        &pairs[tile_rows.start * k.div_ceil(PAIR) + inputs.start / PAIR..];
                                    let (lda, kc) = (k.div_ceil(PAIR), inputs.len().div_ceil(PAIR));
                                    bf16_avx512::run(
                                        tile_rows.len(),
                                        rows,
                                        lda,
                                        weights,
                                        pair.len(),
                                        kc,
                                        &mut tile,
                                    )
                                }
                                Source::Widened(bytes) => run_widened(
                                    w.dtype(),
                                    tile_rows.len(),
                                    x,
                                    x_row_stride,
                                    bytes,
                                    pair.len(),
                                    inputs.len(),
                                    &mut tile,
                                ),
                                Source::Int8(dot, quantized, weights) => run_int8(
                                    dot,
                                    w.dtype(),
                                    quantized,
                                    tile_rows.clone(),
                                    inputs.clone(),
                                    weights,
                                    pair.len(),
                                    &mut tile,
                                    width,
                                ),
                            }
                            for (i, r) in tile_rows.enumerate() {
                                // SAFETY: this task alone writes the columns of panels p0..p1.
                                let dst =
                                    unsafe { std::slice::from_raw_parts_mut(out.0.add(r * n + col), cols) };
                                let sums = &tile[i * width..i * width + cols];
                                match first {
                                    true => dst.copy_from_slice(sums),
                                    false => dst.iter_mut().zip(sums).for_each(|(d, s)| *d += s),
                                }
                            }
                        }
                    }
                }
                // The block's rows are complete in this task's columns, and still in cache.
                let (col, cols) = (p0 * PANEL, (p1 * PANEL).min(n) - p0 * PANEL);
                for r in rows {
                    // SAFETY: as above.
                    finish(r, col, unsafe { std::slice::from_raw_parts_mut(out.0.add(r * n + col), cols) });
                }
            }
        });
    });
}

/// Panels `pa` and `pb` (the same if alone), inputs `inputs`, of `w` as `path` reads them:
/// decoded into `decoded`, or `w`'s own.
fn source<'a>(
    path: &'a Path,
    w: &'a PackedMatrix,
    [pa, pb]: [usize; 2],
    inputs: std::ops::Range<usize>,
    decoded: &'a mut [f32],
) -> Source<'a> {
    match path {
        &Path::F32(level) => Source::F32(level, [w.f32_panel(pa, inputs.clone()), w.f32_panel(pb, inputs)]),
        Path::Widened => Source::Widened([w.panel_bytes(pa, inputs.start), w.panel_bytes(pb, inputs.start)]),
        &Path::Decoded(level) => {
            let (a, b) = decoded.split_at_mut(INPUT_BLOCK * PANEL);
            let len = inputs.len() * PANEL;
            w.decode_panel(pa, inputs.clone(), &mut a[..len]);
            if pb != pa {
                w.decode_panel(pb, inputs, &mut b[..len]);
            }
            Source::F32(level, [&a[..len], if pb != pa { &b[..len] } else { &a[..len] }])
        }
        Path::Paired(x) => {
            let len = inputs.len().div_ceil(PAIR) * PANEL;
            let panel = |p: usize| &w.paired_panel(p, inputs.start)[..len];
            Source::Paired([panel(pa), panel(pb)], x)
        }
        Path::Quantized(dot, rows) => {
            Source::Int8(*dot, rows, [w.panel_bytes(pa, inputs.start), w.panel_bytes(pb, inputs.start)])
        }
    }
}

/// Where a tile's weights come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// f32 panels, an fp32 matrix's own or another dtype's decoded, for the tile at this level.
    F32(Level, [&'a [f32]; 2]),
    /// The packed bytes of a 16-bit dtype, from the first block of the inputs on.
    Widened([&'a [u8]; 2]),
    /// bf16 panels packed as input pairs, and all rows of the activations as pairs
    /// (`bf16_avx512`).
    Paired([&'a [u32]; 2], &'a [u32]),
    /// Packed q8 or q4 panels, from the first block of the inputs on, for this integer dot
    /// product with the quantized rows.
    Int8(Int8Dot, &'a QuantizedRows, [&'a [u8]; 2]),
}

/// Never built off x86_64: `simd::int8_dot` is `None` there.
#[cfg(not(target_arch = "x86_64"))]
pub enum QuantizedRows {}

#[cfg(not(target_arch = "x86_64"))]
impl QuantizedRows {
    fn new(_: &[f32], _: usize, _: usize, _: usize) -> Self {
        unreachable!("integer dot products are x86_64 only")
    }
}

/// The integer tile `dot` for rows `rows` of `x` over `inputs` of `panels` (1 or 2) packed
/// panels in `dtype` (q8 or q4, from the inputs' first block); `tile` receives the sums, `ldt`
/// per row. `dot` is the CPU's (`simd::int8_dot`) or AVX2's, which every such CPU also runs.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // the tile's shape and operands
pub(super) fn run_int8(
    dot: Int8Dot,
    dtype: WeightDtype,
    x: &QuantizedRows,
    rows: std::ops::Range<usize>,
    inputs: std::ops::Range<usize>,
    w: [&[u8]; 2],
    panels: usize,
    tile: &mut [f32],
    ldt: usize,
) {
    let best = simd::int8_dot().expect("products take integer dot products only where the CPU has one");
    assert!(dot == best || dot == Int8Dot::Avx2, "{dot:?} is not in force");
    let blocks = inputs.len().div_ceil(BLOCK);
    assert!(
        matches!(dtype, WeightDtype::Q8_0 | WeightDtype::Q4_0),
        "{dtype} is not read by integer products"
    );
    assert!(w[..panels].iter().all(|w| w.len() >= blocks * block_bytes(dtype)));
    assert!((1..=MAX_TILE_ROWS).contains(&rows.len()));
    assert!((1..=TILE_PANELS).contains(&panels) && ldt >= panels * PANEL && tile.len() >= rows.len() * ldt);
    let (operands, mr) = (int8::Operands::new(x, rows.clone(), inputs.start, blocks), rows.len());
    for (p, w) in w.iter().take(panels).enumerate() {
        let (out, w) = (tile[p * PANEL..].as_mut_ptr(), w.as_ptr());
        // SAFETY: the CPU has AVX-512 F, BW and VNNI, or AVX2, FMA and F16C, as `dot` says
        // (`simd::int8_dot`, asserted above); the rows and blocks are within the operands
        // (`Operands::new` asserts it), the panel holds the blocks in the format's dtype, and the
        // tile holds the rows, `ldt` apart (asserted above).
        unsafe {
            match (dot, dtype == WeightDtype::Q4_0) {
                (Int8Dot::Avx512Vnni, false) => int8_avx512::run::<Q8>(&operands, mr, w, out, ldt),
                (Int8Dot::Avx512Vnni, true) => int8_avx512::run::<Q4>(&operands, mr, w, out, ldt),
                (Int8Dot::Avx2, false) => int8_avx2::run::<Q8>(&operands, mr, w, out, ldt),
                (Int8Dot::Avx2, true) => int8_avx2::run::<Q4>(&operands, mr, w, out, ldt),
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(super) fn run_int8(
    _: Int8Dot,
    _: WeightDtype,
    _: &QuantizedRows,
    _: std::ops::Range<usize>,
    _: std::ops::Range<usize>,
    _: [&[u8]; 2],
    _: usize,
    _: &mut [f32],
    _: usize,
) {
    unreachable!("integer dot products are x86_64 only")
}

/// `0..len` in consecutive ranges of at most `size`.
fn blocks(len: usize, size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len).step_by(size).map(move |start| start..len.min(start + size))
}

/// `rows` in register tiles of balanced sizes (16 rows: 6 + 5 + 5, not 6 + 6 + 4).
fn tiles(rows: std::ops::Range<usize>) -> impl Iterator<Item = std::ops::Range<usize>> {
    let count = rows.len().div_ceil(MAX_TILE_ROWS);
    (0..count).map(move |t| rows.start + t * rows.len() / count..rows.start + (t + 1) * rows.len() / count)
}

/// Runs the f32 tile of `level` for `mr` rows and `panels` (1 or 2) panels of `w`, over all
/// inputs of `w[0]`; `tile` receives their sums, `panels * PANEL` per row.
fn run_tile(level: Level, mr: usize, x: &[f32], ldx: usize, w: [&[f32]; 2], panels: usize, tile: &mut [f32]) {
    let kc = w[0].len() / PANEL;
    assert!(level <= simd::level(), "the {level:?} tile is not in force");
    assert!((1..=MAX_TILE_ROWS).contains(&mr) && (1..=TILE_PANELS).contains(&panels));
    assert!(w[1].len() == w[0].len() && x.len() >= (mr - 1) * ldx + kc && tile.len() >= mr * panels * PANEL);
    let (wp, xp, tp) = ([w[0].as_ptr(), w[1].as_ptr()], x.as_ptr(), tile.as_mut_ptr());
    match level {
        Level::Portable => f32_portable::run(mr, x, ldx, w, panels, tile),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (`simd::level`, asserted above); the bounds are
        // asserted above.
        Level::Avx2 => unsafe { f32_avx2::run(mr, xp, ldx, wp, panels, kc, tp) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512 (as above), and the kernel reads `mr` rows of `kc` inputs
        // of x, `kc` inputs of each panel and writes `mr * panels * PANEL` sums, all within
        // bounds (asserted above).
        Level::Avx512 => unsafe { f32_avx512::run(mr, xp, ldx, wp, panels, kc, tp) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable level exists off x86_64"),
    }
}

/// The tile of `half_avx512` on packed bytes in `dtype` (bf16 or fp16) over `kc` inputs.
#[allow(clippy::too_many_arguments)]
fn run_widened(
    dtype: WeightDtype,
    mr: usize,
    x: &[f32],
    ldx: usize,
    w: [&[u8]; 2],
    panels: usize,
    kc: usize,
    tile: &mut [f32],
) {
    assert!(simd::level() >= Level::Avx512 && matches!(dtype, WeightDtype::Bf16 | WeightDtype::F16));
    assert!((1..=MAX_TILE_ROWS).contains(&mr) && (1..=TILE_PANELS).contains(&panels));
    let needed = kc.div_ceil(BLOCK) * block_bytes(dtype);
    assert!(
        w.iter().all(|w| w.len() >= needed)
            && x.len() >= (mr - 1) * ldx + kc
            && tile.len() >= mr * panels * PANEL
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 is there, and x, w and tile hold what the tile reads and writes (asserted).
    unsafe {
        half_avx512::run(
            dtype,
            mr,
            x.as_ptr(),
            ldx,
            [w[0].as_ptr(), w[1].as_ptr()],
            panels,
            kc,
            tile.as_mut_ptr(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan;
    use super::*;

    /// `x` as the product multiplies it: q8 and q4 products on a CPU with an integer dot product
    /// quantize it to int8 per block of 32 inputs, for any number of rows (`int8`, whose own
    /// test checks that product to float rounding), bf16 products of any rows on a CPU with
    /// AVX-512 BF16 round it to bf16 (`bf16_avx512`).
    fn as_multiplied(dtype: WeightDtype, x: &[f32], ldx: usize, m: usize, k: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if matches!(dtype, WeightDtype::Q8_0 | WeightDtype::Q4_0) && simd::int8_dot().is_some() {
            let rows = QuantizedRows::new(x, ldx, m, k);
            let value = |r: usize, i: usize| match i < k {
                true => rows.value(r, i).0 as f32 * rows.value(r, i).1,
                false => 0.0,
            };
            return (0..m * ldx).map(|v| value(v / ldx, v % ldx)).collect();
        }
        if dtype == WeightDtype::Bf16 && simd::bf16_dot() {
            return x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
        }
        x.to_vec()
    }

    #[test]
    fn equals_a_plain_product_for_any_rows_a_partial_panel_and_every_dtype() {
        // Shapes that take every path: one row, several input blocks (k > 1024), balanced tiles,
        // several row blocks (m > 258), a partial last panel, a lone last panel.
        for (m, k, n) in
            [(1, 7, 37), (3, 1500, 70), (16, 64, 96), (130, 40, 33), (20, 2100, 5), (300, 24, 100)]
        {
            let x: Vec<f32> = (0..m * (k + 3)).map(|v| ((v * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let w: Vec<f32> = (0..k * n).map(|v| ((v * 53 % 97) as f32 - 48.0) / 48.0).collect();
            for dtype in WeightDtype::ALL {
                let packed = PackedMatrix::from_values(dtype, &w, k, n, false).unwrap();
                // bf16 with AVX-512 BF16 rounds the activations to bf16 too (`bf16_avx512`), q8
                // and q4 products with integer dot products quantize them to int8 (`int8`).
                let multiplied = as_multiplied(dtype, &x, k + 3, m, k);
                let mut out = vec![f32::NAN; m * n];
                matmul(&x, k + 3, m, &packed, plan::tile(&packed, m), &mut out, &|row, col, values| {
                    values.iter_mut().enumerate().for_each(|(j, v)| *v += (row * 1000 + col + j) as f32)
                });
                for r in 0..m {
                    for j in 0..n {
                        let sum = packed.reference_dot(&multiplied[r * (k + 3)..][..k], j);
                        let expected = sum + (r * 1000 + j) as f32;
                        let got = out[r * n + j];
                        assert!(
                            (got - expected).abs() <= 1e-3 * expected.abs().max(1.0),
                            "{dtype} ({m},{k},{n}) [{r},{j}]: {got} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn each_row_is_the_same_bits_alone_and_among_any_number_of_rows() {
        // Rows in every position of a tile, of balanced tiles and of row blocks; k over several
        // input blocks (and odd: a zero-padded pair); partial and lone last panels.
        let row_counts = [1, 5, 7, 16, 300];
        for (k, n) in [(1500, 70), (2051, 33)] {
            let ldx = k + 3;
            let most = row_counts[row_counts.len() - 1];
            let x: Vec<f32> = (0..most * ldx).map(|v| ((v * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let w: Vec<f32> = (0..k * n).map(|v| ((v * 53 % 97) as f32 - 48.0) / 48.0).collect();
            for dtype in WeightDtype::ALL {
                let packed = PackedMatrix::from_values(dtype, &w, k, n, false).unwrap();
                let product = |rows: &[f32], m: usize| {
                    let mut out = vec![f32::NAN; m * n];
                    matmul(rows, ldx, m, &packed, plan::tile(&packed, m), &mut out, &|_, _, _| {});
                    out
                };
                let alone: Vec<Vec<f32>> =
                    (0..most).map(|r| product(&x[r * ldx..(r + 1) * ldx], 1)).collect();
                for m in row_counts {
                    let together = product(&x, m);
                    for (r, alone) in alone.iter().take(m).enumerate() {
                        let row = &together[r * n..(r + 1) * n];
                        let same = row.iter().zip(alone).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "{dtype} ({k},{n}), row {r} of {m}: {:?} vs {:?}",
                            &row[..3],
                            &alone[..3]
                        );
                    }
                }
            }
        }
    }

    /// The f32 kernels' sums as one chain of fused multiply-adds per column, in input order.
    fn fused_chain(mr: usize, x: &[f32], ldx: usize, w: [&[f32]; 2], panels: usize, kc: usize) -> Vec<f32> {
        let width = panels * PANEL;
        let mut sums = vec![0f32; mr * width];
        for (r, row) in sums.chunks_exact_mut(width).enumerate() {
            for (c, sum) in row.iter_mut().enumerate() {
                let panel = w[c / PANEL];
                *sum = (0..kc).fold(0.0, |acc, i| x[r * ldx + i].mul_add(panel[i * PANEL + c % PANEL], acc));
            }
        }
        sums
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_f32_tiles_sum_each_column_as_one_chain_of_fused_multiply_adds() {
        // The same bits as the chain, so a row's numbers depend neither on the tile's shape (the
        // rows beside it) nor on the instruction set: AVX2 and AVX-512 agree bit for bit.
        let (kc, ldx) = (45, 50);
        let x: Vec<f32> = (0..MAX_TILE_ROWS * ldx).map(|v| ((v * 31 % 89) as f32 - 44.0) / 44.0).collect();
        let w: Vec<Vec<f32>> = (0..2)
            .map(|p| (0..kc * PANEL).map(|v| (((v + p) * 17 % 83) as f32 - 41.0) / 41.0).collect())
            .collect();
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx2 = simd::test_common::kernel_path("avx2", avx2, "this CPU has no AVX2 and FMA");
        let avx512 = is_x86_feature_detected!("avx512f");
        let avx512 = simd::test_common::kernel_path("avx512f", avx512, "this CPU has no AVX-512");
        for mr in 1..=MAX_TILE_ROWS {
            for panels in 1..=TILE_PANELS {
                let expected = fused_chain(mr, &x, ldx, [&w[0], &w[1]], panels, kc);
                let (wp, xp) = ([w[0].as_ptr(), w[1].as_ptr()], x.as_ptr());
                let same_bits = |kernel: &str, got: &[f32]| {
                    let same = got.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{kernel}, {mr} rows, {panels} panels: {:?} vs {:?}",
                        &got[..4],
                        &expected[..4]
                    );
                };
                let mut got = vec![f32::NAN; mr * panels * PANEL];
                if avx2 {
                    // SAFETY: the CPU has AVX2 and FMA; x holds MR rows of kc inputs ldx apart,
                    // each panel kc * PANEL values, and the tile mr * panels * PANEL.
                    unsafe { f32_avx2::run(mr, xp, ldx, wp, panels, kc, got.as_mut_ptr()) };
                    same_bits("avx2", &got);
                }
                if avx512 {
                    got.fill(f32::NAN);
                    // SAFETY: as above, with AVX-512F.
                    unsafe { f32_avx512::run(mr, xp, ldx, wp, panels, kc, got.as_mut_ptr()) };
                    same_bits("avx512", &got);
                }
            }
        }
    }

    #[test]
    fn the_portable_tile_equals_the_avx512_kernel() {
        let why_not =
            "this CPU (or NEXTTOKEN_SIMD) has no AVX-512; the product test covers the portable tile";
        if !simd::test_common::kernel_path("avx512f", simd::level() >= Level::Avx512, why_not) {
            return;
        }
        let (kc, ldx) = (45, 50);
        let x: Vec<f32> = (0..MAX_TILE_ROWS * ldx).map(|v| ((v * 31 % 89) as f32 - 44.0) / 44.0).collect();
        let w: Vec<Vec<f32>> = (0..2)
            .map(|p| (0..kc * PANEL).map(|v| (((v + p) * 17 % 83) as f32 - 41.0) / 41.0).collect())
            .collect();
        for mr in 1..=MAX_TILE_ROWS {
            for panels in 1..=TILE_PANELS {
                let (mut fast, mut plain) =
                    (vec![0f32; mr * panels * PANEL], vec![0f32; mr * panels * PANEL]);
                run_tile(Level::Avx512, mr, &x, ldx, [&w[0], &w[1]], panels, &mut fast);
                f32_portable::run(mr, &x, ldx, [&w[0], &w[1]], panels, &mut plain);
                for (f, p) in fast.iter().zip(&plain) {
                    assert!(
                        (f - p).abs() <= 1e-4 * p.abs().max(1.0),
                        "{mr} rows, {panels} panels: {f} vs {p}"
                    );
                }
            }
        }
    }
}
