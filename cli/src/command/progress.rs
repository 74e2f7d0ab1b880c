//! Progress bars on stderr, only when stderr is a terminal and not `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use nof1::Progress;

/// Progress reporter backed by indicatif.
pub struct Bars {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
    /// With `NOF1_TIMINGS` set: the current step and its start, to print its duration.
    timing: Option<Mutex<Option<(String, std::time::Instant)>>>,
}

impl Bars {
    /// Bars that draw only on an interactive stderr.
    pub fn new(quiet: bool) -> Self {
        Bars {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            timing: std::env::var_os("NOF1_TIMINGS").map(|_| Mutex::new(None)),
        }
    }
}

impl Progress for Bars {
    fn start(&self, step: &str, total: u64) {
        if let Some(t) = &self.timing
            && let Ok(mut slot) = t.lock()
        {
            *slot = Some((step.to_string(), std::time::Instant::now()));
        }
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("nof1: {msg:28} [{bar:30}] {pos}/{len} {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(step.to_string());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(t) = &self.timing
            && let Ok(mut slot) = t.lock()
            && let Some((step, start)) = slot.take()
        {
            let peak = peak_resident_mib().map_or(String::new(), |m| format!(" (peak {m} MiB)"));
            eprintln!(
                "nof1: timing: {step}: {:.3} s{peak}",
                start.elapsed().as_secs_f64()
            );
        }
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// The process's peak resident memory so far in MiB (`VmHWM` of
/// `/proc/self/status`; `None` where there is none, e.g. off Linux).
fn peak_resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
