//! Record protection through the public `Session` API, per cipher suite, at
//! 1 KiB and 16 KiB: `seal` is one `send` (copy in, encrypt in place, push
//! to a transport that drops the bytes); `open` is one `recv` of a record
//! queued beforehand (two transport reads, decrypt in place, copy out).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{configs, connect, drain, Kind, MemSession, Pki};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use nbtls::codec::{CipherSuite, NamedGroup};

const SUITES: &[(&str, CipherSuite)] = &[
    ("tls13-aes128gcm", CipherSuite::TLS_AES_128_GCM_SHA256),
    ("tls13-aes256gcm", CipherSuite::TLS_AES_256_GCM_SHA384),
    ("tls13-chacha20", CipherSuite::TLS_CHACHA20_POLY1305_SHA256),
    (
        "tls12-aes128gcm",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "tls12-aes256gcm",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "tls12-chacha20",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

const SIZES: &[usize] = &[1024, 16384];

/// An established pair for `suite`, the client's tickets taken in.
fn pair(pki: &Pki, suite: CipherSuite) -> (MemSession, MemSession) {
    let (client, server) = configs(pki, suite, NamedGroup::X25519, false);
    let (mut c, s, _) = connect(&client, &server);
    assert_eq!(c.cipher_suite(), Some(suite));
    drain(&mut c);
    (c, s)
}

fn records(c: &mut Criterion) {
    let pki = Pki::new(Kind::Ecdsa);
    let mut group = c.benchmark_group("record");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for &(name, suite) in SUITES {
        for &size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let data = vec![0x5a; size];

            // Seal: the server sends into a sink.
            let (_c, mut s) = pair(&pki, suite);
            s.transport_mut().outgoing = None;
            group.bench_function(BenchmarkId::new(format!("{name}/seal"), size), |b| {
                b.iter(|| {
                    let n = s.send(black_box(&data)).expect("send");
                    assert_eq!(n, size);
                })
            });

            // Open: records sealed (untimed) in batches, then received.
            let (mut c, mut s) = pair(&pki, suite);
            let mut buf = vec![0u8; size];
            group.bench_function(BenchmarkId::new(format!("{name}/open"), size), |b| {
                b.iter_batched(
                    || assert_eq!(s.send(&data).expect("send"), size),
                    |()| {
                        let n = c.recv(&mut buf).expect("recv");
                        assert_eq!(n, size);
                        black_box(&buf);
                    },
                    BatchSize::NumIterations(64),
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
