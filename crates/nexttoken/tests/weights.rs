//! Loading checkpoints: key variants accepted, bad files refused with the right code.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device};
use nexttoken::load::Weights;
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
fn hands_out_f32_values_and_widens_f16_and_tells_the_stored_type() {
    let values: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
    let f32_raw = Raw(Dtype::F32, vec![4, 2], values.iter().flat_map(|v| v.to_le_bytes()).collect());
    let half = Raw(Dtype::F16, vec![2], [0x3c00u16, 0xc000].iter().flat_map(|h| h.to_le_bytes()).collect());
    let path = write("values", &[("wte.weight", f32_raw), ("wpe.weight", half)]);
    let mut weights = Weights::load(&path, &Device::Cpu).unwrap();
    assert_eq!(weights.stored_dtype("wte.weight"), nexttoken::WeightDtype::F32);
    assert_eq!(weights.stored_dtype("wpe.weight"), nexttoken::WeightDtype::F16);
    assert_eq!(
        weights.take("wte.weight", &[4, 2]).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        values
    );
    assert_eq!(weights.take("wpe.weight", &[2]).unwrap().to_vec1::<f32>().unwrap(), vec![1.0, -2.0]);
    // Taken means gone: a second take is a missing tensor.
    assert_eq!(weights.take("wte.weight", &[4, 2]).unwrap_err().code(), "ERR_MODEL_INVALID");
    let err = Weights::load(&path, &Device::Cpu).unwrap().take("wte.weight", &[8]).unwrap_err();
    assert!(err.to_string().contains("wte.weight"), "{err}");
}

#[test]
fn a_file_truncated_after_its_header_was_read_is_an_error_when_its_tensors_are() {
    // Another process shortening the file mid-load: with a mapping this was SIGBUS.
    let values: Vec<u8> = (0..64u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let path = write("shrinks", &[("wte.weight", Raw(Dtype::F32, vec![8, 8], values))]);
    let mut weights = Weights::load(&path, &Device::Cpu).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 100).unwrap();
    let err = weights.take("wte.weight", &[8, 8]).unwrap_err();
    assert_eq!(err.code(), "ERR_MODEL_INVALID");
    assert!(err.to_string().contains("could not be read"), "{err}");
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

/// A model directory with tiny-gpt2's config and tokenizer and the given extra files.
fn model_dir(name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexttoken-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "tokenizer.json", "generation_config.json"] {
        std::fs::copy(fixtures().join("tiny-gpt2").join(file), dir.join(file)).unwrap();
    }
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

fn logits_of(dir: &std::path::Path) -> Vec<f32> {
    let model = nexttoken::Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap();
    model.logits(&[464, 3290, 318, 257], nexttoken::Positions::All).unwrap()
}

#[test]
fn sharded_safetensors_load_as_the_single_file() {
    let fixture = std::fs::read(fixtures().join("tiny-gpt2/model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&fixture).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let shard = |names: &[String]| {
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            names.iter().map(|n| (n.clone(), file.tensor(n).unwrap())).collect();
        serialize(views, None).unwrap()
    };
    let weight_map: HashMap<&String, &str> = first
        .iter()
        .map(|n| (n, "model-00001-of-00002.safetensors"))
        .chain(second.iter().map(|n| (n, "model-00002-of-00002.safetensors")))
        .collect();
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": weight_map });
    let dir = model_dir(
        "sharded",
        &[
            ("model-00001-of-00002.safetensors", shard(first)),
            ("model-00002-of-00002.safetensors", shard(second)),
            ("model.safetensors.index.json", index.to_string().into_bytes()),
        ],
    );
    assert_eq!(logits_of(&dir), logits_of(&fixtures().join("tiny-gpt2")));
    // A shard the index names but the directory lacks.
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let err = nexttoken::Pretrained::load(dir.to_str().unwrap(), "cpu").err().unwrap();
    assert_eq!(err.code(), "ERR_MODEL_NOT_FOUND", "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pytorch_model_bin_loads_as_the_safetensors_it_was_saved_from() {
    let bin = std::fs::read(fixtures().join("pytorch/pytorch_model.bin")).unwrap();
    let dir = model_dir("pytorch", &[("pytorch_model.bin", bin)]);
    assert_eq!(logits_of(&dir), logits_of(&fixtures().join("tiny-gpt2")));
    std::fs::write(dir.join("pytorch_model.bin"), b"PK\x03\x04 not really a zip").unwrap();
    let err = nexttoken::Pretrained::load(dir.to_str().unwrap(), "cpu").err().unwrap();
    assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tensor_named_twice_is_refused_not_picked_at_random() {
    let path = write(
        "twice",
        &[("transformer.ln_f.bias", f32_tensor(&[2], 1.0)), ("ln_f.bias", f32_tensor(&[2], 2.0))],
    );
    let err = Weights::load(&path, &Device::Cpu).err().unwrap();
    assert_eq!(err.code(), "ERR_MODEL_INVALID");
    assert!(err.to_string().contains("'ln_f.bias' appears twice"), "{err}");
}

/// tiny-gpt2 with its tensors edited by `edit` (name, dtype, shape, bytes) and config.json by
/// `config`.
fn edited_model(
    name: &str,
    edit: impl Fn(&str, &mut Vec<usize>, &mut Vec<u8>),
    config: impl Fn(&mut serde_json::Value),
) -> PathBuf {
    let fixture = std::fs::read(fixtures().join("tiny-gpt2/model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&fixture).unwrap();
    let tensors: Vec<(String, Raw)> = file
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let (mut shape, mut bytes) = (view.shape().to_vec(), view.data().to_vec());
            edit(&key, &mut shape, &mut bytes);
            (key, Raw(view.dtype(), shape, bytes))
        })
        .collect();
    let map: HashMap<String, &Raw> = tensors.iter().map(|(k, v)| (k.clone(), v)).collect();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny-gpt2/config.json")).unwrap())
            .unwrap();
    config(&mut json);
    model_dir(
        name,
        &[
            ("model.safetensors", serialize(map, None).unwrap()),
            ("config.json", json.to_string().into_bytes()),
        ],
    )
}

#[test]
fn a_padded_vocabulary_loads_and_its_padding_is_never_generated() {
    // 47 extra rows, copies of row 0 scaled up so that they would win every greedy step.
    let extra = 50304 - 50257;
    let dir = edited_model(
        "padded",
        |key, shape, bytes| {
            if key == "transformer.wte.weight" {
                let row: Vec<u8> = bytes[..shape[1] * 2]
                    .chunks(2)
                    .flat_map(|h| (half::f16::from_le_bytes([h[0], h[1]]).to_f32() * 8.0).to_le_bytes())
                    .collect();
                let row16: Vec<u8> = row
                    .chunks(4)
                    .flat_map(|f| {
                        half::f16::from_f32(f32::from_le_bytes([f[0], f[1], f[2], f[3]])).to_le_bytes()
                    })
                    .collect();
                for _ in 0..extra {
                    bytes.extend_from_slice(&row16);
                }
                shape[0] += extra;
            }
        },
        |config| config["vocab_size"] = 50304.into(),
    );
    let model = std::sync::Arc::new(nexttoken::Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap());
    let logits = model.logits(&[464, 3290], nexttoken::Positions::Last).unwrap();
    assert_eq!(logits.len(), 50304);
    let best = logits.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0;
    assert!(best >= 50257, "the padding rows would win unmasked ({best})");
    let scheduler = nexttoken::Scheduler::new(model.clone(), Default::default()).unwrap();
    let options = nexttoken::CallOptions { max_new_tokens: Some(10), ..Default::default() };
    let output = scheduler
        .generate(nexttoken::Generation::new(model.clone(), vec![464, 3290], options).unwrap())
        .unwrap();
    assert!(output.new_ids.iter().all(|&id| id < 50257), "{:?}", output.new_ids);
    assert!(model.top_k(&[464, 3290], 5).unwrap().iter().all(|t| t.id < 50257));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nan_weights_and_special_tokens_outside_the_tokenizer_are_refused_at_load() {
    let nan = edited_model(
        "nan",
        |key, _, bytes| {
            if key == "transformer.h.1.mlp.c_fc.weight" {
                bytes[10..12].copy_from_slice(&half::f16::NAN.to_le_bytes());
            }
        },
        |_| {},
    );
    let err = nexttoken::Pretrained::load(nan.to_str().unwrap(), "cpu").err().unwrap();
    assert_eq!(err.code(), "ERR_MODEL_INVALID");
    assert!(err.to_string().contains("'h.1.mlp.c_fc.weight' holds NaN"), "{err}");
    std::fs::remove_dir_all(&nan).unwrap();

    let eos = model_dir(
        "eos-outside",
        &[("model.safetensors", std::fs::read(fixtures().join("tiny-gpt2/model.safetensors")).unwrap())],
    );
    std::fs::write(eos.join("generation_config.json"), r#"{"eos_token_id": 60000}"#).unwrap();
    let err = nexttoken::Pretrained::load(eos.to_str().unwrap(), "cpu").err().unwrap();
    assert!(err.to_string().contains("eos_token_id 60000 is outside the model's 50257 tokens"), "{err}");
    std::fs::remove_dir_all(&eos).unwrap();
}
