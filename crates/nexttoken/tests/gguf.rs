//! GGUF files: the fixtures (written by scripts/make_gguf_fixture.py from tiny-gpt2) give the
//! logits of the safetensors they came from, their tokenizer is tokenizer.json's, and damaged
//! files are refused with ERR_MODEL_INVALID (never a panic or an abort).

mod common;

use std::path::PathBuf;

use common::max_abs_diff;
use half::{bf16, f16};
use nexttoken::gguf::{Array, GgufFile, Value};
use nexttoken::{KvCache, LoadOptions, Positions, Pretrained, WeightDtype};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

fn load(path: &std::path::Path, dtype: Option<WeightDtype>) -> nexttoken::Result<Pretrained> {
    Pretrained::load_with(path.to_str().unwrap(), &LoadOptions { dtype, ..LoadOptions::default() })
}

/// Ids of a few prompts: every position of each is compared.
const PROMPTS: [&str; 3] =
    ["I am learning about generative ai and LLM's", "Héllo, wörld! 🤖<|endoftext|>The", " 12 345"];

/// Largest |logit difference| over every position of `PROMPTS`.
fn worst_diff(a: &Pretrained, b: &Pretrained) -> f32 {
    let mut worst = 0f32;
    for prompt in PROMPTS {
        let ids = a.tokenizer.encode(prompt).unwrap();
        let (x, y) = (a.logits(&ids, Positions::All).unwrap(), b.logits(&ids, Positions::All).unwrap());
        assert_eq!(x.len(), y.len());
        worst = worst.max(max_abs_diff(&x, &y));
    }
    worst
}

/// Largest |logit difference| over every position of `PROMPTS` fed one token at a time (the
/// decoding path).
fn worst_diff_decoding(a: &Pretrained, b: &Pretrained) -> f32 {
    let mut worst = 0f32;
    for prompt in PROMPTS {
        let ids = a.tokenizer.encode(prompt).unwrap();
        let (mut cache_a, mut cache_b) = (KvCache::new(), KvCache::new());
        for id in ids.chunks(1) {
            let x = a.network.forward(id, &mut cache_a, Positions::Last).unwrap();
            let y = b.network.forward(id, &mut cache_b, Positions::Last).unwrap();
            let (x, y) = (
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            worst = worst.max(max_abs_diff(&x, &y));
        }
    }
    worst
}

#[test]
fn each_fixture_gives_the_logits_of_its_safetensors_in_its_own_type() {
    let tiny = fixtures().join("tiny-gpt2");
    // (file, the dtype it is held in by default, the safetensors model of the same numbers, bound)
    // F16: the same f16 values. Q8_0 / Q4_0: gguf's quantizers are llama.cpp's reference ones,
    // as ours are, so the safetensors model quantized at load holds the same blocks and the
    // same kernels run: measured 0 for all three. The bound is the goldens' f32 one, room for a
    // scale that numpy's float order rounds to the other f16 neighbour.
    for (file, dtype, bound) in [
        ("tiny-gpt2-f16.gguf", WeightDtype::F16, 1e-4),
        ("tiny-gpt2-q8_0.gguf", WeightDtype::Q8_0, 1e-4),
        ("tiny-gpt2-q4_0.gguf", WeightDtype::Q4_0, 1e-4),
    ] {
        let gguf = load(&fixtures().join(file), None).unwrap();
        assert_eq!(gguf.network.dtype(), dtype, "{file}");
        assert_eq!(gguf.config().vocab_size, 50257);
        assert_eq!(gguf.generation_config.eos_token_id, Some(vec![50256]));
        let reference = load(&tiny, Some(dtype)).unwrap();
        let diff = worst_diff(&gguf, &reference);
        println!("{file}: max |logit diff| vs safetensors as {dtype}: {diff:e}");
        assert!(diff <= bound, "{file}: {diff}");
    }
}

#[test]
fn an_explicit_dtype_converts_the_file_s_types() {
    let q8 = fixtures().join("tiny-gpt2-q8_0.gguf");
    let as_f32 = load(&q8, Some(WeightDtype::F32)).unwrap();
    assert_eq!(as_f32.network.dtype(), WeightDtype::F32);
    // Dequantized Q8_0 in fp32 multiplies by the same weights as the q8 blocks. Where q8 products
    // take integer dot products (AVX2 or AVX-512 VNNI), they also round the activations to int8
    // per block of 32, as llama.cpp does (ops/matmul/int8.rs), decoding and prompts alike: measured
    // 0.25 on this fixture for both (bound 2x). With f32 activations (`NEXTTOKEN_SIMD=portable`)
    // only the summation order differs: measured 0 to 6e-6.
    let f32_activations = std::env::var("NEXTTOKEN_SIMD").as_deref() == Ok("portable");
    let bound = if f32_activations { 1e-4 } else { 0.5 };
    let held = load(&q8, None).unwrap();
    let diff = worst_diff_decoding(&as_f32, &held);
    println!("q8_0 file as fp32 vs as q8, decoding: {diff:e}");
    assert!(diff <= bound, "{diff}");
    let diff = worst_diff(&as_f32, &held);
    println!("q8_0 file as fp32 vs as q8, whole prompts: {diff:e}");
    assert!(diff <= bound, "{diff}");
    // Q8_0 requantized to q4 is another model: close to the q4 fixture, not equal.
    let as_q4 = load(&q8, Some(WeightDtype::Q4_0)).unwrap();
    assert_eq!(as_q4.network.dtype(), WeightDtype::Q4_0);
    assert!(worst_diff(&as_q4, &held) > 0.0);
}

#[test]
fn a_q4_file_held_as_q4_is_near_its_fp32_dequantization() {
    // As q8 above: the same weights (Q4_0 values are exact in fp32), and with integer dot
    // products (AVX2 or AVX-512 VNNI) the activations rounded to int8 per block of 32 as llama.cpp
    // does, decoding and prompts alike: measured 0.24 on this fixture for both (bound: 2x). With
    // f32 activations (`NEXTTOKEN_SIMD=portable`) only the summation order differs: measured
    // 8.6e-6 to 9.5e-6.
    let q4 = fixtures().join("tiny-gpt2-q4_0.gguf");
    let f32_activations = std::env::var("NEXTTOKEN_SIMD").as_deref() == Ok("portable");
    let bound = if f32_activations { 1e-4 } else { 0.5 };
    let (as_f32, held) = (load(&q4, Some(WeightDtype::F32)).unwrap(), load(&q4, None).unwrap());
    assert_eq!(held.network.dtype(), WeightDtype::Q4_0);
    let diff = worst_diff_decoding(&as_f32, &held);
    println!("q4_0 file as fp32 vs as q4, decoding: {diff:e}");
    assert!(diff <= bound, "{diff}");
    let diff = worst_diff(&as_f32, &held);
    println!("q4_0 file as fp32 vs as q4, whole prompts: {diff:e}");
    assert!(diff <= bound, "{diff}");
}

#[test]
fn the_tokenizer_from_metadata_is_tokenizer_json_s() {
    let gguf = load(&fixtures().join("tiny-gpt2-q4_0.gguf"), None).unwrap();
    let json =
        nexttoken::Tokenizer::from_tokenizer_json(&fixtures().join("tiny-gpt2/tokenizer.json")).unwrap();
    let texts = [
        "I am learning about generative ai and LLM's",
        "  leading spaces,\ttabs\nand newlines\r\n\n",
        "Unicode: héllo wörld — 日本語のテキスト, emoji 🤖👍🏽, Ελληνικά, русский",
        "<|endoftext|>between<|endoftext|> two <|endoftext|>",
        "numbers 1234567 and 3.14159, code: fn main() { println!(\"{}\", x); }",
        "'s 't 're 've 'm 'll 'd ' s",
        "",
    ];
    for text in texts {
        assert_eq!(gguf.tokenizer.encode(text).unwrap(), json.encode(text).unwrap(), "{text:?}");
        let ids = json.encode(text).unwrap();
        assert_eq!(gguf.tokenizer.decode(&ids).unwrap(), json.decode(&ids).unwrap());
    }
    assert_eq!(gguf.tokenizer.encode("<|endoftext|>").unwrap(), vec![50256]);
    assert_eq!(gguf.tokenizer.vocab_size(), json.vocab_size());
}

/// A GGUF file (version 3) of `metadata` and `tensors` (name, ggml dims, ggml type id, data).
fn write_gguf(metadata: &[(String, Value)], tensors: &[TensorData]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        string(&mut out, key);
        let (kind, bytes): (u32, Vec<u8>) = match value {
            Value::U8(v) => (0, vec![*v]),
            Value::I8(v) => (1, vec![*v as u8]),
            Value::U16(v) => (2, v.to_le_bytes().to_vec()),
            Value::I16(v) => (3, v.to_le_bytes().to_vec()),
            Value::U32(v) => (4, v.to_le_bytes().to_vec()),
            Value::I32(v) => (5, v.to_le_bytes().to_vec()),
            Value::F32(v) => (6, v.to_le_bytes().to_vec()),
            Value::Bool(v) => (7, vec![*v as u8]),
            Value::String(s) => {
                (8, [(s.len() as u64).to_le_bytes().to_vec(), s.as_bytes().to_vec()].concat())
            }
            Value::U64(v) => (10, v.to_le_bytes().to_vec()),
            Value::I64(v) => (11, v.to_le_bytes().to_vec()),
            Value::F64(v) => (12, v.to_le_bytes().to_vec()),
            Value::Array(a) => {
                let mut b = Vec::new();
                match a {
                    Array::Ints(v) => {
                        b.extend(5u32.to_le_bytes());
                        b.extend((v.len() as u64).to_le_bytes());
                        v.iter().for_each(|x| b.extend((*x as i32).to_le_bytes()));
                    }
                    Array::Floats(v) => {
                        b.extend(12u32.to_le_bytes());
                        b.extend((v.len() as u64).to_le_bytes());
                        v.iter().for_each(|x| b.extend(x.to_le_bytes()));
                    }
                    Array::Bools(v) => {
                        b.extend(7u32.to_le_bytes());
                        b.extend((v.len() as u64).to_le_bytes());
                        v.iter().for_each(|x| b.push(*x as u8));
                    }
                    Array::Strings(v) => {
                        b.extend(8u32.to_le_bytes());
                        b.extend((v.len() as u64).to_le_bytes());
                        v.iter().for_each(|s| string(&mut b, s));
                    }
                }
                (9, b)
            }
        };
        out.extend(kind.to_le_bytes());
        out.extend(bytes);
    }
    let mut offset = 0u64;
    for (name, dims, kind, data) in tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.extend(kind.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset = (offset + data.len() as u64).next_multiple_of(32);
    }
    out.resize(out.len().next_multiple_of(32), 0);
    for (_, _, _, data) in tensors {
        out.extend(data);
        out.resize(out.len().next_multiple_of(32), 0);
    }
    out
}

/// A tensor to write: name, ggml dims, ggml type id, data.
type TensorData = (String, Vec<u64>, u32, Vec<u8>);
type Tensors = Vec<TensorData>;

/// The f16 fixture's metadata and tensors, each 2-D F16 tensor converted by `convert`
/// (new type id, new data), then changed by `edit`.
fn rewritten(
    convert: impl Fn(&[u8]) -> (u32, Vec<u8>),
    edit: impl Fn(&mut Vec<(String, Value)>, &mut Tensors),
) -> Vec<u8> {
    let source = GgufFile::open(&fixtures().join("tiny-gpt2-f16.gguf")).unwrap();
    let bytes = std::fs::read(&source.path).unwrap();
    let mut metadata: Vec<(String, Value)> = source.metadata.clone().into_iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors = source
        .tensors
        .iter()
        .map(|t| {
            let size = t.len() as usize * if t.ggml == nexttoken::gguf::GgmlType::F16 { 2 } else { 4 };
            let data = &bytes[t.start as usize..t.start as usize + size];
            let (kind, data) = match t.ggml {
                nexttoken::gguf::GgmlType::F16 => convert(data),
                _ => (0, data.to_vec()),
            };
            (t.name.clone(), t.dims.clone(), kind, data)
        })
        .collect::<Vec<_>>();
    let mut tensors = tensors;
    edit(&mut metadata, &mut tensors);
    write_gguf(&metadata, &tensors)
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("nexttoken-{}-{name}.gguf", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn halves(data: &[u8]) -> impl Iterator<Item = f32> + '_ {
    data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
}

#[test]
fn f32_and_bf16_files_load_in_their_own_type() {
    let tiny = fixtures().join("tiny-gpt2");
    let f32_file =
        temp_file("f32", &rewritten(|d| (0, halves(d).flat_map(f32::to_le_bytes).collect()), |_, _| ()));
    let bf16_file = temp_file(
        "bf16",
        &rewritten(|d| (30, halves(d).flat_map(|v| bf16::from_f32(v).to_le_bytes()).collect()), |_, _| ()),
    );
    for (path, dtype) in [(&f32_file, WeightDtype::F32), (&bf16_file, WeightDtype::Bf16)] {
        let gguf = load(path, None).unwrap();
        assert_eq!(gguf.network.dtype(), dtype);
        let diff = worst_diff(&gguf, &load(&tiny, Some(dtype)).unwrap());
        println!("{dtype} file: max |logit diff| vs safetensors as {dtype}: {diff:e}");
        assert!(diff <= 1e-4, "{dtype}: {diff}");
        std::fs::remove_file(path).unwrap();
    }
}

fn refused(name: &str, bytes: &[u8]) -> String {
    let path = temp_file(name, bytes);
    let result = std::panic::catch_unwind(|| load(&path, None).map(|_| ()));
    std::fs::remove_file(&path).unwrap();
    let err = result.unwrap_or_else(|_| panic!("{name}: panicked")).expect_err(name);
    assert_eq!(err.code(), "ERR_MODEL_INVALID", "{name}: {err}");
    err.to_string()
}

#[test]
fn damaged_files_are_refused_with_a_code() {
    let good = std::fs::read(fixtures().join("tiny-gpt2-q4_0.gguf")).unwrap();
    let source = GgufFile::open(&fixtures().join("tiny-gpt2-q4_0.gguf")).unwrap();
    let last = source.tensors.iter().map(|t| t.start).max().unwrap() as usize;
    // Truncated: in the magic, the counts, a key, the token list, the tensor infos, the data.
    for at in [0, 3, 6, 12, 20, 30, 1_000, 600_000, 1_700_000, last - 100, good.len() - 1] {
        refused(&format!("truncated-{at}"), &good[..at]);
    }
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    assert!(refused("magic", &patched(0, b"GGUG")).contains("'GGUF'"));
    assert!(refused("version", &patched(4, &1u32.to_le_bytes())).contains("version 1"));
    assert!(refused("big-endian", &patched(4, &3u32.to_be_bytes())).contains("big-endian"));
    assert!(refused("tensor-count", &patched(8, &u64::MAX.to_le_bytes())).contains("claims"));
    assert!(refused("kv-count", &patched(16, &(1u64 << 60).to_le_bytes())).contains("claims"));
    assert!(refused("key-length", &patched(24, &(1u64 << 62).to_le_bytes())).contains("ends inside"));

    // Hand-written files: one tensor of an unread type, an offset past the end, a misaligned
    // offset, nested arrays, a huge array length.
    let arch = || ("general.architecture".to_string(), Value::String("gpt2".into()));
    let one = |kind: u32, data: Vec<u8>| {
        write_gguf(&[arch()], &[("token_embd.weight".into(), vec![32, 2], kind, data)])
    };
    assert!(refused("q6_k", &one(14, vec![0; 420])).contains("Q6_K"));
    assert!(refused("type-99", &one(99, vec![0; 64])).contains("unknown type 99"));
    assert!(refused("short-data", &one(0, vec![0; 64])).contains("beyond the file"));
    let mut misaligned = one(0, vec![0; 256]);
    let info = misaligned.windows(17).position(|w| w == b"token_embd.weight").unwrap() + 17 + 4 + 16 + 4;
    misaligned[info..info + 8].copy_from_slice(&4u64.to_le_bytes());
    assert!(refused("misaligned", &misaligned).contains("alignment"));
    let mut q4_rows = one(2, vec![0; 36]);
    let dims = q4_rows.windows(17).position(|w| w == b"token_embd.weight").unwrap() + 17 + 4;
    q4_rows[dims..dims + 8].copy_from_slice(&16u64.to_le_bytes());
    assert!(refused("partial-block", &q4_rows).contains("whole blocks"));
    let mut nested = write_gguf(&[("x".into(), Value::Array(Array::Ints(vec![1])))], &[]);
    // After the 24-byte header, the key "x" (8 + 1 bytes) and the value type: the element type.
    let kind_at = 24 + 9 + 4;
    nested[kind_at..kind_at + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(refused("nested", &nested).contains("array of arrays"));
    let mut long = write_gguf(&[("x".into(), Value::Array(Array::Ints(vec![1])))], &[]);
    let len_at = 24 + 9 + 4 + 4;
    long[len_at..len_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(refused("array-length", &long).contains("1099511627776"));

    // A file of another architecture, or without a tensor the model needs.
    let llama = write_gguf(&[("general.architecture".into(), Value::String("llama".into()))], &[]);
    assert!(refused("llama", &llama).contains("'llama'"));
    let same = |d: &[u8]| (1, d.to_vec());
    let no_ffn = rewritten(same, |_, _| ());
    let name_at = no_ffn.windows(21).position(|w| w == b"blk.1.ffn_down.weight").unwrap();
    let mut renamed = no_ffn.clone();
    renamed[name_at..name_at + 21].copy_from_slice(b"blk.1.ffn_dowX.weight");
    let message = refused("missing", &renamed);
    assert!(message.contains("'blk.1.ffn_down.weight' is missing"), "{message}");
    let set = |key: &'static str, value: Value| {
        move |m: &mut Vec<(String, Value)>, _: &mut Tensors| {
            m.iter_mut().filter(|(k, _)| k == key).for_each(|(_, v)| *v = value.clone())
        }
    };
    let message = refused("blocks", &rewritten(same, set("gpt2.block_count", Value::U32(u32::MAX))));
    assert!(message.contains("block_count is 4294967295"), "{message}");
    let message = refused("width", &rewritten(same, set("gpt2.embedding_length", Value::U32(64))));
    assert!(message.contains("rows of 32"), "{message}");
    let message =
        refused("arch", &rewritten(same, set("tokenizer.ggml.model", Value::String("llama".into()))));
    assert!(message.contains("tokenizer.ggml.model is 'llama'"), "{message}");
    let message = refused("pre", &rewritten(same, set("tokenizer.ggml.pre", Value::String("qwen2".into()))));
    assert!(message.contains("'qwen2'"), "{message}");
    // An output head: loaded when it is token_embd's copy (convert_hf_to_gguf may write one),
    // refused when it differs.
    let with_head = |change: u8| {
        move |_: &mut Vec<(String, Value)>, t: &mut Tensors| {
            let mut head = t.iter().find(|t| t.0 == "token_embd.weight").unwrap().clone();
            head.0 = "output.weight".into();
            head.3[100] ^= change;
            t.push(head);
        }
    };
    let tied = temp_file("tied", &rewritten(same, with_head(0)));
    assert!(load(&tied, None).is_ok());
    std::fs::remove_file(&tied).unwrap();
    assert!(refused("untied", &rewritten(same, with_head(1))).contains("untied"));
    // A NaN scale in a quantized block.
    let mut nan_scale = std::fs::read(fixtures().join("tiny-gpt2-q8_0.gguf")).unwrap();
    let q8 = GgufFile::open(&fixtures().join("tiny-gpt2-q8_0.gguf")).unwrap();
    let qkv = q8.tensors.iter().find(|t| t.name == "blk.0.attn_qkv.weight").unwrap().start as usize;
    nan_scale[qkv..qkv + 2].copy_from_slice(&f16::NAN.to_le_bytes());
    assert!(refused("nan-scale", &nan_scale).contains("finite"));
}

#[test]
fn metadata_values_of_every_type_round_trip() {
    let metadata: Vec<(String, Value)> = vec![
        ("u8".into(), Value::U8(200)),
        ("i8".into(), Value::I8(-100)),
        ("u16".into(), Value::U16(60000)),
        ("i16".into(), Value::I16(-30000)),
        ("u32".into(), Value::U32(4_000_000_000)),
        ("i32".into(), Value::I32(-2_000_000_000)),
        ("u64".into(), Value::U64(u64::MAX)),
        ("i64".into(), Value::I64(i64::MIN)),
        ("f32".into(), Value::F32(1.5)),
        ("f64".into(), Value::F64(-2.25)),
        ("bool".into(), Value::Bool(true)),
        ("string".into(), Value::String("héllo".into())),
        ("ints".into(), Value::Array(Array::Ints(vec![-1, 2, 3]))),
        ("floats".into(), Value::Array(Array::Floats(vec![0.5, -1.0]))),
        ("bools".into(), Value::Array(Array::Bools(vec![true, false]))),
        ("strings".into(), Value::Array(Array::Strings(vec!["a b".into(), "".into()]))),
        ("general.alignment".into(), Value::U32(64)),
    ];
    let path = temp_file("values", &write_gguf(&metadata, &[]));
    let file = GgufFile::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for (key, value) in &metadata {
        assert_eq!(file.get(key), Some(value), "{key}");
    }
    assert_eq!(file.version, 3);
}
