//! DTLS 1.2 over tokio UDP sockets: datagram echo, the lossy relay of the
//! library's DTLS tests, size limits, cancellation and the handshake limit.

mod common;
#[path = "../../nbtls/tests/common/udp_relay.rs"]
mod udp_relay;

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::{client_config, pattern, server_config, TIMEOUT};
use nbtls::codec::ProtocolVersion;
use nbtls_tokio::{DtlsAcceptor, DtlsConnector, DtlsListener, DtlsStream};
use tokio::net::UdpSocket;
use tokio::time::timeout;
use udp_relay::{Faults, Relay};

/// A server socket on 127.0.0.1 and the port clients send to.
async fn server_socket() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// Connects `s` to whoever sends it the first datagram, then accepts.
async fn accept(s: UdpSocket) -> io::Result<DtlsStream> {
    let mut probe = [0u8; 1];
    let (_, from) = s.peek_from(&mut probe).await?;
    s.connect(from).await?;
    DtlsAcceptor::new(Arc::new(server_config()))
        .handshake_timeout(Some(TIMEOUT))
        .accept(s)
        .await
}

async fn connect(port: u16) -> io::Result<DtlsStream> {
    let c = UdpSocket::bind("127.0.0.1:0").await?;
    c.connect(("127.0.0.1", port)).await?;
    DtlsConnector::new(Arc::new(client_config()))
        .handshake_timeout(Some(TIMEOUT))
        .connect("localhost", c)
        .await
}

/// Datagram `i`: its index, then a pattern derived from it.
fn datagram(i: u32, len: usize) -> Vec<u8> {
    let mut d = i.to_be_bytes().to_vec();
    d.extend_from_slice(&pattern(u64::from(i), len - 4));
    d
}

#[tokio::test(flavor = "current_thread")]
async fn datagrams_echo_over_udp() {
    let (s, port) = server_socket().await;
    let server = tokio::spawn(async move {
        let mut s = accept(s).await?;
        let mut buf = vec![0u8; 2048];
        loop {
            let n = s.recv(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(s.protocol_version());
            }
            s.send(&buf[..n]).await?;
        }
    });
    let mut c = timeout(TIMEOUT, connect(port)).await.unwrap().unwrap();
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::DTLS1_2));
    let len = c.data_mtu();
    assert!(len > 1000 && len < c.mtu(), "data_mtu {len}");
    let mut buf = vec![0u8; 2048];
    let mut last_seq = None;
    for i in 0..50 {
        let d = datagram(i, if i % 2 == 0 { len } else { 5 + i as usize });
        assert_eq!(c.send(&d).await.unwrap(), d.len());
        let (n, seq) = timeout(TIMEOUT, c.recv_with_seq(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &d[..], "echo of datagram {i}");
        // Epoch 1, one record after the other (nothing is lost here).
        assert_eq!(seq >> 48, 1, "epoch of datagram {i}");
        if let Some(last) = last_seq {
            assert_eq!(seq, last + 1, "sequence of datagram {i}");
        }
        last_seq = Some(seq);
    }
    c.shutdown().await.unwrap();
    let version = timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
    assert_eq!(version, Some(ProtocolVersion::DTLS1_2));
}

#[tokio::test(flavor = "current_thread")]
async fn send_over_data_mtu_is_refused_and_exactly_data_mtu_goes_through() {
    let (s, port) = server_socket().await;
    let server = tokio::spawn(async move {
        let mut s = accept(s).await?;
        let mut buf = vec![0u8; 4096];
        let n = s.recv(&mut buf).await?;
        io::Result::Ok(buf[..n].to_vec())
    });
    let mut c = timeout(TIMEOUT, connect(port)).await.unwrap().unwrap();
    let len = c.data_mtu();
    let err = c.send(&vec![7u8; len + 1]).await.unwrap_err();
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<nbtls::Error>());
    assert!(matches!(inner, Some(nbtls::Error::LargePacket)), "{err:?}");
    assert_eq!(c.send(&vec![9u8; len]).await.unwrap(), len);
    let got = timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
    assert_eq!(got, vec![9u8; len], "only the datagram that fit arrived");
}

/// A `recv` dropped while waiting loses nothing: the datagram that arrives
/// afterwards is returned by the next `recv`.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_recv_future_loses_no_datagram() {
    let (s, port) = server_socket().await;
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut s = accept(s).await?;
        go_rx.await.ok();
        for i in 0..3 {
            s.send(&datagram(i, 100)).await?;
        }
        let mut buf = [0u8; 16];
        // Wait for the client's close before dropping the session.
        let _ = timeout(TIMEOUT, s.recv(&mut buf)).await;
        io::Result::Ok(())
    });
    let mut c = timeout(TIMEOUT, connect(port)).await.unwrap().unwrap();
    let mut buf = vec![0u8; 2048];
    // Polled (and so registered with the socket) then cancelled.
    assert!(timeout(Duration::from_millis(50), c.recv(&mut buf))
        .await
        .is_err());
    go_tx.send(()).unwrap();
    // Cancel a few more mid-wait while the datagrams arrive.
    let mut got = Vec::new();
    while got.len() < 3 {
        match timeout(Duration::from_millis(1), c.recv(&mut buf)).await {
            Ok(r) => got.push(buf[..r.unwrap()].to_vec()),
            Err(_) => continue,
        }
    }
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d, &datagram(i as u32, 100));
    }
    c.shutdown().await.unwrap();
    timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_server_ends_the_handshake_at_its_limit() {
    let (_silent, port) = server_socket().await;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(("127.0.0.1", port)).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = DtlsConnector::new(Arc::new(client_config()))
        .handshake_timeout(Some(Duration::from_millis(1500)))
        .connect("localhost", c)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < TIMEOUT,
        "{took:?}"
    );
}

/// The relay drops 30 % of datagrams both ways, duplicates and reorders
/// 10 %: the handshake completes on retransmissions, and every data
/// datagram that gets through arrives intact and once. The server is a
/// connected socket or a many-client listener.
async fn through_a_lossy_relay(listener: bool, seed: u64) {
    const COUNT: u32 = 400;
    let faults = Faults {
        drop_pct: 30,
        dup_pct: 10,
        reorder_pct: 10,
    };
    let (s, port) = server_socket().await;
    let relay = Relay::start(port, faults, seed);
    let server = tokio::spawn(async move {
        let mut s = if listener {
            let config = Arc::new(server_config());
            let mut l = DtlsListener::from_socket(s, config, Default::default())?;
            Box::new(l.accept().await?.0) as Box<dyn RecvDatagram + Send>
        } else {
            Box::new(accept(s).await?)
        };
        let mut seen = HashSet::new();
        let mut buf = vec![0u8; 2048];
        // The stream's end is silence (no close_notify survives loss); the
        // first datagram may wait for the client's handshake to finish.
        loop {
            let wait = if seen.is_empty() {
                TIMEOUT
            } else {
                Duration::from_millis(500)
            };
            let Ok(r) = timeout(wait, s.recv_one(&mut buf)).await else {
                break;
            };
            let n = r?;
            let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert_eq!(&buf[..n], &datagram(i, n)[..], "datagram {i} intact");
            assert!(seen.insert(i), "datagram {i} delivered twice");
        }
        io::Result::Ok(seen.len())
    });
    let mut c = timeout(TIMEOUT, connect(relay.port))
        .await
        .unwrap()
        .unwrap();
    let len = c.data_mtu();
    for i in 0..COUNT {
        c.send(&datagram(i, len)).await.unwrap();
        // Pace, so only the relay drops datagrams (not socket buffers).
        if i % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let delivered = timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
    let dropped = relay
        .to_server
        .app_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 0, "the relay dropped data");
    assert_eq!(
        delivered + dropped,
        COUNT as usize,
        "delivered + dropped = sent"
    );
}

/// `recv` over either kind of server stream.
trait RecvDatagram {
    fn recv_one<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<usize>> + Send + 'a>>;
}

impl<S: nbtls_tokio::DatagramIo + Send> RecvDatagram for DtlsStream<S> {
    fn recv_one<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<usize>> + Send + 'a>> {
        Box::pin(self.recv(buf))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn handshake_and_data_through_a_lossy_relay() {
    through_a_lossy_relay(false, 0x0005_eed0_fa5c_1e55).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_listener_through_a_lossy_relay() {
    through_a_lossy_relay(true, 0x0005_eed0_fa5c_1e55).await;
}

/// 50 clients at once on one listener socket, one runtime thread: each
/// gets its own session, and every echo is checked.
#[tokio::test(flavor = "current_thread")]
async fn many_clients_on_one_listener() {
    const CLIENTS: u32 = 50;
    let mut l = DtlsListener::bind("127.0.0.1:0", Arc::new(server_config()))
        .await
        .unwrap();
    let port = l.local_addr().port();
    let server = tokio::spawn(async move {
        let mut peers = HashSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (mut s, peer) = l.accept().await?;
            assert!(peers.insert(peer), "one session per client");
            tasks.spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    let n = s.recv(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    s.send(&buf[..n]).await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap()?;
        }
        io::Result::Ok(peers.len())
    });
    let mut clients = tokio::task::JoinSet::new();
    for k in 0..CLIENTS {
        clients.spawn(async move {
            let mut c = connect(port).await?;
            let mut buf = vec![0u8; 2048];
            for i in 0..5 {
                let d = datagram(k * 100 + i, 40 + i as usize * 100);
                c.send(&d).await?;
                let n = timeout(TIMEOUT, c.recv(&mut buf)).await??;
                assert_eq!(&buf[..n], &d[..], "client {k} echo {i}");
            }
            c.shutdown().await
        });
    }
    while let Some(r) = clients.join_next().await {
        timeout(TIMEOUT, async { r.unwrap() })
            .await
            .unwrap()
            .unwrap();
    }
    let served = timeout(TIMEOUT, server).await.unwrap().unwrap().unwrap();
    assert_eq!(served, CLIENTS as usize);
}
