//! Runs `examples/poll_pair.rs` (a mio event loop driving an nbtls client and server
//! over non-blocking TCP) and checks its summary line against the SHA-256 of the
//! data the example documents it sends.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

/// The stream the example documents: side `seed`, byte `i`.
fn stream_byte(seed: u8, i: u64) -> u8 {
    ((i % 251) as u8).wrapping_mul(seed * 2 + 1) ^ (i >> 11) as u8
}

fn expected_sha256(seed: u8, len: u64) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut i = 0;
    while i < len {
        chunk.clear();
        let end = (i + 64 * 1024).min(len);
        chunk.extend((i..end).map(|j| stream_byte(seed, j)));
        ctx.update(&chunk);
        i = end;
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `target/<profile>/examples/poll_pair`, next to this test's `deps/` directory.
/// `cargo test` builds examples; a filtered run (`--test example_poll`) may not, so a
/// missing or outdated binary is built here, into the same target directory.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir
        .join("examples")
        .join(format!("poll_pair{}", std::env::consts::EXE_SUFFIX));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/poll_pair.rs");
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&source)) {
        (Some(b), Some(s)) => b < s,
        _ => true,
    };
    if stale {
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-p",
            "nbtls",
            "--example",
            "poll_pair",
            "--target-dir",
        ])
        .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = run_bounded(cmd, Duration::from_secs(600)).0;
        assert!(status.success(), "building the example failed");
    }
    bin
}

/// Runs `cmd` with a deadline; returns (status, stdout, stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out_t.join().expect("stdout"),
        err_t.join().expect("stderr"),
    )
}

fn run_example(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(example_binary());
    cmd.args(args);
    run_bounded(cmd, Duration::from_secs(60))
}

fn check_summary(stdout: &str, len: u64) {
    let line = stdout.lines().next().expect("a summary line");
    let want = format!(
        "poll_pair ok: {len} bytes each way; client->server sha256 {}; server->client sha256 {};",
        expected_sha256(1, len),
        expected_sha256(2, len)
    );
    assert!(
        line.starts_with(&want),
        "summary line:\n{line}\nexpected it to start with:\n{want}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn poll_pair_exchanges_one_mib_each_way() {
    let (status, out, err) = run_example(&[]);
    assert!(
        status.success(),
        "exit {status:?}\nstdout: {out}\nstderr: {err}"
    );
    check_summary(&out, 1 << 20);
    // The event loop really had to wait: sessions stopped and resumed.
    let stops: u64 = out
        .split("polls, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("stop count in the summary");
    assert!(stops > 0, "{out}");
}

#[test]
fn poll_pair_small_and_bad_sizes() {
    for len in [0u64, 1, 16_385] {
        let (status, out, err) = run_example(&[&len.to_string()]);
        assert!(
            status.success(),
            "{len}: exit {status:?}\nstdout: {out}\nstderr: {err}"
        );
        check_summary(&out, len);
    }
    let (status, out, _) = run_example(&["lots"]);
    assert_eq!(status.code(), Some(2));
    assert!(out.is_empty());
}
