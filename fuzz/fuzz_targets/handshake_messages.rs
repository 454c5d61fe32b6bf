//! Arbitrary bytes through every handshake message and extension decoder:
//! byte 0 picks the type. See harness.rs for the invariants.
#![no_main]

mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::handshake_messages(data));
