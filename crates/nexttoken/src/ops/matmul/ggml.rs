//! llama.cpp's Q8_0 and Q4_0 blocks moved into our packed layout bit for bit (a GGUF file's
//! quantized weights, loaded in their own type): nothing is requantized.

use rayon::prelude::*;

use super::buffer::{PageBuffer, WeightBytes};
use super::format::block_bytes;
use super::layout::{q4_position, q8_offset, Blocks, Order, BLOCK, PANEL, Q8_SIGN_FLIP, SCALE_BYTES};
use super::pack::{PackError, PackedMatrix, SharedBytes, LOAD_CHUNK_BYTES};
use crate::dtype::WeightDtype;

impl PackedMatrix {
    /// Packs a (k, n) matrix of q8 or q4 from llama.cpp's Q8_0 or Q4_0 blocks of its (n, k)
    /// rows (a ggml weight, or the token embeddings), bit for bit: block b of row j is our block
    /// (panel j / PANEL, b)'s column j % PANEL, its scale and quants moved, nothing requantized.
    /// `read(rows, bytes)` fills `bytes` with stored rows `rows`, each `k / BLOCK` blocks of 34
    /// (Q8_0) or 18 (Q4_0) bytes. `k` must be a whole number of blocks (ggml's own rule).
    pub fn from_ggml_blocks<E: Send>(
        dtype: WeightDtype,
        k: usize,
        n: usize,
        read: impl Fn(std::ops::Range<usize>, &mut Vec<u8>) -> Result<(), E> + Sync,
    ) -> Result<Self, PackError<E>> {
        assert!(matches!(dtype, WeightDtype::Q8_0 | WeightDtype::Q4_0) && k.is_multiple_of(BLOCK));
        // ggml's block: an f16 scale, then 32 int8 (Q8_0) or 16 bytes of nibble pairs (Q4_0).
        let quant_bytes = if dtype == WeightDtype::Q8_0 { BLOCK } else { BLOCK / 2 };
        let ggml_block = 2 + quant_bytes;
        let layout = Blocks { block_bytes: block_bytes(dtype), k, n };
        let blocks = layout.per_panel();
        let mut data = PageBuffer::zeroed(layout.total_bytes()).map_err(PackError::Memory)?;
        let packed_len = data.bytes().len();
        let shared = SharedBytes(data.bytes_mut().as_mut_ptr());
        let row_bytes = blocks * ggml_block;
        let rows_per_chunk = (LOAD_CHUNK_BYTES / row_bytes.max(1) / PANEL).max(1) * PANEL;
        (0..n.div_ceil(rows_per_chunk)).into_par_iter().try_for_each_init(Vec::new, |bytes, chunk| {
            let out = shared; // the whole wrapper, not its pointer field alone
            let rows = chunk * rows_per_chunk..((chunk + 1) * rows_per_chunk).min(n);
            read(rows.clone(), bytes).map_err(PackError::Read)?;
            for p in rows.start / PANEL..rows.end.div_ceil(PANEL) {
                for b in 0..blocks {
                    let at = layout.offset(p, b);
                    let size = layout.block_bytes;
                    assert!(at + size <= packed_len);
                    // SAFETY: chunks are whole panels, so block (p, b) is written by this task
                    // alone, within the buffer (asserted), which outlives the tasks.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(at), size) };
                    let (scales, quants) = dst.split_at_mut(SCALE_BYTES);
                    for j in 0..PANEL.min(n - p * PANEL) {
                        let row = p * PANEL + j - rows.start;
                        let src = &bytes[row * row_bytes + b * ggml_block..][..ggml_block];
                        scales[j * 2..j * 2 + 2].copy_from_slice(&src[..2]);
                        // Q8_0: input i is quant i, sign flipped. Q4_0: byte i holds inputs i
                        // and i + 16, as our byte for input i of column j does.
                        for (i, &q) in src[2..].iter().enumerate() {
                            match dtype {
                                WeightDtype::Q8_0 => quants[q8_offset(i, j)] = q ^ Q8_SIGN_FLIP,
                                _ => quants[q4_position(i, j).0] = q,
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(PackedMatrix { data: WeightBytes::Own(data), dtype, order: Order::Inputs, k, n })
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::super::pack::tests::unpacked;
    use super::*;

    /// llama.cpp's `dequantize_row_q8_0` / `dequantize_row_q4_0` of one block.
    fn ggml_dequantize(dtype: WeightDtype, block: &[u8]) -> Vec<f32> {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        match dtype {
            WeightDtype::Q8_0 => block[2..].iter().map(|&q| q as i8 as f32 * d).collect(),
            _ => {
                let low = block[2..].iter().map(|&q| ((q & 15) as i32 - 8) as f32 * d);
                let high = block[2..].iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d);
                low.chain(high).collect()
            }
        }
    }

    #[test]
    fn ggml_blocks_repack_losslessly_and_dequantize_as_llama_cpp() {
        let (k, n) = (96, 45); // three blocks per row, a partial second panel
        for (dtype, block) in [(WeightDtype::Q8_0, 34), (WeightDtype::Q4_0, 18)] {
            // Arbitrary bytes with finite scales: every quant pattern, signs included.
            let mut rows: Vec<u8> = (0..n * k / BLOCK * block).map(|i| (i * 73 % 251) as u8).collect();
            for (index, chunk) in rows.chunks_exact_mut(block).enumerate() {
                let scale = f16::from_f32((index % 7) as f32 * 0.01 - 0.03);
                chunk[..2].copy_from_slice(&scale.to_le_bytes());
            }
            let row_bytes = k / BLOCK * block;
            let read = |r: std::ops::Range<usize>, bytes: &mut Vec<u8>| -> Result<(), ()> {
                bytes.clear();
                bytes.extend_from_slice(&rows[r.start * row_bytes..r.end * row_bytes]);
                Ok(())
            };
            let packed = PackedMatrix::from_ggml_blocks(dtype, k, n, read).unwrap();
            let got = unpacked(&packed);
            for j in 0..n {
                for b in 0..k / BLOCK {
                    let src = &rows[j * row_bytes + b * block..][..block];
                    for (i, e) in ggml_dequantize(dtype, src).iter().enumerate() {
                        assert_eq!(
                            got[(b * BLOCK + i) * n + j].to_bits(),
                            e.to_bits(),
                            "{dtype} row {j} input {i}"
                        );
                    }
                }
            }
            // Column j is row j of the stored matrix: the embedding lookup of a tied head.
            let row3: Vec<f32> = (0..k / BLOCK)
                .flat_map(|b| ggml_dequantize(dtype, &rows[3 * row_bytes + b * block..][..block]))
                .collect();
            assert_eq!(packed.column(3), row3);
        }
    }
}
