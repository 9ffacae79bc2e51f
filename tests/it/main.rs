//! The native integration tests, one module per concept, in one test binary: one link of burn
//! and wgpu instead of one per file. The browser suites (`tests/web.rs`, `tests/web_bench.rs`)
//! stay their own targets for `wasm-pack test`. Run one module with `cargo test --test it lens::`.
#![cfg(not(target_arch = "wasm32"))]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod apps;
mod bundle;
mod card;
mod cli;
mod demo_data;
mod docs;
mod engine;
mod explorer;
mod fuzz;
mod golden;
mod heads;
mod lens;
mod loading;
mod neuron_statistics;
mod open_clip;
mod page_build;
mod page_text_side;
mod planted;
mod precompute_io;
mod preprocess;
mod segment;
mod shards;
mod text_file;
mod typescript_types;
