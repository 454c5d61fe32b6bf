//! Real peers: a hyper HTTPS server on nbtls-tokio answers curl (TLS 1.2
//! and 1.3, HTTP/1.1 and h2 chosen by ALPN); an nbtls-tokio client fetches
//! from `openssl s_server -www`.

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use common::peers::{openssl_server, require_tool};
use common::{client_config, pki, server_config, TIMEOUT};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nbtls::codec::ProtocolVersion;
use nbtls_tokio::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

fn version_name(v: Option<ProtocolVersion>) -> &'static str {
    match v {
        Some(ProtocolVersion::TLS1_3) => "1.3",
        Some(ProtocolVersion::TLS1_2) => "1.2",
        _ => "?",
    }
}

/// Serves HTTPS on `listener`: HTTP/2 when ALPN picked h2, else HTTP/1.1.
/// Each answer names the TLS version and ALPN the server saw.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let h2 = tls.alpn_protocol() == Some(b"h2");
            let seen = format!(
                "tls={} alpn={}",
                version_name(tls.protocol_version()),
                String::from_utf8_lossy(tls.alpn_protocol().unwrap_or(b"none"))
            );
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let body = format!("hello {} {:?} {}\n", req.uri().path(), req.version(), seen);
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            let io = TokioIo::new(tls);
            // Errors here are the client's business (curl may close without
            // close_notify); the test checks what curl received.
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_server_answers_curl_over_tls12_and_tls13_with_http1_and_h2() {
    if !require_tool("curl") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = server_config()
        .alpn(&[b"h2".as_slice(), b"http/1.1"])
        .unwrap();
    let acceptor = TlsAcceptor::new(Arc::new(config)).handshake_timeout(Some(TIMEOUT));
    let server = tokio::spawn(serve(listener, acceptor));

    let url = format!("https://localhost:{port}/path");
    let resolve = format!("localhost:{port}:127.0.0.1");
    const TLS12: &[&str] = &["--tlsv1.2", "--tls-max", "1.2"];
    const TLS13: &[&str] = &["--tlsv1.3"];
    // (curl TLS flags, TLS version the server sees, curl HTTP flag,
    //  curl's %{http_version}, the version hyper reports)
    let cases = [
        (TLS12, "1.2", "--http1.1", "1.1", "HTTP/1.1"),
        (TLS12, "1.2", "--http2", "2", "HTTP/2.0"),
        (TLS13, "1.3", "--http1.1", "1.1", "HTTP/1.1"),
        (TLS13, "1.3", "--http2", "2", "HTTP/2.0"),
    ];
    for (tls_args, tls, http_arg, http_version, hyper_version) in cases {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "15", "--cacert", pki::pki().ca_path()])
            .args(["--resolve", &resolve])
            .args(tls_args)
            .arg(http_arg)
            .args(["-w", "%{http_version}"])
            .arg(&url)
            .kill_on_drop(true);
        let out = timeout(TIMEOUT, cmd.output())
            .await
            .expect("curl finishes")
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "curl {tls_args:?} {http_arg} failed: {stdout}\n{stderr}"
        );
        let alpn = if http_version == "2" {
            "h2"
        } else {
            "http/1.1"
        };
        let want = format!("hello /path {hyper_version} tls={tls} alpn={alpn}\n{http_version}");
        assert_eq!(
            stdout, want,
            "curl {tls_args:?} {http_arg}; stderr: {stderr}"
        );
    }
    server.abort();
}

#[tokio::test]
async fn client_fetches_from_openssl_s_server_www() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki::pki();
    let chain = pki.localhost.chain_pem.to_str().unwrap();
    let key = pki.localhost.key_pem.to_str().unwrap();
    for (flag, version) in [
        ("-tls1_3", ProtocolVersion::TLS1_3),
        ("-tls1_2", ProtocolVersion::TLS1_2),
    ] {
        let (peer, port) = openssl_server(&["-cert", chain, "-key", key, "-www", flag]);
        let connector =
            TlsConnector::new(Arc::new(client_config())).handshake_timeout(Some(TIMEOUT));
        let fetch = async {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
            let mut tls = connector.connect("localhost", tcp).await?;
            assert_eq!(tls.protocol_version(), Some(version));
            tls.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            tls.flush().await?;
            let mut page = Vec::new();
            tls.read_to_end(&mut page).await?;
            std::io::Result::Ok(page)
        };
        let page = timeout(TIMEOUT, fetch)
            .await
            .expect("bounded")
            .unwrap_or_else(|e| panic!("fetch with {flag}: {e}\n{}", peer.dump()));
        let page = String::from_utf8_lossy(&page);
        assert!(page.starts_with("HTTP/1.0 200 ok"), "{page}");
        let want = match version {
            ProtocolVersion::TLS1_3 => "TLSv1.3",
            _ => "TLSv1.2",
        };
        // The status page reports the session s_server negotiated.
        assert!(page.contains(&format!("New, {want}, Cipher is")), "{page}");
    }
}
