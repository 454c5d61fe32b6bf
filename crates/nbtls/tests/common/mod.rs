#![allow(dead_code)]
//! Shared test-side harness for nbtls integration tests: a generated PKI ([`certs`]) and
//! the OpenSSL / GnuTLS command-line peers ([`peers`]). Include with `mod common;`.

pub mod certs;
pub mod mitm;
pub mod peers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// A fresh, empty directory `<temp>/nbtls-<tag>-<pid>-<n>`, unique within this process
/// and across processes. It is not removed at exit; directories left by processes that
/// no longer exist are removed the first time this is called.
pub fn unique_temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    static SWEEP: Once = Once::new();
    let base = std::env::temp_dir();
    SWEEP.call_once(|| sweep_stale(&base));
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("nbtls-{tag}-{pid}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left over from an earlier process with our pid: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("creating {}: {e}", dir.display()),
        }
    }
}

/// Remove `nbtls-*-<pid>-<n>` directories whose process is gone (Linux: /proc/<pid>).
fn sweep_stale(base: &Path) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("nbtls-") {
            continue;
        }
        let mut parts = name.rsplitn(3, '-');
        let (Some(n), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !numeric(n) || !numeric(pid) || pid == own || proc_root.join(pid).exists() {
            continue;
        }
        // Best effort: another user's directory or a race with a sibling sweep is fine.
        let _ = std::fs::remove_dir_all(entry.path());
    }
}
pub mod sched;
pub mod tcp;
pub mod tls;
pub mod tls_extra;
pub mod udp;
