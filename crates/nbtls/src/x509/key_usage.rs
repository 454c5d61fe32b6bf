//! The leaf's keyUsage extension (RFC 5280 §4.2.1.3), which webpki does not
//! expose: a key that signs the handshake needs digitalSignature when the
//! extension is present. A small bounds-checked DER walk of the
//! certificate down to that one extension.

/// One DER element: its tag, its contents and what follows it. Low tag
/// numbers only (all X.509 needs here); definite lengths of up to 4 bytes.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
/// `[3] EXPLICIT Extensions` in TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
/// id-ce-keyUsage, 2.5.29.15.
const KEY_USAGE_OID: [u8; 3] = [0x55, 0x1d, 0x0f];

/// The keyUsage BIT STRING's contents (unused-bits byte, then the bits), or
/// `Ok(None)` without the extension; `Err(())` when the certificate's DER
/// does not have X.509's shape.
fn key_usage(cert: &[u8]) -> Result<Option<&[u8]>, ()> {
    let (SEQUENCE, cert, _) = tlv(cert).ok_or(())? else {
        return Err(());
    };
    let (SEQUENCE, mut tbs, _) = tlv(cert).ok_or(())? else {
        return Err(());
    };
    // version, serial, signature, issuer, validity, subject, spki, then
    // optional unique IDs: the extensions are the one tagged [3].
    while !tbs.is_empty() {
        let (tag, body, rest) = tlv(tbs).ok_or(())?;
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let (SEQUENCE, mut exts, _) = tlv(body).ok_or(())? else {
            return Err(());
        };
        while !exts.is_empty() {
            let (SEQUENCE, ext, rest) = tlv(exts).ok_or(())? else {
                return Err(());
            };
            exts = rest;
            let (OID, oid, mut ext) = tlv(ext).ok_or(())? else {
                return Err(());
            };
            if oid != KEY_USAGE_OID {
                continue;
            }
            let (mut tag, mut value, rest) = tlv(ext).ok_or(())?;
            if tag == BOOLEAN {
                ext = rest;
                (tag, value, _) = tlv(ext).ok_or(())?;
            }
            if tag != OCTET_STRING {
                return Err(());
            }
            let (BIT_STRING, bits, _) = tlv(value).ok_or(())? else {
                return Err(());
            };
            return Ok(Some(bits));
        }
        return Ok(None);
    }
    Ok(None)
}

/// Whether the certificate's key may sign (digitalSignature, bit 0), as far
/// as keyUsage says: no extension allows every use. `Err(())` for DER that is
/// no certificate.
pub(crate) fn allows_digital_signature(cert: &[u8]) -> Result<bool, ()> {
    Ok(match key_usage(cert)? {
        None => true,
        // The unused-bits byte, then bit 0 is the first byte's top bit.
        Some(bits) => bits.get(1).is_some_and(|b| b & 0x80 != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose as K};

    fn cert(usages: Vec<K>) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["test".into()]).expect("params");
        params.key_usages = usages;
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn digital_signature_bit() {
        assert_eq!(allows_digital_signature(&cert(vec![])), Ok(true));
        assert_eq!(
            allows_digital_signature(&cert(vec![K::DigitalSignature])),
            Ok(true)
        );
        assert_eq!(
            allows_digital_signature(&cert(vec![K::KeyEncipherment, K::DigitalSignature])),
            Ok(true)
        );
        assert_eq!(
            allows_digital_signature(&cert(vec![K::KeyAgreement])),
            Ok(false)
        );
        assert_eq!(
            allows_digital_signature(&cert(vec![K::KeyEncipherment])),
            Ok(false)
        );
    }

    #[test]
    fn truncated_or_foreign_der_is_refused() {
        let der = cert(vec![K::KeyAgreement]);
        for n in 0..der.len() {
            // Cut short: an error, or (once the extension is whole) the
            // same answer; never a panic.
            let r = allows_digital_signature(&der[..n]);
            assert!(r.is_err() || r == Ok(false), "{n}: {r:?}");
        }
        assert_eq!(allows_digital_signature(&[0x02, 0x01, 0x00]), Err(()));
        assert_eq!(
            allows_digital_signature(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(())
        );
    }
}
