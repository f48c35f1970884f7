#![no_main]
//! cargo-fuzz target; the body is `ficha_e2e::fuzz::api_body`, which CI also runs on stable.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ficha_e2e::fuzz::api_body(data));
