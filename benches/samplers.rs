//! Single-core sampler throughput (values per second), for issue-5 style figures.
//!
//! Run: `cargo bench --bench samplers` (a plain binary: prints one line per sampler).
//! Each figure is the best of several passes over one reused, already-touched buffer of
//! 1 Mi values (4 MiB, a few of the writer's 1 MiB pieces), so page faults and
//! allocation are not timed.

use specc::init::rng::Stream;
use specc::init::sample::Plan;
use specc::init::Format;
use std::time::Instant;

const N: usize = 1 << 20;
const PASSES: usize = 64;

/// Best values-per-second of `PASSES` timed calls of `f` (each produces `N` values).
fn best(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..PASSES {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    N as f64 / best / 1e6
}

fn rate(name: &str, plan: &Plan) {
    let mut v = vec![0f32; N];
    let r = best(|| {
        plan.fill_f32(0, &mut v);
        std::hint::black_box(&v);
    });
    println!("{name:<28} {r:>8.0} M values/s (single core)");
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
    );
    rate(
        "normal f32",
        &Plan::Normal {
            stream: s,
            mean: 0.0,
            std: 1.0,
        },
    );
    rate(
        "truncated normal f32",
        &Plan::truncated(s, 0.0, 1.0, -2.0, 2.0),
    );
    let normal = Plan::Normal {
        stream: s,
        mean: 0.0,
        std: 1.0,
    };
    let f64_rows = [
        (
            "uniform f64",
            Plan::Uniform {
                stream: s,
                low: -1.0,
                high: 1.0,
            },
            Format::V2,
        ),
        ("normal f64 (format 1)", normal.clone(), Format::V1),
        ("normal f64", normal, Format::V2),
        (
            "truncated normal f64",
            Plan::truncated(s, 0.0, 1.0, -2.0, 2.0),
            Format::V2,
        ),
    ];
    for (name, plan, format) in f64_rows {
        let mut v = vec![0f64; N];
        let r = best(|| {
            plan.fill_f64_in(format, 0, &mut v);
            std::hint::black_box(&v);
        });
        println!("{name:<28} {r:>8.0} M values/s (single core)");
    }
    let mut words = vec![0u32; N];
    let r = best(|| {
        s.words(0, &mut words);
        std::hint::black_box(&words);
    });
    println!("{:<28} {r:>8.0} M words/s (single core)", "philox4x32-10");
}
