//! An HTTPS server with hyper: HTTP/2 or HTTP/1.1 by ALPN, the
//! certificate picked per connection by SNI through `LazyConfigAcceptor`.
//!
//! `cargo run -p nbtls-tokio --example https_server -- ADDR CHAIN.pem KEY.pem`
//! then `curl --cacert CA.pem https://localhost:PORT/`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nbtls::ServerConfig;
use nbtls_tokio::{LazyConfigAcceptor, TlsAcceptor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, chain, key] = &args[..] else {
        return Err("usage: https_server ADDR CHAIN.pem KEY.pem".into());
    };
    let config = ServerConfig::from_pem_files(chain.as_ref(), key.as_ref())?
        .alpn(&[b"h2".as_slice(), b"http/1.1"])?
        .read_ahead(true);
    let acceptor = TlsAcceptor::new(Arc::new(config)).idle_timeout(Some(Duration::from_secs(60)));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // One config here; a server with several would match on SNI.
            let start = LazyConfigAcceptor::new(tcp)
                .handshake_timeout(Duration::from_secs(10))
                .await?;
            eprintln!("{peer}: SNI {:?}", start.server_name());
            let tls = start.into_stream_with(&acceptor).await?;
            let h2 = tls.alpn_protocol() == Some(b"h2");
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let body = format!("{} {:?} over nbtls\n", req.uri(), req.version());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            let io = TokioIo::new(tls);
            let served = if h2 {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            };
            if let Err(e) = served {
                eprintln!("{peer}: {e}");
            }
            Ok::<_, std::io::Error>(())
        });
    }
}
