//! The limits of DESIGN.md §4 that `nbtls::Limits` carries, each at its default and
//! lowered: just under the limit works, just over it fails with `Error::LimitExceeded`
//! and its alert, which goes out on the wire and reaches the peer. Also the
//! compatibility change_cipher_spec rule (accepted only before the peer's Finished).

mod common;

use std::sync::Arc;

use common::mitm::{hook, hs_message, plain_record, Dir, RawServer, Side, Verdict, Wired};
use common::tls::{client_config, server_config};
use nbtls::codec::{
    AlertDescription as A, ClientExtension, ContentType, ExtensionType, HandshakeMessage,
    HandshakeType as H, NewSessionTicket13, ProtocolVersion,
};
use nbtls::x509::{CertificateDer, SigningKey};
use nbtls::{CertifiedKey, ClientAuth, Error, Limits, ServerConfig, TrustAnchors};

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

fn assert_limit(err: &Error, alert: A, limit: &str) {
    assert!(
        matches!(err, Error::LimitExceeded { alert: a, limit: l } if *a == alert && *l == limit),
        "expected LimitExceeded({alert:?}, {limit}), got {err:?}"
    );
    assert_eq!(err.alert(), Some(alert));
}

/// The failing side sent exactly `alert`, and the peer (driven with `recv`
/// if it had finished its handshake) read it.
fn assert_alert_delivered(w: &mut Wired, victim: Side, alert: A, peer: Result<(), Error>) {
    w.mitm.pump();
    assert_eq!(w.mitm.alerts(victim.sends()), [(2, alert)]);
    let peer = match peer {
        Ok(()) => w.recv(victim.peer(), &mut [0u8; 16]).map(|_| ()),
        other => other,
    };
    assert_eq!(peer, Err(Error::AlertReceived(alert)));
}

// ---------------------------------------------------------------------------
// Handshake message size
// ---------------------------------------------------------------------------

#[test]
fn handshake_message_default_limit_is_64_kib() {
    assert_eq!(Limits::default().max_handshake_message, 64 * 1024);
    // A header announcing exactly 64 KiB is buffered (the server waits for the rest).
    let mut r = RawServer::new(server_config());
    let mut b = plain_record(ContentType::HANDSHAKE, &[1, 0x01, 0x00, 0x00]);
    b.extend(plain_record(ContentType::HANDSHAKE, &vec![0; 16384]));
    assert_eq!(r.feed(&b), Err(Error::Again));
    // One byte more is refused at the header, before the body is read.
    let mut r = RawServer::new(server_config());
    let mut b = plain_record(ContentType::HANDSHAKE, &[1, 0x01, 0x00, 0x01]);
    let header_record = b.len();
    b.extend(plain_record(ContentType::HANDSHAKE, &vec![0; 16384]));
    let err = r.feed(&b).unwrap_err();
    assert_limit(&err, A::DECODE_ERROR, "handshake message size");
    assert_eq!(r.server.transport().readable(), b.len() - header_record);
    r.mitm.pump();
    assert_eq!(r.mitm.alerts(Dir::ToClient), [(2, A::DECODE_ERROR)]);
}

#[test]
fn handshake_message_limit_is_configurable_on_the_server() {
    // The client's hello carries an X25519MLKEM768 share: about 1.5 KB.
    let small = server_config().limits(limits(|l| l.max_handshake_message = 1024));
    let mut w = Wired::new(client_config(), small);
    let o = w.handshake();
    let err = o.server.unwrap_err();
    assert_limit(&err, A::DECODE_ERROR, "handshake message size");
    assert_alert_delivered(&mut w, Side::Server, A::DECODE_ERROR, o.client);

    let enough = server_config().limits(limits(|l| l.max_handshake_message = 2048));
    let o = Wired::new(client_config(), enough).handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
}

#[test]
fn handshake_message_limit_is_configurable_on_the_client() {
    // Measure the server's largest handshake message (its ServerHello, with
    // an X25519MLKEM768 share), then set the client's limit one byte under
    // and exactly at that body length.
    let mut w = Wired::connected(client_config(), server_config());
    w.mitm.pump();
    let largest = w
        .mitm
        .seen_dir(Dir::ToClient)
        .iter()
        .filter(|r| r.hs_type().is_some())
        .map(|r| r.payload.len() - 4)
        .max()
        .expect("handshake messages");

    let under = client_config().limits(limits(|l| l.max_handshake_message = largest - 1));
    let mut w = Wired::new(under, server_config());
    let o = w.handshake();
    let err = o.client.unwrap_err();
    assert_limit(&err, A::DECODE_ERROR, "handshake message size");
    assert_alert_delivered(&mut w, Side::Client, A::DECODE_ERROR, o.server);

    let exact = client_config().limits(limits(|l| l.max_handshake_message = largest));
    let o = Wired::new(exact, server_config()).handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
}

#[test]
fn oversized_padded_client_hello_is_refused() {
    // A hello grown with a padding extension past a lowered limit.
    let cfg = server_config().limits(limits(|l| l.max_handshake_message = 4096));
    let mut w = Wired::new(client_config(), cfg);
    w.mitm.set_hook(hook(|_, rec| {
        if rec.hs_type() == Some(H::CLIENT_HELLO) {
            let mut ch = nbtls::codec::ClientHello::from_message(&rec.payload).expect("hello");
            ch.extensions.insert(
                0,
                ClientExtension::Unknown(ExtensionType::PADDING, vec![0; 4096]),
            );
            rec.payload = ch.to_message_bytes();
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert_limit(
        &o.server.unwrap_err(),
        A::DECODE_ERROR,
        "handshake message size",
    );
    w.mitm.pump();
    assert_eq!(w.mitm.alerts(Dir::ToClient), [(2, A::DECODE_ERROR)]);
    // The client, with no keys yet, reads the plaintext alert.
    assert_eq!(o.client, Err(Error::AlertReceived(A::DECODE_ERROR)));
}

// ---------------------------------------------------------------------------
// Certificate chain length
// ---------------------------------------------------------------------------

/// The ECDSA server key with a chain of `n` certificates: the leaf, then the
/// issuing CA repeated (path building needs only the first).
fn chain_of(n: usize, files: &common::certs::CertFiles) -> Arc<CertifiedKey> {
    let ca = CertificateDer::from(common::certs::pki().ca_der.clone());
    let mut chain = vec![CertificateDer::from(files.leaf_der.clone())];
    chain.extend(std::iter::repeat_n(ca, n - 1));
    let key = SigningKey::from_der(&files.private_key()).expect("key");
    Arc::new(CertifiedKey::new(chain, key).expect("certified key"))
}

#[test]
fn server_chain_of_ten_is_accepted_and_eleven_refused() {
    assert_eq!(Limits::default().max_certificate_chain, 10);
    let pki = common::certs::pki();
    let o = Wired::new(
        client_config(),
        ServerConfig::new(chain_of(10, &pki.server_ecdsa)),
    )
    .handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");

    let mut w = Wired::new(
        client_config(),
        ServerConfig::new(chain_of(11, &pki.server_ecdsa)),
    );
    let o = w.handshake();
    let err = o.client.unwrap_err();
    // nbtls sends bad_certificate for an over-long chain (received_chain()).
    assert_limit(&err, A::BAD_CERTIFICATE, "certificate chain length");
    assert_alert_delivered(&mut w, Side::Client, A::BAD_CERTIFICATE, o.server);
}

#[test]
fn chain_limit_is_configurable_on_the_client() {
    // The default test chain is leaf + CA: two certificates.
    let one = client_config().limits(limits(|l| l.max_certificate_chain = 1));
    let mut w = Wired::new(one, server_config());
    let o = w.handshake();
    assert_limit(
        &o.client.unwrap_err(),
        A::BAD_CERTIFICATE,
        "certificate chain length",
    );
    assert_alert_delivered(&mut w, Side::Client, A::BAD_CERTIFICATE, o.server);

    let two = client_config().limits(limits(|l| l.max_certificate_chain = 2));
    let o = Wired::new(two, server_config()).handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
}

#[test]
fn client_chain_over_the_server_limit_is_refused() {
    let pki = common::certs::pki();
    let anchors = TrustAnchors::from_certs(&[pki.ca_cert()]).expect("anchors");
    let server = server_config().client_auth(ClientAuth::Require, anchors);
    let ok = client_config().client_certificate(chain_of(10, &pki.client_ecdsa));
    let o = Wired::new(ok, server.clone()).handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");

    let long = client_config().client_certificate(chain_of(11, &pki.client_ecdsa));
    let mut w = Wired::new(long, server);
    let o = w.handshake();
    assert_limit(
        &o.server.unwrap_err(),
        A::BAD_CERTIFICATE,
        "certificate chain length",
    );
    assert_alert_delivered(&mut w, Side::Server, A::BAD_CERTIFICATE, o.client);
}

// ---------------------------------------------------------------------------
// Empty records
// ---------------------------------------------------------------------------

fn empty_records(w: &mut Wired, to: Dir, n: usize) {
    w.mitm.inject(to, |ctx| {
        (0..n)
            .map(|_| ctx.record(ContentType::APPLICATION_DATA, &[]))
            .collect()
    });
}

fn data(w: &mut Wired, to: Dir, payload: &'static [u8]) {
    w.mitm.inject(to, |ctx| {
        vec![ctx.record(ContentType::APPLICATION_DATA, payload)]
    });
}

#[test]
fn thirty_two_empty_records_pass_and_the_thirty_third_fails() {
    assert_eq!(Limits::default().max_empty_records, 32);
    let mut w = Wired::connected(client_config(), server_config());
    let mut buf = [0u8; 32];
    // 32 empty records then data, twice: data resets the count.
    for round in 0..2 {
        empty_records(&mut w, Dir::ToClient, 32);
        data(&mut w, Dir::ToClient, b"after");
        assert_eq!(w.recv(Side::Client, &mut buf), Ok(5), "round {round}");
        assert_eq!(&buf[..5], b"after");
    }
    empty_records(&mut w, Dir::ToClient, 33);
    let err = w.recv(Side::Client, &mut buf).unwrap_err();
    assert_limit(&err, A::UNEXPECTED_MESSAGE, "consecutive empty records");
    assert_alert_delivered(&mut w, Side::Client, A::UNEXPECTED_MESSAGE, Ok(()));
    assert_eq!(w.client.recv(&mut buf), Err(err), "sticky");
}

#[test]
fn empty_record_limit_is_configurable_and_counts_on_the_server_too() {
    let s = server_config().limits(limits(|l| l.max_empty_records = 3));
    let mut w = Wired::connected(client_config(), s);
    let mut buf = [0u8; 32];
    empty_records(&mut w, Dir::ToServer, 3);
    data(&mut w, Dir::ToServer, b"ok");
    assert_eq!(w.recv(Side::Server, &mut buf), Ok(2));
    empty_records(&mut w, Dir::ToServer, 4);
    let err = w.recv(Side::Server, &mut buf).unwrap_err();
    assert_limit(&err, A::UNEXPECTED_MESSAGE, "consecutive empty records");
    assert_alert_delivered(&mut w, Side::Server, A::UNEXPECTED_MESSAGE, Ok(()));
}

// ---------------------------------------------------------------------------
// KeyUpdates without application data
// ---------------------------------------------------------------------------

fn key_updates(w: &mut Wired, to: Dir, n: usize) {
    w.mitm.inject(to, |ctx| {
        (0..n)
            .map(|_| ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[0])))
            .collect()
    });
}

#[test]
fn thirty_two_key_updates_pass_and_the_thirty_third_fails() {
    assert_eq!(Limits::default().max_key_updates, 32);
    let mut w = Wired::connected(client_config(), server_config());
    let mut buf = [0u8; 32];
    for round in 0..2 {
        key_updates(&mut w, Dir::ToClient, 32);
        // The data is sealed under the 32nd new key: the client followed every update.
        data(&mut w, Dir::ToClient, b"rekeyed");
        assert_eq!(w.recv(Side::Client, &mut buf), Ok(7), "round {round}");
    }
    key_updates(&mut w, Dir::ToClient, 33);
    let err = w.recv(Side::Client, &mut buf).unwrap_err();
    assert_limit(
        &err,
        A::UNEXPECTED_MESSAGE,
        "KeyUpdates without application data",
    );
    assert_alert_delivered(&mut w, Side::Client, A::UNEXPECTED_MESSAGE, Ok(()));
}

#[test]
fn key_update_limit_is_configurable() {
    let c = client_config().limits(limits(|l| l.max_key_updates = 1));
    let mut w = Wired::connected(c, server_config());
    let mut buf = [0u8; 32];
    key_updates(&mut w, Dir::ToClient, 1);
    data(&mut w, Dir::ToClient, b"x");
    assert_eq!(w.recv(Side::Client, &mut buf), Ok(1));
    key_updates(&mut w, Dir::ToClient, 2);
    let err = w.recv(Side::Client, &mut buf).unwrap_err();
    assert_limit(
        &err,
        A::UNEXPECTED_MESSAGE,
        "KeyUpdates without application data",
    );
    assert_alert_delivered(&mut w, Side::Client, A::UNEXPECTED_MESSAGE, Ok(()));
}

// ---------------------------------------------------------------------------
// Tickets kept
// ---------------------------------------------------------------------------

fn tickets(w: &mut Wired, n: usize) {
    w.mitm.inject(Dir::ToClient, |ctx| {
        (0..n)
            .map(|i| {
                let t = NewSessionTicket13 {
                    lifetime: 3600,
                    age_add: i as u32,
                    nonce: vec![i as u8],
                    ticket: vec![i as u8; 48],
                    extensions: vec![],
                };
                ctx.record(ContentType::HANDSHAKE, &t.to_message_bytes())
            })
            .collect()
    });
}

#[test]
fn client_keeps_at_most_max_tickets() {
    assert_eq!(Limits::default().max_tickets, 8);
    for (max, sent, kept) in [(8, 5, 5), (8, 12, 8), (3, 10, 3)] {
        let c = client_config().limits(limits(|l| l.max_tickets = max));
        // The server's own tickets would count too.
        let mut w = Wired::connected(c, server_config().tickets(0));
        tickets(&mut w, sent);
        data(&mut w, Dir::ToClient, b"after tickets");
        let mut buf = [0u8; 32];
        assert_eq!(
            w.recv(Side::Client, &mut buf),
            Ok(13),
            "max {max} sent {sent}"
        );
        assert_eq!(w.client.tickets_received(), kept, "max {max} sent {sent}");
        // The connection is unharmed.
        assert_eq!(w.client.send(b"ping"), Ok(4));
        assert_eq!(w.recv(Side::Server, &mut buf), Ok(4));
    }
}

// ---------------------------------------------------------------------------
// Compatibility change_cipher_spec: only before the peer's Finished
// ---------------------------------------------------------------------------

fn ccs() -> Vec<u8> {
    plain_record(ContentType::CHANGE_CIPHER_SPEC, &[1])
}

#[test]
fn ccs_before_the_peer_finished_is_dropped() {
    // Extra CCS records around the server's protected flight and before the
    // client's Finished are ignored.
    let mut w = Wired::new(client_config(), server_config());
    w.mitm.set_hook(hook(|ctx, rec| {
        let wanted = matches!(
            (rec.dir, rec.hs_type()),
            (Dir::ToClient, Some(H::CERTIFICATE | H::FINISHED))
                | (Dir::ToServer, Some(H::FINISHED))
        );
        if !wanted {
            return Verdict::Forward;
        }
        let r = ctx.record(rec.typ, &rec.payload);
        Verdict::Emit(vec![ccs(), ccs(), r])
    }));
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    assert!(w.mitm.alerts(Dir::ToClient).is_empty() && w.mitm.alerts(Dir::ToServer).is_empty());
}

#[test]
fn ccs_after_the_peer_finished_is_refused_by_the_client() {
    // Right behind the server's Finished, in the same flight.
    let mut w = Wired::new(client_config(), server_config());
    w.mitm.set_hook(hook(|ctx, rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::FINISHED) {
            let r = ctx.record(rec.typ, &rec.payload);
            return Verdict::Emit(vec![r, ccs()]);
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    // The client finished its handshake with the Finished, then read the CCS;
    // depending on timing the error surfaces from handshake() or recv().
    let err = match o.client {
        Err(e) => e,
        Ok(()) => w.recv(Side::Client, &mut [0u8; 8]).unwrap_err(),
    };
    assert!(
        matches!(
            &err,
            Error::Protocol {
                alert: A::UNEXPECTED_MESSAGE,
                ..
            }
        ),
        "{err:?}"
    );
    assert_alert_delivered(&mut w, Side::Client, A::UNEXPECTED_MESSAGE, o.server);
}

#[test]
fn ccs_after_the_peer_finished_is_refused_by_the_server() {
    let mut w = Wired::connected(client_config(), server_config());
    w.mitm.inject(Dir::ToServer, |_| vec![ccs()]);
    let err = w.recv(Side::Server, &mut [0u8; 8]).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Protocol {
                alert: A::UNEXPECTED_MESSAGE,
                ..
            }
        ),
        "{err:?}"
    );
    assert_alert_delivered(&mut w, Side::Server, A::UNEXPECTED_MESSAGE, Ok(()));
}

#[test]
fn a_flood_of_ccs_during_the_handshake_is_bounded() {
    // Each CCS counts as an empty record: 40 of them exceed the 32 allowed.
    let mut w = Wired::new(client_config(), server_config());
    w.mitm.set_hook(hook(|ctx, rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::CERTIFICATE) {
            let mut out: Vec<Vec<u8>> = (0..40).map(|_| ccs()).collect();
            out.push(ctx.record(rec.typ, &rec.payload));
            return Verdict::Emit(out);
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert_limit(
        &o.client.unwrap_err(),
        A::UNEXPECTED_MESSAGE,
        "consecutive empty records",
    );
    assert_alert_delivered(&mut w, Side::Client, A::UNEXPECTED_MESSAGE, o.server);
}

// ---------------------------------------------------------------------------
// TLS 1.2 AEAD usage limit
// ---------------------------------------------------------------------------

#[test]
fn tls12_aead_usage_limit_closes_the_connection() {
    // TLS 1.2 cannot rekey (renegotiation is refused): at the limit the sender
    // closes instead of sealing more. The client's Finished was record 0 of its
    // key, so a limit of 4 leaves room for 3 application records.
    let v12 = [ProtocolVersion::TLS1_2];
    let c = client_config()
        .versions(&v12)
        .expect("1.2")
        .key_update_after(4)
        .expect("limit");
    let mut w = Wired::connected(c, server_config());
    let mut sent = 0;
    let err = loop {
        match w.client.send(b"x") {
            Ok(1) => sent += 1,
            Ok(n) => panic!("sent {n}"),
            Err(e) => break e,
        }
        assert!(sent <= 4, "the limit never hit");
    };
    assert_eq!(sent, 3);
    assert_limit(&err, A::CLOSE_NOTIFY, "AEAD usage limit (TLS 1.2)");
    assert_eq!(w.client.send(b"y"), Err(err.clone()), "sticky");
    w.mitm.pump();
    // A closure, not an error: close_notify is a warning (RFC 5246 §7.2.1), so
    // the peer reads the data and then a clean end of data.
    assert_eq!(w.mitm.alerts(Dir::ToServer), [(1, A::CLOSE_NOTIFY)]);
    let mut buf = [0u8; 16];
    let mut got = 0;
    loop {
        match w.recv(Side::Server, &mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("server recv: {e:?}"),
        }
    }
    assert_eq!(got, 3);
}
