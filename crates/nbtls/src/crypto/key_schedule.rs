//! The TLS 1.3 key schedule (RFC 8446 §7.1), HKDF (RFC 5869) built on HMAC,
//! Finished (§4.4.4), KeyUpdate (§7.2), the exporter (§7.5) and the
//! resumption PSK (§4.6.1).
//!
//! The schedule is three types moved by value (`EarlySecret` →
//! `HandshakeSecret` → `MasterSecret`), so a secret that cannot exist yet
//! cannot be asked for, and a stage's secret is dropped (zeroized) as soon
//! as the next one exists.

use aws_lc_rs::constant_time;
use zeroize::Zeroizing;

use super::hash::{hash, hmac, hmac_parts, Digest, HashAlg, MAX_HASH_LEN};
use super::secret::Secret;
use crate::error::{Error, Result};

/// Every HKDF label gets this prefix (RFC 8446 §7.1).
const LABEL_PREFIX: &[u8] = b"tls13 ";
/// `opaque label<7..255>` holds the prefix, so a label has at most 249 bytes.
const MAX_LABEL_LEN: usize = 255 - LABEL_PREFIX.len();

/// `HKDF-Extract(salt, IKM)`; an empty salt means HashLen zeros (RFC 5869
/// §2.2), which HMAC's zero-padding of the key gives for free.
pub fn hkdf_extract(alg: HashAlg, salt: &[u8], ikm: &[u8]) -> Secret {
    Secret::from_slice(hmac(alg, salt, ikm).as_bytes())
}

/// `HKDF-Expand(PRK, info, out.len())`. The caller keeps `out.len()` within
/// 255 × HashLen.
fn hkdf_expand(alg: HashAlg, prk: &[u8], info: &[u8], out: &mut [u8]) {
    let mut prev: Option<Digest> = None;
    for (i, chunk) in out.chunks_mut(alg.output_len()).enumerate() {
        // `check_expand` bounds the block count to 255.
        let counter = [u8::try_from(i + 1).unwrap_or(u8::MAX)];
        let t = match &prev {
            Some(p) => hmac_parts(alg, prk, &[p.as_bytes(), info, &counter]),
            None => hmac_parts(alg, prk, &[info, &counter]),
        };
        chunk.copy_from_slice(&t.as_bytes()[..chunk.len()]);
        prev = Some(t);
    }
}

fn check_expand(
    alg: HashAlg,
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Result<(), &'static str> {
    if label.len() > MAX_LABEL_LEN {
        return Err("HKDF label longer than 249 bytes");
    }
    if context.len() > 255 {
        return Err("HKDF context longer than 255 bytes");
    }
    if len > 255 * alg.output_len() {
        return Err("HKDF output longer than 255 blocks");
    }
    Ok(())
}

/// `HKDF-Expand-Label(Secret, Label, Context, out.len())` (RFC 8446 §7.1);
/// `label` is given without the `"tls13 "` prefix.
///
/// # Panics
/// If `label` is longer than 249 bytes, `context` longer than 255, or
/// `out` longer than 255 × HashLen: the `HkdfLabel` structure cannot express
/// them. Every protocol use is far inside these bounds; the exporter, whose
/// label and length come from the application, checks them first
/// ([`try_export_keying_material`]).
pub fn hkdf_expand_label(
    alg: HashAlg,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) {
    if let Err(why) = check_expand(alg, label, context, out.len()) {
        panic!("hkdf_expand_label: {why}");
    }
    // struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel;
    let mut info = Vec::with_capacity(2 + 1 + LABEL_PREFIX.len() + label.len() + 1 + context.len());
    // Lengths were checked above, so these conversions are exact.
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push((LABEL_PREFIX.len() + label.len()) as u8);
    info.extend_from_slice(LABEL_PREFIX);
    info.extend_from_slice(label);
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    hkdf_expand(alg, secret, &info, out);
}

/// `HKDF-Expand-Label` to a HashLen [`Secret`].
fn expand_label_secret(alg: HashAlg, secret: &[u8], label: &[u8], context: &[u8]) -> Secret {
    let mut buf = Zeroizing::new([0u8; MAX_HASH_LEN]);
    let out = &mut buf[..alg.output_len()];
    hkdf_expand_label(alg, secret, label, context, out);
    Secret::from_slice(out)
}

/// `Derive-Secret(Secret, Label, Messages)` given `Transcript-Hash(Messages)`.
pub fn derive_secret(
    alg: HashAlg,
    secret: &Secret,
    label: &[u8],
    transcript_hash: &[u8],
) -> Secret {
    expand_label_secret(alg, secret.as_bytes(), label, transcript_hash)
}

/// `Derive-Secret(secret, "derived", "")`: the salt of the next stage.
fn derived(alg: HashAlg, secret: &Secret) -> Secret {
    derive_secret(alg, secret, b"derived", hash(alg, b"").as_bytes())
}

/// The Early Secret stage: `HKDF-Extract(0, PSK)`.
pub struct EarlySecret {
    alg: HashAlg,
    secret: Secret,
}

impl EarlySecret {
    /// `psk` `None` (no PSK) uses HashLen zeros (RFC 8446 §7.1).
    pub fn new(alg: HashAlg, psk: Option<&[u8]>) -> Self {
        let zeros = [0u8; MAX_HASH_LEN];
        let ikm = psk.unwrap_or(&zeros[..alg.output_len()]);
        EarlySecret {
            alg,
            secret: hkdf_extract(alg, &[], ikm),
        }
    }

    /// The hash of this schedule.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// `binder_key`: "res binder" for resumption PSKs, "ext binder" for
    /// external ones, over the empty transcript (RFC 8446 §7.1, §4.2.11.2).
    pub fn binder_key(&self, resumption: bool) -> Secret {
        let label: &[u8] = if resumption {
            b"res binder"
        } else {
            b"ext binder"
        };
        derive_secret(
            self.alg,
            &self.secret,
            label,
            hash(self.alg, b"").as_bytes(),
        )
    }

    /// `client_early_traffic_secret` from `Hash(ClientHello)`.
    pub fn client_early_traffic_secret(&self, client_hello_hash: &[u8]) -> Secret {
        derive_secret(self.alg, &self.secret, b"c e traffic", client_hello_hash)
    }

    /// `early_exporter_master_secret` from `Hash(ClientHello)`.
    pub fn early_exporter_master_secret(&self, client_hello_hash: &[u8]) -> Secret {
        derive_secret(self.alg, &self.secret, b"e exp master", client_hello_hash)
    }

    /// The Handshake Secret: `HKDF-Extract(Derive-Secret(., "derived", ""), (EC)DHE)`.
    pub fn into_handshake(self, shared_secret: &[u8]) -> HandshakeSecret {
        let salt = derived(self.alg, &self.secret);
        HandshakeSecret {
            alg: self.alg,
            secret: hkdf_extract(self.alg, salt.as_bytes(), shared_secret),
        }
    }
}

/// The Handshake Secret stage.
pub struct HandshakeSecret {
    alg: HashAlg,
    secret: Secret,
}

impl HandshakeSecret {
    /// The hash of this schedule.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// `(client_handshake_traffic_secret, server_handshake_traffic_secret)`
    /// from `Hash(ClientHello..ServerHello)`.
    pub fn traffic_secrets(&self, hello_hash: &[u8]) -> (Secret, Secret) {
        (
            derive_secret(self.alg, &self.secret, b"c hs traffic", hello_hash),
            derive_secret(self.alg, &self.secret, b"s hs traffic", hello_hash),
        )
    }

    /// The Master Secret: `HKDF-Extract(Derive-Secret(., "derived", ""), 0)`.
    pub fn into_master(self) -> MasterSecret {
        let salt = derived(self.alg, &self.secret);
        let zeros = [0u8; MAX_HASH_LEN];
        MasterSecret {
            alg: self.alg,
            secret: hkdf_extract(self.alg, salt.as_bytes(), &zeros[..self.alg.output_len()]),
        }
    }
}

/// The Master Secret stage.
pub struct MasterSecret {
    alg: HashAlg,
    secret: Secret,
}

impl MasterSecret {
    /// The hash of this schedule.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// `(client_application_traffic_secret_0, server_application_traffic_secret_0)`
    /// from `Hash(ClientHello..server Finished)`.
    pub fn traffic_secrets(&self, hash: &[u8]) -> (Secret, Secret) {
        (
            derive_secret(self.alg, &self.secret, b"c ap traffic", hash),
            derive_secret(self.alg, &self.secret, b"s ap traffic", hash),
        )
    }

    /// `exporter_master_secret`, from the same hash as the traffic secrets.
    pub fn exporter_master_secret(&self, hash: &[u8]) -> Secret {
        derive_secret(self.alg, &self.secret, b"exp master", hash)
    }

    /// `resumption_master_secret` from `Hash(ClientHello..client Finished)`.
    pub fn resumption_master_secret(&self, hash: &[u8]) -> Secret {
        derive_secret(self.alg, &self.secret, b"res master", hash)
    }
}

/// `finished_key = HKDF-Expand-Label(BaseKey, "finished", "", HashLen)`.
fn finished_key(alg: HashAlg, base_key: &Secret) -> Secret {
    expand_label_secret(alg, base_key.as_bytes(), b"finished", &[])
}

/// `verify_data = HMAC(finished_key, Transcript-Hash(...))` (RFC 8446 §4.4.4).
pub fn finished_verify_data(alg: HashAlg, base_key: &Secret, transcript_hash: &[u8]) -> Digest {
    hmac(alg, finished_key(alg, base_key).as_bytes(), transcript_hash)
}

/// Checks a received Finished in constant time (a wrong length fails too).
pub fn verify_finished(
    alg: HashAlg,
    base_key: &Secret,
    transcript_hash: &[u8],
    received: &[u8],
) -> bool {
    let expected = finished_verify_data(alg, base_key, transcript_hash);
    constant_time::verify_slices_are_equal(expected.as_bytes(), received).is_ok()
}

/// `application_traffic_secret_N+1` (RFC 8446 §7.2): label "traffic upd".
pub fn next_traffic_secret(alg: HashAlg, secret: &Secret) -> Secret {
    expand_label_secret(alg, secret.as_bytes(), b"traffic upd", &[])
}

/// The TLS 1.3 exporter (RFC 8446 §7.5):
/// `HKDF-Expand-Label(Derive-Secret(exporter_master, label, ""), "exporter", Hash(context), out.len())`.
/// An absent context and an empty one give the same output in TLS 1.3.
///
/// # Panics
/// If `label` exceeds 249 bytes or `out` 255 × HashLen; use
/// [`try_export_keying_material`] for lengths that come from an application.
pub fn export_keying_material(
    alg: HashAlg,
    exporter_master: &Secret,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) {
    let secret = derive_secret(alg, exporter_master, label, hash(alg, b"").as_bytes());
    let context_hash = hash(alg, context);
    hkdf_expand_label(
        alg,
        secret.as_bytes(),
        b"exporter",
        context_hash.as_bytes(),
        out,
    );
}

/// [`export_keying_material`] that refuses (with `Error::Config`) a label
/// over 249 bytes or an output over 255 × HashLen instead of panicking.
pub fn try_export_keying_material(
    alg: HashAlg,
    exporter_master: &Secret,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<()> {
    check_expand(alg, label, &[], out.len()).map_err(Error::config)?;
    export_keying_material(alg, exporter_master, label, context, out);
    Ok(())
}

/// The PSK of a ticket (RFC 8446 §4.6.1):
/// `HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce, HashLen)`.
/// The nonce is at most 255 bytes by its wire encoding.
pub fn resumption_psk(alg: HashAlg, resumption_master: &Secret, ticket_nonce: &[u8]) -> Secret {
    expand_label_secret(
        alg,
        resumption_master.as_bytes(),
        b"resumption",
        ticket_nonce,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        assert_eq!(s.len() % 2, 0);
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    // RFC 8448 §3 "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256).
    pub(crate) const ECDHE: &str =
        "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d";
    /// Hash(ClientHello..ServerHello).
    pub(crate) const HASH_SH: &str =
        "860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8";
    /// Hash(ClientHello..server Finished).
    pub(crate) const HASH_SF: &str =
        "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13";
    /// Hash(ClientHello..client Finished).
    pub(crate) const HASH_CF: &str =
        "209145a96ee8e2a122ff810047cc952684658d6049e86429426db87c54ad143d";
    const EARLY: &str = "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a";
    const DERIVED_EARLY: &str = "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba";
    const HANDSHAKE: &str = "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac";
    const DERIVED_HANDSHAKE: &str =
        "43de77e0c77713859a944db9db2590b53190a65b3ee2e4f12dd7a0bb7ce254b4";
    pub(crate) const C_HS: &str =
        "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21";
    pub(crate) const S_HS: &str =
        "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";
    const MASTER: &str = "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919";
    const C_AP: &str = "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
    const S_AP: &str = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
    const EXP_MASTER: &str = "fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50";
    const RES_MASTER: &str = "7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c";
    const S_FINISHED_KEY: &str = "008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8";
    const C_FINISHED_KEY: &str = "b80ad01015fb2f0bd65ff7d4da5d6bf83f84821d1f87fdc7d3c75b5a7b42d9c4";
    /// The client's Finished verify_data, over Hash(ClientHello..server Finished).
    pub(crate) const C_VERIFY_DATA: &str =
        "a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61";

    const SHA256: HashAlg = HashAlg::Sha256;

    #[test]
    fn hkdf_rfc5869_case1() {
        let ikm = [0x0bu8; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let prk = hkdf_extract(SHA256, &salt, &ikm);
        assert_eq!(
            prk.as_bytes(),
            hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        );
        let mut okm = [0u8; 42];
        hkdf_expand(SHA256, prk.as_bytes(), &info, &mut okm);
        assert_eq!(
            okm[..],
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c
                 5db02d56ecc4c5bf34007208d5b887185865")[..]
        );
    }

    #[test]
    fn expand_label_matches_aws_lc_hkdf() {
        // An independent HKDF (aws-lc's) over the same HkdfLabel, for both
        // hashes and multi-block outputs.
        use aws_lc_rs::hkdf;
        for (alg, lc) in [
            (HashAlg::Sha256, hkdf::HKDF_SHA256),
            (HashAlg::Sha384, hkdf::HKDF_SHA384),
        ] {
            let prk = [0x42u8; 48];
            for len in [1usize, 12, 32, 48, 100] {
                let mut ours = vec![0u8; len];
                hkdf_expand_label(alg, &prk[..alg.output_len()], b"key", b"ctx", &mut ours);
                let mut info = (len as u16).to_be_bytes().to_vec();
                info.push(9);
                info.extend_from_slice(b"tls13 key");
                info.push(3);
                info.extend_from_slice(b"ctx");
                let mut theirs = vec![0u8; len];
                hkdf::Prk::new_less_safe(lc, &prk[..alg.output_len()])
                    .expand(&[&info], LenWrap(len))
                    .unwrap()
                    .fill(&mut theirs)
                    .unwrap();
                assert_eq!(ours, theirs, "{alg:?} {len}");
            }
        }
        struct LenWrap(usize);
        impl hkdf::KeyType for LenWrap {
            fn len(&self) -> usize {
                self.0
            }
        }
    }

    #[test]
    fn rfc8448_derived_via_expand_label() {
        // Derive-Secret(early, "derived", "") as a raw HKDF-Expand-Label.
        let mut out = [0u8; 32];
        hkdf_expand_label(
            SHA256,
            &hex(EARLY),
            b"derived",
            hash(SHA256, b"").as_bytes(),
            &mut out,
        );
        assert_eq!(out[..], hex(DERIVED_EARLY)[..]);
        let hs = Secret::from_slice(&hex(HANDSHAKE));
        assert_eq!(derived(SHA256, &hs).as_bytes(), hex(DERIVED_HANDSHAKE));
    }

    #[test]
    fn rfc8448_simple_1rtt_schedule() {
        let early = EarlySecret::new(SHA256, None);
        assert_eq!(early.secret.as_bytes(), hex(EARLY));
        assert_eq!(early.alg(), SHA256);
        // "No PSK" and a PSK of HashLen zeros are the same thing.
        assert_eq!(
            EarlySecret::new(SHA256, Some(&[0; 32])).secret.as_bytes(),
            hex(EARLY)
        );

        let hs = early.into_handshake(&hex(ECDHE));
        assert_eq!(hs.secret.as_bytes(), hex(HANDSHAKE));
        let (c_hs, s_hs) = hs.traffic_secrets(&hex(HASH_SH));
        assert_eq!(c_hs.as_bytes(), hex(C_HS));
        assert_eq!(s_hs.as_bytes(), hex(S_HS));

        let master = hs.into_master();
        assert_eq!(master.secret.as_bytes(), hex(MASTER));
        let (c_ap, s_ap) = master.traffic_secrets(&hex(HASH_SF));
        assert_eq!(c_ap.as_bytes(), hex(C_AP));
        assert_eq!(s_ap.as_bytes(), hex(S_AP));
        assert_eq!(
            master.exporter_master_secret(&hex(HASH_SF)).as_bytes(),
            hex(EXP_MASTER)
        );
        assert_eq!(
            master.resumption_master_secret(&hex(HASH_CF)).as_bytes(),
            hex(RES_MASTER)
        );
    }

    #[test]
    fn rfc8448_finished() {
        let c_hs = Secret::from_slice(&hex(C_HS));
        let s_hs = Secret::from_slice(&hex(S_HS));
        assert_eq!(finished_key(SHA256, &s_hs).as_bytes(), hex(S_FINISHED_KEY));
        assert_eq!(finished_key(SHA256, &c_hs).as_bytes(), hex(C_FINISHED_KEY));

        let vd = finished_verify_data(SHA256, &c_hs, &hex(HASH_SF));
        assert_eq!(vd.as_bytes(), hex(C_VERIFY_DATA));
        assert!(verify_finished(
            SHA256,
            &c_hs,
            &hex(HASH_SF),
            &hex(C_VERIFY_DATA)
        ));

        let mut bad = hex(C_VERIFY_DATA);
        bad[31] ^= 1;
        assert!(!verify_finished(SHA256, &c_hs, &hex(HASH_SF), &bad));
        assert!(!verify_finished(SHA256, &c_hs, &hex(HASH_SF), &bad[..31]));
        assert!(!verify_finished(SHA256, &c_hs, &hex(HASH_SF), &[]));
        assert!(!verify_finished(
            SHA256,
            &s_hs,
            &hex(HASH_SF),
            &hex(C_VERIFY_DATA)
        ));
    }

    #[test]
    fn rfc8448_resumption_psk() {
        // RFC 8448 §3: the ticket nonce is 0x0000; RFC 8448 §4 resumes with
        // this PSK, whose early secret the trace gives.
        let res_master = Secret::from_slice(&hex(RES_MASTER));
        let psk = resumption_psk(SHA256, &res_master, &[0, 0]);
        assert_eq!(
            psk.as_bytes(),
            hex("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
        );
        let early = EarlySecret::new(SHA256, Some(psk.as_bytes()));
        assert_eq!(
            early.secret.as_bytes(),
            hex("9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
        );
        assert_eq!(
            early.binder_key(true).as_bytes(),
            hex("69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
        );
    }

    #[test]
    fn traffic_update_and_exporter_shapes() {
        let s = Secret::from_slice(&hex(S_AP));
        let next = next_traffic_secret(SHA256, &s);
        let mut manual = [0u8; 32];
        hkdf_expand_label(SHA256, s.as_bytes(), b"traffic upd", &[], &mut manual);
        assert_eq!(next.as_bytes(), manual);
        assert_ne!(next.as_bytes(), s.as_bytes());

        let exp = Secret::from_slice(&hex(EXP_MASTER));
        let mut a = [0u8; 40];
        let mut b = [0u8; 40];
        export_keying_material(SHA256, &exp, b"EXPORTER-test", b"", &mut a);
        try_export_keying_material(SHA256, &exp, b"EXPORTER-test", b"", &mut b).unwrap();
        assert_eq!(a, b);
        // Manual composition of §7.5.
        let inner = derive_secret(SHA256, &exp, b"EXPORTER-test", hash(SHA256, b"").as_bytes());
        let mut c = [0u8; 40];
        hkdf_expand_label(
            SHA256,
            inner.as_bytes(),
            b"exporter",
            hash(SHA256, b"").as_bytes(),
            &mut c,
        );
        assert_eq!(a, c);
        export_keying_material(SHA256, &exp, b"EXPORTER-test", b"x", &mut b);
        assert_ne!(a, b);

        let mut huge = vec![0u8; 255 * 32 + 1];
        assert!(try_export_keying_material(SHA256, &exp, b"l", b"", &mut huge).is_err());
        assert!(try_export_keying_material(SHA256, &exp, &[b'a'; 250], b"", &mut a).is_err());
        let mut max = vec![0u8; 255 * 32];
        assert!(try_export_keying_material(SHA256, &exp, &[b'a'; 249], b"", &mut max).is_ok());
    }

    #[test]
    fn sha384_schedule_runs_with_48_byte_secrets() {
        let alg = HashAlg::Sha384;
        let early = EarlySecret::new(alg, None);
        assert_eq!(early.binder_key(false).len(), 48);
        assert_eq!(early.client_early_traffic_secret(&[0; 48]).len(), 48);
        let hs = early.into_handshake(&[1; 48]);
        let (c, s) = hs.traffic_secrets(&[2; 48]);
        assert_eq!((c.len(), s.len()), (48, 48));
        assert_ne!(c.as_bytes(), s.as_bytes());
        let m = hs.into_master();
        assert_eq!(m.exporter_master_secret(&[3; 48]).len(), 48);
        assert_eq!(finished_verify_data(alg, &c, &[4; 48]).len(), 48);
    }
}
