//! Key exchange: X25519, P-256, P-384 (ECDHE) and the X25519MLKEM768 hybrid
//! (draft-ietf-tls-ecdhe-mlkem), which aws-lc-rs does not combine for us.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::kem::{self, Ciphertext, DecapsulationKey, EncapsulationKey};
use zeroize::Zeroizing;

use super::secret::SharedSecret;
use crate::codec::NamedGroup;
use crate::error::{Error, Result};

const X25519_LEN: usize = 32;
const MLKEM768_EK_LEN: usize = 1184;
const MLKEM768_CT_LEN: usize = 1088;
const MLKEM768_SS_LEN: usize = 32;

/// True for the groups nbtls can use.
pub fn is_supported(group: NamedGroup) -> bool {
    matches!(
        group,
        NamedGroup::X25519MLKEM768
            | NamedGroup::X25519
            | NamedGroup::SECP256R1
            | NamedGroup::SECP384R1
    )
}

/// The ECDH algorithm and its public key length (uncompressed points for
/// the NIST curves, RFC 8446 §4.2.8.2).
fn ecdh(group: NamedGroup) -> Option<(&'static agreement::Algorithm, usize)> {
    match group {
        NamedGroup::X25519 => Some((&agreement::X25519, X25519_LEN)),
        NamedGroup::SECP256R1 => Some((&agreement::ECDH_P256, 65)),
        NamedGroup::SECP384R1 => Some((&agreement::ECDH_P384, 97)),
        _ => None,
    }
}

enum Private {
    Ecdh(PrivateKey),
    Hybrid {
        kem: DecapsulationKey,
        x25519: PrivateKey,
    },
}

/// The client's ephemeral key share for one group.
pub struct KeyShare {
    group: NamedGroup,
    public: Vec<u8>,
    private: Private,
}

fn internal(_: impl Sized) -> Error {
    Error::internal("key exchange failed inside the crypto library")
}

fn ecdh_public(key: &PrivateKey) -> Result<Vec<u8>> {
    Ok(key
        .compute_public_key()
        .map_err(internal)?
        .as_ref()
        .to_vec())
}

/// ECDH with a peer public key whose length was checked. A point off the
/// curve, or an X25519 result of all zeros (a small-order peer key, RFC 8446
/// §7.4.2), is the peer's fault.
fn agree(group: NamedGroup, key: &PrivateKey, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (alg, len) = match ecdh(group) {
        Some(a) => a,
        None => return Err(Error::internal("not an ECDH key")),
    };
    if peer.len() != len || (len != X25519_LEN && peer.first() != Some(&0x04)) {
        return Err(Error::illegal("key share of the wrong length or form"));
    }
    let secret = agreement::agree(
        key,
        UnparsedPublicKey::new(alg, peer),
        Error::illegal("invalid key share"),
        |s| Ok(Zeroizing::new(s.to_vec())),
    )?;
    if secret.iter().all(|&b| b == 0) {
        return Err(Error::illegal("all-zero (EC)DHE shared secret"));
    }
    Ok(secret)
}

fn generate_ecdh(group: NamedGroup) -> Result<PrivateKey> {
    let (alg, _) = ecdh(group).ok_or_else(|| Error::config("unsupported key exchange group"))?;
    PrivateKey::generate(alg).map_err(internal)
}

impl KeyShare {
    /// A fresh ephemeral key pair; an unsupported group is a configuration
    /// error.
    pub fn generate(group: NamedGroup) -> Result<Self> {
        if group == NamedGroup::X25519MLKEM768 {
            let kem = DecapsulationKey::generate(&kem::ML_KEM_768).map_err(internal)?;
            let x25519 = generate_ecdh(NamedGroup::X25519)?;
            let ek = kem.encapsulation_key().map_err(internal)?;
            let ek = ek.key_bytes().map_err(internal)?;
            // Client share: ML-KEM-768 encapsulation key ‖ X25519 public key.
            let mut public = Vec::with_capacity(MLKEM768_EK_LEN + X25519_LEN);
            public.extend_from_slice(ek.as_ref());
            public.extend_from_slice(&ecdh_public(&x25519)?);
            return Ok(KeyShare {
                group,
                public,
                private: Private::Hybrid { kem, x25519 },
            });
        }
        let key = generate_ecdh(group)?;
        Ok(KeyShare {
            group,
            public: ecdh_public(&key)?,
            private: Private::Ecdh(key),
        })
    }

    /// A share from a fixed X25519 scalar, for known-answer tests (RFC 8448).
    #[cfg(test)]
    pub(crate) fn x25519_from_private(private: &[u8]) -> Result<Self> {
        let key = PrivateKey::from_private_key(&agreement::X25519, private).map_err(internal)?;
        Ok(KeyShare {
            group: NamedGroup::X25519,
            public: ecdh_public(&key)?,
            private: Private::Ecdh(key),
        })
    }

    /// The group.
    pub fn group(&self) -> NamedGroup {
        self.group
    }

    /// The `key_exchange` bytes to send in the ClientHello.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Completes the exchange with the server's share. A share of the wrong
    /// length, an invalid point, or an all-zero X25519 result is
    /// `illegal_parameter`.
    pub fn complete(self, peer_share: &[u8]) -> Result<SharedSecret> {
        match &self.private {
            Private::Ecdh(key) => Ok(SharedSecret(agree(self.group, key, peer_share)?)),
            Private::Hybrid { kem, x25519 } => {
                if peer_share.len() != MLKEM768_CT_LEN + X25519_LEN {
                    return Err(Error::illegal("X25519MLKEM768 share of the wrong length"));
                }
                let (ct, x_pub) = peer_share.split_at(MLKEM768_CT_LEN);
                // ML-KEM decapsulation rejects implicitly: a bad ciphertext
                // gives a secret the server does not share, and the
                // handshake fails at Finished.
                let ss = kem
                    .decapsulate(Ciphertext::from(ct))
                    .map_err(|_| Error::illegal("invalid ML-KEM ciphertext"))?;
                let x = agree(NamedGroup::X25519, x25519, x_pub)?;
                Ok(hybrid_secret(ss.as_ref(), &x))
            }
        }
    }
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// ML-KEM shared secret ‖ X25519 shared secret (this order, unlike the old
/// X25519Kyber768Draft00).
fn hybrid_secret(mlkem: &[u8], x25519: &[u8]) -> SharedSecret {
    let mut out = Zeroizing::new(Vec::with_capacity(MLKEM768_SS_LEN + X25519_LEN));
    out.extend_from_slice(mlkem);
    out.extend_from_slice(x25519);
    SharedSecret(out)
}

/// Server side: answers a client's share with `(server_share, shared_secret)`.
/// For X25519MLKEM768 the server share is ML-KEM ciphertext (1088) ‖ X25519
/// public key (32). A share of the wrong length or an invalid key is
/// `illegal_parameter`.
pub fn server_accept(group: NamedGroup, client_share: &[u8]) -> Result<(Vec<u8>, SharedSecret)> {
    if group == NamedGroup::X25519MLKEM768 {
        if client_share.len() != MLKEM768_EK_LEN + X25519_LEN {
            return Err(Error::illegal("X25519MLKEM768 share of the wrong length"));
        }
        let (ek, x_pub) = client_share.split_at(MLKEM768_EK_LEN);
        // aws-lc checks the encapsulation key (FIPS 203 §7.2 modulus check)
        // here or at encapsulation; either failure is the client's.
        let ek = EncapsulationKey::new(&kem::ML_KEM_768, ek)
            .map_err(|_| Error::illegal("invalid ML-KEM encapsulation key"))?;
        let (ct, ss) = ek
            .encapsulate()
            .map_err(|_| Error::illegal("invalid ML-KEM encapsulation key"))?;
        let x25519 = generate_ecdh(NamedGroup::X25519)?;
        let x = agree(NamedGroup::X25519, &x25519, x_pub)?;
        let mut share = Vec::with_capacity(MLKEM768_CT_LEN + X25519_LEN);
        share.extend_from_slice(ct.as_ref());
        share.extend_from_slice(&ecdh_public(&x25519)?);
        return Ok((share, hybrid_secret(ss.as_ref(), &x)));
    }
    if ecdh(group).is_none() {
        return Err(Error::internal("server_accept: unsupported group"));
    }
    let key = generate_ecdh(group)?;
    let secret = agree(group, &key, client_share)?;
    Ok((ecdh_public(&key)?, SharedSecret(secret)))
}

/// [`server_accept`] for X25519 with a fixed scalar, for known-answer tests.
#[cfg(test)]
pub(crate) fn server_accept_x25519_with(
    private: &[u8],
    client_share: &[u8],
) -> Result<(Vec<u8>, SharedSecret)> {
    let key = PrivateKey::from_private_key(&agreement::X25519, private).map_err(internal)?;
    let secret = agree(NamedGroup::X25519, &key, client_share)?;
    Ok((ecdh_public(&key)?, SharedSecret(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::AlertDescription;
    use crate::crypto::key_schedule::tests::{hex, ECDHE};

    const GROUPS: [NamedGroup; 4] = [
        NamedGroup::X25519MLKEM768,
        NamedGroup::X25519,
        NamedGroup::SECP256R1,
        NamedGroup::SECP384R1,
    ];

    fn is_illegal(r: Result<impl Sized>) -> bool {
        matches!(r, Err(e) if e.alert() == Some(AlertDescription::ILLEGAL_PARAMETER))
    }

    #[test]
    fn every_group_agrees() {
        for (group, client_len, server_len, ss_len) in [
            (NamedGroup::X25519MLKEM768, 1216, 1120, 64),
            (NamedGroup::X25519, 32, 32, 32),
            (NamedGroup::SECP256R1, 65, 65, 32),
            (NamedGroup::SECP384R1, 97, 97, 48),
        ] {
            assert!(is_supported(group));
            let client = KeyShare::generate(group).unwrap();
            assert_eq!(client.group(), group);
            assert_eq!(client.public().len(), client_len, "{group:?}");
            let (server_share, server_ss) = server_accept(group, client.public()).unwrap();
            assert_eq!(server_share.len(), server_len, "{group:?}");
            let client_ss = client.complete(&server_share).unwrap();
            assert_eq!(client_ss.as_bytes().len(), ss_len, "{group:?}");
            assert_eq!(client_ss.as_bytes(), server_ss.as_bytes(), "{group:?}");
        }
        assert!(!is_supported(NamedGroup::SECP521R1));
        assert!(!is_supported(NamedGroup::X448));
        assert!(matches!(
            KeyShare::generate(NamedGroup::X448),
            Err(Error::Config(_))
        ));
        assert!(server_accept(NamedGroup(0x1234), &[0; 32]).is_err());
    }

    #[test]
    fn hybrid_secret_order_is_mlkem_then_x25519() {
        // The X25519 half of the hybrid secret must be the tail: recompute it
        // from the server's X25519 public key with a client whose X25519
        // half we know.
        let client = KeyShare::generate(NamedGroup::X25519MLKEM768).unwrap();
        let x_client_pub = client.public()[MLKEM768_EK_LEN..].to_vec();
        let (server_share, ss) =
            server_accept(NamedGroup::X25519MLKEM768, client.public()).unwrap();
        let x_server_pub = &server_share[MLKEM768_CT_LEN..];
        let Private::Hybrid { x25519, .. } = &client.private else {
            panic!()
        };
        let x = agree(NamedGroup::X25519, x25519, x_server_pub).unwrap();
        assert_eq!(&ss.as_bytes()[32..], &x[..]);
        assert_eq!(x_client_pub.len(), 32);
        assert_eq!(
            client.complete(&server_share).unwrap().as_bytes(),
            ss.as_bytes()
        );
    }

    #[test]
    fn bad_shares_are_illegal_parameter() {
        for group in GROUPS {
            let client = KeyShare::generate(group).unwrap();
            let (server_share, _) = server_accept(group, client.public()).unwrap();
            // Truncated or extended shares, both directions.
            assert!(
                is_illegal(server_accept(group, &client.public()[1..])),
                "{group:?}"
            );
            assert!(is_illegal(server_accept(group, &[])), "{group:?}");
            let mut long = client.public().to_vec();
            long.push(0);
            assert!(is_illegal(server_accept(group, &long)), "{group:?}");
            let c = KeyShare::generate(group).unwrap();
            assert!(
                is_illegal(c.complete(&server_share[..server_share.len() - 1])),
                "{group:?}"
            );
            let c = KeyShare::generate(group).unwrap();
            assert!(is_illegal(c.complete(&[])), "{group:?}");
        }
        // NIST curves: a point off the curve, and a compressed point.
        for group in [NamedGroup::SECP256R1, NamedGroup::SECP384R1] {
            let c = KeyShare::generate(group).unwrap();
            let mut off = c.public().to_vec();
            let last = off.len() - 1;
            off[last] ^= 1;
            assert!(is_illegal(server_accept(group, &off)), "{group:?}");
            let mut compressed = c.public().to_vec();
            compressed[0] = 0x02;
            assert!(is_illegal(server_accept(group, &compressed)), "{group:?}");
            assert!(is_illegal(c.complete(&off)), "{group:?}");
        }
    }

    #[test]
    fn all_zero_x25519_is_rejected() {
        let zero = [0u8; 32];
        // u = 1 is of small order too: the result is all zeros.
        let mut one = [0u8; 32];
        one[0] = 1;
        for bad in [zero, one] {
            assert!(is_illegal(server_accept(NamedGroup::X25519, &bad)));
            let c = KeyShare::generate(NamedGroup::X25519).unwrap();
            assert!(is_illegal(c.complete(&bad)));
            // The X25519 half of the hybrid is checked as well.
            let c = KeyShare::generate(NamedGroup::X25519MLKEM768).unwrap();
            let mut share = c.public()[..MLKEM768_EK_LEN].to_vec();
            share.extend_from_slice(&bad);
            assert!(is_illegal(server_accept(
                NamedGroup::X25519MLKEM768,
                &share
            )));
            let (mut server_share, _) =
                server_accept(NamedGroup::X25519MLKEM768, c.public()).unwrap();
            server_share[MLKEM768_CT_LEN..].copy_from_slice(&bad);
            assert!(is_illegal(c.complete(&server_share)));
        }
    }

    #[test]
    fn invalid_mlkem_encapsulation_key_is_rejected() {
        // Every 12-bit coefficient 0xfff >= q = 3329 fails the modulus check.
        let mut share = vec![0xffu8; MLKEM768_EK_LEN];
        share.extend_from_slice(&KeyShare::generate(NamedGroup::X25519).unwrap().public);
        assert!(is_illegal(server_accept(
            NamedGroup::X25519MLKEM768,
            &share
        )));
    }

    #[test]
    fn rfc8448_x25519() {
        // RFC 8448 §3: the client's and server's ephemeral X25519 keys.
        let client_priv = hex("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005");
        let client_pub = hex("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c");
        let server_priv = hex("b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e");
        let server_pub = hex("c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f");
        let client = KeyShare::x25519_from_private(&client_priv).unwrap();
        assert_eq!(client.public(), client_pub);
        let (share, server_ss) = server_accept_x25519_with(&server_priv, &client_pub).unwrap();
        assert_eq!(share, server_pub);
        assert_eq!(server_ss.as_bytes(), hex(ECDHE));
        assert_eq!(client.complete(&server_pub).unwrap().as_bytes(), hex(ECDHE));
    }
}
