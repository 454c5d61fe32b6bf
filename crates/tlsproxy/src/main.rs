//! `tlsproxy`: a TLS <-> plain TCP proxy. Each event loop is one thread
//! driving non-blocking sockets with mio (edge-triggered epoll) and every
//! TLS connection through nbtls' GnuTLS-style Session API: non-blocking
//! handshake, `direction()` for the poll interest, `pending()` before
//! waiting, `send` resumption after `Again`, resumable `bye`, and deadlines
//! from `timeout()`.
#![forbid(unsafe_code)]

mod buffer;
mod cli;
mod conn;
mod event_loop;
mod setup;
mod stream;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, not clap's usage block: the message is what comes
            // before the first blank line.
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("tlsproxy: {msg} (see tlsproxy --help)");
            return ExitCode::from(2);
        }
    };
    init_logging(args.debug);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlsproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: u8) {
    let default = match debug {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(args: cli::Args) -> Result<(), setup::Fatal> {
    let mut notes = setup::Notes::default();
    let nofile = setup::raise_nofile_limit(&mut notes);
    let loops = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let settings = Arc::new(setup::build(&args, nofile, loops, &mut notes)?);
    let listeners = setup::bind_listeners(&args.listen, loops)?;
    notes.emit();
    let addr = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .map_or_else(|| args.listen.clone(), |a| a.to_string());
    info!(
        "listening on {addr} ({} loop{})",
        loops,
        if loops == 1 { "" } else { "s, SO_REUSEPORT" }
    );

    let mut handles = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let settings = settings.clone();
        let el = event_loop::EventLoop::new(settings, listener)
            .map_err(|e| setup::Fatal(format!("event loop: {e}")))?;
        if loops == 1 {
            return el
                .run()
                .map_err(|e| setup::Fatal(format!("event loop: {e}")));
        }
        let h = std::thread::Builder::new()
            .name(format!("loop-{i}"))
            .spawn(move || {
                let span = tracing::info_span!("loop", id = i);
                let _g = span.enter();
                el.run()
            })
            .map_err(|e| setup::Fatal(format!("starting loop thread: {e}")))?;
        handles.push(h);
    }
    let mut failed = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!("event loop failed: {e}");
                failed = Some(format!("event loop: {e}"));
            }
            Err(_) => failed = Some("an event loop panicked".into()),
        }
    }
    failed.map_or(Ok(()), |f| Err(setup::Fatal(f)))
}
