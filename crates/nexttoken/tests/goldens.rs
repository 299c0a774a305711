//! The forward pass against logits dumped by transformers (scripts/make_fixtures.py), the way
//! llm.c checks its model against a PyTorch dump.

use std::path::PathBuf;

use nexttoken::{KvCache, LoadOptions, Positions, Pretrained, WeightDtype};
use serde::Deserialize;

/// Both sides compute in f32 on the same weights; differences come from summation order only.
const LOGIT_TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogitsGoldens {
    vocab_size: usize,
    file: String,
    cases: Vec<LogitsCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogitsCase {
    name: String,
    ids: Vec<u32>,
    positions: Vec<usize>,
    row: usize,
    greedy_next: u32,
}

fn load_goldens() -> (LogitsGoldens, Vec<f32>) {
    let dir = fixtures().join("goldens");
    let goldens: LogitsGoldens =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(&goldens.file)).unwrap();
    let rows = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (goldens, rows)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
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
    let (goldens, rows) = load_goldens();
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
fn lower_precision_dtypes_stay_near_transformers_logits() {
    // Rounding every weight changes the logits by about the rounding's relative size times their
    // spread; the bounds are the measured differences with about 2x headroom. Greedy choices
    // may flip where two tokens are nearly tied, so agreement is counted, not required.
    let (goldens, rows) = load_goldens();
    let v = goldens.vocab_size;
    for (dtype, bound, min_agreement) in [
        (WeightDtype::Bf16, BF16_BOUND, 0.9),
        (WeightDtype::Q8_0, Q8_BOUND, 0.9),
        (WeightDtype::Q4_0, Q4_BOUND, 0.5),
    ] {
        let model = load_tiny(Some(dtype));
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
        eprintln!("{dtype}: largest |logit - golden| {worst:e}, top-1 agreement {agree}/{total}");
        assert!(worst <= bound, "{dtype}: largest |logit - golden| {worst}");
        assert!(agree as f64 >= min_agreement * total as f64, "{dtype}: top-1 agrees {agree}/{total}");
    }
}

#[test]
fn bf16_decoding_stays_near_transformers_logits() {
    // Each golden case fed one token at a time, as generation decodes: on a CPU with AVX-512
    // BF16 these products round the activations too (ops/bf16_tile.rs), as prompts' do.
    let (goldens, rows) = load_goldens();
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

/// Measured on the tiny fixture (AMD EPYC, every SIMD path): bf16 0.095, q8 0.30, q4 6.0 (its
/// random 32-wide weights quantize badly in 4 bits; the README's Weight dtypes section has the
/// 124M-shaped numbers). Where products round their activations too, bf16 is 0.133 (AVX-512
/// BF16, `simd::bf16_dot`: every bf16 product, prompts and decoded tokens alike, measured 0.133
/// both ways; the bound keeps 1.5x headroom there, as that rounding is deterministic and only
/// the summation order may vary), q8 0.38 and q4 6.09 (integer dot products, AVX2 or AVX-512
/// VNNI, whose int8 activations give both the same bits: ops/int8_tile.rs; 0.30 and 5.99 with
/// f32 activations, `NEXTTOKEN_SIMD=portable`).
const BF16_BOUND: f32 = 0.2;
const Q8_BOUND: f32 = 0.8;
const Q4_BOUND: f32 = 12.0;

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
