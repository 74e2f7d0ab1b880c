//! Small statistics for the audit: Clopper–Pearson intervals (through the
//! regularised incomplete beta function and its inverse), NaN-skipping
//! medians and Shannon entropy.

/// Confidence level of every interval in the audit.
pub const CONFIDENCE: f64 = 0.95;

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, 9 terms; relative
/// error below 1e-13 on the range used here).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The central `confidence` interval `[lo, hi]` of the number of successes
/// out of `n` under a Beta-Binomial(`n`, `a`, `b`) law: the smallest `lo` and
/// largest `hi` with `P(X < lo) ≤ (1 − confidence)/2` and
/// `P(X > hi) ≤ (1 − confidence)/2`.
///
/// With `a = l`, `b = m + 1 − l` and `l = ⌊α (m + 1)⌋` it is the law of the
/// number of exchangeable patients a split-conformal test with `m`
/// calibration members calls `invisible` at level `α`: given the calibration
/// set, the false-alarm rate is Beta(l, m + 1 − l) (Vovk 2012; Angelopoulos &
/// Bates 2021, §3.2), and the patients are independent given it.
pub fn beta_binomial_interval(n: usize, a: f64, b: f64, confidence: f64) -> (usize, usize) {
    let tail = (1.0 - confidence) / 2.0;
    let ln_beta = |x: f64, y: f64| ln_gamma(x) + ln_gamma(y) - ln_gamma(x + y);
    let ln_choose = |n: usize, k: usize| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
    };
    let pmf: Vec<f64> = (0..=n)
        .map(|k| {
            (ln_choose(n, k) + ln_beta(k as f64 + a, (n - k) as f64 + b) - ln_beta(a, b)).exp()
        })
        .collect();
    let mut lo = 0;
    let mut below = 0.0;
    while lo < n && below + pmf[lo] <= tail {
        below += pmf[lo];
        lo += 1;
    }
    let mut hi = n;
    let mut above = 0.0;
    while hi > 0 && above + pmf[hi] <= tail {
        above += pmf[hi];
        hi -= 1;
    }
    (lo, hi.max(lo))
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    const MAX_ITER: usize = 1000;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function `I_x(a, b)` for `a, b > 0`,
/// `x` clamped to `[0, 1]`: the CDF of Beta(a, b) at `x`. Non-decreasing in `x`.
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x.is_nan() || a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2);
    // otherwise use the symmetry I_x(a, b) = 1 − I_{1−x}(b, a).
    let v = if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    };
    v.clamp(0.0, 1.0)
}

/// The `q`-quantile of Beta(a, b) (`q` in `[0, 1]`), by bisection on
/// [`beta_cdf`] to within 1e-12.
pub fn beta_quantile(q: f64, a: f64, b: f64) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if beta_cdf(mid, a, b) < q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The exact (Clopper–Pearson) two-sided interval at level `confidence` for
/// a binomial proportion with `x` successes out of `n`. Returns `(lo, hi)` with
/// `0 ≤ lo ≤ x/n ≤ hi ≤ 1`; `(0, 1)` when `n == 0`. `x` is capped at `n`.
pub fn clopper_pearson(x: usize, n: usize, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let x = x.min(n);
    let tail = (1.0 - confidence) / 2.0;
    let (xf, nf) = (x as f64, n as f64);
    let lo = if x == 0 {
        0.0
    } else {
        beta_quantile(tail, xf, nf - xf + 1.0)
    };
    let hi = if x == n {
        1.0
    } else {
        beta_quantile(1.0 - tail, xf + 1.0, nf - xf)
    };
    // Bisection error must never push the bounds past the point estimate.
    let p = xf / nf;
    (lo.min(p), hi.max(p))
}

/// Median of the non-NaN values (mean of the two middle ones for an even
/// count); `None` when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// Shannon entropy in bits of a distribution given by non-negative
/// fractions (zero terms contribute nothing; the fractions are not renormalised).
pub fn entropy_bits(fractions: impl IntoIterator<Item = f64>) -> f64 {
    fractions
        .into_iter()
        .filter(|&f| f > 0.0)
        .map(|f| -f * f.log2())
        .sum::<f64>()
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_known_values() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-12));
        assert!(close(ln_gamma(2.0), 0.0, 1e-12));
        assert!(close(ln_gamma(5.0), 24.0_f64.ln(), 1e-12));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
        assert!(close(ln_gamma(101.0), 363.739_375_555_563_5, 1e-9));
    }

    #[test]
    fn beta_cdf_known_values() {
        // Beta(1, 1) is uniform.
        assert!(close(beta_cdf(0.3, 1.0, 1.0), 0.3, 1e-12));
        // Beta(2, 1): x².
        assert!(close(beta_cdf(0.5, 2.0, 1.0), 0.25, 1e-12));
        // Beta(2, 3) at 0.4: 1 − (1−x)^4 − 4x(1−x)^3 = 0.5248.
        assert!(close(beta_cdf(0.4, 2.0, 3.0), 0.5248, 1e-12));
        // Symmetric: I_0.5(a, a) = 0.5.
        assert!(close(beta_cdf(0.5, 7.5, 7.5), 0.5, 1e-12));
        assert_eq!(beta_cdf(0.0, 2.0, 3.0), 0.0);
        assert_eq!(beta_cdf(1.0, 2.0, 3.0), 1.0);
    }

    #[test]
    fn beta_quantile_inverts_cdf() {
        for &(a, b) in &[(1.0, 1.0), (2.0, 5.0), (0.5, 0.5), (30.0, 200.0)] {
            for &q in &[0.001, 0.025, 0.5, 0.975, 0.999] {
                let x = beta_quantile(q, a, b);
                assert!(close(beta_cdf(x, a, b), q, 1e-9), "a={a} b={b} q={q}");
            }
        }
    }

    #[test]
    fn clopper_pearson_known_values() {
        let (lo, hi) = clopper_pearson(0, 10, 0.95);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 0.3085, 5e-5), "{hi}");
        let (lo, hi) = clopper_pearson(5, 10, 0.95);
        assert!(close(lo, 0.1871, 5e-5), "{lo}");
        assert!(close(hi, 0.8129, 5e-5), "{hi}");
        let (lo, hi) = clopper_pearson(10, 10, 0.95);
        assert!(close(lo, 0.6915, 5e-5), "{lo}");
        assert_eq!(hi, 1.0);
        // 1 of 100 (R: binom.test(1, 100)$conf.int = 0.000253, 0.054460).
        let (lo, hi) = clopper_pearson(1, 100, 0.95);
        assert!(close(lo, 0.000253, 1e-6), "{lo}");
        assert!(close(hi, 0.054460, 1e-6), "{hi}");
        assert_eq!(clopper_pearson(0, 0, 0.95), (0.0, 1.0));
    }

    #[test]
    fn median_skips_nan() {
        assert_eq!(median([3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([f64::NAN]), None);
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn entropy_of_simple_mixes() {
        assert!(close(entropy_bits([1.0]), 0.0, 1e-12));
        assert!(close(entropy_bits([0.5, 0.5]), 1.0, 1e-12));
        assert!(close(entropy_bits([0.25; 4]), 2.0, 1e-12));
        assert!(close(entropy_bits([0.5, 0.5, 0.0]), 1.0, 1e-12));
    }
}
