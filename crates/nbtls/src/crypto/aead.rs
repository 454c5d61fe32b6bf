//! Record protection: AEAD seal/open in place with the TLS 1.3 per-record
//! nonce (RFC 8446 §5.3), and the traffic key derivation (§7.3).

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::hash::HashAlg;
use super::key_schedule::hkdf_expand_label;
use super::secret::Secret;
use crate::error::{Error, Result};

/// The AEADs of the TLS 1.3 suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadAlg {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl AeadAlg {
    /// Authentication tag length.
    pub const TAG_LEN: usize = 16;
    /// Nonce (and TLS 1.3 IV) length.
    pub const NONCE_LEN: usize = 12;

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AeadAlg::Aes128Gcm => 16,
            AeadAlg::Aes256Gcm | AeadAlg::Chacha20Poly1305 => 32,
        }
    }

    /// Records to protect under one key before a rekey is due: 2^24 for
    /// AES-GCM (RFC 8446 §5.5 allows 2^24.5; RFC 9147 §4.5.3), practically
    /// unbounded for ChaCha20-Poly1305 (the 2^64 sequence space).
    pub fn confidentiality_limit(self) -> u64 {
        match self {
            AeadAlg::Aes128Gcm | AeadAlg::Aes256Gcm => 1 << 24,
            AeadAlg::Chacha20Poly1305 => u64::MAX >> 2,
        }
    }

    /// Forged records to accept under one key before the connection must
    /// end (DTLS, RFC 9147 §4.5.3): 2^36 for both AEAD families.
    pub fn integrity_limit(self) -> u64 {
        1 << 36
    }

    fn lc_alg(self) -> &'static aead::Algorithm {
        match self {
            AeadAlg::Aes128Gcm => &aead::AES_128_GCM,
            AeadAlg::Aes256Gcm => &aead::AES_256_GCM,
            AeadAlg::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// One direction's record key: the AEAD key and its static IV.
pub struct RecordKey {
    alg: AeadAlg,
    /// `None` only if aws-lc refused a key of the right length, which it
    /// does not; every seal and open then fails closed instead of panicking.
    key: Option<LessSafeKey>,
    iv: Zeroizing<[u8; AeadAlg::NONCE_LEN]>,
}

/// `HKDF-Expand-Label(Secret, "key", "", key_length)` and
/// `HKDF-Expand-Label(Secret, "iv", "", iv_length)` (RFC 8446 §7.3).
pub(crate) fn traffic_key_iv(
    alg: AeadAlg,
    hash: HashAlg,
    secret: &Secret,
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; AeadAlg::NONCE_LEN]>) {
    let mut key = Zeroizing::new([0u8; 32]);
    let mut iv = Zeroizing::new([0u8; AeadAlg::NONCE_LEN]);
    hkdf_expand_label(
        hash,
        secret.as_bytes(),
        b"key",
        &[],
        &mut key[..alg.key_len()],
    );
    hkdf_expand_label(hash, secret.as_bytes(), b"iv", &[], &mut iv[..]);
    (key, iv)
}

impl RecordKey {
    /// A key from raw bytes; a key of the wrong length is an internal error.
    pub fn new(alg: AeadAlg, key: &[u8], iv: &[u8; 12]) -> Result<Self> {
        if key.len() != alg.key_len() {
            return Err(Error::internal("AEAD key of the wrong length"));
        }
        let unbound =
            UnboundKey::new(alg.lc_alg(), key).map_err(|_| Error::internal("AEAD key rejected"))?;
        Ok(RecordKey {
            alg,
            key: Some(LessSafeKey::new(unbound)),
            iv: Zeroizing::new(*iv),
        })
    }

    /// The TLS 1.3 record key of a traffic secret (RFC 8446 §7.3).
    pub fn from_traffic_secret(alg: AeadAlg, hash: HashAlg, secret: &Secret) -> Self {
        let (key, iv) = traffic_key_iv(alg, hash, secret);
        let key = UnboundKey::new(alg.lc_alg(), &key[..alg.key_len()])
            .ok()
            .map(LessSafeKey::new);
        debug_assert!(key.is_some(), "aws-lc refused a well-sized AEAD key");
        RecordKey { alg, key, iv }
    }

    /// The AEAD.
    pub fn alg(&self) -> AeadAlg {
        self.alg
    }

    /// The per-record nonce: the IV XOR the sequence number, left-padded
    /// to 12 bytes (RFC 8446 §5.3).
    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = *self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// Encrypts `in_out` in place and returns the 16-byte tag (the caller
    /// appends it).
    pub fn seal(&self, seq: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        self.seal_with_nonce(self.nonce(seq), aad, in_out)
    }

    /// Decrypts `in_out` = ciphertext ‖ tag in place; returns the plaintext
    /// length (the plaintext is `in_out[..len]`), or `Err(())` when
    /// authentication fails or `in_out` is shorter than a tag.
    #[allow(clippy::result_unit_err)]
    pub fn open(&self, seq: u64, aad: &[u8], in_out: &mut [u8]) -> Result<usize, ()> {
        self.open_with_nonce(self.nonce(seq), aad, in_out)
    }

    /// [`seal`](Self::seal) with an explicit nonce (TLS 1.2 AES-GCM builds
    /// it from a 4-byte salt and an 8-byte explicit part). The static IV is
    /// not used.
    ///
    /// Sealing cannot fail for records (aws-lc refuses only inputs of
    /// gigabytes); if it ever did, `in_out` is zeroed and the tag is all
    /// zeros, so nothing leaks and the peer rejects the record.
    pub fn seal_with_nonce(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let tag = self.key.as_ref().and_then(|key| {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                in_out,
            )
            .ok()
        });
        let mut out = [0u8; 16];
        match tag {
            Some(tag) if tag.as_ref().len() == out.len() => out.copy_from_slice(tag.as_ref()),
            _ => {
                debug_assert!(false, "AEAD seal failed");
                in_out.fill(0);
            }
        }
        out
    }

    /// [`open`](Self::open) with an explicit nonce.
    #[allow(clippy::result_unit_err)]
    pub fn open_with_nonce(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, ()> {
        let key = self.key.as_ref().ok_or(())?;
        key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map(|plain| plain.len())
            .map_err(|_| ())
    }
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hash::HashContext;
    use crate::crypto::key_schedule::tests::{hex, C_HS, HASH_SF, S_HS};
    use crate::crypto::key_schedule::{finished_verify_data, EarlySecret};

    // RFC 8448 §3.
    const CLIENT_HELLO: &str = "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001";
    const SERVER_HELLO: &str = "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304";
    /// The server's encrypted flight (EncryptedExtensions, Certificate,
    /// CertificateVerify, Finished) in one record, header included.
    const SERVER_FLIGHT_RECORD: &str = "
        17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40a
        a40aa2b8ea73f848a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389
        280f526134aadc7fc78c4b729df828b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c790207
        16cfb9b1183ef3ab20e37d57a6b9d7477609aee6e122a4cf51427325250c7d0e509289444c9b
        3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd6
        10928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945ba246ab
        66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea520a
        56a8d650f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a26
        4ed6540c84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637
        ce343117b659622245317b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a8
        4dc3bd7e1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da8c87
        c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d461e66f99882bd89f
        c50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a37668936b335583b599186dc5c
        6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb5630c8ca
        01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c
        0b3b66763038ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b84
        5e275592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5d2af939828fd
        4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e750edc53370d2b";

    #[test]
    fn rfc8448_traffic_keys() {
        let sha = HashAlg::Sha256;
        let aes = AeadAlg::Aes128Gcm;
        let (k, iv) = traffic_key_iv(aes, sha, &Secret::from_slice(&hex(S_HS)));
        assert_eq!(k[..16], hex("3fce516009c21727d0f2e4e86ee403bc")[..]);
        assert_eq!(iv[..], hex("5d313eb2671276ee13000b30")[..]);
        let (k, iv) = traffic_key_iv(aes, sha, &Secret::from_slice(&hex(C_HS)));
        assert_eq!(k[..16], hex("dbfaa693d1762c5b666af5d950258d01")[..]);
        assert_eq!(iv[..], hex("5bd3c71b836e0b76bb73265f")[..]);
        // Server application traffic secret 0.
        let s_ap = hex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
        let (k, iv) = traffic_key_iv(aes, sha, &Secret::from_slice(&s_ap));
        assert_eq!(k[..16], hex("9f02283b6c9c07efc26bb9f2ac92e356")[..]);
        assert_eq!(iv[..], hex("cf782b88dd83549aadf1e984")[..]);
    }

    /// The whole §3 server flight, byte for byte: derive the handshake key
    /// from the trace's shared secret and Hash(CH..SH) computed from the
    /// trace's messages, open the record, check the server Finished over the
    /// transcript, and seal the plaintext back to the same ciphertext.
    #[test]
    fn rfc8448_server_flight_record() {
        let sha = HashAlg::Sha256;
        let mut transcript = HashContext::new(sha);
        transcript.update(&hex(CLIENT_HELLO));
        transcript.update(&hex(SERVER_HELLO));
        let hello_hash = transcript.current();
        assert_eq!(
            hello_hash.as_bytes(),
            hex("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
        );

        let ecdhe = hex("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d");
        let hs = EarlySecret::new(sha, None).into_handshake(&ecdhe);
        let (_, s_hs) = hs.traffic_secrets(hello_hash.as_bytes());
        let key = RecordKey::from_traffic_secret(AeadAlg::Aes128Gcm, sha, &s_hs);
        assert_eq!(key.alg(), AeadAlg::Aes128Gcm);

        let record = hex(SERVER_FLIGHT_RECORD);
        assert_eq!(record.len(), 5 + 0x2a2);
        let (header, body) = record.split_at(5);
        let mut buf = body.to_vec();
        assert_eq!(key.open(1, header, &mut buf.clone()), Err(()));
        let n = key
            .open(0, header, &mut buf)
            .expect("the trace's record opens");
        assert_eq!(n, 0x2a2 - 16);
        let plain = &buf[..n];
        // TLSInnerPlaintext: the handshake messages, then content type 22.
        assert_eq!(plain[n - 1], 22);
        let mut msgs = &plain[..n - 1];
        let mut types = Vec::new();
        let mut finished = None;
        while !msgs.is_empty() {
            let len =
                (usize::from(msgs[1]) << 16) | (usize::from(msgs[2]) << 8) | usize::from(msgs[3]);
            let (msg, rest) = msgs.split_at(4 + len);
            types.push(msg[0]);
            if msg[0] == 20 {
                // Finished covers the transcript up to CertificateVerify.
                let expected = finished_verify_data(sha, &s_hs, transcript.current().as_bytes());
                assert_eq!(&msg[4..], expected.as_bytes());
                finished = Some(msg.to_vec());
            }
            transcript.update(msg);
            msgs = rest;
        }
        assert_eq!(types, [8, 11, 15, 20]);
        assert_eq!(
            finished.unwrap(),
            hex("140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718")
        );
        assert_eq!(transcript.current().as_bytes(), hex(HASH_SF));

        // Seal the plaintext again: the trace's ciphertext and tag.
        let mut again = plain.to_vec();
        let tag = key.seal(0, header, &mut again);
        again.extend_from_slice(&tag);
        assert_eq!(again, body);
    }

    #[test]
    fn chacha20_poly1305_rfc8439_2_8_2() {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce: [u8; 12] = hex("070000004041424344454647").try_into().unwrap();
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = hex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
             3ff4def08e4b7a9de576d26586cec64b6116",
        );
        let tag = hex("1ae10b594f09e26a7e902ecbd0600691");

        // Sequence 0: the nonce is the IV itself.
        let k = RecordKey::new(AeadAlg::Chacha20Poly1305, &key, &nonce).unwrap();
        let mut buf = pt.to_vec();
        let t = k.seal(0, &aad, &mut buf);
        assert_eq!(buf, ct);
        assert_eq!(t[..], tag[..]);
        buf.extend_from_slice(&t);
        assert_eq!(k.open(0, &aad, &mut buf), Ok(pt.len()));
        assert_eq!(&buf[..pt.len()], pt);

        // Sequence n: IV XOR n in the low bytes.
        let mut nonce5 = nonce;
        nonce5[11] ^= 5;
        nonce5[4] ^= 0x01;
        let seq = (1u64 << 56) | 5;
        let mut a = pt.to_vec();
        let mut b = pt.to_vec();
        assert_eq!(
            k.seal(seq, &aad, &mut a),
            k.seal_with_nonce(nonce5, &aad, &mut b)
        );
        assert_eq!(a, b);
    }

    #[test]
    fn aes256_gcm_spec_case16() {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let k = RecordKey::new(AeadAlg::Aes256Gcm, &key, &iv).unwrap();
        let mut buf = pt.clone();
        let tag = k.seal(0, &aad, &mut buf);
        assert_eq!(
            buf,
            hex(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            )
        );
        assert_eq!(tag[..], hex("76fc6ece0f4e1768cddf8853bb2d551b")[..]);
    }

    #[test]
    fn open_rejects_tampering_and_short_input() {
        for alg in [
            AeadAlg::Aes128Gcm,
            AeadAlg::Aes256Gcm,
            AeadAlg::Chacha20Poly1305,
        ] {
            let k =
                RecordKey::from_traffic_secret(alg, HashAlg::Sha384, &Secret::from_slice(&[9; 48]));
            let mut buf = b"hello".to_vec();
            let tag = k.seal(7, b"hdr", &mut buf);
            buf.extend_from_slice(&tag);
            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 0x80;
                assert_eq!(k.open(7, b"hdr", &mut bad), Err(()));
            }
            assert_eq!(k.open(7, b"hdX", &mut buf.clone()), Err(()));
            assert_eq!(k.open(8, b"hdr", &mut buf.clone()), Err(()));
            assert_eq!(k.open(7, b"hdr", &mut buf[..15].to_vec()), Err(()));
            assert_eq!(k.open(7, b"hdr", &mut []), Err(()));
            assert_eq!(k.open(7, b"hdr", &mut buf), Ok(5));
            assert_eq!(&buf[..5], b"hello");

            // An empty plaintext is a bare tag.
            let mut empty = Vec::new();
            let tag = k.seal(0, b"", &mut empty);
            assert_eq!(k.open(0, b"", &mut tag.to_vec()), Ok(0));
        }
        assert!(RecordKey::new(AeadAlg::Aes128Gcm, &[0; 32], &[0; 12]).is_err());
        assert!(RecordKey::new(AeadAlg::Chacha20Poly1305, &[0; 16], &[0; 12]).is_err());
        assert_eq!(AeadAlg::Aes128Gcm.confidentiality_limit(), 1 << 24);
        assert_eq!(AeadAlg::TAG_LEN + AeadAlg::NONCE_LEN, 28);
    }
}
