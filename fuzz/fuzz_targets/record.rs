//! Arbitrary bytes as one side's incoming stream: byte 0 even → a client that
//! sent its ClientHello reads the rest as the server's; odd → a fresh server
//! reads the rest as the client's. See harness.rs for the invariants.
#![no_main]

mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::record(data));
