//! `clip-lens`: the native command line (see `cli.rs`; `common.rs` is what the commands share). It has no meaning in wasm, where the
//! page drives the library through `src/web.rs`.

#[cfg(not(target_arch = "wasm32"))]
mod ablate;
#[cfg(not(target_arch = "wasm32"))]
mod adversarial;
#[cfg(not(target_arch = "wasm32"))]
mod cli;
#[cfg(not(target_arch = "wasm32"))]
mod common;
#[cfg(not(target_arch = "wasm32"))]
mod convert;
#[cfg(not(target_arch = "wasm32"))]
mod inspect;
#[cfg(not(target_arch = "wasm32"))]
mod precompute;
#[cfg(not(target_arch = "wasm32"))]
mod segment;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
