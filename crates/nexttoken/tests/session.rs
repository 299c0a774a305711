//! Sessions: stepping with a KV cache equals generating, appending costs only the new tokens,
//! forks are independent, truncation forgets, failures change nothing.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::max_abs_diff as max_diff;
use nexttoken::{
    CallOptions, Generation, KvCache, LoadOptions, Positions, Pretrained, Scheduler, SchedulerOptions,
    Session, WeightDtype,
};

fn tiny_model() -> Arc<Pretrained> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
    Arc::new(Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap())
}

fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best })
        .0 as u32
}

const PROMPT: [u32; 5] = [464, 3616, 286, 1204, 318];

#[test]
fn stepping_a_session_is_greedy_generate_at_one_position_per_token() {
    let model = tiny_model();
    let mut session = Session::new(model.clone());
    session.append(&PROMPT).unwrap();
    assert_eq!(session.positions_computed(), PROMPT.len());
    for _ in 0..10 {
        let next = argmax(session.next_logits().unwrap());
        session.append(&[next]).unwrap();
    }
    assert_eq!(session.positions_computed(), PROMPT.len() + 10, "one position per appended token");
    let scheduler = Scheduler::new(model.clone(), SchedulerOptions::default()).unwrap();
    let options = CallOptions { max_new_tokens: Some(10), eos_token_id: Some(vec![]), ..Default::default() };
    let generated =
        scheduler.generate(Generation::new(model.clone(), PROMPT.to_vec(), options).unwrap()).unwrap();
    assert_eq!(session.ids(), &generated.ids[..]);
    // Reading the logits again computes nothing.
    session.next_logits().unwrap();
    assert_eq!(session.positions_computed(), PROMPT.len() + 10);
    let fresh = model.logits(session.ids(), Positions::Last).unwrap();
    assert!(max_diff(session.next_logits().unwrap(), &fresh) < 1e-4);
}

#[test]
fn a_fork_is_independent_and_truncation_forgets() {
    let model = tiny_model();
    let mut parent = Session::new(model.clone());
    parent.append(&PROMPT).unwrap();
    let before = parent.next_logits().unwrap().to_vec();
    let mut child = parent.fork().unwrap();
    child.append(&[13, 50256, 40]).unwrap();
    assert_eq!(parent.ids(), &PROMPT[..]);
    assert_eq!(parent.next_logits().unwrap(), &before[..], "the child's appends do not reach the parent");
    parent.append(&[11]).unwrap();
    let expected = model.logits(&[&PROMPT[..], &[13, 50256, 40]].concat(), Positions::Last).unwrap();
    assert!(max_diff(child.next_logits().unwrap(), &expected) < 1e-4, "nor the parent's the child");

    // Truncate, then append: as a fresh session of the same text.
    child.truncate(PROMPT.len() + 1);
    child.append(&[262]).unwrap();
    let mut fresh = Session::new(model.clone());
    fresh.append(&[&PROMPT[..], &[13, 262]].concat()).unwrap();
    assert_eq!(child.ids(), fresh.ids());
    assert!(max_diff(child.next_logits().unwrap(), fresh.next_logits().unwrap()) < 1e-4);
    // After a truncation the last position's logits cost one position.
    child.truncate(3);
    let computed = child.positions_computed();
    let expected = model.logits(&PROMPT[..3], Positions::Last).unwrap();
    assert!(max_diff(child.next_logits().unwrap(), &expected) < 1e-4);
    assert_eq!(child.positions_computed(), computed + 1);
}

#[test]
fn failures_leave_the_session_unchanged() {
    let model = tiny_model();
    let mut session = Session::new(model.clone());
    assert_eq!(session.next_logits().unwrap_err().code(), "ERR_INVALID_ARG");
    session.append(&PROMPT).unwrap();
    let logits = session.next_logits().unwrap().to_vec();
    assert_eq!(session.append(&[50257]).unwrap_err().code(), "ERR_TOKEN_OUT_OF_RANGE");
    let too_long = vec![11u32; 1024 - PROMPT.len() + 1];
    assert_eq!(session.append(&too_long).unwrap_err().code(), "ERR_CONTEXT_OVERFLOW");
    assert_eq!(session.ids(), &PROMPT[..]);
    assert_eq!(session.next_logits().unwrap(), &logits[..]);
    assert_eq!(session.positions_computed(), PROMPT.len());
}

#[test]
fn a_generation_continues_the_session_without_reading_its_text_again() {
    let model = tiny_model();
    let scheduler = Scheduler::new(model.clone(), SchedulerOptions::default()).unwrap();
    let mut session = Session::new(model.clone());
    session.append(&PROMPT).unwrap();
    let options = || CallOptions { max_new_tokens: Some(8), ..Default::default() };
    let continued = scheduler.generate(session.generation(options()).unwrap()).unwrap();
    let generated =
        scheduler.generate(Generation::new(model.clone(), PROMPT.to_vec(), options()).unwrap()).unwrap();
    assert_eq!(continued.ids, generated.ids);
    assert_eq!(session.ids(), &PROMPT[..], "the session itself is unchanged until the caller appends");
}

#[test]
fn a_batch_step_gives_each_row_the_bits_of_the_row_decoded_alone() {
    // 8 sequences: more rows than a register tile, so the step's products take the prompts'
    // path, and a row alone the decoding one (bf16 on AVX-512 BF16 rounds activations on both,
    // q8 and q4 with integer dot products quantize them on both). Every dtype where fp32 is
    // packed too (AVX2 and AVX-512); without AVX2 fp32 is multiplied by gemm for a batch and by
    // the streaming kernels for one row (not the same bits; docs/batching.md).
    const ROWS: usize = 8;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
    let packed = [WeightDtype::F16, WeightDtype::Bf16, WeightDtype::Q8_0, WeightDtype::Q4_0];
    let fp32 = fp32_is_packed().then_some(WeightDtype::F32);
    eprintln!("batch-step bits checked for fp32: {}", fp32.is_some());
    for dtype in packed.into_iter().chain(fp32) {
        let options = LoadOptions { dtype: Some(dtype), ..LoadOptions::default() };
        let network = Pretrained::load_with(dir.to_str().unwrap(), &options).unwrap().network;
        let prompts: Vec<Vec<u32>> =
            (0..ROWS as u32).map(|r| (0..3 + r).map(|i| (r * 977 + i * 131) % 50000).collect()).collect();
        let prefilled = || -> Vec<KvCache> {
            let caches = prompts.iter().map(|prompt| {
                let mut cache = KvCache::new();
                network.forward(prompt, &mut cache, Positions::Last).unwrap();
                cache
            });
            caches.collect()
        };
        let (mut alone, mut together) = (prefilled(), prefilled());
        let next: Vec<[u32; 1]> = (0..ROWS as u32).map(|r| [r * 7 + 11]).collect();
        let mut batch: Vec<(&[u32], &mut KvCache)> =
            next.iter().zip(together.iter_mut()).map(|(id, cache)| (&id[..], cache)).collect();
        let batched = network.forward_batch(&mut batch).unwrap().to_vec2::<f32>().unwrap();
        for (r, (id, cache)) in next.iter().zip(alone.iter_mut()).enumerate() {
            let logits = network.forward(id, cache, Positions::Last).unwrap().flatten_all().unwrap();
            let same = logits
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .zip(&batched[r])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{dtype}: row {r} of the batch step differs from the row alone");
        }
    }
}

/// Whether fp32 weights are packed for the SIMD tiles here: a CPU with AVX2 and FMA, not forced
/// down to the portable level (`NEXTTOKEN_SIMD=portable`).
fn fp32_is_packed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::env::var("NEXTTOKEN_SIMD").as_deref() != Ok("portable")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}
