//! Running the `nbtls` binary in tests, every wait bounded.
#![allow(dead_code)]

use std::io::BufRead;
use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_nbtls");
pub const LIMIT: Duration = Duration::from_secs(20);

/// Starts `nbtls server --listen 127.0.0.1:0 ARGS`; returns it and the
/// address it printed.
pub fn server(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // The banner comes first; a dead server gives EOF, so this ends.
    for _ in 0..5 {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix("listening on ") {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            // Keep draining stderr so the server never blocks on it.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut err, &mut std::io::sink());
            });
            return (child, addr);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server printed no address: {line:?}");
}

/// Waits for `child` at most `LIMIT`, killing it if it overruns.
pub fn wait(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
