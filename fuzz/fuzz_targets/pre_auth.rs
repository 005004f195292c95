//! Anything a client can send before authentication: the method, the raw
//! query and the body. The path must never panic, and it must refuse: no
//! input without the key verifies.
#![no_main]

use koogallery_protocol::{detect_generation, read_callback};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|input: (bool, &str, &[u8])| {
    let (is_get, query, body) = input;
    let generation = detect_generation(is_get, query);
    let read = read_callback(
        generation,
        query,
        body,
        &[common::KEY],
        common::NOW_MS,
        &common::POLICY,
        &common::context(),
    );
    assert!(read.is_err(), "an unsigned request verified: {query:?}");
});
