//! Fetches a page over HTTPS/1.0 and prints it.
//!
//! `cargo run -p nbtls-tokio --example client -- HOST PORT [CA.pem] [PATH]`
//! (without CA.pem: the system trust store).

use std::sync::Arc;
use std::time::Duration;

use nbtls::ClientConfig;
use nbtls_tokio::TlsConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, port) = match &args[..] {
        [h, p, ..] => (h.clone(), p.parse::<u16>()?),
        _ => return Err("usage: client HOST PORT [CA.pem] [PATH]".into()),
    };
    let config = match args.get(2) {
        Some(ca) => ClientConfig::with_trust_file(ca.as_ref())?,
        None => ClientConfig::with_system_trust()?,
    }
    .alpn(&[b"http/1.1"])?
    .read_ahead(true);
    let path = args.get(3).map_or("/", String::as_str);

    let connector = TlsConnector::new(Arc::new(config))
        .handshake_timeout(Some(Duration::from_secs(10)))
        .idle_timeout(Some(Duration::from_secs(30)));
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let mut tls = connector.connect(&host, tcp).await?;
    eprintln!(
        "connected: {:?} {:?}",
        tls.protocol_version(),
        tls.cipher_suite()
    );
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    tls.flush().await?;
    let mut page = Vec::new();
    tls.read_to_end(&mut page).await?;
    print!("{}", String::from_utf8_lossy(&page));
    Ok(())
}
