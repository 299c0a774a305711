//! The device backend's tensor code (what CUDA and Metal run: weights as candle tensors, KV
//! slots, attention for all decoding sequences in one call) on candle's CPU device, where CI
//! runs it: transformers' logits and greedy ids, a batch's rows equal to each sequence alone,
//! slots shared by many sequences, copied and reused, and the scheduler on top.

mod common;

use std::path::PathBuf;

use common::{logits_goldens, max_abs_diff};
use nexttoken::{
    Backend, CallOptions, Error, Gpt2, KvCache, LoadOptions, Positions, Pretrained, SchedulerOptions,
    WeightDtype,
};
use serde::Deserialize;

/// Both sides compute in f32 on the same weights; differences come from summation order only.
const LOGIT_TOLERANCE: f32 = 1e-4;

/// One sequence in a batch or alone: the same operations on other shapes (candle's matmul
/// blocks differently), so equal to summation order, not to the bit.
const BATCH_TOLERANCE: f32 = 1e-5;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

fn tiny_dir() -> String {
    fixtures().join("tiny-gpt2").to_str().unwrap().to_string()
}

fn on_device_backend(dtype: WeightDtype) -> LoadOptions {
    LoadOptions { dtype: Some(dtype), backend: Some(Backend::Device), ..LoadOptions::default() }
}

fn tiny(dtype: WeightDtype) -> Pretrained {
    let model = Pretrained::load_with(&tiny_dir(), &on_device_backend(dtype)).unwrap();
    assert_eq!(model.network.backend(), Backend::Device);
    model
}

#[test]
fn logits_match_transformers_at_every_golden_position() {
    let (goldens, rows) = logits_goldens();
    let model = tiny(WeightDtype::F32);
    let v = goldens.vocab_size;
    for case in &goldens.cases {
        let all = model.logits(&case.ids, Positions::All).unwrap();
        for (i, &position) in case.positions.iter().enumerate() {
            let golden = &rows[(case.row + i) * v..(case.row + i + 1) * v];
            let diff = max_abs_diff(&all[position * v..(position + 1) * v], golden);
            assert!(diff <= LOGIT_TOLERANCE, "{} position {position}: max |diff| {diff}", case.name);
        }
        let last = model.logits(&case.ids, Positions::Last).unwrap();
        let diff = max_abs_diff(&last, &all[(case.ids.len() - 1) * v..]);
        assert!(
            diff <= BATCH_TOLERANCE,
            "{}: 'last' differs from the last row of 'all' by {diff}",
            case.name
        );
        assert_eq!(model.top_k(&case.ids, 1).unwrap()[0].id, case.greedy_next, "{}", case.name);
    }
}

#[test]
fn fp16_weights_compute_in_fp16_near_the_fp32_logits() {
    // fp16 activations (as PyTorch runs a model moved to fp16): ~3 significant digits.
    let (half, full) = (tiny(WeightDtype::F16), tiny(WeightDtype::F32));
    assert_eq!(half.network.dtype(), WeightDtype::F16);
    let ids = half.tokenizer.encode("The quick brown fox jumps over the lazy dog").unwrap();
    let (a, b) = (half.logits(&ids, Positions::All).unwrap(), full.logits(&ids, Positions::All).unwrap());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = max_abs_diff(&a, &b);
    assert!(diff <= 1e-2 * scale.max(1.0), "fp16 logits differ from fp32 by {diff} (largest logit {scale})");
}

/// Each of `prompts` alone: its logits after its prompt, then after each of `steps` more tokens.
fn alone(model: &Pretrained, prompt: &[u32], steps: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = KvCache::new();
    let mut rows = vec![model.network.forward(prompt, &mut cache, Positions::Last).unwrap()];
    for &id in steps {
        rows.push(model.network.forward(&[id], &mut cache, Positions::Last).unwrap());
    }
    rows.iter().map(|t| t.flatten_all().unwrap().to_vec1().unwrap()).collect()
}

#[test]
fn a_batch_row_equals_its_sequence_alone_across_slot_groups_prompts_and_decoding() {
    let model = tiny(WeightDtype::F32);
    // 40 sequences hold slots at once: groups of 1, 2, 4, 8, 16 and 32 slots are made, so one
    // pass writes to and attends in several groups.
    let prompts: Vec<Vec<u32>> =
        (0..40u32).map(|i| (0..1 + i % 7).map(|j| (i * 31 + j * 7) % 1000).collect()).collect();
    let steps = [11u32, 12, 13];
    let mut caches: Vec<KvCache> = prompts.iter().map(|_| KvCache::new()).collect();
    let mut batched: Vec<Vec<Vec<f32>>> = vec![Vec::new(); prompts.len()];
    // Every prompt (one token or several) in one pass, then the decoding steps.
    for step in 0..=steps.len() {
        let inputs: Vec<Vec<u32>> = prompts
            .iter()
            .map(|prompt| match step {
                0 => prompt.clone(),
                s => vec![steps[s - 1]],
            })
            .collect();
        let mut batch: Vec<(&[u32], &mut KvCache)> =
            inputs.iter().map(|ids| ids.as_slice()).zip(caches.iter_mut()).collect();
        let logits = model.network.forward_batch(&mut batch).unwrap();
        for (i, row) in logits.to_vec2::<f32>().unwrap().into_iter().enumerate() {
            batched[i].push(row);
        }
    }
    for (i, prompt) in prompts.iter().enumerate() {
        for (step, (a, b)) in batched[i].iter().zip(alone(&model, prompt, &steps)).enumerate() {
            let diff = max_abs_diff(a, &b);
            assert!(diff <= BATCH_TOLERANCE, "sequence {i} step {step}: batch differs from alone by {diff}");
        }
    }
}

#[test]
fn a_batch_mixing_prompts_and_decoding_rows_keeps_each_row_in_its_place() {
    let model = tiny(WeightDtype::F32);
    let (a, b, c) = (vec![5u32, 6, 7, 8], vec![9u32], vec![10u32, 11]);
    let (mut ca, mut cb, mut cc) = (KvCache::new(), KvCache::new(), KvCache::new());
    model.network.forward(&a, &mut ca, Positions::Last).unwrap();
    model.network.forward(&b, &mut cb, Positions::Last).unwrap();
    // A decoding row, a prompt, another decoding row: the prompt attends alone, the two
    // decoding rows together, and the rows come back in the batch's order.
    let (next_a, next_b) = ([3u32], [4u32]);
    let mut batch: Vec<(&[u32], &mut KvCache)> = vec![(&next_a, &mut ca), (&c, &mut cc), (&next_b, &mut cb)];
    let rows = model.network.forward_batch(&mut batch).unwrap().to_vec2::<f32>().unwrap();
    let expected = [
        alone(&model, &a, &next_a).pop().unwrap(),
        alone(&model, &c, &[]).pop().unwrap(),
        alone(&model, &b, &next_b).pop().unwrap(),
    ];
    for (i, (row, expected)) in rows.iter().zip(&expected).enumerate() {
        let diff = max_abs_diff(row, expected);
        assert!(diff <= BATCH_TOLERANCE, "row {i}: differs from its sequence alone by {diff}");
    }
}

#[test]
fn a_copied_slot_is_independent_and_a_truncated_one_is_rewritten() {
    let model = tiny(WeightDtype::F32);
    let prompt = [1u32, 2, 3, 4, 5];
    let mut cache = KvCache::new();
    model.network.forward(&prompt, &mut cache, Positions::Last).unwrap();
    let mut copy = cache.deep_copy().unwrap();
    // The original goes on with one token, the copy with another, in the same slot group.
    model.network.forward(&[100], &mut cache, Positions::Last).unwrap();
    let from_copy = model.network.forward(&[200], &mut copy, Positions::Last).unwrap();
    let expected = alone(&model, &prompt, &[200]).pop().unwrap();
    let diff = max_abs_diff(&from_copy.flatten_all().unwrap().to_vec1().unwrap(), &expected);
    assert!(diff <= BATCH_TOLERANCE, "the copy saw the original's token: {diff}");
    // Truncated to 3 positions, the original reads positions 3.. again over what it held.
    cache.truncate(3);
    let rewritten = model.network.forward(&[9, 9], &mut cache, Positions::Last).unwrap();
    let expected = alone(&model, &[1, 2, 3, 9, 9], &[]).pop().unwrap();
    let diff = max_abs_diff(&rewritten.flatten_all().unwrap().to_vec1().unwrap(), &expected);
    assert!(diff <= BATCH_TOLERANCE, "a truncated slot kept stale positions: {diff}");
}

#[test]
fn a_cache_belongs_to_the_model_that_filled_it() {
    let (one, other) = (tiny(WeightDtype::F32), tiny(WeightDtype::F32));
    let mut cache = KvCache::new();
    one.network.forward(&[1, 2], &mut cache, Positions::Last).unwrap();
    let err = other.network.forward(&[3], &mut cache, Positions::Last).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_ARG", "{err}");
}

#[test]
fn the_scheduler_batches_generations_on_the_device_backend_as_transformers_decodes() {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct GenerateGolden {
        name: String,
        prompt_ids: Vec<u32>,
        options: serde_json::Value,
        ids: Vec<u32>,
    }
    let gpt2 =
        Gpt2::load(&tiny_dir(), &on_device_backend(WeightDtype::F32), SchedulerOptions::default()).unwrap();
    let text = std::fs::read_to_string(fixtures().join("goldens/generate.json")).unwrap();
    let goldens: Vec<GenerateGolden> = serde_json::from_str(&text).unwrap();
    let greedy: Vec<&GenerateGolden> =
        goldens.iter().filter(|g| g.options.get("doSample") == Some(&false.into())).collect();
    assert!(greedy.len() >= 2, "the goldens hold greedy cases");
    // All at once, so that the scheduler decodes them together.
    std::thread::scope(|scope| {
        let runs: Vec<_> = greedy
            .iter()
            .map(|golden| {
                let gpt2 = &gpt2;
                scope.spawn(move || {
                    let call = CallOptions::from_json(&golden.options.to_string()).unwrap();
                    (golden, gpt2.generate(vec![golden.prompt_ids.clone()], call).unwrap())
                })
            })
            .collect();
        for run in runs {
            let (golden, outputs) = run.join().unwrap();
            assert_eq!(outputs[0].ids, golden.ids, "{}", golden.name);
        }
    });
}

#[test]
fn a_prompt_prefix_is_copied_from_slot_to_slot_and_changes_no_token() {
    let gpt2 =
        Gpt2::load(&tiny_dir(), &on_device_backend(WeightDtype::F32), SchedulerOptions::default()).unwrap();
    let shared: Vec<u32> = (0..40).map(|i| 1000 + i * 13).collect();
    let prompts = [[&shared[..], &[7, 8]].concat(), [&shared[..], &[9]].concat()];
    let greedy = || CallOptions { max_new_tokens: Some(6), do_sample: Some(false), ..Default::default() };
    // One after the other: the second finds the first's prompt in the store. Between them
    // another prompt writes over the slot the first gave back, which the copy then lands in.
    let first = gpt2.generate(vec![prompts[0].clone()], greedy()).unwrap().remove(0);
    let other: Vec<u32> = (0..50).map(|i| 3000 + i * 7).collect();
    gpt2.generate(vec![other], greedy()).unwrap();
    let second = gpt2.generate(vec![prompts[1].clone()], greedy()).unwrap().remove(0);
    assert_eq!(first.timings.cached_prompt_tokens, 0);
    assert!(second.timings.cached_prompt_tokens >= 32, "{}", second.timings.cached_prompt_tokens);
    let alone =
        Gpt2::load(&tiny_dir(), &on_device_backend(WeightDtype::F32), SchedulerOptions::default()).unwrap();
    let expected = alone.generate(vec![prompts[1].clone()], greedy()).unwrap().remove(0);
    assert_eq!(second.ids, expected.ids, "the copied prefix gives the same tokens as reading it");
}

#[test]
fn gguf_q8_and_q4_blocks_run_in_candle_s_quantized_kernels_near_their_dequantization() {
    // The same weights as the file dequantized to fp32 on the CPU backend; candle's quantized
    // kernels round the activations to q8 per block of 32, as llama.cpp does (the CPU backend's
    // integer kernels measured 0.25 on these files): bound 0.5.
    for (file, dtype) in
        [("tiny-gpt2-q8_0.gguf", WeightDtype::Q8_0), ("tiny-gpt2-q4_0.gguf", WeightDtype::Q4_0)]
    {
        let path = fixtures().join(file);
        let path = path.to_str().unwrap();
        let options = LoadOptions { backend: Some(Backend::Device), ..LoadOptions::default() };
        let held = Pretrained::load_with(path, &options).unwrap();
        assert_eq!((held.network.backend(), held.network.dtype()), (Backend::Device, dtype), "{file}");
        let as_f32 = LoadOptions { dtype: Some(WeightDtype::F32), ..LoadOptions::default() };
        let reference = Pretrained::load_with(path, &as_f32).unwrap();
        let ids = reference.tokenizer.encode("The quick brown fox jumps over the lazy dog").unwrap();
        let (a, b) =
            (held.logits(&ids, Positions::All).unwrap(), reference.logits(&ids, Positions::All).unwrap());
        let diff = max_abs_diff(&a, &b);
        println!("{file} on the device backend vs its fp32 dequantization: {diff:e}");
        assert!(diff <= 0.5, "{file}: {diff}");
        // Quantized weights decode in a batch as alone, too.
        let mut caches = [KvCache::new(), KvCache::new()];
        let [first, second] = &mut caches;
        let mut batch: Vec<(&[u32], &mut KvCache)> = vec![(&ids[..3], first), (&ids[..5], second)];
        let rows = held.network.forward_batch(&mut batch).unwrap().to_vec2::<f32>().unwrap();
        let diff = max_abs_diff(&rows[1], &alone(&held, &ids[..5], &[]).pop().unwrap());
        assert!(diff <= BATCH_TOLERANCE, "{file}: a batch row differs from alone by {diff}");
    }
}

#[test]
fn a_safetensors_model_is_quantized_at_load_for_the_device_backend() {
    let (q8, fp32) = (tiny(WeightDtype::Q8_0), tiny(WeightDtype::F32));
    assert_eq!(q8.network.dtype(), WeightDtype::Q8_0);
    let ids = fp32.tokenizer.encode("Once upon a time, generative models").unwrap();
    let diff =
        max_abs_diff(&q8.logits(&ids, Positions::All).unwrap(), &fp32.logits(&ids, Positions::All).unwrap());
    // q8 weights and q8 activations: measured on the order of the format loss (goldens'
    // formatLoss.q8.maxAbsDiff is 0.23 for weights alone).
    println!("q8 quantized at load vs fp32: {diff:e}");
    assert!(diff > 0.0 && diff <= 1.0, "{diff}");
}

#[test]
fn the_device_backend_on_the_cpu_refuses_bf16() {
    let err =
        Pretrained::load_with(&tiny_dir(), &on_device_backend(WeightDtype::Bf16)).err().expect("refused");
    assert!(matches!(err, Error::InvalidArg(_)), "{err}");
    assert!(err.to_string().contains("bf16"), "{err}");
}
