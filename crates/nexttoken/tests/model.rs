//! Every kind of generation started from the model handle, `Gpt2::start` (through
//! `Gpt2::generate`, which waits for it): beam search routed on `numBeams` and equal to
//! transformers', the continuations of `numReturnSequences` reading their prompt once, a batch
//! counting lengths from its longest prompt, and what a stream cannot read.

use std::path::PathBuf;

use nexttoken::{Call, CallOptions, Gpt2, LoadOptions, Reading, SchedulerOptions};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

fn tiny_gpt2() -> Gpt2 {
    let dir = fixtures().join("tiny-gpt2");
    Gpt2::load(dir.to_str().unwrap(), &LoadOptions::default(), SchedulerOptions::default()).unwrap()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BeamGolden {
    name: String,
    prompt_ids: Vec<u32>,
    options: serde_json::Value,
    sequences: Vec<Vec<u32>>,
}

#[test]
fn beam_search_is_routed_on_num_beams_and_equals_transformers() {
    let gpt2 = tiny_gpt2();
    let text = std::fs::read_to_string(fixtures().join("goldens/beam.json")).unwrap();
    let goldens: Vec<BeamGolden> = serde_json::from_str(&text).unwrap();
    for golden in goldens {
        let call = CallOptions::from_json(&golden.options.to_string()).unwrap();
        let outputs = gpt2.generate(vec![golden.prompt_ids.clone()], call).unwrap();
        let ids: Vec<Vec<u32>> = outputs.into_iter().map(|output| output.ids).collect();
        assert_eq!(ids, golden.sequences, "{}", golden.name);
    }
}

#[test]
fn the_continuations_of_a_prompt_read_it_once_and_the_first_is_the_seeded_call_alone() {
    let gpt2 = tiny_gpt2();
    let prompt = gpt2.pretrained().tokenizer.encode("Once upon a time, generative models").unwrap();
    let sampled = |n: Option<usize>| CallOptions {
        do_sample: Some(true),
        seed: Some(7),
        max_new_tokens: Some(8),
        num_return_sequences: n,
        eos_token_id: Some(vec![]),
        ..Default::default()
    };
    let three = gpt2.generate(vec![prompt.clone()], sampled(Some(3))).unwrap();
    assert_eq!(three.len(), 3);
    let alone = gpt2.generate(vec![prompt.clone()], sampled(None)).unwrap();
    assert_eq!(three[0].ids, alone[0].ids, "continuation 0 is seeded as the call alone");
    assert!(
        three[1].new_ids != three[2].new_ids || three[0].new_ids != three[1].new_ids,
        "each its own seed"
    );
    let cached: Vec<usize> = three.iter().map(|output| output.timings.cached_prompt_tokens).collect();
    assert_eq!(
        cached,
        vec![0, prompt.len() - 1, prompt.len() - 1],
        "the first reads the prompt, the others copy it"
    );
}

#[test]
fn a_batch_counts_max_length_from_its_longest_prompt() {
    let gpt2 = tiny_gpt2();
    let tokenizer = &gpt2.pretrained().tokenizer;
    let prompts =
        vec![tokenizer.encode("Hello").unwrap(), tokenizer.encode("Once upon a time, there").unwrap()];
    let longest = prompts[1].len();
    let call =
        CallOptions { max_length: Some(longest + 4), eos_token_id: Some(vec![]), ..Default::default() };
    let outputs = gpt2.generate(prompts, call).unwrap();
    assert_eq!(outputs.iter().map(|o| o.new_ids.len()).collect::<Vec<_>>(), vec![4, 4]);
}

#[test]
fn a_stream_takes_neither_beams_nor_several_continuations() {
    let gpt2 = tiny_gpt2();
    let refused = |call: CallOptions| match gpt2.start(vec![vec![464, 3290]], call, Reading::Stream, None) {
        Ok(_) => panic!("a stream of this was started"),
        Err(err) => err.code(),
    };
    assert_eq!(refused(CallOptions { num_beams: Some(2), ..Default::default() }), "ERR_INVALID_ARG");
    let several = CallOptions { do_sample: Some(true), num_return_sequences: Some(2), ..Default::default() };
    assert_eq!(refused(several.clone()), "ERR_INVALID_ARG");
    assert!(matches!(
        gpt2.start(vec![vec![464, 3290]], several, Reading::Results, None).unwrap(),
        Call::Generations(rows) if rows.len() == 2
    ));
}
