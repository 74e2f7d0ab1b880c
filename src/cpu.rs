//! Processor state that nof1's arithmetic depends on for its speed.
//!
//! faer's matrix kernels use 256- and 512-bit vector instructions and return
//! with the upper halves of the vector registers still in use. On x86-64
//! processors, every legacy SSE instruction that follows (nof1's own scalar
//! `f64`/`f32` code is compiled for baseline x86-64, which is SSE) then pays
//! a merge with those upper halves until a `vzeroupper` runs. Measured on the
//! value channel of a 2,500-feature fold: 58 ns per surprisal after a
//! `vzeroupper`, 254 ns after a faer product without one
//! (docs/performance.md, "Session 10").
//!
//! [`clear_upper_vector_state`] is called where nof1's hot scalar loops
//! start: each search, each batch of value-channel scores, after each
//! blocked distance product. It changes no result, only the speed.
//!
//! [`SequentialFaer`] keeps faer's own decompositions on one thread each
//! during fit, so that a model does not depend on the thread count.

/// Clears the upper halves of the vector registers (`vzeroupper`) on x86-64
/// processors with AVX; does nothing elsewhere. A few cycles.
#[inline]
pub fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx) = pulp::core_arch::x86::Avx::try_new() {
        avx._mm256_zeroupper();
    }
}

/// Runs `f` compiled for the widest vector instructions the processor has
/// (AVX2 on x86-64 processors that have it, through `pulp`'s dispatch;
/// baseline code elsewhere). Meant for short loops of independent lanes: each
/// lane does the same `f32`/`f64` operations in the same order, and Rust
/// never fuses a multiply and an add, so the results are the same bit for
/// bit whichever version runs. The processor is probed once.
#[inline(always)]
pub(crate) fn widest<R>(f: impl FnOnce() -> R) -> R {
    static ARCH: std::sync::OnceLock<pulp::Arch> = std::sync::OnceLock::new();
    ARCH.get_or_init(pulp::Arch::new).dispatch(f)
}

/// faer's global parallelism set to sequential while the guard lives (the
/// previous setting comes back when it drops).
///
/// faer's decompositions (eigendecomposition, QR, Cholesky) follow that
/// global setting, and their parallel versions round differently for
/// different thread counts: a model fitted with `--threads 1` and one fitted
/// with `--threads 2` differed in the last bits of their loadings. nof1
/// parallelises fit itself, across rows, folds and null permutations, so fit
/// runs faer's own kernels one thread each: the same model for any thread
/// count (measured on the 3,000 × 2,500 omics cohort: no slower).
///
/// The setting is process-wide: a caller running faer beside a fit in
/// another thread sees it too while the fit runs. Guards nest and overlap
/// (fits in several threads): the first one saves the setting, the last one
/// to drop restores it.
#[derive(Debug)]
#[must_use = "the setting lasts as long as the guard"]
pub struct SequentialFaer {
    _private: (),
}

/// Live guards and the setting they replaced.
static SEQUENTIAL_FAER: std::sync::Mutex<(usize, Option<faer::Par>)> =
    std::sync::Mutex::new((0, None));

impl SequentialFaer {
    /// Sets faer's global parallelism to sequential.
    pub fn new() -> Self {
        let mut live = SEQUENTIAL_FAER.lock().unwrap_or_else(|e| e.into_inner());
        if live.0 == 0 {
            live.1 = Some(faer::get_global_parallelism());
            faer::set_global_parallelism(faer::Par::Seq);
        }
        live.0 += 1;
        SequentialFaer { _private: () }
    }
}

impl Default for SequentialFaer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SequentialFaer {
    fn drop(&mut self) {
        let mut live = SEQUENTIAL_FAER.lock().unwrap_or_else(|e| e.into_inner());
        live.0 = live.0.saturating_sub(1);
        if live.0 == 0
            && let Some(previous) = live.1.take()
        {
            faer::set_global_parallelism(previous);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clearing_changes_no_arithmetic() {
        let a = faer::Mat::<f64>::from_fn(64, 64, |i, j| (i as f64 + 1.0) / (j as f64 + 2.0));
        let mut c = faer::Mat::<f64>::zeros(64, 64);
        faer::linalg::matmul::matmul(
            c.as_mut(),
            faer::Accum::Replace,
            a.as_ref(),
            a.as_ref(),
            1.0,
            faer::Par::Seq,
        );
        let before: f64 = (0..64).map(|i| c[(i, i)].ln()).sum();
        super::clear_upper_vector_state();
        let after: f64 = (0..64).map(|i| c[(i, i)].ln()).sum();
        assert_eq!(before.to_bits(), after.to_bits());
    }

    #[test]
    fn overlapping_guards_keep_faer_sequential_until_the_last_drops() {
        // (Other tests may hold guards meanwhile: only "sequential while a
        // guard lives" can be asserted.)
        let outer = super::SequentialFaer::new();
        let inner = super::SequentialFaer::new();
        assert!(matches!(faer::get_global_parallelism(), faer::Par::Seq));
        drop(outer);
        assert!(matches!(faer::get_global_parallelism(), faer::Par::Seq));
        drop(inner);
        let live = super::SEQUENTIAL_FAER
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        assert!(live.0 > 0 || live.1.is_none(), "saved setting left behind");
    }
}
