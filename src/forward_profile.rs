//! Where an image forward's time goes: each step of one residual block of the image tower
//! timed alone on a device (layer norms, the query, key and value maps, the heads' attention
//! with its head split, the output map, the MLP's two layers with QuickGELU, the residual
//! additions), and the whole block for comparison. `examples/forward_profile.rs` prints it
//! natively; the browser benchmark page shows it with `&probe=1` (`benchmarkVision`'s `steps`).

use burn::tensor::{Device, Distribution, Tensor};

use crate::device::read_f32;
use crate::error::Result;
use crate::model::{Keep, VisionTransformer};

/// One step's mean time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTiming {
    /// What the step is.
    pub step: &'static str,
    /// Mean milliseconds per run of the step (after one untimed warm-up).
    pub ms: f64,
}

/// Reads one value of `t` back, so that a GPU's queued work is included in a timing.
async fn settle<const D: usize>(t: Tensor<D>) -> Result<()> {
    let mut one = t;
    for axis in 0..D {
        one = one.narrow(axis, 0, 1);
    }
    read_f32(one).await.map(|_| ())
}

/// The least time a call is timed for: browsers coarsen their clock (to 0.1 ms without
/// cross-origin isolation), and a layer norm takes tens of microseconds.
const MIN_TIMED_MS: f64 = 20.0;

/// Mean milliseconds of at least `runs` timed calls of `call` (after one untimed), each read
/// back by one value, repeated until [`MIN_TIMED_MS`] have passed (at most 10,000 calls). The
/// matrix-product probe times its products the same way.
pub(crate) async fn mean_ms<const D: usize>(runs: usize, call: impl Fn() -> Tensor<D>) -> Result<f64> {
    settle(call()).await?;
    let start = web_time::Instant::now();
    let mut calls = 0;
    while calls < runs.max(1) || (start.elapsed().as_secs_f64() * 1e3 < MIN_TIMED_MS && calls < 10_000) {
        settle(call()).await?;
        calls += 1;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / calls as f64)
}

/// One step's [`mean_ms`].
async fn time_step<const D: usize>(
    name: &'static str,
    runs: usize,
    step: impl Fn() -> Tensor<D>,
) -> Result<StepTiming> {
    Ok(StepTiming { step: name, ms: mean_ms(runs, step).await? })
}

/// Times each step of block 0 of `vision` for `batch` random images' residual streams, `runs`
/// times each. The steps' sum is close to the block's time; twelve blocks are most of a forward.
pub async fn block_profile(
    vision: &VisionTransformer,
    device: &Device,
    batch: usize,
    runs: usize,
) -> Result<Vec<StepTiming>> {
    let block = &vision.blocks[0];
    let (tokens, width) = (vision.config.tokens(), vision.config.width);
    let x = Tensor::<3>::random([batch, tokens, width], Distribution::Normal(0.0, 1.0), device);
    let normed = block.ln_1.forward(x.clone());
    let attn = &block.attn;
    let (q, k, v) =
        (attn.query.forward(normed.clone()), attn.key.forward(normed.clone()), attn.value.forward(normed.clone()));
    let mixed = attn.mix(q.clone(), k.clone(), v.clone(), None).0;
    let attended = attn.out.forward(mixed.clone());
    let neurons = block.mlp.neurons(block.ln_2.forward(x.clone()));
    let mut timings = vec![
        time_step("layer norm (ln_1)", runs, || block.ln_1.forward_with_stats(x.clone()).0).await?,
        time_step("query map", runs, || attn.query.forward(normed.clone())).await?,
        time_step("key map", runs, || attn.key.forward(normed.clone())).await?,
        time_step("value map", runs, || attn.value.forward(normed.clone())).await?,
        time_step("attention: heads split, scores, softmax, mix", runs, || {
            attn.mix(q.clone(), k.clone(), v.clone(), None).0
        })
        .await?,
        time_step("output map", runs, || attn.out.forward(mixed.clone())).await?,
        time_step("residual addition", runs, || x.clone() + attended.clone()).await?,
        time_step("layer norm (ln_2)", runs, || block.ln_2.forward(x.clone())).await?,
        time_step("MLP in + QuickGELU", runs, || block.mlp.neurons(normed.clone())).await?,
        time_step("MLP out", runs, || block.mlp.fc_out.forward(neurons.clone())).await?,
    ];
    timings.push(time_step("whole block", runs, || block.forward(x.clone(), None, Keep::NOTHING).0).await?);
    Ok(timings)
}
