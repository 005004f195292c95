//! The V1 readers behind a valid authToken: any list of parameters, signed
//! as the marketplace would sign it, goes through the query decoding and
//! verification to the activity readers. They must never panic.
#![no_main]

use koogallery_protocol::{Generation, marketplace, read_callback};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|params: Vec<(String, String)>| {
    let params: Vec<(String, String)> = params.into_iter().take(70).collect();
    let query = marketplace::v1_query(common::KEY, &params, common::NOW_MS);
    let read = read_callback(
        Generation::V1,
        &query,
        b"",
        &[common::KEY],
        common::NOW_MS,
        &common::POLICY,
        &common::context(),
    );
    if let Ok((verified, callback)) = read {
        assert_eq!(verified.generation, Generation::V1);
        assert_eq!(callback.generation, Generation::V1);
    }
});
