//! Generation against transformers: greedy `generate` goldens token for token (through the
//! scheduler, as Node runs it), and each logits processor against transformers' own processor
//! output on a real scores row.

use std::path::PathBuf;
use std::sync::Arc;

use nexttoken::generation::{apply_processors, Context};
use nexttoken::{
    CallOptions, GenerateOptions, Generation, Positions, Pretrained, Scheduler, SchedulerOptions, StopReason,
};
use serde::Deserialize;
use serde_json::Value;

fn goldens_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/goldens")
}

fn tiny_model() -> Arc<Pretrained> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
    Arc::new(Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateGolden {
    name: String,
    prompt_ids: Vec<u32>,
    options: Value,
    ids: Vec<u32>,
}

/// `eosTokenId` as a golden gives it: absent, one id, or a list.
fn eos_ids(options: &Value) -> Option<Vec<u32>> {
    match options.get("eosTokenId")? {
        Value::Array(ids) => Some(ids.iter().map(|id| id.as_u64().unwrap() as u32).collect()),
        id => Some(vec![id.as_u64().unwrap() as u32]),
    }
}

fn number(options: &Value, key: &str) -> Option<usize> {
    options.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

#[test]
fn greedy_generate_equals_transformers() {
    let model = tiny_model();
    // The path Node runs: the scheduler, here with each generation as a batch of one.
    let scheduler = Scheduler::new(model.clone(), SchedulerOptions::default()).unwrap();
    let goldens: Vec<GenerateGolden> =
        serde_json::from_str(&std::fs::read_to_string(goldens_dir().join("generate.json")).unwrap()).unwrap();
    for golden in goldens {
        // Unset options are left unset: the model's generation config supplies eos (50256).
        let options = CallOptions {
            max_length: number(&golden.options, "maxLength"),
            max_new_tokens: number(&golden.options, "maxNewTokens"),
            eos_token_id: eos_ids(&golden.options),
            ..Default::default()
        };
        let generation = Generation::new(model.clone(), golden.prompt_ids.clone(), options).unwrap();
        let output = scheduler.generate(generation).unwrap();
        assert_eq!(output.ids, golden.ids, "{}", golden.name);
        if golden.name.starts_with("eos") {
            assert_eq!(output.stop_reason, Some(StopReason::Eos), "{}", golden.name);
        }
    }
}

/// A golden's options (camelCase, as the JS API takes them) as the core takes them, through the
/// same serde reading the binding uses. Unset stays unset. The one JS spelling TypeScript
/// converts is converted here too: `logitBias`'s `{ id: bias }` object as `[id, bias]` entries.
fn call_options(options: &Value) -> CallOptions {
    let mut options = options.clone();
    if let Some(Value::Object(biases)) = options.get("logitBias") {
        let entries = biases.iter().map(|(id, bias)| serde_json::json!([id.parse::<u32>().unwrap(), bias]));
        options["logitBias"] = Value::Array(entries.collect());
    }
    serde_json::from_value(options).unwrap()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessorCase {
    name: String,
    processor: String,
    /// The first cases: the processor's own parameter (see `classic_options`).
    params: Option<Value>,
    /// The later ones: generate() options and where the sequence stands.
    options: Option<Value>,
    context: Option<Value>,
    input_ids: Vec<u32>,
    input_row: usize,
    /// The expected row: a dense row of the file, or relative to the input (`expected_row`).
    output_row: Option<usize>,
    base: Option<String>,
    kept_ids: Option<Vec<usize>>,
    overrides: Option<Vec<(usize, Option<f32>)>>,
}

#[derive(Deserialize)]
struct ProcessorGoldens {
    file: Option<String>,
    #[serde(rename = "vocabSize")]
    vocab_size: Option<usize>,
    cases: Vec<ProcessorCase>,
}

fn float(params: &Value, key: &str) -> Option<f32> {
    params.get(key).and_then(Value::as_f64).map(|x| x as f32)
}

/// The options that switch on exactly a classic case's processor with its parameter.
fn classic_options(case: &ProcessorCase) -> GenerateOptions {
    let p = case.params.as_ref().unwrap();
    let sampling = GenerateOptions { do_sample: true, top_k: 0, ..Default::default() };
    match case.processor.as_str() {
        "temperature" => GenerateOptions { temperature: float(p, "temperature").unwrap(), ..sampling },
        "topK" => GenerateOptions { top_k: number(p, "topK").unwrap(), ..sampling },
        "topP" => GenerateOptions { top_p: float(p, "topP").unwrap(), ..sampling },
        "minP" => GenerateOptions { min_p: float(p, "minP"), ..sampling },
        "repetitionPenalty" => GenerateOptions {
            repetition_penalty: float(p, "repetitionPenalty").unwrap(),
            ..Default::default()
        },
        "noRepeatNgramSize" => GenerateOptions {
            no_repeat_ngram_size: number(p, "noRepeatNgramSize").unwrap(),
            ..Default::default()
        },
        other => panic!("unknown processor {other}"),
    }
}

/// The row a case expects: dense in the file, or the input with `overrides` (null: -inf) where
/// given, the input elsewhere (`base` "input") or only on `kept_ids` (`base` "-inf").
fn expected_row(case: &ProcessorCase, input: &[f32], dense: impl Fn(usize) -> Vec<f32>) -> Vec<f32> {
    if let Some(row) = case.output_row {
        return dense(row);
    }
    let mut row = match case.base.as_deref() {
        Some("input") => input.to_vec(),
        Some("-inf") => {
            let mut row = vec![f32::NEG_INFINITY; input.len()];
            case.kept_ids.iter().flatten().for_each(|&id| row[id] = input[id]);
            row
        }
        other => panic!("{}: unknown base {other:?}", case.name),
    };
    for &(id, value) in case.overrides.iter().flatten() {
        row[id] = value.unwrap_or(f32::NEG_INFINITY);
    }
    row
}

#[test]
fn processors_equal_transformers() {
    let dir = goldens_dir();
    let goldens: ProcessorGoldens =
        serde_json::from_str(&std::fs::read_to_string(dir.join("processors.json")).unwrap()).unwrap();
    let v = goldens.vocab_size.unwrap_or(50257);
    let bytes = std::fs::read(dir.join(goldens.file.as_deref().unwrap_or("processors.f32"))).unwrap();
    let rows: Vec<f32> =
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let row = |r: usize| rows[r * v..(r + 1) * v].to_vec();
    assert!(goldens.cases.len() >= 25);
    for case in &goldens.cases {
        let input = row(case.input_row);
        let (options, at) = match &case.options {
            None => (classic_options(case), Context::prompt(&case.input_ids)),
            Some(options) => {
                let context = case.context.clone().unwrap_or_default();
                let ids = &case.input_ids;
                let prompt_width = number(&context, "promptLength").unwrap_or(ids.len());
                let last = number(&context, "maxLength").is_some_and(|max| ids.len() + 1 == max);
                let at = Context { ids, prompt_width, new_tokens: ids.len() - prompt_width, last };
                (GenerateOptions::resolve(call_options(options), &Default::default()), at)
            }
        };
        options.validate(v).unwrap();
        let mut scores = input.clone();
        apply_processors(&mut scores, &at, &options);
        let expected = expected_row(case, &input, row);
        let mut filtered = 0;
        for (id, (ours, theirs)) in scores.iter().zip(&expected).enumerate() {
            if theirs.is_infinite() || ours.is_infinite() {
                assert_eq!(ours, theirs, "{}: token {id} filtered differently", case.name);
                filtered += 1;
            } else {
                // Same f32 operations on the same inputs, except sums over the vocabulary (a
                // log-softmax) that we take in f64: allow a few roundings.
                let tolerance = 4e-6 * theirs.abs().max(1.0);
                assert!((ours - theirs).abs() <= tolerance, "{}: token {id}: {ours} vs {theirs}", case.name);
            }
        }
        eprintln!("{}: {filtered} tokens filtered", case.name);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScoresGolden {
    name: String,
    prompt_ids: Vec<u32>,
    options: Value,
    sampled: bool,
    new_ids: Vec<u32>,
    scores: Vec<f32>,
}

/// Processed log-probabilities agree with transformers to this (logits agree to ~1e-5).
const SCORE_TOLERANCE: f32 = 1e-4;

#[test]
fn processed_scores_equal_transformers() {
    let model = tiny_model();
    let scheduler = Scheduler::new(model.clone(), SchedulerOptions::default()).unwrap();
    let goldens: Vec<ScoresGolden> =
        serde_json::from_str(&std::fs::read_to_string(goldens_dir().join("scores.json")).unwrap()).unwrap();
    assert!(goldens.iter().any(|g| g.sampled) && goldens.iter().any(|g| !g.sampled));
    for golden in goldens {
        let call = CallOptions { output_scores: Some(true), ..call_options(&golden.options) };
        if !golden.sampled {
            let generation = Generation::new(model.clone(), golden.prompt_ids.clone(), call).unwrap();
            let output = scheduler.generate(generation).unwrap();
            assert_eq!(output.new_ids, golden.new_ids, "{}", golden.name);
            let scores = output.scores.unwrap();
            for (step, (ours, theirs)) in scores.iter().zip(&golden.scores).enumerate() {
                assert!(
                    (ours - theirs).abs() <= SCORE_TOLERANCE,
                    "{} step {step}: {ours} vs {theirs}",
                    golden.name
                );
            }
            continue;
        }
        // torch's random draws cannot be reproduced: replay its tokens through our processors.
        let options = GenerateOptions::resolve(call, &model.generation_config);
        let budget = options.new_token_budget(golden.prompt_ids.len(), 1024).unwrap();
        let mut ids = golden.prompt_ids.clone();
        for (step, (&id, &theirs)) in golden.new_ids.iter().zip(&golden.scores).enumerate() {
            let mut scores = model.logits(&ids, Positions::Last).unwrap();
            let at = Context {
                ids: &ids,
                prompt_width: golden.prompt_ids.len(),
                new_tokens: step,
                last: step + 1 >= budget,
            };
            apply_processors(&mut scores, &at, &options);
            let ours = scores[id as usize] - nexttoken::scores::log_sum_exp(&scores);
            assert!(
                (ours - theirs).abs() <= SCORE_TOLERANCE,
                "{} step {step}: {ours} vs {theirs}",
                golden.name
            );
            ids.push(id);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopStringsGolden {
    name: String,
    prompt_ids: Vec<u32>,
    stop_strings: Vec<String>,
    max_new_tokens: usize,
    new_ids: Vec<u32>,
    text_out: String,
}

#[test]
fn stop_strings_equal_transformers() {
    let model = tiny_model();
    let scheduler = Scheduler::new(model.clone(), SchedulerOptions::default()).unwrap();
    let goldens: Vec<StopStringsGolden> =
        serde_json::from_str(&std::fs::read_to_string(goldens_dir().join("stop-strings.json")).unwrap())
            .unwrap();
    assert!(goldens.len() >= 3);
    for golden in goldens {
        let call = CallOptions {
            max_new_tokens: Some(golden.max_new_tokens),
            stop_strings: Some(golden.stop_strings.clone()),
            ..Default::default()
        };
        let output =
            scheduler.generate(Generation::new(model.clone(), golden.prompt_ids, call).unwrap()).unwrap();
        assert_eq!(output.new_ids, golden.new_ids, "{}", golden.name);
        assert_eq!(output.stop_reason, Some(StopReason::Stop), "{}", golden.name);
        assert_eq!(output.text, golden.text_out, "{}: the text keeps the stop string", golden.name);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigGolden {
    name: String,
    prompt_ids: Vec<u32>,
    generation_config: Value,
    ids: Vec<u32>,
}

/// A copy of the fixture model whose generation_config.json is the fixture's overlaid with `settings`.
fn tiny_model_with_generation_config(settings: &Value, name: &str) -> Arc<Pretrained> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
    let dir = std::env::temp_dir().join(format!("nexttoken-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("generation_config.json")).unwrap())
            .unwrap();
    config.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    std::fs::write(dir.join("generation_config.json"), config.to_string()).unwrap();
    let model = Arc::new(Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    model
}

#[test]
fn generation_config_defaults_equal_transformers() {
    let goldens: Vec<ConfigGolden> =
        serde_json::from_str(&std::fs::read_to_string(goldens_dir().join("generation-config.json")).unwrap())
            .unwrap();
    assert!(goldens.len() >= 2);
    for golden in goldens {
        let model = tiny_model_with_generation_config(&golden.generation_config, &golden.name);
        let scheduler = Scheduler::new(model.clone(), SchedulerOptions::default()).unwrap();
        let generation = Generation::new(model, golden.prompt_ids.clone(), CallOptions::default()).unwrap();
        assert_eq!(scheduler.generate(generation).unwrap().ids, golden.ids, "{}", golden.name);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BeamGolden {
    name: String,
    prompt_ids: Vec<u32>,
    options: Value,
    sequences: Vec<Vec<u32>>,
    sequences_scores: Vec<f32>,
}

#[test]
fn beam_search_equals_transformers() {
    let model = tiny_model();
    let goldens: Vec<BeamGolden> =
        serde_json::from_str(&std::fs::read_to_string(goldens_dir().join("beam.json")).unwrap()).unwrap();
    assert!(goldens.iter().any(|g| g.name == "ends-on-eos"));
    for golden in goldens {
        let call = call_options(&golden.options);
        let outputs =
            nexttoken::generation::beam_search(model.clone(), golden.prompt_ids.clone(), call).unwrap();
        let sequences: Vec<Vec<u32>> = outputs.iter().map(|o| o.ids.clone()).collect();
        assert_eq!(sequences, golden.sequences, "{}", golden.name);
        for (output, theirs) in outputs.iter().zip(&golden.sequences_scores) {
            let ours = output.sequence_score.unwrap();
            assert!(
                (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1.0),
                "{}: {ours} vs {theirs}",
                golden.name
            );
        }
        if golden.name == "ends-on-eos" {
            assert_eq!(outputs[0].stop_reason, Some(StopReason::Eos));
        }
    }
}

/// A length as large as `generation_config.json` can write (`max_new_tokens`: 2^64 - 1) runs beam
/// search to the context limit: prompt length + budget once overflowed, and the search ended
/// after one token.
#[test]
fn beam_search_with_the_largest_length_runs_to_the_context_limit() {
    let model = tiny_model();
    let n_positions = model.config().n_positions;
    let call = CallOptions {
        num_beams: Some(2),
        max_new_tokens: Some(usize::MAX),
        eos_token_id: Some(vec![]),
        ..Default::default()
    };
    let outputs =
        nexttoken::generation::beam_search(model.clone(), vec![464; n_positions - 3], call).unwrap();
    assert_eq!(outputs[0].ids.len(), n_positions);
}
