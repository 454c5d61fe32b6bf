//! The one error type. A protocol violation carries the alert it sends;
//! errors are sticky (see `Error::is_fatal`), so the type is `Clone`.

use std::borrow::Cow;
use std::fmt;
use std::io;

use crate::codec::AlertDescription;

/// Every failure nbtls reports.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The transport would block: call the same function again once
    /// `Session::direction()` is ready.
    #[doc(alias = "GNUTLS_E_AGAIN")]
    Again,
    /// The transport was interrupted (EINTR): call the same function again.
    #[doc(alias = "GNUTLS_E_INTERRUPTED")]
    Interrupted,
    /// A datagram did not fit (EMSGSIZE or over the data MTU); nothing was queued.
    #[doc(alias = "GNUTLS_E_LARGE_PACKET")]
    LargePacket,
    /// The server handshake paused after parsing the ClientHello;
    /// inspect it, adjust, and call `handshake()` again.
    ClientHelloPaused,
    /// TLS 1.2: the peer asked to renegotiate; nbtls refused with a
    /// no_renegotiation warning and the session goes on.
    #[doc(alias = "GNUTLS_E_REHANDSHAKE")]
    Rehandshake,
    /// A deadline passed (handshake, record or `bye` timeout).
    #[doc(alias = "GNUTLS_E_TIMEDOUT")]
    TimedOut,
    /// The transport reached EOF without an authenticated close_notify.
    #[doc(alias = "GNUTLS_E_PREMATURE_TERMINATION")]
    PrematureTermination,
    /// `send`/`recv` called before the handshake completed.
    #[doc(alias = "GNUTLS_E_UNAVAILABLE_DURING_HANDSHAKE")]
    UnavailableDuringHandshake,
    /// The call makes no sense in the session's current state.
    #[doc(alias = "GNUTLS_E_INVALID_REQUEST")]
    InvalidRequest(&'static str),
    /// The session has been closed with `bye` and can no longer send.
    #[doc(alias = "GNUTLS_E_INVALID_SESSION")]
    InvalidSession,
    /// The transport failed with an error other than WouldBlock/Interrupted.
    #[doc(alias = "GNUTLS_E_PUSH_ERROR")]
    #[doc(alias = "GNUTLS_E_PULL_ERROR")]
    Transport {
        kind: io::ErrorKind,
        message: String,
    },
    /// The peer sent a fatal alert.
    #[doc(alias = "GNUTLS_E_FATAL_ALERT_RECEIVED")]
    AlertReceived(AlertDescription),
    /// The peer violated the protocol (or failed authentication); `alert`
    /// was sent to it.
    Protocol {
        alert: AlertDescription,
        reason: Cow<'static, str>,
    },
    /// A configured limit was exceeded by the peer; `alert` was sent.
    LimitExceeded {
        alert: AlertDescription,
        limit: &'static str,
    },
    /// The configuration or an argument is invalid.
    Config(Cow<'static, str>),
}

impl Error {
    /// A protocol error with the alert it sends.
    pub(crate) fn protocol(alert: AlertDescription, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Protocol {
            alert,
            reason: reason.into(),
        }
    }

    pub(crate) fn decode(reason: &'static str) -> Self {
        Error::protocol(AlertDescription::DECODE_ERROR, reason)
    }

    pub(crate) fn illegal(reason: &'static str) -> Self {
        Error::protocol(AlertDescription::ILLEGAL_PARAMETER, reason)
    }

    pub(crate) fn unexpected(reason: &'static str) -> Self {
        Error::protocol(AlertDescription::UNEXPECTED_MESSAGE, reason)
    }

    pub(crate) fn internal(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::protocol(AlertDescription::INTERNAL_ERROR, reason)
    }

    pub(crate) fn config(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Config(reason.into())
    }

    pub(crate) fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock => Error::Again,
            io::ErrorKind::Interrupted => Error::Interrupted,
            kind => Error::Transport {
                kind,
                message: e.to_string(),
            },
        }
    }

    /// GnuTLS's `gnutls_error_is_fatal`: `false` for the resumable results.
    #[doc(alias = "gnutls_error_is_fatal")]
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Error::Again
                | Error::Interrupted
                | Error::LargePacket
                | Error::ClientHelloPaused
                | Error::Rehandshake
                | Error::UnavailableDuringHandshake
                | Error::InvalidRequest(_)
                | Error::Config(_)
        )
    }

    /// The alert this error sends to the peer, if any.
    pub fn alert(&self) -> Option<AlertDescription> {
        match self {
            Error::Protocol { alert, .. } | Error::LimitExceeded { alert, .. } => Some(*alert),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Again => f.write_str("resource temporarily unavailable, try again"),
            Error::Interrupted => f.write_str("interrupted, try again"),
            Error::LargePacket => f.write_str("datagram too large for the MTU"),
            Error::ClientHelloPaused => f.write_str("handshake paused after the ClientHello"),
            Error::Rehandshake => f.write_str("the peer asked to renegotiate (refused)"),
            Error::TimedOut => f.write_str("timed out"),
            Error::PrematureTermination => {
                f.write_str("the peer closed the transport without close_notify")
            }
            Error::UnavailableDuringHandshake => {
                f.write_str("not available before the handshake completes")
            }
            Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Error::InvalidSession => f.write_str("the session is closed"),
            Error::Transport { message, .. } => write!(f, "transport error: {message}"),
            Error::AlertReceived(a) => write!(f, "peer sent fatal alert {a}"),
            Error::Protocol { alert, reason } => write!(f, "{reason} (sent alert {alert})"),
            Error::LimitExceeded { alert, limit } => {
                write!(f, "limit exceeded: {limit} (sent alert {alert})")
            }
            Error::Config(why) => write!(f, "configuration error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Again => io::ErrorKind::WouldBlock,
            Error::Interrupted => io::ErrorKind::Interrupted,
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::PrematureTermination => io::ErrorKind::UnexpectedEof,
            Error::Transport { kind, .. } => *kind,
            Error::InvalidRequest(_) | Error::Config(_) => io::ErrorKind::InvalidInput,
            Error::UnavailableDuringHandshake | Error::ClientHelloPaused => {
                io::ErrorKind::NotConnected
            }
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
