//! What the caller of a run plugs in ([`Driver`]): the images, where the files go, progress
//! reports ([`Progress`]) and the yield point between steps where a run can be stopped
//! ([`Control`]).

use std::sync::atomic::{AtomicBool, Ordering};

use super::io::{BundleSink, ImageSource};
use crate::{Error, Result};

/// The caller's side of a run.
pub struct Driver<'a, S, K, C> {
    /// Where the images come from.
    pub source: &'a S,
    /// Where the bundle, the checkpoint and the shard files go.
    pub sink: &'a K,
    /// Progress reports.
    pub progress: &'a mut dyn Progress,
    /// Asked between batches and steps whether to go on.
    pub control: &'a mut C,
}

impl<'a, S: ImageSource, K: BundleSink, C: Control> Driver<'a, S, K, C> {
    /// The driver of `source`, `sink`, `progress` and `control`.
    pub fn new(source: &'a S, sink: &'a K, progress: &'a mut dyn Progress, control: &'a mut C) -> Self {
        Self { source, sink, progress, control }
    }
}

/// Where a long run reports its progress (the CLI: indicatif bars).
pub trait Progress {
    /// A stage of `total` steps begins, `done` of them already done (a resumed pass).
    fn start(&mut self, what: &str, total: usize, done: usize);
    /// `steps` more steps of the stage are done.
    fn advance(&mut self, steps: usize);
    /// `done` steps of the stage are done in all.
    fn reach(&mut self, done: usize);
    /// The stage is over.
    fn finish(&mut self);
    /// A message for the user (a skipped image, a resumed checkpoint).
    fn note(&mut self, message: &str);
}

/// The yield point of a run. Its futures are awaited in the run's own: a browser worker makes
/// them resolve on a later turn of its event loop (a `setTimeout(0)` promise), so that the
/// worker handles its messages (a stop, a pause) while a run goes on; natively they are ready
/// at once.
#[allow(async_fn_in_trait)] // awaited where they are made: no `Send` bound to promise
pub trait Control {
    /// After each batch of the two passes; `processed` images this run so far. An
    /// [`Error::Interrupted`] stops the run after a checkpoint, from which the same run resumes;
    /// another error stops it as it is.
    async fn between_batches(&mut self, processed: usize) -> Result<()>;

    /// Between the steps that follow the passes (text embeddings, OMP chunks, thumbnails). An
    /// error stops the run; a later one resumes from the passes' last checkpoint.
    async fn between_steps(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Never stops a run, never yields.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverStop;

impl Control for NeverStop {
    async fn between_batches(&mut self, _processed: usize) -> Result<()> {
        Ok(())
    }
}

/// Stops a run after the batch during which the flag was set (the CLI's Ctrl-C handler sets
/// it); the steps after the passes run to the end.
#[derive(Debug, Clone, Copy)]
pub struct StopFlag(pub &'static AtomicBool);

impl Control for StopFlag {
    async fn between_batches(&mut self, _processed: usize) -> Result<()> {
        if self.0.load(Ordering::SeqCst) {
            return Err(Error::Interrupted("stop requested".into()));
        }
        Ok(())
    }
}
