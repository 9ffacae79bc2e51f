#![cfg(not(target_arch = "wasm32"))]
//! Bounded mutation fuzzing of the three parsers that take untrusted bytes (run in CI): the
//! safetensors reader, the bundle reader and the image decoder. Seeds are valid fixture files;
//! each case flips, overwrites, inserts or truncates bytes (deterministically: a fixed xorshift
//! seed, so a failure reproduces) and the parser must return (`Ok` or `Err`), never panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use clip_lens::bundle::Bundle;
use clip_lens::preprocess::preprocess_image;
use clip_lens::WeightFile;
use common::*;

struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A mutated copy of `seed`; mutations favour the first `hot` bytes (headers).
    fn mutate(&mut self, seed: &[u8], hot: usize) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            let span = if self.below(4) == 0 { bytes.len() } else { hot.min(bytes.len()) };
            let at = self.below(span);
            match self.below(6) {
                0 => bytes.truncate(at),
                1 => bytes.insert(at.min(bytes.len()), self.next() as u8),
                2 if at < bytes.len() => bytes[at] ^= 1 << self.below(8),
                3 if at < bytes.len() => bytes[at] = [0, 0xff, b'9', b'"', b'{', b'-'][self.below(6)],
                4 if at + 8 <= bytes.len() => bytes[at..at + 8].copy_from_slice(&self.next().to_le_bytes()),
                _ => bytes.extend(std::iter::repeat_n(0u8, self.below(16))),
            }
        }
        bytes
    }
}

/// Runs `parse` on `cases` mutants of `seed`; panics name the case so it can be reproduced.
fn fuzz(what: &str, seed: &[u8], hot: usize, cases: usize, state: u64, parse: impl Fn(Vec<u8>)) {
    let mut mutator = Mutator(state);
    let mut failures = Vec::new();
    for case in 0..cases {
        let input = mutator.mutate(seed, hot);
        if catch_unwind(AssertUnwindSafe(|| parse(input))).is_err() {
            failures.push(case);
        }
    }
    assert!(failures.is_empty(), "{what}: cases {failures:?} panicked (seed {state:#x})");
}

#[test]
fn safetensors_reader_never_panics() {
    let header = u64::from_le_bytes(MODEL_OPENAI[..8].try_into().unwrap()) as usize + 8;
    fuzz("safetensors", MODEL_OPENAI, header, 3000, 0x9e37_79b9_7f4a_7c15, |bytes| {
        if let Ok(file) = WeightFile::from_bytes(bytes) {
            let _ = file.layout();
            let names: Vec<String> = file.names().map(str::to_string).collect();
            for name in names {
                let _ = file.tensor_any_shape(&name);
            }
        }
    });
}

#[test]
fn bundle_reader_never_panics() {
    let dir = std::env::temp_dir().join(format!("clip-lens-fuzz-{}", std::process::id()));
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_clip-lens"))
        .args(["precompute", "--weights", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/model-openai.safetensors")])
        .args(["--images", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/images"), "--layers", "1", "--top-k", "3", "--components", "4", "--thumbnail-size", "0"])
        .args(["--words", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/words.txt"), "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let tensors = std::fs::read(dir.join("lens.safetensors")).unwrap();
    Bundle::from_parts(std::str::from_utf8(&manifest).unwrap(), tensors.clone()).unwrap();
    fuzz("bundle manifest", &manifest, manifest.len(), 1500, 0x51_7cc1_b727_220a, |json| {
        let _ = Bundle::from_parts(&String::from_utf8_lossy(&json), tensors.clone());
    });
    let header = u64::from_le_bytes(tensors[..8].try_into().unwrap()) as usize + 8;
    fuzz("bundle tensors", &tensors, header, 1500, 0x2545_f491_4f6c_dd1d, |bytes| {
        let _ = Bundle::from_parts(std::str::from_utf8(&manifest).unwrap(), bytes);
    });
}

#[test]
fn image_decoder_never_panics() {
    let png = DETAIL_PNGS[0];
    let jpeg = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/samples/cat.jpg"));
    fuzz("png", png, 256, 800, 0xdead_beef_cafe_f00d, |bytes| {
        let _ = preprocess_image(&bytes, 64);
    });
    fuzz("jpeg", jpeg, 1024, 300, 0x0123_4567_89ab_cdef, |bytes| {
        let _ = preprocess_image(&bytes, 64);
    });
}
