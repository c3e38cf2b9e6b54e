//! Single-core sampler throughput (values per second), for issue-5 style figures.
//!
//! Run: `cargo bench --bench samplers` (a plain binary: prints one line per sampler).

use specc::init::rng::Stream;
use specc::init::sample::Plan;
use std::time::Instant;

fn rate(name: &str, plan: &Plan, f64s: bool) {
    let n = 1usize << 24;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        if f64s {
            let mut v = vec![0f64; n];
            plan.fill_f64(0, &mut v);
            std::hint::black_box(&v);
        } else {
            let mut v = vec![0f32; n];
            plan.fill_f32(0, &mut v);
            std::hint::black_box(&v);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{name:<28} {:>8.0} M values/s (single core)",
        n as f64 / best / 1e6
    );
}

fn main() {
    let s = Stream::new(0, "bench", "values");
    rate(
        "uniform f32",
        &Plan::Uniform {
            stream: s,
            low: -1.0,
            high: 1.0,
        },
        false,
    );
    rate(
        "normal f32",
        &Plan::Normal {
            stream: s,
            mean: 0.0,
            std: 1.0,
        },
        false,
    );
    let t = Plan::Truncated {
        stream: s,
        mean: 0.0,
        std: 1.0,
        alpha: 0.02275,
        beta: 0.97725,
        mirror: false,
        low: -2.0,
        high: 2.0,
    };
    rate("truncated normal f32", &t, false);
    rate(
        "normal f64",
        &Plan::Normal {
            stream: s,
            mean: 0.0,
            std: 1.0,
        },
        true,
    );
    let mut words = vec![0u32; 1 << 24];
    let t = Instant::now();
    s.words(0, &mut words);
    std::hint::black_box(&words);
    println!(
        "{:<28} {:>8.0} M words/s (single core)",
        "philox4x32-10",
        words.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}
