//! The V2 readers behind a valid signature: any body, signed as the
//! marketplace would sign it, goes through verification to the activity
//! readers. They must never panic; what they accept must be well-formed.
#![no_main]

use koogallery_protocol::{Generation, marketplace, read_callback};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|body: &[u8]| {
    let query = marketplace::v2_query(common::KEY, body, common::NOW_MS, "fuzznonce0123456789");
    let read = read_callback(
        Generation::V2,
        &query,
        body,
        &[common::KEY],
        common::NOW_MS,
        &common::POLICY,
        &common::context(),
    );
    if let Ok((verified, callback)) = read {
        assert_eq!(verified.generation, Generation::V2);
        assert_eq!(callback.generation, Generation::V2);
    }
});
