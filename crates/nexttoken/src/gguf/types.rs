//! ggml's tensor types: the five nexttoken reads, and the names of the others so that a file
//! holding one is refused naming it (`Q6_K`), not a number.

/// A tensor type nexttoken can read from a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Bf16,
    /// Blocks of 32 values: an f16 scale, then 32 int8.
    Q8_0,
    /// Blocks of 32 values: an f16 scale, then 16 bytes of 4-bit values offset by 8 (value i in
    /// byte i's low nibble, value i + 16 in its high nibble).
    Q4_0,
}

impl GgmlType {
    /// The type ggml numbers `id` (its `enum ggml_type`), or the type's name (or number) when
    /// nexttoken does not read it.
    pub fn from_id(id: u32) -> Result<Self, String> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            8 => GgmlType::Q8_0,
            30 => GgmlType::Bf16,
            other => return Err(other_name(other)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Bf16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_0 => "Q4_0",
        }
    }

    /// Values per block (1 for the plain float types).
    pub fn block_values(self) -> usize {
        match self {
            GgmlType::Q8_0 | GgmlType::Q4_0 => 32,
            _ => 1,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::Bf16 => 2,
            GgmlType::Q8_0 => 2 + 32,
            GgmlType::Q4_0 => 2 + 16,
        }
    }

    /// Bytes of `count` values (a whole number of blocks), None on overflow.
    pub fn bytes_of(self, count: u64) -> Option<u64> {
        (count / self.block_values() as u64).checked_mul(self.block_bytes() as u64)
    }
}

/// ggml's name for a type nexttoken does not read (ggml.c's `type_traits`), for messages.
fn other_name(id: u32) -> String {
    let name = match id {
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("unknown type {id}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_types_it_does_not_read() {
        assert_eq!(GgmlType::from_id(8), Ok(GgmlType::Q8_0));
        assert_eq!(GgmlType::from_id(14), Err("Q6_K".to_string()));
        assert_eq!(GgmlType::from_id(1000), Err("unknown type 1000".to_string()));
        assert_eq!(GgmlType::Q4_0.bytes_of(64), Some(36));
    }
}
