//! The two streaming passes over the images (section 2 of the method): pass 1 sums every
//! neuron's second-order effects into its mean (and squared norms, for the histograms' bins),
//! pass 2 keeps each neuron's top k centred effects and gathers the riders (the histograms).
//! Batch by batch (memory O(batch)), checkpointed, resumable; after every batch the driver's
//! [`Control`] may stop the run.
//!
//! Reference: [`compute_second_order_neuron_prs.py`, `main`][prs] (every image's effects, saved as
//! `*_merged.npy`) followed by [`compute_pcas.py`, `main`][pcas] (means, top k, directions). Differs: the effects
//! are reduced batch by batch instead of stored (`[images, N, D]`), at the cost of a second forward per image.
//!
//! [prs]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_second_order_neuron_prs.py
//! [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py

use super::checkpoint::{Accumulators, Checkpoint, Position};
use super::driver::{Control, Progress};
use super::io::{BundleSink, ImageSource};
use super::Settings;
use crate::device::read_f32;
use crate::lens::{
    image_key, second_order_effects, second_order_effects_and_heads, LensFactors, MeanAccumulator, NeuronStatistics,
    PassTwoBatch, TopKAccumulator,
};
use crate::model::{CaptureRequest, VisionOutput, VisionTransformer};
use crate::preprocess::preprocess_image;
use crate::{Error, Result};

/// The streaming passes of one run.
pub(super) struct Passes<'a, S, K, C> {
    pub vision: &'a VisionTransformer,
    pub factors: Vec<LensFactors>,
    pub settings: &'a Settings,
    pub source: &'a S,
    pub checkpoint: Checkpoint<'a, K>,
    pub progress: &'a mut dyn Progress,
    pub control: &'a mut C,
    pub processed_this_run: usize,
}

impl<'a, S: ImageSource, K: BundleSink, C: Control> Passes<'a, S, K, C> {
    /// The passes of `settings`' lens layers of `vision` over `source`'s images, checkpointed
    /// into `checkpoint`.
    pub fn new(
        vision: &'a VisionTransformer,
        settings: &'a Settings,
        source: &'a S,
        checkpoint: Checkpoint<'a, K>,
        progress: &'a mut dyn Progress,
        control: &'a mut C,
    ) -> Result<Self> {
        let factors = settings.layers.iter().map(|&l| LensFactors::new(vision, l)).collect::<Result<Vec<_>>>()?;
        Ok(Self { vision, factors, settings, source, checkpoint, progress, control, processed_this_run: 0 })
    }

    /// Runs (or resumes) both passes over `names`; returns the statistics per layer and the
    /// position at the end.
    ///
    /// Reference: `compute_second_order_neuron_prs.py` then [`compute_pcas.py`, `main`][pcas]; pass 1 is its
    /// `neurons.mean(axis=0)`, pass 2 its per-neuron loop.
    ///
    /// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
    pub async fn run(
        &mut self,
        names: &[String],
        resumed: Option<(Position, Accumulators)>,
    ) -> Result<(Vec<NeuronStatistics>, Position)> {
        let start = self.pass_one_start();
        let (mut position, mut accumulators) = self.resume_or(resumed, names.len(), start);
        if position.pass == 1 {
            self.pass(names, &mut position, &mut accumulators).await?;
            // Pass 1's end is kept as pass 1's state (the sums), from which a resumed run starts
            // pass 2 afresh: pass 2's empty state would be the whole top-k state written for
            // nothing (1.9 GB of zeros at the paper's settings).
            self.checkpoint.save(&position, &accumulators, &self.settings.layers).await?;
            let means = accumulators.into_means();
            check_readable(&position.images, position.skipped.len(), self.settings.top_k)?;
            accumulators = Accumulators::Tops(self.pass_two_start(&means)?);
            position.pass = 2;
            position.done = 0;
        }
        let images = position.images.clone();
        self.pass(&images, &mut position, &mut accumulators).await?;
        let tops = accumulators.into_tops();
        Ok((tops.into_iter().map(TopKAccumulator::finish).collect::<Result<_>>()?, position))
    }

    /// Runs (or resumes) one pass alone over `inputs` (a shard's, native only), from `start`
    /// unless resumed; returns the position and the accumulators at the end.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn run_one(
        &mut self,
        inputs: &[String],
        start: (Position, Accumulators),
        resumed: Option<(Position, Accumulators)>,
    ) -> Result<(Position, Accumulators)> {
        let (mut position, mut accumulators) = self.resume_or(resumed, inputs.len(), start);
        self.pass(inputs, &mut position, &mut accumulators).await?;
        Ok((position, accumulators))
    }

    /// Pass 1's empty accumulators.
    pub fn pass_one_start(&self) -> (Position, Accumulators) {
        let (neurons, dim) = (self.vision.config.mlp_width, self.vision.projection.dims()[1]);
        (
            Position { pass: 1, done: 0, images: Vec::new(), skipped: Vec::new() },
            Accumulators::Means(self.factors.iter().map(|_| MeanAccumulator::new(neurons, dim)).collect()),
        )
    }

    /// Pass 2's empty accumulators, after pass 1's means (centred on them, the riders started
    /// from their sums).
    pub fn pass_two_start(&self, means: &[MeanAccumulator]) -> Result<Vec<TopKAccumulator>> {
        let heads = self.factors.iter().map(LensFactors::later_heads);
        means.iter().zip(heads).map(|(m, heads)| TopKAccumulator::after(m, self.settings.top_k, heads)).collect()
    }

    /// The resumed state (said through the progress), else `start`; `pass_one_total` is the
    /// number of pass 1's inputs.
    fn resume_or(
        &mut self,
        resumed: Option<(Position, Accumulators)>,
        pass_one_total: usize,
        start: (Position, Accumulators),
    ) -> (Position, Accumulators) {
        let Some((position, accumulators)) = resumed else { return start };
        let total = if position.pass == 1 { pass_one_total } else { position.images.len() };
        let (pass, done) = (position.pass, position.done);
        self.progress.note(&format!("resuming from the checkpoint: pass {pass}/2 at image {done}/{total}"));
        (position, accumulators)
    }

    /// One pass over `inputs[position.done..]`, batch by batch, with checkpoints.
    ///
    /// Reference: the image loop of [`compute_second_order_neuron_prs.py`, `main`][prs] (`prs.reinit()`,
    /// `model.encode_image`, `prs.finalize()`, the effects of layer `mlp_layer`), for several layers at once.
    ///
    /// [prs]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_second_order_neuron_prs.py
    async fn pass(
        &mut self,
        inputs: &[String],
        position: &mut Position,
        accumulators: &mut Accumulators,
    ) -> Result<()> {
        let what = if position.pass == 1 { "pass 1/2 (means)" } else { "pass 2/2 (top-k)" };
        let layers: Vec<usize> = self.factors.iter().map(|f| f.layer).collect();
        let request = CaptureRequest::for_lens(&layers);
        self.progress.start(what, inputs.len(), position.done);
        let start = position.done;
        for chunk in inputs[start..].chunks(self.settings.batch.max(1)) {
            let (ok, pixels, failed) = self.decode_batch(chunk).await;
            if position.pass == 2 && ok.len() != chunk.len() {
                return Err(Error::InvalidInput(
                    "an image changed between the two passes (it no longer decodes)".into(),
                ));
            }
            if !ok.is_empty() {
                let input = self.vision.pixel_tensor(pixels)?;
                let output = self.vision.forward(input, &request)?;
                let keys: Vec<u64> = ok.iter().map(|name| image_key(name)).collect();
                for (i, f) in self.factors.iter().enumerate() {
                    self.add_effects(accumulators, i, f, &output, &keys).await?;
                }
            }
            if position.pass == 1 {
                position.images.extend(ok);
                position.skipped.extend(failed);
            }
            position.done += chunk.len();
            self.processed_this_run += chunk.len();
            self.progress.advance(chunk.len());
            self.after_batch(position, accumulators).await?;
        }
        self.progress.finish();
        Ok(())
    }

    /// Adds a batch's effects of layer `factors.layer` (the `i`-th lens layer) to its
    /// accumulator: pass 1 the effects alone, pass 2 with their per-head scalars and the
    /// images' keys.
    async fn add_effects(
        &self,
        accumulators: &mut Accumulators,
        i: usize,
        factors: &LensFactors,
        output: &VisionOutput,
        image_keys: &[u64],
    ) -> Result<()> {
        match accumulators {
            Accumulators::Means(means) => {
                means[i].add(&read_f32(second_order_effects(self.vision, factors, output)?).await?)
            }
            Accumulators::Tops(tops) => {
                let (effects, heads) = second_order_effects_and_heads(self.vision, factors, output)?;
                let heads = match heads {
                    Some(heads) => read_f32(heads).await?,
                    None => Vec::new(),
                };
                let effects = read_f32(effects).await?;
                tops[i].add_batch(PassTwoBatch { effects: &effects, head_scalars: &heads, image_keys })
            }
        }
    }

    /// Reads, decodes and preprocesses `names`: the names that decode with their pixels, and
    /// the names of those that do not (each also reported through the progress).
    async fn decode_batch(&mut self, names: &[String]) -> (Vec<String>, Vec<f32>, Vec<String>) {
        let size = self.vision.config.image_size as u32;
        let mut decoded = Vec::new();
        let mut pixels = Vec::new();
        let mut skipped = Vec::new();
        for name in names {
            let image = self.source.read(name).await;
            match image.and_then(|bytes| preprocess_image(&bytes, size).map_err(Error::from)) {
                Ok(pre) => {
                    decoded.push(name.clone());
                    pixels.extend(pre.pixels);
                }
                Err(e) => {
                    self.progress.note(&format!("skipping {}: {e}", self.source.locate(name)));
                    skipped.push(name.clone());
                }
            }
        }
        (decoded, pixels, skipped)
    }

    /// The yield point; then a checkpoint when due or stopped; stops when the control (or the
    /// `interrupt_after` hook) says so.
    async fn after_batch(&mut self, position: &Position, accumulators: &Accumulators) -> Result<()> {
        let simulated = |limit: Option<usize>| limit.is_some_and(|n| self.processed_this_run >= n);
        let stop = match self.control.between_batches(self.processed_this_run).await {
            Err(Error::Interrupted(_)) => true,
            Err(other) => return Err(other),
            Ok(()) => simulated(self.settings.interrupt_after),
        };
        if stop || self.checkpoint.due() {
            self.checkpoint.save(position, accumulators, &self.settings.layers).await?;
        }
        if simulated(self.settings.crash_after) {
            self.progress.note(&format!("simulated crash after {} images", self.processed_this_run));
            std::process::abort();
        }
        if stop {
            return Err(Error::Interrupted(format!(
                "progress saved to {} (pass {}/2, {} done); run the same command again to resume",
                self.checkpoint.location(),
                position.pass,
                position.done
            )));
        }
        Ok(())
    }
}

/// An error unless at least `top_k` images decoded.
pub(super) fn check_readable(images: &[String], skipped: usize, top_k: usize) -> Result<()> {
    if images.len() < top_k {
        return Err(Error::InvalidInput(format!(
            "--top-k {top_k} is larger than the number of readable images ({}, {skipped} skipped)",
            images.len()
        )));
    }
    Ok(())
}
