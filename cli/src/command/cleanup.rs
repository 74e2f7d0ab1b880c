//! Kills lose nothing: outputs go through a temporary file beside the target
//! ([`nof1::atomic::temp_path`]) that is renamed into place only when
//! complete. This module removes those temporary files when the process is
//! interrupted (SIGINT, SIGTERM, SIGHUP), and removes the strays of processes
//! that were killed outright (SIGKILL, power loss) before a new run writes
//! beside them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files this process may be writing.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Exit code of a run interrupted by signal `sig`: 128 + the signal number,
/// as a shell reports it (130 for SIGINT, 143 for SIGTERM).
pub fn interrupted_code(sig: i32) -> i32 {
    128 + sig
}

/// Catches SIGINT, SIGTERM and SIGHUP on a thread of their own: each removes
/// the registered temporary files, says so on stderr and exits with
/// [`interrupted_code`]. Outputs already renamed into place are complete and
/// stay.
///
/// # Errors
/// When the handlers cannot be installed.
#[cfg(unix)]
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("nof1-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let removed = remove_pending();
                let name = match sig {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                if removed > 0 {
                    eprintln!(
                        "nof1: interrupted ({name}); removed {removed} incomplete output file(s)"
                    );
                } else {
                    eprintln!("nof1: interrupted ({name})");
                }
                std::process::exit(interrupted_code(sig));
            }
        })?;
    Ok(())
}

/// No signal handling off Unix (temporary files are still never renamed
/// into place unless complete).
#[cfg(not(unix))]
pub fn install() -> std::io::Result<()> {
    Ok(())
}

/// Registers the temporary file of `target` (removed on a signal) and
/// removes the strays earlier, killed runs left beside it. `-` and special
/// files (written in place) need nothing.
pub fn guard(target: &Path) {
    if target == Path::new("-") || std::fs::metadata(target).is_ok_and(|m| !m.is_file()) {
        return;
    }
    remove_strays(target);
    let tmp = nof1::atomic::temp_path(target);
    if let Ok(mut pending) = PENDING.lock() {
        pending.push(tmp);
    }
}

/// Removes every registered temporary file that exists; returns how many.
fn remove_pending() -> usize {
    // A poisoned lock still holds the list.
    let pending = match PENDING.lock() {
        Ok(p) => p,
        Err(p) => p.into_inner(),
    };
    pending
        .iter()
        .filter(|tmp| std::fs::remove_file(tmp).is_ok())
        .count()
}

/// Removes `.NAME.tmp-PID` files beside `target` whose process no longer
/// exists (Linux: no `/proc/PID`). Elsewhere, or when `/proc` is absent,
/// nothing is removed: the strays are ignored (a run only ever writes and
/// renames its own temporary file). Returns the paths removed.
pub fn remove_strays(target: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if !Path::new("/proc/self").exists() {
        return removed;
    }
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return removed;
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == me || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strays_of_dead_processes_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        // PIDs above the kernel's pid_max (2^22) never exist.
        let dead = dir.path().join(".out.csv.tmp-4999999");
        let mine = nof1::atomic::temp_path(&target);
        let other = dir.path().join(".other.csv.tmp-4999999");
        let not_pid = dir.path().join(".out.csv.tmp-abc");
        for p in [&dead, &mine, &other, &not_pid] {
            std::fs::write(p, b"partial").unwrap();
        }
        let removed = remove_strays(&target);
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(mine.exists() && other.exists() && not_pid.exists());
    }
}
