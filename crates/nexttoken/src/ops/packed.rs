//! Weights repacked once, at load, into the layout the AVX-512 matrix kernel streams: panels of
//! `PANEL` output columns, each panel holding its columns' weights input by input, so the kernel
//! reads every weight in address order whatever the number of rows it multiplies.
//!
//! Panel `p` holds columns `p * PANEL .. (p + 1) * PANEL` (the last one zero-padded); within a
//! panel, input `i` occupies `PANEL` consecutive floats. A (in, out) Conv1D weight and the
//! transposed token embeddings (the tied output head) pack the same way; the embeddings are then
//! read back from the packed head, so the model keeps a single copy of them.

use rayon::prelude::*;

/// Output columns per panel: two 512-bit registers of f32.
pub const PANEL: usize = 32;

/// A (k, n) matrix in panels; see the module documentation.
pub struct PackedMatrix {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedMatrix {
    /// Packs `w`, row-major (k, n): element (i, j) at `w[i * n + j]`.
    pub fn from_rows(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        Self::pack(k, n, |first, cols, panel| {
            for (i, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                row[..cols].copy_from_slice(&w[i * n + first..i * n + first + cols]);
            }
        })
    }

    /// Packs the transpose of `w`, row-major (n, k): element (i, j) of the packed matrix is
    /// `w[j * k + i]` (the tied head: `x @ wte^T`).
    pub fn from_transposed(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        Self::pack(k, n, |first, cols, panel| {
            for j in 0..cols {
                let column = &w[(first + j) * k..(first + j + 1) * k];
                for (i, &value) in column.iter().enumerate() {
                    panel[i * PANEL + j] = value;
                }
            }
        })
    }

    /// Fills every panel, in parallel, with `fill(first column, columns, panel)`.
    fn pack(k: usize, n: usize, fill: impl Fn(usize, usize, &mut [f32]) + Sync) -> Self {
        let mut data = vec![0f32; n.div_ceil(PANEL) * k * PANEL];
        data.par_chunks_exact_mut(k * PANEL).enumerate().for_each(|(p, panel)| {
            fill(p * PANEL, PANEL.min(n - p * PANEL), panel);
        });
        PackedMatrix { data, k, n }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// Panel `p`, inputs `inputs`: `inputs.len() * PANEL` floats.
    pub fn panel(&self, p: usize, inputs: std::ops::Range<usize>) -> &[f32] {
        &self.data[(p * self.k + inputs.start) * PANEL..(p * self.k + inputs.end) * PANEL]
    }

    /// Column `j` (all k inputs): for the transposed embeddings, the embedding of token `j`.
    pub fn column(&self, j: usize) -> impl Iterator<Item = f32> + '_ {
        self.panel(j / PANEL, 0..self.k).iter().skip(j % PANEL).step_by(PANEL).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_rows_and_transposes_with_a_padded_last_panel() {
        let (k, n) = (3, 37);
        let w: Vec<f32> = (0..k * n).map(|v| v as f32).collect();
        let packed = PackedMatrix::from_rows(&w, k, n);
        assert_eq!(packed.panels(), 2);
        assert_eq!(packed.panel(1, 2..3)[..5], [2.0 * 37.0 + 32.0, 107.0, 108.0, 109.0, 110.0]);
        assert!(packed.panel(1, 0..3).chunks(PANEL).all(|row| row[5..].iter().all(|&v| v == 0.0)));
        // (n, k) transposed packs to the same matrix as its (k, n) transpose.
        let wt: Vec<f32> = (0..n).flat_map(|j| (0..k).map(move |i| (i * n + j) as f32)).collect();
        assert_eq!(PackedMatrix::from_transposed(&wt, k, n).data, packed.data);
        let column: Vec<f32> = packed.column(33).collect();
        assert_eq!(column, [33.0, 70.0, 107.0]);
    }
}
