//! `generate` options: a model's `generation_config.json` and a call's options, resolved
//! (`GenerateOptions::resolve`), checked (`validate`) and turned into a token budget
//! (`new_token_budget`) as a generation starts, then used by the logits processors for a step.
//! For any values: Ok or a coded error (`ERR_INVALID_ARG`, `ERR_CONTEXT_OVERFLOW`, and
//! `ERR_MODEL_INVALID` for the file), never a panic.
//! Input: `generation_config.json NUL call options (JSON) NUL bytes`, the bytes choosing the
//! vocabulary, the context, the prompt and the logits.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use nexttoken::generation::{apply_processors, Context};
use nexttoken::{CallOptions, GenerateOptions, GenerationConfig};

fn run(json: &[u8], call_json: &[u8], rest: &[u8]) -> Result<()> {
    let model = match std::str::from_utf8(json).map(GenerationConfig::from_json) {
        Ok(Ok(model)) => model,
        Ok(Err(err)) => {
            assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            return Ok(());
        }
        Err(_) => GenerationConfig::default(), // not text: the file is absent, as it were
    };
    // The call's options as JS passes them (camelCase JSON, read by the same serde code); what is
    // not valid is a call JS would have refused, so it runs as a call that sets nothing.
    let call = std::str::from_utf8(call_json).ok().and_then(|text| CallOptions::from_json(text).ok());
    let call = call.unwrap_or_default();
    let mut u = Unstructured::new(rest);
    // A small vocabulary, so that token ids the bytes choose are often in it.
    let vocab_size = u.int_in_range(1..=64)?;
    let n_positions = u.int_in_range(1..=1024)?;
    let prompt: Vec<u32> =
        u.arbitrary_iter()?.map(|id| id.map(|id: u32| id % vocab_size as u32)).collect::<Result<_>>()?;
    // A generation starts from 1 to n_positions tokens (`Network::check_input` refuses others).
    let mut prompt = if prompt.is_empty() { vec![0] } else { prompt };
    prompt.truncate(n_positions);

    let options = GenerateOptions::resolve(call, &model);
    if let Err(err) = options.validate(vocab_size) {
        assert_eq!(err.code(), "ERR_INVALID_ARG", "{err}");
        return Ok(());
    }
    let budget = match options.new_token_budget(prompt.len(), n_positions) {
        Ok(budget) => budget,
        Err(err) => {
            assert!(matches!(err.code(), "ERR_INVALID_ARG" | "ERR_CONTEXT_OVERFLOW"), "{err}");
            return Ok(());
        }
    };
    assert!(budget >= 1, "a generation that starts may generate a token");
    let _ = (options.rng_seed(), options.processes_scores());

    // One step of the processors with the options that passed, on logits the bytes choose.
    let mut scores: Vec<f32> = (0..vocab_size).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    let new_tokens = u.int_in_range(0..=budget - 1)?.min(prompt.len() - 1);
    let at = Context {
        ids: &prompt,
        prompt_width: options.prompt_width(prompt.len() - new_tokens),
        new_tokens,
        last: new_tokens + 1 >= budget,
    };
    apply_processors(&mut scores, &at, &options);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let (json, rest) = nexttoken_fuzz::split_at_nul(data);
    let (call_json, rest) = nexttoken_fuzz::split_at_nul(rest);
    let _ = run(json, call_json, rest);
});
