//! The matrix-product probe natively: burn's `matmul` on the CPU (flex, gemm) and the packed
//! linear kernel the forward runs there (`clip_lens::kernels::PackedLinear`, bias included), for
//! the ViT-B/32 forward's shapes at batch 1 and 8 (`clip_lens::matmul_probe::forward_shapes`),
//! on 1, 2, 4 ... threads up to the machine's. Criterion's throughput is in elements, one element a
//! floating-point operation: its `Gelem/s` are GFLOP/s.
//!
//! `cargo bench --bench matmul`; `CLIP_LENS_BENCH_GPU=1` adds the wgpu device (its own threads).

mod common;

use burn::tensor::{Distribution, Tensor};
use clip_lens::device::read_f32_blocking;
use clip_lens::kernels::packs_weights;
use clip_lens::matmul_probe::forward_shapes;
use clip_lens::model::Linear;
use clip_lens::ClipConfig;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// 1, 2, 4 ... up to the cores there are (and that count itself).
fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts: Vec<usize> = std::iter::successors(Some(1), |t| Some(t * 2)).take_while(|&t| t < cores).collect();
    counts.push(cores);
    counts
}

fn matmul_probe(c: &mut Criterion) {
    let config = ClipConfig::vit_b_32().vision;
    let mut group = c.benchmark_group("vit_b_32_matmul");
    group.sample_size(20);
    for (name, device) in common::devices() {
        let threads = if name == "cpu" { thread_counts() } else { vec![0] };
        for batch in [1, 8] {
            for shape in forward_shapes(&config, batch) {
                let lhs = Tensor::<2>::random([shape.m, shape.k], Distribution::Normal(0.0, 1.0), &device);
                let rhs = Tensor::<2>::random([shape.k, shape.n], Distribution::Normal(0.0, 1.0), &device);
                let layer =
                    Linear::new(read_f32_blocking(rhs.clone()).unwrap(), vec![0.0; shape.n], shape.k, shape.n, &device);
                let x = lhs.clone().unsqueeze::<3>();
                group.throughput(Throughput::Elements(shape.flops() as u64));
                let matmul = || lhs.clone().matmul(rhs.clone());
                let packed = || layer.forward(x.clone()).reshape([shape.m, shape.n]);
                let kernels: Vec<(&str, &(dyn Fn() -> Tensor<2> + Sync))> = if packs_weights(&device) {
                    vec![("matmul", &matmul), ("packed", &packed)]
                } else {
                    vec![("matmul", &matmul)]
                };
                for (kernel, product) in kernels {
                    for &t in &threads {
                        let label = format!("{}/{}x{}x{}", shape.name, shape.m, shape.k, shape.n);
                        let parameter =
                            if t == 0 { format!("{name}-{kernel}") } else { format!("{name}-{kernel}-{t}-threads") };
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build().unwrap();
                        group.bench_function(BenchmarkId::new(label, parameter), |b| {
                            let run = || read_f32_blocking(product().narrow(0, 0, 1).narrow(1, 0, 1)).unwrap();
                            if t == 0 {
                                b.iter(run)
                            } else {
                                pool.install(|| b.iter(run))
                            }
                        });
                    }
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, matmul_probe);
criterion_main!(benches);
