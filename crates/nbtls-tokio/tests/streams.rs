//! TlsStream semantics over in-memory transports: data both ways, EOF
//! rules, TLS 1.2, cancellation of a read mid-record, the lazy acceptor,
//! handshake and idle timeouts.

mod common;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{client_config, pair, pattern, pki, server_config, server_key, TIMEOUT};
use nbtls::codec::ProtocolVersion;
use nbtls::ServerConfig;
use nbtls_tokio::{LazyConfigAcceptor, TlsAcceptor, TlsConnector};
use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::timeout;

async fn bounded<F: Future>(f: F) -> F::Output {
    timeout(TIMEOUT, f).await.expect("bounded wait")
}

#[tokio::test]
async fn data_both_ways_and_close_notify_is_eof() {
    let (c, mut s) = pair(
        Arc::new(client_config()),
        Arc::new(server_config()),
        64 * 1024,
    )
    .await;
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_3));
    assert_eq!(s.server_name(), Some("localhost"));

    // Larger than a record and than the duplex buffer: the writer must
    // wait for the reader, in both directions at once.
    let up = pattern(1, 300_000);
    let down = pattern(2, 200_000);
    let (up2, down2) = (up.clone(), down.clone());
    let client = async move {
        let (mut r, mut w) = tokio::io::split(c);
        let send = async {
            w.write_all(&up2).await?;
            w.shutdown().await
        };
        let mut got = Vec::new();
        let recv = r.read_to_end(&mut got);
        let (a, b) = tokio::join!(send, recv);
        a.and(b).map(|_| got)
    };
    let server = async move {
        let mut got = Vec::new();
        s.read_to_end(&mut got).await?;
        // close_notify from the client ended reading only: we still send.
        s.write_all(&down2).await?;
        s.shutdown().await?;
        // Reading again after the close still says EOF.
        assert_eq!(s.read(&mut [0u8; 16]).await?, 0);
        io::Result::Ok(got)
    };
    let (c_got, s_got) = bounded(async { tokio::join!(client, server) }).await;
    assert!(s_got.expect("server side") == up, "client→server bytes");
    assert!(c_got.expect("client side") == down, "server→client bytes");
}

#[tokio::test]
async fn transport_eof_without_close_notify_is_unexpected_eof() {
    let (c, mut s) = pair(
        Arc::new(client_config()),
        Arc::new(server_config()),
        16 * 1024,
    )
    .await;
    let mut c = c;
    c.write_all(b"last words").await.unwrap();
    c.flush().await.unwrap();
    drop(c); // closes the duplex end: no close_notify
    let mut buf = [0u8; 64];
    let n = bounded(s.read(&mut buf))
        .await
        .expect("data before the EOF");
    assert_eq!(&buf[..n], b"last words");
    let err = bounded(s.read(&mut buf)).await.expect_err("truncation");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    // Sticky.
    let err = bounded(s.read(&mut buf)).await.expect_err("still failed");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn tls12_round_trip() {
    let client = client_config()
        .versions(&[ProtocolVersion::TLS1_2])
        .unwrap();
    let (mut c, mut s) = pair(Arc::new(client), Arc::new(server_config()), 8 * 1024).await;
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLS1_2));
    let msg = pattern(3, 50_000);
    let m2 = msg.clone();
    let (sent, got) = bounded(async {
        tokio::join!(
            async move {
                c.write_all(&m2).await?;
                c.shutdown().await?;
                io::Result::Ok(c)
            },
            async move {
                let mut v = Vec::new();
                s.read_to_end(&mut v).await.map(|_| v)
            }
        )
    })
    .await;
    sent.expect("client writes");
    assert!(got.expect("server reads") == msg);
}

#[tokio::test]
async fn acceptor_resumes_a_config_that_pauses_after_the_client_hello() {
    let server = server_config().pause_after_client_hello(true);
    let (mut c, mut s) = pair(Arc::new(client_config()), Arc::new(server), 4096).await;
    c.write_all(b"ping").await.unwrap();
    c.flush().await.unwrap();
    let mut buf = [0u8; 4];
    bounded(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ping");
}

/// Counts the bytes read from the inner transport.
struct Counting<T> {
    inner: T,
    read: Arc<AtomicUsize>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read
            .fetch_add(buf.filled().len() - before, Ordering::SeqCst);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Polls `fut` exactly once.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Reads one whole TLS record (header and body) from `from`.
async fn read_record<R: AsyncRead + Unpin>(from: &mut R) -> Vec<u8> {
    let mut rec = vec![0u8; 5];
    from.read_exact(&mut rec).await.unwrap();
    let len = usize::from(u16::from_be_bytes([rec[3], rec[4]]));
    rec.resize(5 + len, 0);
    from.read_exact(&mut rec[5..]).await.unwrap();
    rec
}

#[tokio::test]
async fn dropping_a_read_mid_record_loses_no_data() {
    // client ⇄ c_peer | test | s_peer ⇄ server: the test relays the
    // handshake, then hands the server records piece by piece.
    let (c_io, mut c_peer) = duplex(64 * 1024);
    let (s_io, mut s_peer) = duplex(64 * 1024);
    let read = Arc::new(AtomicUsize::new(0));
    let s_io = Counting {
        inner: s_io,
        read: read.clone(),
    };
    // No tickets: nothing flows after the client's Finished, so the relay
    // holds no bytes when it is dropped.
    let server_cfg = Arc::new(server_config().tickets(0));
    let connector = TlsConnector::new(Arc::new(client_config()));
    let acceptor = TlsAcceptor::new(server_cfg);
    let (c, s) = bounded(async {
        let hs =
            async { tokio::join!(connector.connect("localhost", c_io), acceptor.accept(s_io)) };
        let relay = tokio::io::copy_bidirectional(&mut c_peer, &mut s_peer);
        tokio::select! {
            r = hs => r,
            r = relay => panic!("relay ended during the handshake: {r:?}"),
        }
    })
    .await;
    let (mut client, mut server) = (c.expect("client"), s.expect("server"));

    // Two records from the client, cut into 7-byte pieces that straddle
    // the record boundary.
    let first = pattern(10, 3000);
    let second = pattern(11, 500);
    client.write_all(&first).await.unwrap();
    client.flush().await.unwrap();
    client.write_all(&second).await.unwrap();
    client.flush().await.unwrap();
    let mut wire = read_record(&mut c_peer).await;
    let first_len = wire.len();
    wire.extend(read_record(&mut c_peer).await);

    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut fed = 0;
    let handshake_bytes = read.load(Ordering::SeqCst);
    for piece in wire.chunks(7) {
        s_peer.write_all(piece).await.unwrap();
        fed += piece.len();
        // A fresh coop budget, so the transport itself is never what
        // returns Pending.
        tokio::task::yield_now().await;
        let before = read.load(Ordering::SeqCst);
        let mut fut = Box::pin(server.read(&mut buf));
        let polled = poll_once(&mut fut).await;
        drop(fut);
        match polled {
            Poll::Pending => {
                // Pending only while the first record is incomplete, and the
                // piece was taken from the transport all the same.
                assert!(fed < first_len || got.len() >= first.len());
                assert_eq!(read.load(Ordering::SeqCst) - before, piece.len());
            }
            Poll::Ready(r) => {
                let n = r.expect("read");
                got.extend_from_slice(&buf[..n]);
            }
        }
    }
    assert_eq!(read.load(Ordering::SeqCst) - handshake_bytes, wire.len());
    // Whatever is still buffered arrives with plain reads.
    let mut want = first.clone();
    want.extend_from_slice(&second);
    while got.len() < want.len() {
        let n = bounded(server.read(&mut buf)).await.expect("read");
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == want, "every byte arrives, in order");
}

#[tokio::test]
async fn lazy_acceptor_picks_config_by_sni_for_tls13_and_tls12() {
    let pki = pki::pki();
    let localhost = Arc::new(server_config().alpn(&[b"h2"]).unwrap());
    let other = Arc::new(
        ServerConfig::new(server_key(&pki.other))
            .alpn(&[b"http/1.1"])
            .unwrap(),
    );
    for version in [ProtocolVersion::TLS1_3, ProtocolVersion::TLS1_2] {
        for (name, want_alpn) in [("other.test", &b"http/1.1"[..]), ("localhost", &b"h2"[..])] {
            let client = client_config()
                .versions(&[version])
                .unwrap()
                .alpn(&[b"h2".as_slice(), b"http/1.1"])
                .unwrap();
            let (c_io, s_io) = duplex(16 * 1024);
            let connector = TlsConnector::new(Arc::new(client));
            let (localhost, other) = (localhost.clone(), other.clone());
            let server = async move {
                let start = LazyConfigAcceptor::new(s_io)
                    .handshake_timeout(TIMEOUT)
                    .await?;
                let offered: Vec<Vec<u8>> = start.alpn().map(|p| p.to_vec()).collect();
                assert_eq!(offered, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
                let config = match start.server_name() {
                    Some("other.test") => other,
                    _ => localhost,
                };
                let mut s = start.into_stream(config).await?;
                s.write_all(b"hello").await?;
                s.shutdown().await?;
                io::Result::Ok(s.server_name().map(str::to_string))
            };
            let client = async {
                let mut c = connector.connect(name, c_io).await?;
                let mut v = Vec::new();
                c.read_to_end(&mut v).await?;
                io::Result::Ok((
                    v,
                    c.alpn_protocol().map(<[u8]>::to_vec),
                    c.protocol_version(),
                ))
            };
            let (s, c) = bounded(async { tokio::join!(server, client) }).await;
            assert_eq!(s.expect("server").as_deref(), Some(name));
            let (data, alpn, v) = c.expect("client verified the chosen certificate");
            assert_eq!(data, b"hello");
            assert_eq!(alpn.as_deref(), Some(want_alpn));
            assert_eq!(v, Some(version));
        }
    }
}

#[tokio::test]
async fn lazy_acceptor_rejects_a_non_tls_client() {
    let (mut c_io, s_io) = duplex(1024);
    c_io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let err = bounded(LazyConfigAcceptor::new(s_io))
        .await
        .expect_err("not TLS");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    // It answered with a fatal unexpected_message alert record.
    let mut alert = [0u8; 7];
    bounded(c_io.read_exact(&mut alert)).await.unwrap();
    assert_eq!(alert, [21, 3, 3, 0, 2, 2, 10]);
}

#[tokio::test]
async fn handshake_timeout_fires_when_the_peer_is_silent() {
    let (_silent, s_io) = duplex(1024);
    let acceptor = TlsAcceptor::new(Arc::new(server_config()))
        .handshake_timeout(Some(Duration::from_millis(200)));
    let start = Instant::now();
    let err = bounded(acceptor.accept(s_io)).await.expect_err("timed out");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(200));

    let (_silent, c_io) = duplex(1024);
    let connector = TlsConnector::new(Arc::new(client_config()))
        .handshake_timeout(Some(Duration::from_millis(200)));
    let err = bounded(connector.connect("localhost", c_io))
        .await
        .expect_err("timed out");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn idle_timeout_counts_from_the_last_transport_activity() {
    let (mut c, mut s) = pair(
        Arc::new(client_config()),
        Arc::new(server_config()),
        16 * 1024,
    )
    .await;
    let idle = Duration::from_millis(500);
    s.set_idle_timeout(Some(idle));
    // Activity every 100 ms keeps it alive well past the timeout...
    let writer = async move {
        for i in 0..8u8 {
            c.write_all(&[i]).await?;
            c.flush().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        io::Result::Ok(c) // kept open, silent
    };
    let reader = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let err = loop {
            match s.read(&mut buf).await {
                Ok(0) => panic!("unexpected EOF"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        (got, err)
    };
    let (c, (got, err)) = bounded(async { tokio::join!(writer, reader) }).await;
    let _c = c.expect("client writes");
    assert_eq!(got, (0..8u8).collect::<Vec<_>>(), "no timeout while active");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    // Sticky: the connection failed.
    let err = s.write_all(b"x").await.expect_err("failed connection");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}
