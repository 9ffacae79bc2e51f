//! The TypeScript types of the engine's results, options and errors (`types.d.ts`), emitted
//! into `pkg/clip_lens.d.ts` (the front end imports them as `clip-lens-wasm`). They describe the
//! serialised forms of `crate::apps::engine::results`; `tests/it/typescript_types.rs` checks each
//! interface's fields against them.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = include_str!("types.d.ts");
