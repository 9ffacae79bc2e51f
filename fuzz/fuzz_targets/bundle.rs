#![no_main]
//! libFuzzer entry point: see [`clip_lens_fuzz::bundle`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| clip_lens_fuzz::bundle(data));
