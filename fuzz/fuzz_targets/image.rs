#![no_main]
//! libFuzzer entry point: see [`clip_lens_fuzz::image`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| clip_lens_fuzz::image(data));
