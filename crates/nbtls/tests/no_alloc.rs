//! The established data path allocates nothing per record: records are
//! sealed and opened in place in pooled buffers.

mod common;

use std::alloc::System;

use common::tls::{client_config, handshake, pair, server_config};
use nbtls::Flags;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn no_allocation_per_record() {
    let (mut c, mut s) = pair(client_config(), server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    let data = vec![0x5a; 16384];
    let mut buf = vec![0u8; 16384];
    let mut exchange = |c: &mut nbtls::Session<_>, s: &mut nbtls::Session<_>, n: usize| {
        let sent = c.send(&data[..n]).unwrap();
        let mut got = 0;
        while got < sent {
            got += s.recv(&mut buf[got..]).unwrap();
        }
        let back = s.send(&buf[..got]).unwrap();
        let mut got = 0;
        while got < back {
            got += c.recv(&mut buf[got..]).unwrap();
        }
    };
    // Warm up: the buffer pool, the in-memory pipes' queues.
    for n in [1, 1000, 16384, 16384] {
        exchange(&mut c, &mut s, n);
    }
    // The counter sees allocations at all.
    let region = Region::new(GLOBAL);
    drop(std::hint::black_box(Vec::<u8>::with_capacity(10)));
    assert!(region.change().allocations > 0);

    let region = Region::new(GLOBAL);
    for i in 0..200 {
        exchange(&mut c, &mut s, [1, 100, 4096, 16384][i % 4]);
    }
    let stats = region.change();
    assert_eq!(
        stats.allocations + stats.reallocations,
        0,
        "allocations on the established data path: {stats:?}"
    );
}
