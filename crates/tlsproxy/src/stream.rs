//! nbtls' `Transport` over mio's non-blocking TCP stream: push is `write`,
//! pull is `read`, and `WouldBlock` passes through for the session to turn
//! into `Error::Again`.

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;
use nbtls::Transport;

#[derive(Debug)]
pub struct MioStream(pub TcpStream);

impl Transport for MioStream {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data)
    }

    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    // pull_timeout keeps its default: NONBLOCK sessions never call it.
}
