//! TLS 1.2 (RFC 5246) client and server: ECDHE with ECDSA or RSA
//! certificates and AEAD suites only, Extended Master Secret (RFC 7627),
//! secure renegotiation signalling (RFC 5746) with renegotiation refused.

pub mod client;
pub mod server;

use crate::codec::{put_handshake, HandshakeType};
use crate::crypto::aead::RecordKey;
use crate::crypto::hash::hash;
use crate::crypto::prf::prf;
use crate::crypto::{AeadAlg, Secret, Tls12Suite};
use crate::error::{Error, Result};
use crate::record::tls::Protection;

/// Queues message `m` of type `typ` and adds it to the transcript `msgs`.
pub(crate) fn send<T: crate::codec::Codec>(
    core: &mut crate::handshake::tls13::Core,
    msgs: &mut Vec<u8>,
    typ: HandshakeType,
    m: &T,
) -> Result<()> {
    let mut out = Vec::new();
    put_handshake(&mut out, typ, |o| m.encode(o));
    core.send_handshake_logged(&out, msgs)
}

/// What a TLS 1.2 session keeps after its handshake: for the exporter and
/// key logging.
pub struct Tls12Secrets {
    pub suite: &'static Tls12Suite,
    pub master: Secret,
    pub client_random: [u8; 32],
    pub server_random: [u8; 32],
    pub ems: bool,
}

/// RFC 7627 §4 (with EMS: the session hash) or RFC 5246 §8.1.
pub fn master_secret(
    suite: &Tls12Suite,
    pms: &[u8],
    session_hash: Option<&[u8]>,
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Secret {
    let mut out = [0u8; 48];
    match session_hash {
        Some(h) => prf(suite.hash, pms, b"extended master secret", &[h], &mut out),
        None => prf(
            suite.hash,
            pms,
            b"master secret",
            &[client_random, server_random],
            &mut out,
        ),
    }
    let s = Secret::from_slice(&out);
    zeroize::Zeroize::zeroize(&mut out);
    s
}

/// The record protection a suite uses.
pub fn protection(suite: &Tls12Suite) -> Protection {
    match suite.aead {
        AeadAlg::Chacha20Poly1305 => Protection::Tls12,
        _ => Protection::Tls12ExplicitNonce,
    }
}

/// The key block (RFC 5246 §6.3): (client write key, server write key).
pub fn record_keys(
    suite: &Tls12Suite,
    master: &Secret,
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Result<(RecordKey, RecordKey)> {
    let key_len = suite.aead.key_len();
    // AES-GCM: a 4-byte salt (RFC 5288 §3); ChaCha20: a 12-byte IV (RFC 7905 §2).
    let iv_len = match protection(suite) {
        Protection::Tls12 => 12,
        _ => 4,
    };
    let mut block = zeroize::Zeroizing::new([0u8; 2 * 32 + 2 * 12]);
    let block = &mut block[..2 * (key_len + iv_len)];
    prf(
        suite.hash,
        master.as_bytes(),
        b"key expansion",
        &[server_random, client_random],
        block,
    );
    let (client_key, rest) = block.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_iv, server_iv) = rest.split_at(iv_len);
    let iv = |b: &[u8]| {
        let mut iv = [0u8; 12];
        iv[..b.len()].copy_from_slice(b);
        iv
    };
    Ok((
        RecordKey::new(suite.aead, client_key, &iv(client_iv))?,
        RecordKey::new(suite.aead, server_key, &iv(server_iv))?,
    ))
}

/// The 12 bytes of a Finished (RFC 5246 §7.4.9).
pub fn verify_data(suite: &Tls12Suite, master: &Secret, client: bool, msgs: &[u8]) -> [u8; 12] {
    let label: &[u8] = if client {
        b"client finished"
    } else {
        b"server finished"
    };
    let h = hash(suite.hash, msgs);
    let mut out = [0u8; 12];
    prf(
        suite.hash,
        master.as_bytes(),
        label,
        &[h.as_bytes()],
        &mut out,
    );
    out
}

pub fn finished_message(verify_data: &[u8; 12]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_handshake(&mut out, HandshakeType::FINISHED, |o| {
        o.extend_from_slice(verify_data)
    });
    out
}

/// Checks a received Finished in constant time.
pub fn check_finished(expected: &[u8; 12], body: &[u8]) -> Result<()> {
    if body.len() != 12 {
        return Err(Error::decode("Finished has the wrong length"));
    }
    aws_lc_rs::constant_time::verify_slices_are_equal(expected, body).map_err(|_| {
        Error::protocol(
            crate::codec::AlertDescription::DECRYPT_ERROR,
            "Finished verification failed",
        )
    })
}

/// RFC 5705 exporter; refused without EMS (RFC 7627 §5.4). An empty
/// `context` means "no context", as the OpenSSL and GnuTLS tools use it.
pub fn export(secrets: &Tls12Secrets, label: &[u8], context: &[u8], out: &mut [u8]) -> Result<()> {
    if !secrets.ems {
        return Err(Error::InvalidRequest(
            "the TLS 1.2 exporter needs Extended Master Secret",
        ));
    }
    if context.len() > usize::from(u16::MAX) {
        return Err(Error::InvalidRequest("exporter context too long"));
    }
    let ctx_len = (context.len() as u16).to_be_bytes();
    let (cr, sr) = (&secrets.client_random[..], &secrets.server_random[..]);
    let seed: &[&[u8]] = if context.is_empty() {
        &[cr, sr]
    } else {
        &[cr, sr, &ctx_len, context]
    };
    prf(
        secrets.suite.hash,
        secrets.master.as_bytes(),
        label,
        seed,
        out,
    );
    Ok(())
}
