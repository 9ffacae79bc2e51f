//! The two streaming passes over the images (section 2 of the method): pass 1 sums every
//! neuron's second-order effects into its mean (and squared norms, for the histograms' bins),
//! pass 2 keeps each neuron's top k centred effects and counts its centred norms in a histogram.
//! Batch by batch (memory O(batch)), checkpointed, resumable.

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

impl Passes<'_> {
    /// Runs (or resumes) both passes; returns the statistics per layer and the position at the end.
    pub fn run(
        &mut self,
        files: &[PathBuf],
        resumed: Option<(Position, Accumulators)>,
    ) -> Result<(Vec<NeuronStatistics>, Position)> {
        let (neurons, dim) = (self.vision.config.mlp_width, self.vision.projection.dims()[1]);
        let top_k = self.settings.top_k;
        let (mut position, mut accumulators) = match resumed {
            Some((position, accumulators)) => {
                let total = if position.pass == 1 { files.len() } else { position.images.len() };
                let (pass, done) = (position.pass, position.done);
                self.progress.note(&format!("resuming from the checkpoint: pass {pass}/2 at image {done}/{total}"));
                (position, accumulators)
            }
            None => (
                Position { pass: 1, done: 0, images: Vec::new(), skipped: Vec::new() },
                Accumulators::Means(self.factors.iter().map(|_| MeanAccumulator::new(neurons, dim)).collect()),
            ),
        };
        if position.pass == 1 {
            self.pass(files, "pass 1/2 (means)", &mut position, &mut accumulators)?;
            let Accumulators::Means(means) = accumulators else { unreachable!("pass 1 accumulates means") };
            if position.images.len() < top_k {
                return Err(Error::InvalidInput(format!(
                    "--top-k {top_k} is larger than the number of readable images ({}, {} skipped)",
                    position.images.len(),
                    position.skipped.len()
                )));
            }
            accumulators = Accumulators::Tops(
                means
                    .iter()
                    .map(|m| TopKAccumulator::new(m.mean()?, neurons, dim, top_k)?.with_histograms(m.centred_scales()?))
                    .collect::<Result<_>>()?,
            );
            position.pass = 2;
            position.done = 0;
            self.checkpoint.save(&position, &accumulators, &self.settings.layers)?;
        }
        let images = position.images.clone();
        self.pass(&images, "pass 2/2 (top-k)", &mut position, &mut accumulators)?;
        let Accumulators::Tops(tops) = accumulators else { unreachable!("pass 2 keeps the top k") };
        Ok((tops.into_iter().map(TopKAccumulator::finish).collect::<Result<_>>()?, position))
    }

    /// One pass over `inputs[position.done..]`, batch by batch, with checkpoints.
    fn pass(
        &mut self,
        inputs: &[PathBuf],
        what: &str,
        position: &mut Position,
        accumulators: &mut Accumulators,
    ) -> Result<()> {
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
