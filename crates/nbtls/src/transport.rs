//! The caller's transport: GnuTLS's push/pull functions as a trait, with
//! implementations for std sockets, any `Read + Write`, closures and an
//! in-memory pipe pair. A transport behaves like `send`/`recv` on a socket:
//! `WouldBlock` and `Interrupted` are resumable, a stream pull of `Ok(0)`
//! is EOF.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Push/pull functions (`gnutls_transport_set_push_function` and friends).
#[doc(alias = "gnutls_transport_set_push_function")]
#[doc(alias = "gnutls_transport_set_pull_function")]
pub trait Transport {
    /// Writes some of `data`; like `send(2)`.
    fn push(&mut self, data: &[u8]) -> io::Result<usize>;

    /// Writes from several buffers at once; like `sendmsg(2)`.
    #[doc(alias = "gnutls_transport_set_vec_push_function")]
    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.push(b),
            None => Ok(0),
        }
    }

    /// Reads into `buf`; like `recv(2)`. `Ok(0)` is EOF on streams.
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Waits up to `timeout` for data; `Ok(true)` when a pull would not
    /// block. Only blocking sessions with a timeout call it.
    #[doc(alias = "gnutls_transport_set_pull_timeout_function")]
    fn pull_timeout(&mut self, _timeout: Duration) -> io::Result<bool> {
        Ok(true)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        (**self).push(data)
    }
    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (**self).push_vectored(bufs)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).pull(buf)
    }
    fn pull_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
        (**self).pull_timeout(timeout)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        (**self).push(data)
    }
    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (**self).push_vectored(bufs)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).pull(buf)
    }
    fn pull_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
        (**self).pull_timeout(timeout)
    }
}

/// `pull_timeout` for std sockets: waits for readability with a read
/// timeout (or a non-blocking probe for zero) and `peek`, restoring the
/// socket's settings after. A datagram larger than the probe still counts.
macro_rules! peek_pull_timeout {
    () => {
        fn pull_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
            let before = self.read_timeout()?;
            let mut probe = [0u8; 1];
            let r = if timeout.is_zero() {
                self.set_nonblocking(true)?;
                let r = self.peek(&mut probe);
                self.set_nonblocking(false)?;
                r
            } else {
                self.set_read_timeout(Some(timeout))?;
                let r = self.peek(&mut probe);
                self.set_read_timeout(before)?;
                r
            };
            match r {
                Ok(_) => Ok(true),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        }
    };
}

impl Transport for TcpStream {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write(data)
    }
    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }
    peek_pull_timeout!();
}

/// Unix stream sockets. `pull_timeout` is not supported (std has no peek
/// for them yet): use `Flags::NONBLOCK` and the caller's poll for timeouts.
#[cfg(unix)]
impl Transport for std::os::unix::net::UnixStream {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write(data)
    }
    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }
}

/// Any `Read + Write` as a transport (no `pull_timeout`).
#[derive(Debug)]
pub struct IoTransport<T>(pub T);

impl<T: Read + Write> Transport for IoTransport<T> {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data)
    }
    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// A transport made of two closures.
pub struct FnTransport<P, L> {
    pub push: P,
    pub pull: L,
}

impl<P, L> FnTransport<P, L>
where
    P: FnMut(&[u8]) -> io::Result<usize>,
    L: FnMut(&mut [u8]) -> io::Result<usize>,
{
    pub fn new(push: P, pull: L) -> Self {
        FnTransport { push, pull }
    }
}

impl<P, L> Transport for FnTransport<P, L>
where
    P: FnMut(&[u8]) -> io::Result<usize>,
    L: FnMut(&mut [u8]) -> io::Result<usize>,
{
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        (self.push)(data)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (self.pull)(buf)
    }
}

/// A connected UDP socket: one push is one datagram, one pull one datagram.
impl Transport for std::net::UdpSocket {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.send(data)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
    peek_pull_timeout!();
}

/// One end of an in-memory datagram pair (for tests): each push is one
/// datagram; pull with none queued is `WouldBlock`.
#[derive(Debug)]
pub struct MemoryDatagram {
    incoming: Arc<Mutex<VecDeque<Vec<u8>>>>,
    outgoing: Arc<Mutex<VecDeque<Vec<u8>>>>,
}

impl MemoryDatagram {
    pub fn pair() -> (MemoryDatagram, MemoryDatagram) {
        let a = Arc::new(Mutex::new(VecDeque::new()));
        let b = Arc::new(Mutex::new(VecDeque::new()));
        (
            MemoryDatagram {
                incoming: a.clone(),
                outgoing: b.clone(),
            },
            MemoryDatagram {
                incoming: b,
                outgoing: a,
            },
        )
    }

    /// Datagrams waiting to be pulled.
    pub fn queued(&self) -> usize {
        self.incoming.lock().map_or(0, |q| q.len())
    }
}

impl Transport for MemoryDatagram {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.outgoing
            .lock()
            .map_err(|_| poisoned())?
            .push_back(data.to_vec());
        Ok(data.len())
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.incoming.lock().map_err(|_| poisoned())?;
        let Some(d) = q.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = buf.len().min(d.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
    fn pull_timeout(&mut self, _timeout: Duration) -> io::Result<bool> {
        Ok(self.queued() > 0)
    }
}

#[derive(Debug, Default)]
struct PipeState {
    data: VecDeque<u8>,
    closed: bool,
}

/// One end of an in-memory, non-blocking byte pipe pair (for tests and
/// examples): pull with nothing queued is `WouldBlock`, and EOF after the
/// other end was closed or dropped.
#[derive(Debug)]
pub struct MemoryTransport {
    incoming: Arc<Mutex<PipeState>>,
    outgoing: Arc<Mutex<PipeState>>,
    capacity: usize,
}

impl MemoryTransport {
    /// Two connected ends, each direction holding up to 64 KiB.
    pub fn pair() -> (MemoryTransport, MemoryTransport) {
        Self::pair_with_capacity(64 * 1024)
    }

    pub fn pair_with_capacity(capacity: usize) -> (MemoryTransport, MemoryTransport) {
        let a = Arc::new(Mutex::new(PipeState::default()));
        let b = Arc::new(Mutex::new(PipeState::default()));
        (
            MemoryTransport {
                incoming: a.clone(),
                outgoing: b.clone(),
                capacity,
            },
            MemoryTransport {
                incoming: b,
                outgoing: a,
                capacity,
            },
        )
    }

    /// Closes our sending direction: the other end reads EOF once drained.
    pub fn close(&self) {
        if let Ok(mut s) = self.outgoing.lock() {
            s.closed = true;
        }
    }

    /// Bytes waiting to be pulled.
    pub fn readable(&self) -> usize {
        self.incoming.lock().map_or(0, |s| s.data.len())
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.close();
    }
}

fn poisoned() -> io::Error {
    io::Error::other("memory pipe poisoned")
}

impl Transport for MemoryTransport {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut s = self.outgoing.lock().map_err(|_| poisoned())?;
        if s.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = self.capacity.saturating_sub(s.data.len());
        if room == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(data.len());
        s.data.extend(&data[..n]);
        Ok(n)
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.incoming.lock().map_err(|_| poisoned())?;
        if s.data.is_empty() {
            return if s.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(s.data.len());
        for (dst, src) in buf.iter_mut().zip(s.data.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn pull_timeout(&mut self, _timeout: Duration) -> io::Result<bool> {
        let s = self.incoming.lock().map_err(|_| poisoned())?;
        Ok(!s.data.is_empty() || s.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_pipe_semantics() {
        let (mut a, mut b) = MemoryTransport::pair_with_capacity(4);
        assert_eq!(a.push(b"hello").unwrap(), 4);
        assert_eq!(a.push(b"o").unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let mut buf = [0u8; 8];
        assert_eq!(b.pull(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"hell");
        assert_eq!(
            b.pull(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(a);
        assert_eq!(b.pull(&mut buf).unwrap(), 0);
    }
}
