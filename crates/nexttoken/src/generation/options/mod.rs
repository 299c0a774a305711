//! `generate`'s options, from one table: every option is one row below, named and defaulted as in
//! transformers' `GenerationConfig`. The row makes the option a field of what a call sets
//! (`CallOptions`, read from JS by serde), of what a model's `generation_config.json` sets
//! (`GenerationConfig`), and of what a generation runs with (`GenerateOptions`, each option
//! resolved call > file > default), with its own check. `define.rs` says how.
//!
//! Adding an option: a row here, what it does where it takes effect (a processor, the
//! generator), its field in TypeScript's `GenerateOptions` and `OPTIONS` record
//! (`lib/generate-options.ts`), and a test.

#[macro_use]
mod define;
mod checks;
mod early_stopping;
mod file_values;
mod resolved;

pub use checks::Checking;
pub use early_stopping::EarlyStopping;

use crate::error::Result;
use checks::{
    any, at_least_one, biased_sequences, decay, positive, sampling_cutoff, sampling_fraction, sampling_mass,
    sampling_temperature, stop_strings, token_ids, token_sequences, unset_or_at_least_one, unset_or_token_id,
};

/// `(token sequence, bias)` pairs, transformers' `sequence_bias`.
pub type SequenceBias = Vec<(Vec<u32>, f32)>;

generate_options! {
    layered {
        /// Prompt + new tokens. Ignored when `max_new_tokens` is set. None: 20 new tokens
        /// (transformers adds its `max_length` default of 20 to the prompt length).
        max_length "maxLength": usize, check any;
        /// New tokens, at least 1; wins over `max_length`.
        max_new_tokens "maxNewTokens": usize, check unset_or_at_least_one;
        /// false: greedy (argmax of the processed scores). true: sample from their softmax.
        do_sample "doSample": bool = false, check any;
        temperature "temperature": f32 = 1.0, check sampling_temperature;
        /// Keep the k best scores when sampling; 0 turns it off.
        top_k "topK": usize = 50, check any;
        /// Keep the smallest set of tokens whose probability reaches top_p when sampling; 1 is off.
        top_p "topP": f32 = 1.0, check sampling_mass;
        /// Drop tokens less likely than min_p times the best one when sampling.
        min_p "minP": f32, check sampling_fraction;
        /// > 1 discourages tokens already in the sequence (prompt included); 1 is off.
        repetition_penalty "repetitionPenalty": f32 = 1.0, check positive;
        /// Forbid any n-gram of this size from appearing twice; 0 is off.
        no_repeat_ngram_size "noRepeatNgramSize": usize = 0, check any;
        /// Generation ends after any of these tokens (it is kept in the output). Empty: never.
        eos_token_id "eosTokenId": Vec<u32> = Vec::new(), read "file_values::one_or_many", check token_ids;
        /// transformers' padding token. Accepted and checked for compatibility; nothing is padded
        /// here, because batched sequences each keep their own cache (see `scheduler`).
        pad_token_id "padTokenId": u32, check unset_or_token_id;
        /// Ban eos while the sequence (padded prompt included) is shorter than this; 0 is off.
        min_length "minLength": usize = 0, check any;
        /// Ban eos until this many tokens are generated; wins over `min_length`, as in transformers.
        min_new_tokens "minNewTokens": usize, check any;
        /// Token sequences that must not be generated (the last token is banned after the rest).
        bad_words_ids "badWordsIds": Vec<Vec<u32>> = Vec::new(), check token_sequences;
        /// `(sequence, bias)`: the bias is added to the sequence's last token after the rest; one
        /// entry per sequence (a later one replaces an earlier one, as transformers' dict does).
        sequence_bias "sequenceBias": SequenceBias = Vec::new(), read "file_values::sequence_bias",
            check biased_sequences;
        /// Never generated.
        suppress_tokens "suppressTokens": Vec<u32> = Vec::new(), check token_ids;
        /// Not generated as the first new token.
        begin_suppress_tokens "beginSuppressTokens": Vec<u32> = Vec::new(), check token_ids;
        /// The last token the length allows is one of these.
        forced_eos_token_id "forcedEosTokenId": Vec<u32> = Vec::new(), read "file_values::one_or_many",
            check token_ids;
        /// `(start_index, decay_factor)`: once more than `start_index` tokens are generated, each
        /// eos token's score grows by |score| * (decay_factor^(new tokens - start_index) - 1).
        /// The factor is kept as f64, the Python float transformers raises to the power.
        exponential_decay_length_penalty "exponentialDecayLengthPenalty": (usize, f64), check decay;
        /// Locally typical sampling: keep the tokens nearest the entropy up to this mass; 1 is off.
        typical_p "typicalP": f32 = 1.0, check sampling_mass;
        /// Drop tokens less likely than this when sampling; 0 is off.
        epsilon_cutoff "epsilonCutoff": f32 = 0.0, check sampling_cutoff;
        /// Drop tokens less likely than min(eta, sqrt(eta) * e^-entropy) when sampling; 0 is off.
        eta_cutoff "etaCutoff": f32 = 0.0, check sampling_cutoff;
        /// Log-softmax after every processor, so that processed scores are log-probabilities.
        renormalize_logits "renormalizeLogits": bool = false, check any;
        /// transformers' `stop_strings`: generation ends once the whole text (prompt included)
        /// ends with one of these or with a token that overhangs one; the text keeps it.
        stop_strings "stopStrings": Vec<String> = Vec::new(), read "file_values::one_or_many",
            check stop_strings;
        /// Continuations of one prompt; more than one needs sampling (or beams).
        num_return_sequences "numReturnSequences": usize = 1, check at_least_one;
        /// Beam search with this many beams when above 1 (greedy only).
        num_beams "numBeams": usize = 1, check at_least_one;
        /// Beam search: a finished sequence scores sum(logprobs) / new_length^length_penalty.
        length_penalty "lengthPenalty": f32 = 1.0, check any;
        /// Beam search: when to stop.
        early_stopping "earlyStopping": EarlyStopping = EarlyStopping::Heuristic, check any;
    }
    call_only {
        /// Seeds the sampler: the same seed gives the same tokens. None: a random seed.
        seed "seed": u64, check any;
        /// One-token biases (OpenAI's and llama.cpp's `logit_bias`), merged into `sequence_bias`
        /// as the options resolve (so empty once resolved).
        logit_bias "logitBias": Vec<(u32, f32)> = Vec::new(), check any;
        /// Generation ends when the completion contains one of these; the result ends before it.
        stop "stop": Vec<String> = Vec::new(), check stop_strings;
        /// Report the k most likely tokens at every step (from the same forward pass); 0 is off.
        top_alternatives "topAlternatives": usize = 0, check any;
        /// Rank the alternatives under the processed distribution instead of the model's.
        processed_alternatives "processedAlternatives": bool = false, check any;
        /// Give each step's log-probability under the processed distribution (`Step::score`).
        output_scores "outputScores": bool = false, check any;
        /// Which of the `num_return_sequences` continuations this generation is: its seed is
        /// derived from `seed` and it (see `rng_seed`). Set by `Gpt2::start` for each row.
        sequence_index "sequenceIndex": usize = 0, check any;
        /// The row's batch is left-padded to this many tokens (transformers' batched `generate`):
        /// `max_length` and the default length count from it instead of from the row's own prompt.
        /// Set by `Gpt2::start` (the call's longest prompt).
        padded_length "paddedLength": usize, check any;
    }
    file_only {
        /// Where generation from an empty input starts.
        bos_token_id: u32;
    }
}
