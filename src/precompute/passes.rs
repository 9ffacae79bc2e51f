//! The two streaming passes over the images (section 2 of the method): pass 1 sums every
//! neuron's second-order effects into its mean (and squared norms, for the histograms' bins),
//! pass 2 keeps each neuron's top k centred effects and gathers the riders (the histograms).
//! Batch by batch (memory O(batch)), checkpointed, resumable.
//!
//! Reference: [`compute_second_order_neuron_prs.py`, `main`][prs] (every image's effects, saved as
//! `*_merged.npy`) followed by [`compute_pcas.py`, `main`][pcas] (means, top k, directions). Differs: the effects
//! are reduced batch by batch instead of stored (`[images, N, D]`), at the cost of a second forward per image.
//!
//! [prs]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_second_order_neuron_prs.py
//! [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::checkpoint::{Accumulators, Checkpoint, Position};
use super::{decode_batch, Progress, Settings};
use crate::device::read_f32_blocking;
use crate::lens::{second_order_effects, LensFactors, MeanAccumulator, NeuronStatistics, TopKAccumulator};
use crate::model::{CaptureRequest, VisionTransformer};
use crate::{Error, Result};

/// The streaming passes of one run.
pub(super) struct Passes<'a> {
    pub vision: &'a VisionTransformer,
    pub factors: Vec<LensFactors>,
    pub settings: &'a Settings,
    pub checkpoint: Checkpoint,
    pub progress: &'a mut dyn Progress,
    pub processed_this_run: usize,
}

impl<'a> Passes<'a> {
    /// The passes of `settings`' lens layers of `vision`, checkpointed into `checkpoint`.
    pub fn new(
        vision: &'a VisionTransformer,
        settings: &'a Settings,
        checkpoint: Checkpoint,
        progress: &'a mut dyn Progress,
    ) -> Result<Self> {
        let factors = settings.layers.iter().map(|&l| LensFactors::new(vision, l)).collect::<Result<Vec<_>>>()?;
        Ok(Self { vision, factors, settings, checkpoint, progress, processed_this_run: 0 })
    }

    /// Runs (or resumes) both passes; returns the statistics per layer and the position at the end.
    ///
    /// Reference: `compute_second_order_neuron_prs.py` then [`compute_pcas.py`, `main`][pcas]; pass 1 is its
    /// `neurons.mean(axis=0)`, pass 2 its per-neuron loop.
    ///
    /// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
    pub fn run(
        &mut self,
        files: &[PathBuf],
        resumed: Option<(Position, Accumulators)>,
    ) -> Result<(Vec<NeuronStatistics>, Position)> {
        let start = self.pass_one_start();
        let (mut position, mut accumulators) = self.resume_or(resumed, files.len(), start);
        if position.pass == 1 {
            self.pass(files, &mut position, &mut accumulators)?;
            let means = accumulators.into_means();
            check_readable(&position.images, position.skipped.len(), self.settings.top_k)?;
            accumulators = Accumulators::Tops(self.pass_two_start(&means)?);
            position.pass = 2;
            position.done = 0;
            self.checkpoint.save(&position, &accumulators, &self.settings.layers)?;
        }
        let images = position.images.clone();
        self.pass(&images, &mut position, &mut accumulators)?;
        let tops = accumulators.into_tops();
        Ok((tops.into_iter().map(TopKAccumulator::finish).collect::<Result<_>>()?, position))
    }

    /// Runs (or resumes) one pass alone over `inputs` (a shard's), from `start` unless resumed;
    /// returns the position and the accumulators at the end.
    pub fn run_one(
        &mut self,
        inputs: &[PathBuf],
        start: (Position, Accumulators),
        resumed: Option<(Position, Accumulators)>,
    ) -> Result<(Position, Accumulators)> {
        let (mut position, mut accumulators) = self.resume_or(resumed, inputs.len(), start);
        self.pass(inputs, &mut position, &mut accumulators)?;
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
        means.iter().map(|m| TopKAccumulator::after(m, self.settings.top_k)).collect()
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
    fn pass(&mut self, inputs: &[PathBuf], position: &mut Position, accumulators: &mut Accumulators) -> Result<()> {
        let what = if position.pass == 1 { "pass 1/2 (means)" } else { "pass 2/2 (top-k)" };
        let size = self.vision.config.image_size;
        let layers: Vec<usize> = self.factors.iter().map(|f| f.layer).collect();
        let request = CaptureRequest::for_lens(&layers);
        self.progress.start(what, inputs.len(), position.done);
        let start = position.done;
        for chunk in inputs[start..].chunks(self.settings.batch.max(1)) {
            let (ok, pixels, failed) = decode_batch(chunk, size, &mut *self.progress);
            if position.pass == 2 && ok.len() != chunk.len() {
                return Err(Error::InvalidInput(
                    "an image changed between the two passes (it no longer decodes)".into(),
                ));
            }
            if !ok.is_empty() {
                let input = self.vision.pixel_tensor(pixels)?;
                let output = self.vision.forward(input, &request)?;
                for (i, f) in self.factors.iter().enumerate() {
                    accumulators.add(i, &read_f32_blocking(second_order_effects(self.vision, f, &output)?)?)?;
                }
            }
            if position.pass == 1 {
                position.images.extend(ok);
                position.skipped.extend(failed);
            }
            position.done += chunk.len();
            self.processed_this_run += chunk.len();
            self.progress.advance(chunk.len());
            self.after_batch(position, accumulators)?;
        }
        self.progress.finish();
        Ok(())
    }

    /// Checkpoints when due or interrupted; stops on an interruption.
    fn after_batch(&mut self, position: &Position, accumulators: &Accumulators) -> Result<()> {
        let simulated = |limit: Option<usize>| limit.is_some_and(|n| self.processed_this_run >= n);
        if simulated(self.settings.interrupt_after) {
            self.settings.interrupted.store(true, Ordering::SeqCst);
        }
        let interrupted = self.settings.interrupted.load(Ordering::SeqCst);
        if interrupted || self.checkpoint.due() {
            self.checkpoint.save(position, accumulators, &self.settings.layers)?;
        }
        if simulated(self.settings.crash_after) {
            self.progress.note(&format!("simulated crash after {} images", self.processed_this_run));
            std::process::abort();
        }
        if interrupted {
            return Err(Error::Interrupted(format!(
                "progress saved to {} (pass {}/2, {} done); run the same command again to resume",
                self.checkpoint.path.display(),
                position.pass,
                position.done
            )));
        }
        Ok(())
    }
}

/// An error unless at least `top_k` images decoded.
pub(super) fn check_readable(images: &[PathBuf], skipped: usize, top_k: usize) -> Result<()> {
    if images.len() < top_k {
        return Err(Error::InvalidInput(format!(
            "--top-k {top_k} is larger than the number of readable images ({}, {skipped} skipped)",
            images.len()
        )));
    }
    Ok(())
}
