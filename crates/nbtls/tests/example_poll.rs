//! Runs `examples/poll_pair.rs` (a mio event loop driving an nbtls client and server
//! over non-blocking TCP) and checks its summary line against the SHA-256 of the
//! data the example documents it sends.

#[path = "common/example.rs"]
mod example;

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

fn run_example(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    example::run_example("poll_pair", args)
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
