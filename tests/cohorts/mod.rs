//! Used by the library's integration tests (`tests/properties.rs`,
//! `tests/calibration.rs`, `tests/guarantee.rs`, `tests/rare_values.rs`):
//! seeded synthetic cohorts, table builders, a field-by-field bitwise
//! comparison of assessments and binomial bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure
#![allow(dead_code)]

use nof1::rng::SplitMix64;
use nof1::{Assessment, Table, Verdict};

/// Feature names `f0, f1, …`.
pub fn names(p: usize) -> Vec<String> {
    (0..p).map(|j| format!("f{j}")).collect()
}

/// Row ids `{prefix}0, {prefix}1, …`.
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// An in-memory table with features `f0…` and ids `{prefix}0…`.
pub fn table(prefix: &str, p: usize, values: Vec<f64>) -> Table {
    assert_eq!(values.len() % p, 0, "values shape");
    let n = values.len() / p;
    Table::from_rows(ids(prefix, n), names(p), values).expect("table shape")
}

/// A Gaussian population with low-rank structure: `x = offset + scale ⊙ (B f + σ e)`
/// with `f ~ N(0, I_rank)`, `e ~ N(0, I_p)`. The loadings `B`, the per-feature
/// offsets and scales are drawn once from `seed`, so every sample of the same
/// `LowRank` is exchangeable with every other.
#[derive(Debug, Clone)]
pub struct LowRank {
    /// Number of features.
    pub p: usize,
    /// Number of latent factors.
    pub rank: usize,
    /// Row-major `p × rank` loadings.
    basis: Vec<f64>,
    /// Noise standard deviation around the low-rank part.
    noise: f64,
    offset: Vec<f64>,
    scale: Vec<f64>,
}

impl LowRank {
    /// A population with `p` features, `rank` factors (with decreasing
    /// strengths 3, 3/2, 3/3, …) and isotropic noise `noise`.
    pub fn new(p: usize, rank: usize, noise: f64, seed: u64) -> LowRank {
        let mut rng = SplitMix64::new(seed ^ 0x10_5eed);
        let mut basis = vec![0.0; p * rank];
        for j in 0..p {
            for r in 0..rank {
                basis[j * rank + r] = rng.normal() * 3.0 / (r as f64 + 1.0);
            }
        }
        // Offsets and scales differ per feature so that standardisation matters.
        let offset = (0..p).map(|_| 10.0 * rng.normal()).collect();
        let scale = (0..p).map(|_| (2.0 * rng.normal()).exp()).collect();
        LowRank {
            p,
            rank,
            basis,
            noise,
            offset,
            scale,
        }
    }

    /// `n` rows, row-major; `spread` multiplies the centred values (1 = the
    /// population itself).
    pub fn sample(&self, rng: &mut SplitMix64, n: usize, spread: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * self.p);
        let mut f = vec![0.0; self.rank];
        for _ in 0..n {
            for v in f.iter_mut() {
                *v = rng.normal();
            }
            for j in 0..self.p {
                let mut x = self.noise * rng.normal();
                for (r, fr) in f.iter().enumerate() {
                    x += self.basis[j * self.rank + r] * fr;
                }
                out.push(self.offset[j] + self.scale[j] * spread * x);
            }
        }
        out
    }

    /// The population mean of each feature.
    pub fn centre(&self) -> &[f64] {
        &self.offset
    }
}

/// One-sided binomial upper bound on a rate whose expectation is at most
/// `level`: `level + 3·sqrt(level(1 − level)/m)`.
pub fn binomial_bound(level: f64, m: usize) -> f64 {
    level + 3.0 * (level * (1.0 - level) / m as f64).sqrt()
}

/// Upper bound on the pooled rate of `p ≤ level` over several references,
/// each given as `(patients assessed, calibration size)`: `level + 3 SE`, where
/// the variance adds the binomial term over all patients and, per reference,
/// the variance of a conformal p-value's conditional level given its
/// calibration set, `level(1 − level)/(m + 2)` (a Beta variance). With few
/// references of ~100 members the second term dominates in the tails.
pub fn conformal_bound(level: f64, draws: &[(usize, usize)]) -> f64 {
    let total: usize = draws.iter().map(|d| d.0).sum();
    let v = level * (1.0 - level);
    let between: f64 = draws
        .iter()
        .map(|&(n, m)| {
            let w = n as f64 / total as f64;
            w * w * v / (m as f64 + 2.0)
        })
        .sum();
    level + 3.0 * (v / total as f64 + between).sqrt()
}

/// Fraction of assessments with the given verdict.
pub fn rate(out: &[Assessment], verdict: Verdict) -> f64 {
    out.iter().filter(|a| a.verdict == verdict).count() as f64 / out.len().max(1) as f64
}

fn same_f64(name: &str, a: f64, b: f64) -> Result<(), String> {
    if a.to_bits() == b.to_bits() {
        Ok(())
    } else {
        Err(format!(
            "{name}: {a:?} ({:#x}) != {b:?} ({:#x})",
            a.to_bits(),
            b.to_bits()
        ))
    }
}

fn same_f32(name: &str, a: f32, b: f32) -> Result<(), String> {
    if a.to_bits() == b.to_bits() {
        Ok(())
    } else {
        Err(format!("{name}: {a:?} != {b:?}"))
    }
}

/// Compares every field of two assessments, floats by their bits. Returns
/// the first difference, naming the field.
pub fn same_assessment(a: &Assessment, b: &Assessment) -> Result<(), String> {
    let ctx = |e: String| format!("patient {:?}: {e}", a.id);
    let check = || -> Result<(), String> {
        if a.id != b.id {
            return Err(format!("id: {:?} != {:?}", a.id, b.id));
        }
        if a.group != b.group {
            return Err(format!("group: {:?} != {:?}", a.group, b.group));
        }
        if a.verdict != b.verdict {
            return Err(format!("verdict: {} != {}", a.verdict, b.verdict));
        }
        same_f64("p_value", a.p_value, b.p_value)?;
        same_f64("novelty", a.novelty, b.novelty)?;
        same_f64("knn_distance", a.knn_distance, b.knn_distance)?;
        same_f64("p_novelty", a.p_novelty, b.p_novelty)?;
        same_f64("residual", a.residual, b.residual)?;
        same_f64("p_residual", a.p_residual, b.p_residual)?;
        same_f64("density", a.density, b.density)?;
        if a.support != b.support {
            return Err(format!("support: {} != {}", a.support, b.support));
        }
        same_f64("support_radius", a.support_radius, b.support_radius)?;
        same_f64("coverage", a.coverage, b.coverage)?;
        if a.neighbours.len() != b.neighbours.len() {
            return Err(format!(
                "neighbours: {} != {} entries",
                a.neighbours.len(),
                b.neighbours.len()
            ));
        }
        for (i, (x, y)) in a.neighbours.iter().zip(&b.neighbours).enumerate() {
            if x.index != y.index {
                return Err(format!("neighbours[{i}].index: {} != {}", x.index, y.index));
            }
            same_f32(&format!("neighbours[{i}].distance"), x.distance, y.distance)?;
        }
        if a.top_features.len() != b.top_features.len() {
            return Err(format!(
                "top_features: {} != {} entries",
                a.top_features.len(),
                b.top_features.len()
            ));
        }
        for (i, (x, y)) in a.top_features.iter().zip(&b.top_features).enumerate() {
            if x.feature != y.feature {
                return Err(format!(
                    "top_features[{i}].feature: {:?} != {:?}",
                    x.feature, y.feature
                ));
            }
            same_f64(&format!("top_features[{i}].z"), x.z, y.z)?;
            same_f64(
                &format!("top_features[{i}].residual"),
                x.residual,
                y.residual,
            )?;
            same_f64(
                &format!("top_features[{i}].distance_sq"),
                x.distance_sq,
                y.distance_sq,
            )?;
        }
        if a.embedding.len() != b.embedding.len() {
            return Err(format!(
                "embedding: {} != {} entries",
                a.embedding.len(),
                b.embedding.len()
            ));
        }
        for (i, (x, y)) in a.embedding.iter().zip(&b.embedding).enumerate() {
            same_f32(&format!("embedding[{i}]"), *x, *y)?;
        }
        if a.note != b.note {
            return Err(format!("note: {:?} != {:?}", a.note, b.note));
        }
        if a.pooled_fallback != b.pooled_fallback {
            return Err(format!(
                "pooled_fallback: {} != {}",
                a.pooled_fallback, b.pooled_fallback
            ));
        }
        // Catch-all for fields added after this comparison was written (Debug
        // prints floats in round-trip form).
        if format!("{a:?}") != format!("{b:?}") {
            return Err(format!("Debug forms differ:\n{a:?}\n{b:?}"));
        }
        Ok(())
    };
    check().map_err(ctx)
}

/// [`same_assessment`] over two runs of the same patients.
pub fn same_assessments(a: &[Assessment], b: &[Assessment]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} != {} assessments", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(b) {
        same_assessment(x, y)?;
    }
    Ok(())
}
