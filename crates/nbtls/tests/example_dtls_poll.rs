//! Runs `examples/dtls_poll.rs` (a mio event loop driving a DTLS 1.2 client and
//! server over non-blocking UDP sockets on 127.0.0.1, with `timeout()` as the poll
//! timeout and `handle_timeout()` when it expires) and checks its summary line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/dtls_poll`, next to this test's `deps/` directory.
/// `cargo test` builds examples; a filtered run (`--test example_dtls_poll`) may not, so a
/// missing or outdated binary is built here, into the same target directory.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir
        .join("examples")
        .join(format!("dtls_poll{}", std::env::consts::EXE_SUFFIX));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dtls_poll.rs");
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
            "dtls_poll",
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

/// The summary line of a successful run: (count, polls, timer expiries).
fn summary(args: &[&str]) -> (u32, u64, u64) {
    let (status, out, err) = run_example(args);
    assert!(
        status.success(),
        "{args:?}: exit {status:?}\nstdout: {out}\nstderr: {err}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    let line = out.trim_end();
    let rest = line
        .strip_prefix("dtls_poll ok: ")
        .unwrap_or_else(|| panic!("summary line: {line}"));
    let num = |after: &str| -> u64 {
        rest.split(after)
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{after:?} in {line}"))
    };
    assert!(line.contains("DTLS1_2"), "{line}");
    (
        num(" datagrams each way") as u32,
        num(" polls"),
        num(" timer expiries"),
    )
}

#[test]
fn dtls_poll_exchanges_datagrams() {
    let (count, polls, _) = summary(&[]);
    assert_eq!(count, 20);
    assert!(polls > 0);
    assert_eq!(summary(&["0"]).0, 0);
}

/// The client loses the server's first datagram (the HelloVerifyRequest): only the
/// retransmission timer, run through `timeout()` and `handle_timeout()`, recovers.
#[test]
fn dtls_poll_recovers_a_lost_datagram_by_its_timer() {
    let started = Instant::now();
    let (count, _, expiries) = summary(&["5", "1"]);
    assert_eq!(count, 5);
    assert!(expiries >= 1, "the timer fired");
    // The first retransmission comes after 1 s, not after a long poll.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn dtls_poll_bad_arguments() {
    let (status, out, _) = run_example(&["many"]);
    assert_eq!(status.code(), Some(2));
    assert!(out.is_empty());
}
