//! Orthogonal init (blocked reflectors) beside `torch.nn.init.orthogonal_`: time per
//! matrix and ‖QᵀQ − I‖ (max entry, on 64 columns), for bench/run.sh.
//!
//! Run: `cargo bench --bench orthogonal -- [f32|f64] [ROWSxCOLS ...]` (default f32, what an
//! f32 tensor gets in format 3; f64 is format 2's arithmetic, and format 3's for f64
//! tensors; shapes default to 1024x1024 4096x4096 11008x4096); `RAYON_NUM_THREADS` sets
//! the threads.

use specc::init::orthogonal::orthogonal_q;
use specc::init::rng::Stream;
use std::time::Instant;

fn main() {
    let shapes: Vec<(usize, usize)> = std::env::args()
        .skip(1)
        .filter(|a| a.contains('x'))
        .map(|a| {
            let (r, c) = a.split_once('x').expect("ROWSxCOLS");
            (r.parse().expect("rows"), c.parse().expect("cols"))
        })
        .collect();
    let f64_arithmetic = std::env::args().any(|a| a == "f64");
    let shapes = if shapes.is_empty() {
        vec![(1024, 1024), (4096, 4096), (11008, 4096)]
    } else {
        shapes
    };
    for (rows, cols) in shapes {
        let (m, n) = (rows.max(cols), rows.min(cols));
        let stream = Stream::new(0, "bench", "values");
        let mut times = Vec::new();
        let mut q = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            q = if f64_arithmetic {
                orthogonal_q::<f64>(stream, m, n)
            } else {
                orthogonal_q::<f32>(stream, m, n)
            };
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        // Gram entries of 64 spread columns, after rounding to f32 (what a file holds).
        let picks: Vec<usize> = (0..64.min(n)).map(|i| i * n / 64.min(n)).collect();
        let mut worst: f64 = 0.0;
        for (x, &a) in picks.iter().enumerate() {
            for &b in &picks[x..] {
                let s: f64 = (0..m)
                    .map(|i| q[i * n + a] as f32 as f64 * q[i * n + b] as f32 as f64)
                    .sum();
                worst = worst.max((s - f64::from(u8::from(a == b))).abs());
            }
        }
        println!(
            "orthogonal {rows}x{cols} in {}: median {:.3} s (min {:.3}), threads {}, max|QtQ-I| {worst:.2e} (f32)",
            if f64_arithmetic { "f64" } else { "f32" },
            times[1],
            times[0],
            rayon::current_num_threads()
        );
    }
}
