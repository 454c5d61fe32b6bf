//! Code points. Each is a newtype over its wire integer so unknown values
//! survive parsing (and can be ignored or answered with the right alert).

use std::fmt;

use super::reader::{put_u16, put_u8, Codec, Reader};
use crate::error::Result;

macro_rules! codepoint {
    ($(#[$m:meta])* $name:ident($int:ty), $put:ident, $get:ident { $($c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        impl $name {
            $(pub const $c: $name = $name($v);)*

            /// The RFC name, if known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(stringify!($c)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl Codec for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                $put(out, self.0);
            }
            fn read(r: &mut Reader<'_>) -> Result<Self> {
                Ok($name(r.$get(stringify!($name))?))
            }
        }
    };
}

codepoint!(
    /// TLS record content type (RFC 8446 §5.1).
    ContentType(u8), put_u8, u8 {
    CHANGE_CIPHER_SPEC = 20,
    ALERT = 21,
    HANDSHAKE = 22,
    APPLICATION_DATA = 23,
});

codepoint!(
    /// Alert level (RFC 8446 §6).
    AlertLevel(u8), put_u8, u8 {
    WARNING = 1,
    FATAL = 2,
});

codepoint!(
    /// Alert description (RFC 8446 §6, RFC 8446 §B.2).
    AlertDescription(u8), put_u8, u8 {
    CLOSE_NOTIFY = 0,
    UNEXPECTED_MESSAGE = 10,
    BAD_RECORD_MAC = 20,
    RECORD_OVERFLOW = 22,
    HANDSHAKE_FAILURE = 40,
    BAD_CERTIFICATE = 42,
    UNSUPPORTED_CERTIFICATE = 43,
    CERTIFICATE_REVOKED = 44,
    CERTIFICATE_EXPIRED = 45,
    CERTIFICATE_UNKNOWN = 46,
    ILLEGAL_PARAMETER = 47,
    UNKNOWN_CA = 48,
    ACCESS_DENIED = 49,
    DECODE_ERROR = 50,
    DECRYPT_ERROR = 51,
    PROTOCOL_VERSION = 70,
    INSUFFICIENT_SECURITY = 71,
    INTERNAL_ERROR = 80,
    INAPPROPRIATE_FALLBACK = 86,
    USER_CANCELED = 90,
    NO_RENEGOTIATION = 100,
    MISSING_EXTENSION = 109,
    UNSUPPORTED_EXTENSION = 110,
    UNRECOGNIZED_NAME = 112,
    BAD_CERTIFICATE_STATUS_RESPONSE = 113,
    UNKNOWN_PSK_IDENTITY = 115,
    CERTIFICATE_REQUIRED = 116,
    NO_APPLICATION_PROTOCOL = 120,
});

codepoint!(
    /// Handshake message type (RFC 8446 §4).
    HandshakeType(u8), put_u8, u8 {
    HELLO_REQUEST = 0,
    CLIENT_HELLO = 1,
    SERVER_HELLO = 2,
    HELLO_VERIFY_REQUEST = 3,
    NEW_SESSION_TICKET = 4,
    END_OF_EARLY_DATA = 5,
    ENCRYPTED_EXTENSIONS = 8,
    CERTIFICATE = 11,
    SERVER_KEY_EXCHANGE = 12,
    CERTIFICATE_REQUEST = 13,
    SERVER_HELLO_DONE = 14,
    CERTIFICATE_VERIFY = 15,
    CLIENT_KEY_EXCHANGE = 16,
    FINISHED = 20,
    KEY_UPDATE = 24,
    MESSAGE_HASH = 254,
});

codepoint!(
    /// Protocol version (wire value).
    ProtocolVersion(u16), put_u16, u16 {
    TLS1_0 = 0x0301,
    TLS1_1 = 0x0302,
    TLS1_2 = 0x0303,
    TLS1_3 = 0x0304,
    DTLS1_0 = 0xfeff,
    DTLS1_2 = 0xfefd,
    DTLS1_3 = 0xfefc,
});

codepoint!(
    /// Cipher suite (RFC 8446 §B.4 and the TLS 1.2 ECDHE AEAD suites).
    CipherSuite(u16), put_u16, u16 {
    TLS_AES_128_GCM_SHA256 = 0x1301,
    TLS_AES_256_GCM_SHA384 = 0x1302,
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303,
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xc02b,
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xc02c,
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xc02f,
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xc030,
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xcca8,
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xcca9,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff,
    TLS_FALLBACK_SCSV = 0x5600,
});

codepoint!(
    /// Named group for key exchange (RFC 8446 §4.2.7, draft-ietf-tls-ecdhe-mlkem).
    NamedGroup(u16), put_u16, u16 {
    SECP256R1 = 0x0017,
    SECP384R1 = 0x0018,
    SECP521R1 = 0x0019,
    X25519 = 0x001d,
    X448 = 0x001e,
    X25519MLKEM768 = 0x11ec,
});

codepoint!(
    /// Signature scheme (RFC 8446 §4.2.3).
    SignatureScheme(u16), put_u16, u16 {
    RSA_PKCS1_SHA1 = 0x0201,
    ECDSA_SHA1 = 0x0203,
    RSA_PKCS1_SHA256 = 0x0401,
    RSA_PKCS1_SHA384 = 0x0501,
    RSA_PKCS1_SHA512 = 0x0601,
    ECDSA_SECP256R1_SHA256 = 0x0403,
    ECDSA_SECP384R1_SHA384 = 0x0503,
    ECDSA_SECP521R1_SHA512 = 0x0603,
    RSA_PSS_RSAE_SHA256 = 0x0804,
    RSA_PSS_RSAE_SHA384 = 0x0805,
    RSA_PSS_RSAE_SHA512 = 0x0806,
    ED25519 = 0x0807,
    ED448 = 0x0808,
    RSA_PSS_PSS_SHA256 = 0x0809,
    RSA_PSS_PSS_SHA384 = 0x080a,
    RSA_PSS_PSS_SHA512 = 0x080b,
});

codepoint!(
    /// Extension type (RFC 8446 §4.2 and others).
    ExtensionType(u16), put_u16, u16 {
    SERVER_NAME = 0,
    MAX_FRAGMENT_LENGTH = 1,
    STATUS_REQUEST = 5,
    SUPPORTED_GROUPS = 10,
    EC_POINT_FORMATS = 11,
    SIGNATURE_ALGORITHMS = 13,
    USE_SRTP = 14,
    ALPN = 16,
    SIGNED_CERTIFICATE_TIMESTAMP = 18,
    PADDING = 21,
    EXTENDED_MASTER_SECRET = 23,
    RECORD_SIZE_LIMIT = 28,
    SESSION_TICKET = 35,
    PRE_SHARED_KEY = 41,
    EARLY_DATA = 42,
    SUPPORTED_VERSIONS = 43,
    COOKIE = 44,
    PSK_KEY_EXCHANGE_MODES = 45,
    CERTIFICATE_AUTHORITIES = 47,
    OID_FILTERS = 48,
    POST_HANDSHAKE_AUTH = 49,
    SIGNATURE_ALGORITHMS_CERT = 50,
    KEY_SHARE = 51,
    RENEGOTIATION_INFO = 0xff01,
});

codepoint!(
    /// PSK key exchange mode (RFC 8446 §4.2.9).
    PskKeyExchangeMode(u8), put_u8, u8 {
    PSK_KE = 0,
    PSK_DHE_KE = 1,
});

codepoint!(
    /// KeyUpdateRequest (RFC 8446 §4.6.3).
    KeyUpdateRequest(u8), put_u8, u8 {
    UPDATE_NOT_REQUESTED = 0,
    UPDATE_REQUESTED = 1,
});

impl ProtocolVersion {
    pub fn is_dtls(self) -> bool {
        self.0 >= 0xfe00
    }
}

impl CipherSuite {
    /// True for the TLS 1.3 suites.
    pub fn is_tls13(self) -> bool {
        (0x1301..=0x1303).contains(&self.0)
    }
}

impl NamedGroup {
    /// Hybrid and KEM groups exist only in TLS 1.3.
    pub fn is_tls13_only(self) -> bool {
        self == NamedGroup::X25519MLKEM768
    }
}
