//! Generation against transformers: greedy `generate` goldens token for token (through the
//! scheduler, as Node runs it), and each logits processor against transformers' own processor
//! output on a real scores row.

use std::path::PathBuf;
use std::sync::Arc;

use nexttoken::generation::apply_processors;
use nexttoken::{
    CallOptions, GenerateOptions, Generation, Pretrained, Scheduler, SchedulerOptions, StopReason,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessorCase {
    name: String,
    processor: String,
    params: Value,
    input_ids: Vec<u32>,
    input_row: usize,
    output_row: usize,
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

/// The options that switch on exactly `case`'s processor(s) with its parameters.
fn options_for(case: &ProcessorCase) -> GenerateOptions {
    let p = &case.params;
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
        "combined" => GenerateOptions {
            do_sample: true,
            temperature: float(p, "temperature").unwrap_or(1.0),
            top_k: number(p, "topK").unwrap_or(0),
            top_p: float(p, "topP").unwrap_or(1.0),
            min_p: float(p, "minP"),
            repetition_penalty: float(p, "repetitionPenalty").unwrap_or(1.0),
            no_repeat_ngram_size: number(p, "noRepeatNgramSize").unwrap_or(0),
            ..Default::default()
        },
        other => panic!("unknown processor {other}"),
    }
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
    let row = |r: usize| &rows[r * v..(r + 1) * v];
    assert!(goldens.cases.len() >= 12);
    for case in &goldens.cases {
        let mut scores = row(case.input_row).to_vec();
        apply_processors(&mut scores, &case.input_ids, &options_for(case));
        let expected = row(case.output_row);
        let mut filtered = 0;
        for (id, (ours, theirs)) in scores.iter().zip(expected).enumerate() {
            if theirs.is_infinite() || ours.is_infinite() {
                assert_eq!(ours, theirs, "{}: token {id} filtered differently", case.name);
                filtered += 1;
            } else {
                // Same f32 operations on the same inputs; allow one rounding step.
                let tolerance = 1e-6 * theirs.abs().max(1.0);
                assert!((ours - theirs).abs() <= tolerance, "{}: token {id}: {ours} vs {theirs}", case.name);
            }
        }
        eprintln!("{}: {filtered} tokens filtered", case.name);
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
