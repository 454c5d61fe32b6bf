//! Split halves in separate tasks (on two worker threads), data both ways
//! at once, and a KeyUpdate the read half receives answered by the write
//! half.

mod common;

use std::io;
use std::sync::Arc;

use common::{client_config, pair, pattern, server_config, TIMEOUT};
use nbtls_tokio::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

const BYTES: usize = 1 << 20;

async fn send_all<W: AsyncWrite + Unpin>(mut w: W, data: Vec<u8>) -> io::Result<W> {
    // Uneven write sizes, to cross record boundaries anywhere.
    for chunk in data.chunks(7_001) {
        w.write_all(chunk).await?;
    }
    w.shutdown().await?;
    Ok(w)
}

async fn recv_all<R: AsyncRead + Unpin>(mut r: R) -> io::Result<(R, Vec<u8>)> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).await?;
    Ok((r, v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_halves_in_four_tasks_with_key_update() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(Arc::new(server_config())).handshake_timeout(Some(TIMEOUT));
    let connector = TlsConnector::new(Arc::new(client_config())).handshake_timeout(Some(TIMEOUT));

    let up = pattern(21, BYTES);
    let down = pattern(22, BYTES);

    let server = tokio::spawn({
        let down = down.clone();
        async move {
            let (tcp, _) = listener.accept().await?;
            let s = acceptor.accept(tcp).await?;
            let (r, w) = s.split_with(TcpStream::into_split);
            // The writer starts once the reader has seen the client's first
            // bytes, i.e. after the KeyUpdate that preceded them.
            let (go, wait) = oneshot::channel();
            let reader = tokio::spawn(async move {
                let mut r = r;
                let mut first = [0u8; 1];
                r.read_exact(&mut first).await?;
                let _ = go.send(());
                let (r, mut rest) = recv_all(r).await?;
                rest.insert(0, first[0]);
                let updates = r.with_engine(|e| e.info().key_updates_received);
                io::Result::Ok((rest, updates))
            });
            let writer = tokio::spawn(async move {
                let _ = wait.await;
                let w = send_all(w, down).await?;
                io::Result::Ok(w.with_engine(|e| e.info().key_updates_sent))
            });
            let (got, updates_received) = reader.await.expect("reader task")?;
            let updates_sent = writer.await.expect("writer task")?;
            io::Result::Ok((got, updates_received, updates_sent))
        }
    });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let c = timeout(TIMEOUT, connector.connect("localhost", tcp))
        .await
        .expect("bounded")
        .expect("client handshake");
    let (r, w) = c.split_with(TcpStream::into_split);
    assert!(r.is_pair_of(&w));
    w.key_update(true).expect("KeyUpdate queued");
    let writer = tokio::spawn(send_all(w, up.clone()));
    let reader = tokio::spawn(recv_all(r));

    let (server, writer, reader) = timeout(TIMEOUT, async { tokio::join!(server, writer, reader) })
        .await
        .expect("bounded");
    let (server_got, server_updates_received, server_updates_sent) =
        server.expect("server task").expect("server side");
    writer.expect("client writer").expect("client writes");
    let (r, client_got) = reader.expect("client reader").expect("client reads");
    assert!(server_got == up, "client→server bytes");
    assert!(client_got == down, "server→client bytes");
    assert_eq!(server_updates_received, 1, "the client's KeyUpdate arrived");
    // The server's write half answered it before its first record.
    assert_eq!(server_updates_sent, 1);
    assert_eq!(r.with_engine(|e| e.info().key_updates_received), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplex_halves_via_split_both_sides() {
    let (c, s) = pair(
        Arc::new(client_config()),
        Arc::new(server_config()),
        4 * 1024,
    )
    .await;
    let (cr, cw) = c.split();
    let (sr, sw) = s.split();
    let up = pattern(31, 300_000);
    let down = pattern(32, 300_000);
    let tasks = (
        tokio::spawn(send_all(cw, up.clone())),
        tokio::spawn(recv_all(sr)),
        tokio::spawn(send_all(sw, down.clone())),
        tokio::spawn(recv_all(cr)),
    );
    let (a, b, c, d) = timeout(TIMEOUT, async {
        tokio::join!(tasks.0, tasks.1, tasks.2, tasks.3)
    })
    .await
    .expect("bounded");
    a.unwrap().expect("client writes");
    c.unwrap().expect("server writes");
    assert!(b.unwrap().expect("server reads").1 == up);
    assert!(d.unwrap().expect("client reads").1 == down);
}
