//! The TLS 1.2 PRF (RFC 5246 §5): P_hash over HMAC with the suite's hash.

use super::hash::{hmac_parts, HashAlg};

/// `PRF(secret, label, seed)` written into `out`.
pub fn prf(alg: HashAlg, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    // A(1) = HMAC(secret, label ‖ seed); A(i) = HMAC(secret, A(i-1)).
    let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 1);
    parts.push(label);
    parts.extend_from_slice(seed);
    let mut a = hmac_parts(alg, secret, &parts);
    let mut off = 0;
    while off < out.len() {
        let mut block_parts: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        block_parts.push(a.as_bytes());
        block_parts.extend_from_slice(&parts);
        let block = hmac_parts(alg, secret, &block_parts);
        let n = block.as_bytes().len().min(out.len() - off);
        out[off..off + n].copy_from_slice(&block.as_bytes()[..n]);
        off += n;
        a = hmac_parts(alg, secret, &[a.as_bytes()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The widely published TLS 1.2 PRF-SHA256 test vector (IETF TLS WG
    /// mailing list, 2009): secret, "test label", seed, 100 bytes.
    #[test]
    fn prf_sha256_vector() {
        let secret = hex("9bbe436ba940f017b17652849a71db35");
        let seed = hex("a0ba9f936cda311827a6f796ffd5198c");
        let mut out = [0u8; 100];
        prf(HashAlg::Sha256, &secret, b"test label", &[&seed], &mut out);
        let want = hex(concat!(
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a",
            "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab",
            "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701",
            "87347b66"
        ));
        assert_eq!(out.to_vec(), want);
    }

    #[test]
    fn prf_sha384_vector() {
        let secret = hex("b80b733d6ceefcdc71566ea48e5567df");
        let seed = hex("cd665cf6a8447dd6ff8b27555edb7465");
        let mut out = [0u8; 148];
        prf(HashAlg::Sha384, &secret, b"test label", &[&seed], &mut out);
        let want = hex(concat!(
            "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd",
            "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd",
            "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425",
            "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6",
            "91c8f3a26854308d5eaa3be85e0990703d73e56f"
        ));
        assert_eq!(out.to_vec(), want);
    }
}
