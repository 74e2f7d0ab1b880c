//! Times the value channel's per-feature scoring on a wide reference, the
//! work that dominates a cross-conformal fold of a 3,000 × 2,500 fit
//! (docs/performance.md, "Wide reference"):
//!
//! ```sh
//! cargo run --release --example value_channel -- [N] [P] [ROWS]
//! ```
//!
//! Fits [`Marginals`] on `N` seeded continuous rows of `P` features (default
//! 2,700 × 2,500: a fold's training part), then scores `ROWS` (default 1,024)
//! of its members against their own support (`own = true`, as tuning does)
//! and `ROWS` new rows (`own = false`, as held-out members and patients),
//! and prints the time per surprisal and a checksum of the scores (so two
//! builds can be compared for identical output). Then it multiplies two
//! 1,500 × 1,500 matrices with faer, as fit does before it scores, and times
//! the new rows again: faer's vector kernels leave the processor's upper
//! vector state dirty, which made nof1's scalar code about 4× slower until
//! `nof1::cpu` cleared it (docs/performance.md, "Session 10").
#![allow(clippy::unwrap_used, clippy::expect_used)] // a probe: panics on bad input

use std::time::Instant;

use nof1::marginal::Marginals;
use nof1::rng::SplitMix64;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let n = args.first().copied().unwrap_or(2700);
    let p = args.get(1).copied().unwrap_or(2500);
    let rows = args.get(2).copied().unwrap_or(1024).min(n);
    let mut rng = SplitMix64::new(1);
    let values: Vec<f64> = (0..n * p).map(|_| rng.normal()).collect();
    let fresh: Vec<f64> = (0..rows * p).map(|_| 1.2 * rng.normal()).collect();
    let all: Vec<usize> = (0..n).collect();
    let t = Instant::now();
    let marginals = Marginals::fit(&values, p, &all);
    let fit_s = t.elapsed().as_secs_f64();
    let own_rows: Vec<&[f64]> = values.chunks_exact(p).take(rows).collect();
    let new_rows: Vec<&[f64]> = fresh.chunks_exact(p).collect();
    let mut checksum = 0.0;
    let mut report = |label: &str, picked: &[&[f64]], own: bool| {
        let t = Instant::now();
        let mut scores = Vec::with_capacity(picked.len());
        for chunk in picked.chunks(64) {
            scores.extend(marginals.score_rows(chunk, own));
        }
        let s = t.elapsed().as_secs_f64();
        let sum: f64 = scores.iter().map(|v| v.score).sum();
        checksum += sum;
        println!(
            "{label}: {} rows × {p} features in {s:.3} s, {:.1} ns per surprisal (sum of scores {sum:.12e})",
            picked.len(),
            1e9 * s / (picked.len() * p) as f64
        );
    };
    println!("fit on {n} rows × {p} features: {fit_s:.3} s");
    report("own = true ", &own_rows, true);
    report("own = false", &new_rows, false);
    let a = faer::Mat::<f64>::from_fn(1500, 1500, |i, j| ((i * 7 + j * 3) % 11) as f64);
    let mut product = faer::Mat::<f64>::zeros(1500, 1500);
    faer::linalg::matmul::matmul(
        product.as_mut(),
        faer::Accum::Replace,
        a.as_ref(),
        a.as_ref(),
        1.0,
        faer::Par::Seq,
    );
    println!(
        "after a faer product (trace {}):",
        product.diagonal().column_vector().sum()
    );
    report("own = false", &new_rows, false);
    println!("checksum {checksum:.15e}");
}
