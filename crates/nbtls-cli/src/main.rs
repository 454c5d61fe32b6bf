//! `nbtls`: a TLS client and server for interop testing and debugging.
#![forbid(unsafe_code)]

mod client;
mod options;
mod server;
mod udp;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nbtls",
    version,
    about = "TLS 1.3 client and server built on nbtls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to a TLS server and pipe stdin/stdout through the session.
    Client(client::ClientArgs),
    /// Accept TLS connections and echo, serve a page, sink or send a file.
    Server(server::ServerArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Client(args) => client::run(args),
        Command::Server(args) => server::run(args),
    };
    if let Err(e) = result {
        eprintln!("nbtls: {e}");
        std::process::exit(1);
    }
}
