#![no_main]
//! cargo-fuzz target; the body is `ficha_e2e::fuzz::csv_import`, which CI also runs on stable.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ficha_e2e::fuzz::csv_import(data));
