//! The packed product against its definition, tile by tile and end to end.

use super::tiles::{portable_tile, TileInput};
use super::*;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The product by the definition, in f64, with the sum of the terms' magnitudes (which
/// bounds f32 accumulation's error: (k + 1) 2^-24 times it).
fn reference(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<(f64, f64)> {
    let mut y = vec![(0.0, 0.0); m * n];
    for i in 0..m {
        for j in 0..n {
            let terms = (0..k).map(|t| x[i * k + t] as f64 * w[t * n + j] as f64).chain([b[j] as f64]);
            y[i * n + j] = terms.fold((0.0, 0.0), |(sum, size), t| (sum + t, size + t.abs()));
        }
    }
    y
}

fn check(m: usize, k: usize, n: usize) {
    let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
    let packed = PackedLinear::new(&w, &b, k, n);
    let y = packed.forward(&x, m);
    assert_eq!(y.len(), m * n);
    for (i, (&got, &(want, size))) in y.iter().zip(&reference(&x, &w, &b, m, k, n)).enumerate() {
        let bound = (k + 1) as f64 * f32::EPSILON as f64 / 2.0 * size + 1e-30;
        assert!((got as f64 - want).abs() <= bound, "[{m},{k}]x[{k},{n}] at ({}, {}): {got} vs {want}", i / n, i % n);
    }
}

#[test]
fn products_of_every_tail_match_the_definition() {
    // Rows that are and are not multiples of the tile, columns that end mid-panel, a
    // single row and column, and a forward-sized product split between threads.
    for (m, k, n) in [
        (5, 8, 48),
        (7, 13, 50),
        (1, 1, 1),
        (3, 64, 95),
        (12, 33, 144),
        (50, 768, 96),
        (11, 40, 1),
        (2, 5, 48),
        (4, 17, 97),
        (17, 21, 49),
    ] {
        check(m, k, n);
    }
}

#[test]
fn the_product_without_bias_and_the_product_into_a_slice_match_the_definition() {
    let (m, k, n) = (13, 70, 101);
    let (x, w, b) = (values(m * k, 12), values(k * n, 13), values(n, 14));
    let packed = PackedLinear::new(&w, &b, k, n);
    let zero = vec![0.0f32; n];
    for (&got, &(want, size)) in packed.product(&x, m).iter().zip(&reference(&x, &w, &zero, m, k, n)) {
        assert!(
            (got as f64 - want).abs() <= (k + 1) as f64 * f32::EPSILON as f64 / 2.0 * size + 1e-30,
            "{got} vs {want}"
        );
    }
    let mut into = vec![f32::NAN; m * n];
    packed.forward_into(&x, m, &mut into);
    assert_eq!(into, packed.forward(&x, m));
}

#[test]
fn row_tiles_cover_every_row_in_the_fewest_even_tiles() {
    for m in 1..200 {
        let tiles: Vec<_> = row_tiles(m).collect();
        assert_eq!(tiles.len(), m.div_ceil(ROWS), "{m} rows");
        let mut next = 0;
        for &(row, rows) in &tiles {
            assert_eq!(row, next, "{m} rows: {tiles:?}");
            assert!((1..=ROWS).contains(&rows), "{m} rows: {tiles:?}");
            next += rows;
        }
        assert_eq!(next, m);
        let (small, large) = (tiles.iter().map(|t| t.1).min().unwrap(), tiles.iter().map(|t| t.1).max().unwrap());
        assert!(large - small <= 1, "{m} rows: {tiles:?}");
    }
}

#[test]
fn quick_gelu_is_applied_to_every_value() {
    let (m, k, n) = (7, 19, 53);
    let (x, w, b) = (values(m * k, 9), values(k * n, 10), values(n, 11));
    let packed = PackedLinear::new(&w, &b, k, n);
    let plain = packed.forward(&x, m);
    let activated = packed.forward_with(&x, m, Epilogue::QuickGelu);
    for (&y, &a) in plain.iter().zip(&activated) {
        let expected = y as f64 / (1.0 + (-1.702 * y as f64).exp());
        assert!((a as f64 - expected).abs() <= 1e-6 * (1.0 + expected.abs()), "{a} vs QuickGELU({y}) = {expected}");
    }
}

#[test]
fn exp_is_accurate() {
    let mut worst = 0.0f64;
    for i in -87_000..88_000 {
        let x = i as f32 * 1e-3 + 1.234e-4; // inside the clamp
        let (got, want) = (exp(x) as f64, (x as f64).exp());
        worst = worst.max((got - want).abs() / want);
    }
    assert!(worst < 3e-7, "exp's worst relative error on [-87, 88] is {worst:.2e}");
    assert_eq!(exp(-1000.0), exp(-87.0));
    assert!(exp(1000.0).is_finite());
}

#[test]
fn the_weight_unpacks_exactly() {
    let (w, b) = (values(7 * 101, 4), values(101, 5));
    assert_eq!(PackedLinear::new(&w, &b, 7, 101).weight(), w);
}

#[test]
fn the_vector_tile_matches_the_portable_one() {
    let k = 37;
    let (x, panel, bias) = (values(ROWS * k, 6), values(k * PANEL, 7), values(PANEL, 8));
    for rows in 1..=ROWS {
        let (mut fast, mut plain) = ([[0.0f32; PANEL]; ROWS], [[0.0f32; PANEL]; ROWS]);
        let input = TileInput { x: &x[..rows * k], rows, k, panel: &panel, bias: &bias, prefetch: None };
        tile_product(input, &mut fast);
        portable_tile(input, &mut plain);
        for r in 0..rows {
            for c in 0..PANEL {
                assert!(
                    (fast[r][c] - plain[r][c]).abs() <= 1e-5,
                    "rows {rows}: ({r}, {c}) {} vs {}",
                    fast[r][c],
                    plain[r][c]
                );
            }
        }
    }
}
