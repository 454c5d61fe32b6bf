//! Runs `examples/dtls_poll.rs` (a mio event loop driving a DTLS 1.2 client and
//! server over non-blocking UDP sockets on 127.0.0.1, with `timeout()` as the poll
//! timeout and `handle_timeout()` when it expires) and checks its summary line.

#[path = "common/example.rs"]
mod example;

use std::time::{Duration, Instant};

fn run_example(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    example::run_example("dtls_poll", args)
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
