//! Loading checkpoints: key variants accepted, bad files refused with the right code.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device};
use nexttoken::weights::Weights;
use safetensors::{serialize, Dtype, View};

struct Raw(Dtype, Vec<usize>, Vec<u8>);

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.0
    }
    fn shape(&self) -> &[usize] {
        &self.1
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.2).into()
    }
    fn data_len(&self) -> usize {
        self.2.len()
    }
}

fn f32_tensor(shape: &[usize], value: f32) -> Raw {
    let n: usize = shape.iter().product();
    Raw(Dtype::F32, shape.to_vec(), value.to_le_bytes().repeat(n))
}

fn write(name: &str, tensors: &[(&str, Raw)]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("nexttoken-{}-{name}.safetensors", std::process::id()));
    let map: HashMap<String, &Raw> = tensors.iter().map(|(k, v)| (k.to_string(), v)).collect();
    std::fs::write(&path, serialize(map, None).unwrap()).unwrap();
    path
}

#[test]
fn strips_the_transformer_prefix_and_ignores_buffers() {
    let path = write(
        "prefix",
        &[
            ("transformer.wte.weight", f32_tensor(&[4, 2], 1.0)),
            ("h.0.attn.bias", f32_tensor(&[1, 1, 2, 2], 0.0)),
            ("h.0.attn.masked_bias", f32_tensor(&[], 0.0)),
            ("lm_head.weight", f32_tensor(&[4, 2], 1.0)),
        ],
    );
    let mut weights = Weights::load(&path, &Device::Cpu).unwrap();
    let wte = weights.take("wte.weight", &[4, 2]).unwrap();
    assert_eq!(wte.dtype(), DType::F32);
    assert_eq!(weights.take("h.0.attn.bias", &[1, 1, 2, 2]).unwrap_err().code(), "ERR_MODEL_INVALID");
}

#[test]
fn widens_f16_to_f32() {
    let half = Raw(Dtype::F16, vec![2], [0x3c00u16, 0xc000].iter().flat_map(|h| h.to_le_bytes()).collect());
    let path = write("f16", &[("wpe.weight", half)]);
    let wpe = Weights::load(&path, &Device::Cpu).unwrap().take("wpe.weight", &[2]).unwrap();
    assert_eq!(wpe.to_vec1::<f32>().unwrap(), vec![1.0, -2.0]);
}

#[test]
fn refuses_wrong_shapes_integer_tensors_and_truncated_files() {
    let path = write("shape", &[("wte.weight", f32_tensor(&[4, 2], 1.0))]);
    let err = Weights::load(&path, &Device::Cpu).unwrap().take("wte.weight", &[2, 4]).unwrap_err();
    assert_eq!(err.code(), "ERR_MODEL_INVALID");
    assert!(err.to_string().contains("wte.weight"), "{err}");

    let ints = write("ints", &[("wte.weight", Raw(Dtype::I64, vec![1], vec![0; 8]))]);
    assert_eq!(Weights::load(&ints, &Device::Cpu).err().unwrap().code(), "ERR_MODEL_INVALID");

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert_eq!(Weights::load(&path, &Device::Cpu).err().unwrap().code(), "ERR_MODEL_INVALID");

    let missing = std::env::temp_dir().join("nexttoken-does-not-exist.safetensors");
    assert_eq!(Weights::load(&missing, &Device::Cpu).err().unwrap().code(), "ERR_MODEL_NOT_FOUND");
}

#[test]
fn hands_out_values_straight_from_f32_and_widened_from_f16() {
    let values: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
    let f32_raw = Raw(Dtype::F32, vec![4, 2], values.iter().flat_map(|v| v.to_le_bytes()).collect());
    let half = Raw(Dtype::F16, vec![2], [0x3c00u16, 0xc000].iter().flat_map(|h| h.to_le_bytes()).collect());
    let path = write("values", &[("wte.weight", f32_raw), ("wpe.weight", half)]);
    let mut weights = Weights::load(&path, &Device::Cpu).unwrap();
    assert_eq!(weights.take_values("wte.weight", &[4, 2], |v| v.to_vec()).unwrap(), values);
    assert_eq!(weights.take_values("wpe.weight", &[2], |v| v.to_vec()).unwrap(), vec![1.0, -2.0]);
    // Taken means gone: a second take is a missing tensor.
    assert_eq!(weights.take("wte.weight", &[4, 2]).unwrap_err().code(), "ERR_MODEL_INVALID");
    let err =
        Weights::load(&path, &Device::Cpu).unwrap().take_values("wte.weight", &[8], |_| ()).unwrap_err();
    assert!(err.to_string().contains("wte.weight"), "{err}");
}
