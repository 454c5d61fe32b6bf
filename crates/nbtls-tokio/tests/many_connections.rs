//! 1,000 TLS connections at once on one current-thread runtime, over
//! in-memory duplex pipes: every connection echoes its own data, checked
//! byte for byte.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{client_config, pattern, server_config, TIMEOUT};
use nbtls_tokio::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const CONNECTIONS: usize = 1000;
/// More than a record, so each direction takes several records.
const BYTES: usize = 20_000;

#[tokio::test(flavor = "current_thread")]
async fn thousand_concurrent_connections_on_one_thread() {
    let connector = TlsConnector::new(Arc::new(client_config())).handshake_timeout(Some(TIMEOUT));
    let acceptor = TlsAcceptor::new(Arc::new(server_config())).handshake_timeout(Some(TIMEOUT));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..CONNECTIONS {
        // A pipe smaller than the data: writers wait on readers.
        let (c_io, s_io) = tokio::io::duplex(8 * 1024);
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            let mut s = acceptor.accept(s_io).await?;
            // Echo until the client's close_notify, then close ours.
            let mut buf = vec![0u8; 4096];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await?;
            }
            s.shutdown().await?;
            std::io::Result::Ok(None)
        });
        let connector = connector.clone();
        tasks.spawn(async move {
            let c = connector.connect("localhost", c_io).await?;
            let data = pattern(i as u64, BYTES);
            let (mut r, mut w) = c.split();
            let send = async {
                w.write_all(&data).await?;
                w.shutdown().await
            };
            let mut echoed = Vec::with_capacity(BYTES);
            let recv = r.read_to_end(&mut echoed);
            let (sent, got) = tokio::join!(send, recv);
            sent?;
            got?;
            std::io::Result::Ok(Some(echoed == data))
        });
    }
    let mut verified = 0;
    let all = async {
        while let Some(r) = tasks.join_next().await {
            match r.expect("task panicked").expect("connection failed") {
                Some(true) => verified += 1,
                Some(false) => panic!("echoed bytes differ"),
                None => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(50), all)
        .await
        .expect("all connections finish in time");
    assert_eq!(verified, CONNECTIONS);
    eprintln!(
        "{CONNECTIONS} connections, {BYTES} bytes each way: {:?}",
        started.elapsed()
    );
}
