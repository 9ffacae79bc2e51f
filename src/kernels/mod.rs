//! CPU kernels that burn's `flex` backend lacks, run on flex tensors natively and in the
//! browser (the same code: AVX-512 natively, WebAssembly SIMD in the page). Where a device is
//! not flex (wgpu, WebGPU), or the CPU has no vector kernel, the model keeps burn's own ops.

pub mod attention;
pub mod effects;
pub mod head_directions;
pub mod packed_linear;

use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

pub use attention::{attention, AttentionShape};
pub use effects::{head_centred_norms, head_effects, EffectShape, HeadTerms};
pub use head_directions::head_directions;
pub use packed_linear::{Epilogue, PackedLinear};

/// Whether `device` is flex and this CPU has the packed kernels' vector code.
pub fn packs_weights(device: &Device) -> bool {
    *device == Device::flex() && packed_linear::available()
}

/// Whether `x` is an f32 tensor on flex, whose values the kernels can read.
pub fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex() && x.dtype() == DType::F32
}

/// The contiguous flex primitive of `x`, which must be [`on_flex`].
pub fn flex_values<const D: usize>(x: Tensor<D>) -> FlexTensor {
    let flex = match x.try_into_primitive::<Flex>() {
        Ok(tensor) => tensor,
        Err(e) => panic!("flex_values of a tensor that is not on flex: {e:?}"),
    };
    if flex.layout().contiguous_offsets().is_some() {
        flex
    } else {
        flex.to_contiguous()
    }
}

/// Row-major `values` as a flex tensor of `shape`.
pub fn flex_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(values, shape)))
}

/// `f(values, rows)` on the row-major f32 values of `x` `[rows, cols]`, as a flex tensor
/// `[rows, out_cols]`; `x` back when it is not [`on_flex`] (a large `Err`: the tensor itself).
#[allow(clippy::result_large_err)]
pub fn map_rows(
    x: Tensor<2>,
    out_cols: usize,
    f: impl FnOnce(&[f32], usize) -> Vec<f32>,
) -> Result<Tensor<2>, Tensor<2>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let rows = x.dims()[0];
    let flex = flex_values(x);
    Ok(flex_tensor(f(f32s(&flex), rows), [rows, out_cols]))
}

/// The values of a contiguous f32 flex tensor (from [`flex_values`]).
pub fn f32s(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// [`attention`] of `q` `[B, Q, W]` over `k`, `v` `[B, T, W]` in `heads` heads (the first `Q`
/// rows of `mask` `[T, T]` added to the scores): the mixed values `[B, Q, W]` and the
/// probabilities `[B, H, Q, T]`; `None` unless every input is [`on_flex`].
pub fn flex_attention(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    mask: Option<&Tensor<2>>,
    heads: usize,
) -> Option<(Tensor<3>, Tensor<4>)> {
    if !(on_flex(q) && on_flex(k) && on_flex(v) && mask.is_none_or(on_flex)) {
        return None;
    }
    let [batch, queries, width] = q.dims();
    let tokens = k.dims()[1];
    let shape = AttentionShape { batch, queries, tokens, heads, head_dim: width / heads };
    let (q, k, v) = (flex_values(q.clone()), flex_values(k.clone()), flex_values(v.clone()));
    let mask = mask.map(|m| flex_values(m.clone()));
    let (mixed, probs) = attention(f32s(&q), f32s(&k), f32s(&v), mask.as_ref().map(f32s), shape);
    Some((flex_tensor(mixed, [batch, queries, width]), flex_tensor(probs, [batch, heads, queries, tokens])))
}

/// [`head_directions`] of the later layers' `G_l` `[N, width]` and `M_l` `[width, D]` as
/// tensors: `[layers x heads, N, D]`, or `None` unless every input is [`on_flex`] and this CPU
/// has the packed kernel.
pub fn flex_head_directions(layers: &[(&Tensor<2>, &Tensor<2>)], heads: usize) -> Option<Tensor<3>> {
    if !(packed_linear::available() && layers.iter().all(|(g, m)| on_flex(g) && on_flex(m))) {
        return None;
    }
    let [neurons, width] = layers.first()?.0.dims();
    let dim = layers[0].1.dims()[1];
    let values: Vec<(FlexTensor, FlexTensor)> =
        layers.iter().map(|(g, m)| (flex_values((*g).clone()), flex_values((*m).clone()))).collect();
    let slices: Vec<(&[f32], &[f32])> = values.iter().map(|(g, m)| (f32s(g), f32s(m))).collect();
    Some(flex_tensor(head_directions(&slices, neurons, width, dim, heads), [layers.len() * heads, neurons, dim]))
}

/// [`head_effects`] of the lens's per-head terms as tensors: `scalars` `[B, K, N]`,
/// `directions` `[K, N, D]`, `kappa` `[B, D]`, `scale` `[B, 1]`; the effects `[B, N, D]`, or
/// `None` unless every input is [`on_flex`].
pub fn flex_head_effects(
    scalars: &Tensor<3>,
    directions: &Tensor<3>,
    kappa: &Tensor<2>,
    scale: &Tensor<2>,
) -> Option<Tensor<3>> {
    with_head_terms(scalars, directions, kappa, scale, |terms| {
        let EffectShape { batch, neurons, dim, .. } = terms.shape;
        flex_tensor(head_effects(terms), [batch, neurons, dim])
    })
}

/// [`head_centred_norms`] of the same terms as [`flex_head_effects`] with `mean` `[N, D]`: the
/// norms `[B, N]`, or `None` unless every input is [`on_flex`].
pub fn flex_head_centred_norms(
    scalars: &Tensor<3>,
    directions: &Tensor<3>,
    kappa: &Tensor<2>,
    scale: &Tensor<2>,
    mean: &Tensor<2>,
) -> Option<Tensor<2>> {
    if !on_flex(mean) {
        return None;
    }
    let mean = flex_values(mean.clone());
    with_head_terms(scalars, directions, kappa, scale, |terms| {
        flex_tensor(head_centred_norms(terms, f32s(&mean)), [terms.shape.batch, terms.shape.neurons])
    })
}

/// `f` of the per-head terms read from flex tensors, or `None` unless all are [`on_flex`].
fn with_head_terms<T>(
    scalars: &Tensor<3>,
    directions: &Tensor<3>,
    kappa: &Tensor<2>,
    scale: &Tensor<2>,
    f: impl FnOnce(&HeadTerms) -> T,
) -> Option<T> {
    if !(on_flex(scalars) && on_flex(directions) && on_flex(kappa) && on_flex(scale)) {
        return None;
    }
    let [batch, heads, neurons] = scalars.dims();
    let dim = directions.dims()[2];
    let (s, u, kappa, c) = (
        flex_values(scalars.clone()),
        flex_values(directions.clone()),
        flex_values(kappa.clone()),
        flex_values(scale.clone()),
    );
    let terms = HeadTerms {
        scalars: f32s(&s),
        directions: f32s(&u),
        kappa: f32s(&kappa),
        scale: f32s(&c),
        shape: EffectShape { batch, neurons, heads, dim },
    };
    Some(f(&terms))
}

/// Copies `values` to `out`. In wasm as scalar stores, not `memory.copy`: engines run that
/// instruction outside the compiled code, and on the threaded module's shared memory such calls
/// from two threads at once halved the packed product's speed in Chromium
/// (`bench.html?probe=1&threads=2`; figures in `docs/performance.md`). Volatile stores keep
/// LLVM from turning the loop back into a `memory.copy`.
///
/// # Safety
/// `out` is valid for `values.len()` writes that no other thread makes.
#[inline]
unsafe fn store(values: &[f32], out: *mut f32) {
    #[cfg(target_arch = "wasm32")]
    for (i, value) in values.iter().enumerate() {
        // SAFETY: i < values.len(), which the caller vouches for.
        unsafe { out.add(i).write_volatile(*value) };
    }
    #[cfg(not(target_arch = "wasm32"))]
    // SAFETY: as the caller vouches.
    unsafe {
        std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len())
    };
}

/// Runs `task(0..count)`: on rayon's threads (natively, and in the threaded wasm module) when
/// there is enough work (`work` multiply-adds in all), else in order.
pub(super) fn run_tasks(count: usize, work: usize, task: impl Fn(usize) + Sync + Send) {
    if count > 1 && work >= 1 << 16 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        (0..count).into_par_iter().for_each(task);
        return;
    }
    (0..count).for_each(task);
}

/// An output buffer shared by threads that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

impl SharedOut {
    /// The element `offset` of the buffer.
    ///
    /// # Safety
    /// `offset` is inside the buffer, and no other thread writes what the caller writes there.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }
}
// SAFETY: every user writes disjoint elements from each thread (see the kernels).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `len` deterministic values in [-1, 1) for the kernels' tests (a multiplicative hash of the
/// index and `seed`).
#[cfg(test)]
pub(crate) fn test_values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8) as f32
                / (1u32 << 24) as f32
                * 2.0
                - 1.0
        })
        .collect()
}
