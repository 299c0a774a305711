//! The forward pass against logits dumped by transformers (scripts/make_fixtures.py), the way
//! llm.c checks its model against a PyTorch dump.

mod common;

use std::path::PathBuf;

use common::{kl_divergence, logits_goldens, max_abs_diff};
use nexttoken::{KvCache, LoadOptions, Positions, Pretrained, WeightDtype};
use serde::Deserialize;

/// Both sides compute in f32 on the same weights; differences come from summation order only.
const LOGIT_TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

fn load_tiny(dtype: Option<WeightDtype>) -> Pretrained {
    let options = LoadOptions { dtype, ..LoadOptions::default() };
    Pretrained::load_with(fixtures().join("tiny-gpt2").to_str().unwrap(), &options).unwrap()
}

#[test]
fn logits_match_transformers_at_every_golden_position() {
    // The fixture is stored in f16: held as fp16 (the default) or widened to fp32, the weights
    // are the same numbers, so both match to summation order.
    for dtype in [None, Some(WeightDtype::F32)] {
        let model = load_tiny(dtype);
        assert_eq!(model.network.dtype(), dtype.unwrap_or(WeightDtype::F16));
        check_logits(&model);
    }
}

fn check_logits(model: &Pretrained) {
    let (goldens, rows) = logits_goldens();
    let v = goldens.vocab_size;
    let mut worst = 0f32;
    for case in &goldens.cases {
        let all = model.logits(&case.ids, Positions::All).unwrap();
        assert_eq!(all.len(), case.ids.len() * v);
        for (i, &position) in case.positions.iter().enumerate() {
            let ours = &all[position * v..(position + 1) * v];
            let golden = &rows[(case.row + i) * v..(case.row + i + 1) * v];
            let diff = max_abs_diff(ours, golden);
            assert!(diff <= LOGIT_TOLERANCE, "{} position {position}: max |diff| {diff}", case.name);
            worst = worst.max(diff);
        }
        // Only the last row: same numbers up to the matmul's blocking (not bit-identical).
        let last = model.logits(&case.ids, Positions::Last).unwrap();
        let diff = max_abs_diff(&last, &all[(case.ids.len() - 1) * v..]);
        assert!(diff <= 1e-5, "{}: 'last' differs from the last row of 'all' by {diff}", case.name);
        assert_eq!(model.top_k(&case.ids, 1).unwrap()[0].id, case.greedy_next, "{}", case.name);
    }
    eprintln!("largest |logit - golden|: {worst:e}");
}

#[test]
fn bf16_stays_near_transformers_logits() {
    // Rounding every weight changes the logits by about the rounding's relative size times their
    // spread; the bound is the measured difference with headroom (see `BF16_BOUND`). Greedy
    // choices may flip where two tokens are nearly tied, so agreement is counted, not required.
    let (goldens, rows) = logits_goldens();
    let v = goldens.vocab_size;
    let model = load_tiny(Some(WeightDtype::Bf16));
    let (mut worst, mut agree, mut total) = (0f32, 0, 0);
    for case in &goldens.cases {
        let all = model.logits(&case.ids, Positions::All).unwrap();
        for (i, &position) in case.positions.iter().enumerate() {
            let ours = &all[position * v..(position + 1) * v];
            let golden = &rows[(case.row + i) * v..(case.row + i + 1) * v];
            worst = worst.max(max_abs_diff(ours, golden));
            agree += (argmax(ours) == argmax(golden)) as usize;
            total += 1;
        }
    }
    eprintln!("bf16: largest |logit - golden| {worst:e}, top-1 agreement {agree}/{total}");
    assert!(worst <= BF16_BOUND, "bf16: largest |logit - golden| {worst}");
    assert!(agree as f64 >= 0.9 * total as f64, "bf16: top-1 agrees {agree}/{total}");
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuantizedGoldens {
    vocab_size: usize,
    file: String,
    cases: Vec<QuantizedCase>,
}

#[derive(Deserialize)]
struct QuantizedCase {
    name: String,
    ids: Vec<u32>,
    positions: Vec<usize>,
    /// The first row of each format's logits at `positions`.
    rows: std::collections::HashMap<String, usize>,
}

/// Largest |logit - golden| and largest KL(golden || ours) of `dtype` against transformers run
/// on the same weights quantized and dequantized as our packer does (goldens/quantized.json).
fn quantized_worst(dtype: WeightDtype) -> (f32, f64) {
    let dir = fixtures().join("goldens");
    let goldens: QuantizedGoldens =
        serde_json::from_str(&std::fs::read_to_string(dir.join("quantized.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(&goldens.file)).unwrap();
    let rows: Vec<f32> =
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let v = goldens.vocab_size;
    let model = load_tiny(Some(dtype));
    let (mut worst, mut worst_kl) = (0f32, 0f64);
    for case in &goldens.cases {
        let all = model.logits(&case.ids, Positions::All).unwrap();
        let first = case.rows[&dtype.to_string()];
        for (i, &position) in case.positions.iter().enumerate() {
            let ours = &all[position * v..(position + 1) * v];
            let golden = &rows[(first + i) * v..(first + i + 1) * v];
            let (diff, kl) = (max_abs_diff(ours, golden), kl_divergence(golden, ours));
            eprintln!("{dtype} {} position {position}: max |diff| {diff:e}, KL {kl:e}", case.name);
            worst = worst.max(diff);
            worst_kl = worst_kl.max(kl);
        }
    }
    (worst, worst_kl)
}

#[test]
fn quantized_dtypes_match_transformers_on_the_same_quantized_weights() {
    // The goldens hold what the format itself loses (q4: up to 6.0 from the f16 weights' logits,
    // KL 0.92; q8: 0.23, KL 0.0017); these bounds are about our own arithmetic only, so a wrong
    // scale, a lost block or a NaN fails them. Where q8 and q4 products take integer dot
    // products (AVX2 or AVX-512 VNNI) they also round the activations to int8 per block of 32,
    // as llama.cpp does (ops/matmul/int8.rs): see `QUANTIZED_BOUNDS`. With f32 activations
    // (`NEXTTOKEN_SIMD=portable`) only the summation order differs.
    let f32_activations = std::env::var("NEXTTOKEN_SIMD").as_deref() == Ok("portable");
    for (dtype, bound, kl_bound) in QUANTIZED_BOUNDS {
        let (worst, worst_kl) = quantized_worst(dtype);
        let (bound, kl_bound) = if f32_activations { (LOGIT_TOLERANCE, 1e-8) } else { (bound, kl_bound) };
        eprintln!("{dtype}: largest |logit - golden| {worst:e}, largest KL {worst_kl:e}");
        assert!(worst <= bound, "{dtype}: largest |logit - golden| {worst} > {bound}");
        assert!(worst_kl <= kl_bound, "{dtype}: largest KL(golden || ours) {worst_kl} > {kl_bound}");
    }
}

#[test]
fn bf16_decoding_stays_near_transformers_logits() {
    // Each golden case fed one token at a time, as generation decodes: on a CPU with AVX-512
    // BF16 these products round the activations too (ops/matmul/bf16_avx512.rs), as prompts' do.
    let (goldens, rows) = logits_goldens();
    let v = goldens.vocab_size;
    let model = load_tiny(Some(WeightDtype::Bf16));
    let mut worst = 0f32;
    for case in &goldens.cases {
        let mut cache = KvCache::new();
        let decoded: Vec<Vec<f32>> = case
            .ids
            .iter()
            .map(|&id| {
                let logits = model.network.forward(&[id], &mut cache, Positions::Last).unwrap();
                logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            })
            .collect();
        for (i, &position) in case.positions.iter().enumerate() {
            let golden = &rows[(case.row + i) * v..(case.row + i + 1) * v];
            worst = worst.max(max_abs_diff(&decoded[position], golden));
        }
    }
    eprintln!("bf16, decoding: largest |logit - golden| {worst:e}");
    assert!(worst <= BF16_BOUND, "bf16, decoding: largest |logit - golden| {worst}");
}

/// Measured on the tiny fixture (AMD EPYC, every SIMD path): bf16 0.095. Where products round
/// their activations too, bf16 is 0.133 (AVX-512 BF16, `simd::bf16_dot`: every bf16 product,
/// prompts and decoded tokens alike, measured 0.133 both ways; the bound keeps 1.5x headroom
/// there, as that rounding is deterministic and only the summation order may vary).
const BF16_BOUND: f32 = 0.2;

/// (dtype, max |logit - golden|, max KL(golden || ours)) against goldens/quantized.json, with
/// int8 activations (AVX2 or AVX-512 VNNI, which give the same bits: ops/matmul/int8.rs). Measured
/// on the tiny fixture (AMD EPYC, AVX2): q8 0.26 and 1.9e-3, q4 0.23 and 1.2e-3; bounds about 2x.
/// With f32 activations (`NEXTTOKEN_SIMD=portable`): q8 1.6e-5 and 8e-12, q4 1.3e-5 and 5e-12,
/// bounded by `LOGIT_TOLERANCE` and 1e-8. For scale: the format's own loss in the goldens is
/// 6.0 for q4, so a q4 that halved every logit, returned zeros or skipped the quantization
/// would be off by whole units.
const QUANTIZED_BOUNDS: [(WeightDtype, f32, f64); 2] =
    [(WeightDtype::Q8_0, 0.5, 4e-3), (WeightDtype::Q4_0, 0.5, 2.5e-3)];

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &x)| if x > row[best] { i } else { best })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScoreGolden {
    name: String,
    ids: Vec<u32>,
    loss: f64,
    perplexity: f64,
    logprobs: Vec<Option<f64>>,
    sum_logprob: f64,
    top_k: Option<usize>,
    alternatives: Option<Vec<Option<Vec<Alternative>>>>,
}

#[derive(Deserialize)]
struct Alternative {
    id: u32,
    logprob: f64,
}

#[test]
fn score_matches_transformers_loss_and_token_logprobs() {
    let model = Pretrained::load(fixtures().join("tiny-gpt2").to_str().unwrap(), "cpu").unwrap();
    let goldens: Vec<ScoreGolden> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("goldens/score.json")).unwrap())
            .unwrap();
    assert!(goldens.iter().any(|g| g.alternatives.is_some()));
    for golden in goldens {
        let scored = model.score(&golden.ids, golden.top_k.unwrap_or(0)).unwrap();
        // Log-probabilities are logits minus a log-sum-exp: within the logits' tolerance.
        let close = |ours: f64, theirs: f64, what: &str| {
            assert!(
                (ours - theirs).abs() <= LOGIT_TOLERANCE as f64 * 2.0,
                "{} {what}: {ours} vs {theirs}",
                golden.name
            )
        };
        for (token, theirs) in scored.tokens.iter().zip(&golden.logprobs) {
            assert_eq!(token.logprob.is_some(), theirs.is_some(), "{}", golden.name);
            if let (Some(ours), Some(theirs)) = (token.logprob, theirs) {
                close(ours as f64, *theirs, "token logprob");
            }
        }
        close(scored.loss, golden.loss, "loss");
        close(scored.logprob, golden.sum_logprob, "sum");
        assert!((scored.perplexity / golden.perplexity - 1.0).abs() < 1e-3, "{} perplexity", golden.name);
        for (token, theirs) in scored.tokens.iter().zip(golden.alternatives.iter().flatten()) {
            let ours: Vec<u32> = token.alternatives.iter().map(|a| a.id).collect();
            let theirs_ids: Vec<u32> = theirs.iter().flatten().map(|a| a.id).collect();
            assert_eq!(ours, theirs_ids, "{} alternatives", golden.name);
            for (a, b) in token.alternatives.iter().zip(theirs.iter().flatten()) {
                close(a.logprob as f64, b.logprob, "alternative");
            }
        }
    }
    let err = model.score(&[464], 0).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_ARG");
}
