//! The Rust half of the GPU check (`scripts/gpu-check.sh` runs it; issue 24): a self-contained
//! binary, built where there is no GPU (`scripts/cuda-build.sh`), that a GPU machine without
//! cargo or Node runs. Through the core's public API only, it prints
//!
//! - checks on the tiny fixture model: logits on the device against the CPU and against
//!   transformers' goldens (fp32), greedy ids against the goldens, each row of a batch against
//!   its prompt alone; and for each benchmark model, device logits against the CPU's (fp32);
//! - timings for each benchmark model and dtype: pp128 / pp512 (one forward pass), tg128 (one
//!   stream) and batch decoding at each batch size, through the scheduler as Node runs them, with
//!   the weights' bytes read per second against the card's copy bandwidth when given.
//!
//! It exits with 1 when a check fails (after the timings, which are printed either way).
//!
//!     gpu_check --device cuda --fixtures __test__/fixtures [--dtypes fp32,bf16]
//!               [--batch-sizes 1,16,64,256] [--copy-gbps 2900] [MODEL_DIR...]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use nexttoken::{
    CallOptions, Config, Gpt2, LoadOptions, Output, Positions, Pretrained, SchedulerOptions, WeightDtype,
};
use serde::Deserialize;

/// The largest difference allowed between device and CPU logits (fp32) and from the goldens.
const LOGITS_TOLERANCE: f32 = 1e-3;
/// Tokens each row decodes in the batch timings (a row's first token comes from its prompt).
const BATCH_NEW_TOKENS: usize = 32;
/// Timed repetitions of a prefill, after one untimed warm-up; the median is printed.
const PREFILL_REPS: usize = 3;

struct Args {
    device: String,
    fixtures: PathBuf,
    dtypes: Vec<WeightDtype>,
    batch_sizes: Vec<usize>,
    copy_gbps: Option<f64>,
    models: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        device: "cuda".into(),
        fixtures: "__test__/fixtures".into(),
        dtypes: vec![WeightDtype::F32, WeightDtype::Bf16],
        batch_sizes: vec![1, 16, 64, 256],
        copy_gbps: None,
        models: Vec::new(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or(format!("{word} needs a value"));
        match word.as_str() {
            "--device" => args.device = value()?,
            "--fixtures" => args.fixtures = value()?.into(),
            "--dtypes" => {
                let names = value()?;
                args.dtypes = names
                    .split(',')
                    .map(WeightDtype::parse)
                    .collect::<nexttoken::Result<_>>()
                    .map_err(|e| e.to_string())?
            }
            "--batch-sizes" => {
                let sizes = value()?;
                args.batch_sizes = sizes
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--batch-sizes: {e}"))?
            }
            "--copy-gbps" => {
                args.copy_gbps = Some(value()?.parse().map_err(|e| format!("--copy-gbps: {e}"))?)
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            model => args.models.push(model.into()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("gpu_check: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("gpu_check: some checks FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("gpu_check: {} ({err})", err.code());
            ExitCode::FAILURE
        }
    }
}

/// Prints one check's line; false when it failed.
fn report(name: &str, passed: bool, detail: String) -> bool {
    println!("  [{}] {name}: {detail}", if passed { "ok" } else { "FAILED" });
    passed
}

fn run(args: &Args) -> nexttoken::Result<bool> {
    println!("== checks on {} (tiny fixture model, fp32)", args.device);
    let tiny = args.fixtures.join("tiny-gpt2");
    let mut passed = check_logits(&tiny, &args.fixtures.join("goldens"), &args.device)?;
    let gpt2 = load(&tiny, &args.device, WeightDtype::F32, 8)?;
    passed &= check_greedy(&gpt2, &args.fixtures.join("goldens/generate.json"))?;
    passed &= check_batch(&gpt2, &args.fixtures.join("goldens/batch.json"))?;
    if args.device != "cpu" {
        for model in &args.models {
            passed &= check_model_logits(model, &args.device)?;
        }
    }
    for model in &args.models {
        for &dtype in &args.dtypes {
            time_model(model, dtype, args)?;
        }
    }
    Ok(passed)
}

fn load(dir: &Path, device: &str, dtype: WeightDtype, max_batch_size: usize) -> nexttoken::Result<Gpt2> {
    let options = LoadOptions { device: Some(device.into()), dtype: Some(dtype), ..LoadOptions::default() };
    // No prefix reuse: timed prompts must be computed, not copied from the previous run's.
    let scheduler = SchedulerOptions { max_batch_size, prefix_cache_bytes: 0, ..SchedulerOptions::default() };
    Gpt2::load(dir.to_str().expect("a UTF-8 path"), &options, scheduler)
}

fn load_pretrained(dir: &Path, device: &str) -> nexttoken::Result<Pretrained> {
    let options =
        LoadOptions { device: Some(device.into()), dtype: Some(WeightDtype::F32), ..LoadOptions::default() };
    Pretrained::load_with(dir.to_str().expect("a UTF-8 path"), &options)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "logits of different lengths");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogitsGoldens {
    vocab_size: usize,
    file: String,
    cases: Vec<LogitsCase>,
}

#[derive(Deserialize)]
struct LogitsCase {
    name: String,
    ids: Vec<u32>,
    /// The positions whose rows the golden file holds, from row `row` on.
    positions: Vec<usize>,
    row: usize,
}

/// Every logits golden: the device's rows against the CPU's and against transformers'.
fn check_logits(tiny: &Path, goldens: &Path, device: &str) -> nexttoken::Result<bool> {
    let cases: LogitsGoldens = read_json(&goldens.join("logits.json"));
    let rows: Vec<f32> = std::fs::read(goldens.join(&cases.file))
        .expect("the logits goldens")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let on_device = load_pretrained(tiny, device)?;
    let on_cpu = load_pretrained(tiny, "cpu")?;
    let vocab = cases.vocab_size;
    let mut passed = true;
    for case in &cases.cases {
        let got = on_device.logits(&case.ids, Positions::All)?;
        let cpu = on_cpu.logits(&case.ids, Positions::All)?;
        let vs_cpu = max_abs_diff(&got, &cpu);
        let vs_golden = case
            .positions
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let golden = &rows[(case.row + i) * vocab..(case.row + i + 1) * vocab];
                max_abs_diff(&got[p * vocab..(p + 1) * vocab], golden)
            })
            .fold(0.0, f32::max);
        passed &= report(
            &format!("logits {} ({} tokens)", case.name, case.ids.len()),
            vs_cpu <= LOGITS_TOLERANCE && vs_golden <= LOGITS_TOLERANCE,
            format!(
                "max|diff| vs CPU {vs_cpu:.2e}, vs transformers {vs_golden:.2e} (<= {LOGITS_TOLERANCE:.0e})"
            ),
        );
    }
    Ok(passed)
}

/// Device logits against the CPU's for a benchmark model: a 128-token prompt, every position.
fn check_model_logits(model: &Path, device: &str) -> nexttoken::Result<bool> {
    let on_device = load_pretrained(model, device)?;
    let ids = prompt_ids(on_device.config(), 0, 128);
    let got = on_device.logits(&ids, Positions::All)?;
    drop(on_device);
    let cpu = load_pretrained(model, "cpu")?.logits(&ids, Positions::All)?;
    let diff = max_abs_diff(&got, &cpu);
    Ok(report(
        &format!("logits {} (128 tokens)", model.display()),
        diff <= LOGITS_TOLERANCE,
        format!("max|diff| vs CPU {diff:.2e} (<= {LOGITS_TOLERANCE:.0e})"),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateGolden {
    name: String,
    prompt_ids: Vec<u32>,
    options: serde_json::Value,
    ids: Vec<u32>,
}

/// Greedy generations against transformers' ids.
fn check_greedy(gpt2: &Gpt2, goldens: &Path) -> nexttoken::Result<bool> {
    let goldens: Vec<GenerateGolden> = read_json(goldens);
    let mut passed = true;
    for golden in goldens.iter().filter(|g| g.options["doSample"] == false) {
        let call = CallOptions::from_json(&golden.options.to_string())?;
        let output = gpt2.generate(vec![golden.prompt_ids.clone()], call)?.remove(0);
        let same = output.ids == golden.ids;
        let first_difference = output.ids.iter().zip(&golden.ids).position(|(a, b)| a != b);
        passed &= report(
            &format!("greedy {}", golden.name),
            same,
            match (same, first_difference) {
                (true, _) => format!("{} ids equal transformers'", output.ids.len()),
                (false, Some(at)) => format!("ids differ from transformers' at {at}"),
                (false, None) => format!("{} ids, transformers {}", output.ids.len(), golden.ids.len()),
            },
        );
    }
    Ok(passed)
}

#[derive(Deserialize)]
struct BatchGolden {
    options: BatchOptions,
    prompts: Vec<BatchPrompt>,
}

/// Of the batch's options, what a call sets (transformers' padding side is how it batches).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchOptions {
    max_new_tokens: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchPrompt {
    prompt_ids: Vec<u32>,
    new_ids: Vec<u32>,
}

/// A batch's rows against transformers' left-padded batch and against each prompt alone.
fn check_batch(gpt2: &Gpt2, goldens: &Path) -> nexttoken::Result<bool> {
    let golden: BatchGolden = read_json(goldens);
    let call = CallOptions { max_new_tokens: Some(golden.options.max_new_tokens), ..CallOptions::default() };
    let prompts: Vec<Vec<u32>> = golden.prompts.iter().map(|p| p.prompt_ids.clone()).collect();
    let together = gpt2.generate(prompts.clone(), call.clone())?;
    let mut passed = true;
    for (row, (prompt, batched)) in prompts.into_iter().zip(&together).enumerate() {
        let alone = gpt2.generate(vec![prompt], call.clone())?.remove(0);
        let vs_golden = batched.new_ids == golden.prompts[row].new_ids;
        let vs_alone = batched.new_ids == alone.new_ids;
        passed &= report(
            &format!("batch row {row}"),
            vs_golden && vs_alone,
            format!("equals transformers' batch: {vs_golden}; equals the prompt alone: {vs_alone}"),
        );
    }
    Ok(passed)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `len` token ids of a made-up prompt, different for each `seed` (so that no two rows share a
/// prefix).
fn prompt_ids(config: &Config, seed: usize, len: usize) -> Vec<u32> {
    let vocab = config.vocab_size - 1; // not the last id, GPT-2's <|endoftext|>
    (0..len).map(|i| ((seed * 1_000_003 + i * 7919 + 13) % vocab) as u32).collect()
}

/// Bytes of weights one decoding step reads: every matrix of every layer and the token
/// embeddings (the output head); a row of the position embeddings and the vectors are noise.
fn weight_bytes_per_token(config: &Config, dtype: WeightDtype) -> f64 {
    let (e, inner) = (config.n_embd as f64, config.n_inner as f64);
    let matrices = config.n_layer as f64 * (4.0 * e * e + 2.0 * e * inner) + config.vocab_size as f64 * e;
    let bytes_per_weight = match dtype {
        WeightDtype::F32 => 4.0,
        WeightDtype::Bf16 | WeightDtype::F16 => 2.0,
        WeightDtype::Q8_0 => 34.0 / 32.0,
        WeightDtype::Q4_0 => 18.0 / 32.0,
    };
    matrices * bytes_per_weight
}

/// Decoding speed of a call's rows: tokens after each row's first (which its prompt's pass
/// yields), over the longest row's decoding time.
fn decode_tokens_per_second(outputs: &[Output]) -> f64 {
    let tokens: usize = outputs.iter().map(|o| o.timings.generated_tokens.saturating_sub(1)).sum();
    let seconds = outputs.iter().map(|o| o.timings.generated.as_secs_f64()).fold(0.0, f64::max);
    tokens as f64 / seconds
}

fn decode_call(tokens: usize) -> CallOptions {
    // No eos: every row decodes all its tokens.
    CallOptions { max_new_tokens: Some(tokens), eos_token_id: Some(vec![]), ..CallOptions::default() }
}

fn time_model(model: &Path, dtype: WeightDtype, args: &Args) -> nexttoken::Result<()> {
    let largest_batch = args.batch_sizes.iter().copied().max().unwrap_or(1);
    let start = Instant::now();
    let gpt2 = load(model, &args.device, dtype, largest_batch)?;
    let config = gpt2.pretrained().config().clone();
    println!(
        "== {} on {} in {} (loaded in {:.1} s)",
        model.display(),
        args.device,
        dtype.name(),
        start.elapsed().as_secs_f64()
    );
    for n in [128, 512] {
        let ids = prompt_ids(&config, 0, n);
        let mut times: Vec<f64> = (0..=PREFILL_REPS)
            .map(|_| {
                let start = Instant::now();
                gpt2.pretrained().logits(&ids, Positions::Last).map(|_| start.elapsed().as_secs_f64())
            })
            .skip(1)
            .collect::<nexttoken::Result<_>>()?;
        times.sort_by(f64::total_cmp);
        let t = times[times.len() / 2];
        println!("  pp{n}: {:.0} tok/s ({:.1} ms)", n as f64 / t, t * 1e3);
    }
    gpt2.generate(vec![prompt_ids(&config, 1, 16)], decode_call(8))?; // warm-up
    let single = gpt2.generate(vec![prompt_ids(&config, 2, 16)], decode_call(128))?;
    let tg = decode_tokens_per_second(&single);
    let gbps = tg * weight_bytes_per_token(&config, dtype) / 1e9;
    let of_copy = args.copy_gbps.map(|copy| format!(", {:.0}% of the copy bandwidth", 100.0 * gbps / copy));
    println!("  tg128: {tg:.0} tok/s, weights read at {gbps:.0} GB/s{}", of_copy.unwrap_or_default());
    for &b in &args.batch_sizes {
        let prompts = (0..b).map(|row| prompt_ids(&config, 10 + row, 32)).collect();
        let rows = gpt2.generate(prompts, decode_call(BATCH_NEW_TOKENS))?;
        println!("  batch decode B={b}: {:.0} tok/s", decode_tokens_per_second(&rows));
    }
    Ok(())
}
