//! In-memory handshakes, client and server cost measured separately (each
//! iteration runs a whole handshake and times one side's calls, session
//! creation included). Full: TLS 1.3 with X25519 and with X25519MLKEM768
//! (ECDSA P-256), TLS 1.3 with RSA-2048, TLS 1.2 ECDHE-ECDSA. Resumed: TLS
//! 1.3 with a ticket (psk_dhe_ke, X25519); the client's time includes taking
//! in the new tickets, which it needs to resume again. TLS 1.2 resumption
//! is not implemented yet, so it has no bench.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{check_negotiated, configs, connect, drain, Kind, Pki};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nbtls::codec::{CipherSuite, NamedGroup, ProtocolVersion};

#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

struct Case {
    name: &'static str,
    kind: Kind,
    suite: CipherSuite,
    group: NamedGroup,
    version: ProtocolVersion,
    resume: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "tls13-x25519-ecdsa",
        kind: Kind::Ecdsa,
        suite: CipherSuite::TLS_AES_128_GCM_SHA256,
        group: NamedGroup::X25519,
        version: ProtocolVersion::TLS1_3,
        resume: false,
    },
    Case {
        name: "tls13-x25519mlkem768-ecdsa",
        kind: Kind::Ecdsa,
        suite: CipherSuite::TLS_AES_128_GCM_SHA256,
        group: NamedGroup::X25519MLKEM768,
        version: ProtocolVersion::TLS1_3,
        resume: false,
    },
    Case {
        name: "tls13-x25519-rsa2048",
        kind: Kind::Rsa,
        suite: CipherSuite::TLS_AES_128_GCM_SHA256,
        group: NamedGroup::X25519,
        version: ProtocolVersion::TLS1_3,
        resume: false,
    },
    Case {
        name: "tls12-ecdhe-ecdsa",
        kind: Kind::Ecdsa,
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        group: NamedGroup::X25519,
        version: ProtocolVersion::TLS1_2,
        resume: false,
    },
    Case {
        name: "tls13-resumed-x25519",
        kind: Kind::Ecdsa,
        suite: CipherSuite::TLS_AES_128_GCM_SHA256,
        group: NamedGroup::X25519,
        version: ProtocolVersion::TLS1_3,
        resume: true,
    },
];

fn handshakes(c: &mut Criterion) {
    let ecdsa = Pki::new(Kind::Ecdsa);
    let rsa = Pki::new(Kind::Rsa);
    let mut group = c.benchmark_group("handshake");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for case in CASES {
        let pki = match case.kind {
            Kind::Ecdsa => &ecdsa,
            Kind::Rsa => &rsa,
        };
        let (client, server) = configs(pki, case.suite, case.group, case.resume);
        // Check the configuration does what the name says (and prime the
        // client's session store for resumption).
        let (mut cl, _, _) = connect(&client, &server);
        check_negotiated(&cl, case.version, case.group, false);
        drain(&mut cl);
        if case.resume {
            let (mut cl, _, _) = connect(&client, &server);
            check_negotiated(&cl, case.version, case.group, true);
            drain(&mut cl);
        }
        for side in [Side::Client, Side::Server] {
            let label = match side {
                Side::Client => "client",
                Side::Server => "server",
            };
            group.bench_function(BenchmarkId::new(case.name, label), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (mut cl, sv, t) = connect(&client, &server);
                        assert_eq!(cl.info().resumed, case.resume);
                        // A resuming client must take in new tickets to go on.
                        let tickets = if case.resume {
                            drain(&mut cl)
                        } else {
                            Duration::ZERO
                        };
                        total += match side {
                            Side::Client => t.client + tickets,
                            Side::Server => t.server,
                        };
                        black_box((cl, sv));
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
