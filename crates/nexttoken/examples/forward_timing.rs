//! Times the forward pass alone, without Node or the peers: prefill of 128 and 512 tokens,
//! single-sequence decoding at depth 16 and 512, and one batched decode step per batch size.
//! For quick before/after checks of a kernel change; `npm run bench` is the real benchmark.
//!
//!     cargo run --release --example forward_timing -- bench/models/gpt2-124m [reps] [pp|tg|batch] [dtype]

use std::time::Instant;

use nexttoken::{KvCache, LoadOptions, Positions, Pretrained, WeightDtype};

// The allocator of the Node addon, so that timings match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> nexttoken::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "bench/models/gpt2-124m".into());
    let reps: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let only = args.next().unwrap_or_default(); // "pp", "tg" or "batch": just that part
    let runs = |part: &str| only.is_empty() || only == "all" || only == part;
    let dtype = args.next().map(|name| WeightDtype::parse(&name)).transpose()?;
    let start = Instant::now();
    let model = Pretrained::load_with(&dir, &LoadOptions { dtype, ..LoadOptions::default() })?;
    println!("load ({}): {:.0} ms", model.network.dtype(), start.elapsed().as_secs_f64() * 1e3);
    let network = &model.network;
    let vocab = network.config().vocab_size as u32;
    let ids: Vec<u32> = (0..1024u32).map(|i| (i * 7919 + 13) % vocab).collect();

    for n in [128, 512].into_iter().filter(|_| runs("pp")) {
        let times = (0..reps + 1)
            .map(|_| {
                let start = Instant::now();
                network.forward(&ids[..n], &mut KvCache::new(), Positions::Last).unwrap();
                start.elapsed().as_secs_f64()
            })
            .skip(1)
            .collect();
        let t = median(times);
        println!("pp{n}: {:.1} tok/s ({:.1} ms)", n as f64 / t, t * 1e3);
    }

    for depth in [16, 512].into_iter().filter(|_| runs("tg")) {
        let mut cache = KvCache::new();
        network.forward(&ids[..depth], &mut cache, Positions::Last)?;
        let mut times = Vec::new();
        for i in 0..64 {
            let start = Instant::now();
            network.forward(&ids[depth + i..depth + i + 1], &mut cache, Positions::Last)?;
            times.push(start.elapsed().as_secs_f64());
        }
        let t = median(times);
        println!("tg @ {depth}: {:.1} tok/s ({:.2} ms/token)", 1.0 / t, t * 1e3);
    }

    for b in [1, 2, 4, 8, 16].into_iter().filter(|_| runs("batch")) {
        let mut caches: Vec<KvCache> = (0..b)
            .map(|s| {
                let mut cache = KvCache::new();
                network.forward(&ids[s..s + 32], &mut cache, Positions::Last).unwrap();
                cache
            })
            .collect();
        let mut times = Vec::new();
        for i in 0..32 {
            let mut batch: Vec<(&[u32], &mut KvCache)> =
                caches.iter_mut().enumerate().map(|(s, c)| (&ids[100 + s + i..101 + s + i], c)).collect();
            let start = Instant::now();
            network.forward_batch(&mut batch)?;
            times.push(start.elapsed().as_secs_f64());
        }
        let t = median(times);
        println!("batch {b:2}: {:.1} tok/s ({:.2} ms/step)", b as f64 / t, t * 1e3);
    }
    Ok(())
}
