//! Runs a built example of this crate (`examples/<name>.rs`) with a bounded wait.
//! Include with `#[path = "common/example.rs"] mod example;`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, next to the test's `deps/` directory.
/// `cargo test` builds examples; a filtered run (`--test <one>`) may not, so a
/// missing or outdated binary is built here, into the same target directory.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&source)) {
        (Some(b), Some(s)) => b < s,
        _ => true,
    };
    if stale {
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "nbtls", "--example", name, "--target-dir"])
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = run_bounded(cmd, Duration::from_secs(600)).0;
        assert!(status.success(), "building the example {name} failed");
    }
    bin
}

/// Runs `cmd` with a deadline; returns (status, stdout, stderr).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (ExitStatus, String, String) {
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

/// Runs example `name` with `args`, within 60 s; returns (status, stdout, stderr).
pub fn run_example(name: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(example_binary(name));
    cmd.args(args);
    run_bounded(cmd, Duration::from_secs(60))
}
