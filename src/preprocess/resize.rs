//! Pillow's antialiased bicubic resampler (`libImaging/Resample.c`), bit for bit on RGB8.

use image::RgbImage;

/// Fixed-point precision of Pillow's 8-bit resampler.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Support (radius) of the bicubic kernel at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;

/// Pillow's bicubic kernel with `a = -0.5`.
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point filter taps for a range of output positions along one axis.
struct Coefficients {
    /// For each output position: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// Taps, `ksize` per output position (only the first `count` are used).
    weights: Vec<i32>,
    /// Stride of `weights`.
    ksize: usize,
}

impl Coefficients {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for output
    /// positions `first..first + count` of an `in_size -> out_size` resize.
    fn new(in_size: u32, out_size: u32, first: u32, count: u32) -> Self {
        let scale = f64::from(in_size) / f64::from(out_size);
        let filterscale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filterscale;
        // Pillow multiplies by the reciprocal; dividing can round differently.
        let inv_filterscale = 1.0 / filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(count as usize);
        let mut weights = vec![0i32; ksize * count as usize];
        let mut taps = vec![0f64; ksize];
        for (i, xx) in (first..first + count).enumerate() {
            let center = (f64::from(xx) + 0.5) * scale;
            // C `(int)` truncates toward zero, as does `as i64`.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let n = (xmax - xmin).max(0) as usize;
            let mut total = 0.0;
            for (x, tap) in taps.iter_mut().take(n).enumerate() {
                let w = bicubic_filter((x as f64 + xmin as f64 - center + 0.5) * inv_filterscale);
                *tap = w;
                total += w;
            }
            let out = &mut weights[i * ksize..i * ksize + n];
            for (dst, &tap) in out.iter_mut().zip(&taps) {
                let k = if total != 0.0 { tap / total } else { tap };
                *dst = to_fixed(k);
            }
            bounds.push((xmin as usize, n));
        }
        Coefficients { bounds, weights, ksize }
    }

    /// First input index and taps for the `i`-th computed output position.
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }

    /// Smallest and one-past-largest input index used by any position.
    fn input_span(&self) -> (usize, usize) {
        let lo = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let hi = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        (lo, hi.max(lo))
    }
}

/// Pillow's conversion of a normalised tap to fixed point (round half away
/// from zero, then truncate).
fn to_fixed(k: f64) -> i32 {
    let scaled = k * f64::from(1u32 << PRECISION_BITS);
    if k < 0.0 {
        (scaled - 0.5) as i32
    } else {
        (scaled + 0.5) as i32
    }
}

/// Pillow's `clip8`: fixed-point accumulator to a clamped 8-bit value.
fn clip8(acc: i64) -> u8 {
    if acc >= (1i64 << (PRECISION_BITS + 8)) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// Applies `taps` starting at `samples[start * stride]`, for three channels.
fn convolve(samples: &[u8], start: usize, stride: usize, taps: &[i32]) -> [u8; 3] {
    let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
    for (j, &k) in taps.iter().enumerate() {
        let p = (start + j) * stride;
        for (c, a) in acc.iter_mut().enumerate() {
            *a += i64::from(samples[p + c]) * i64::from(k);
        }
    }
    acc.map(clip8)
}

/// A packed RGB8 buffer being resampled.
struct Plane {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

/// Horizontal pass over input rows `rows` (Pillow's
/// `ImagingResampleHorizontal_8bpc`).
fn horizontal_pass(src: &[u8], src_width: usize, rows: (usize, usize), coeffs: &Coefficients) -> Plane {
    let out_width = coeffs.bounds.len();
    let height = rows.1 - rows.0;
    let mut data = vec![0u8; out_width * height * 3];
    for (oy, y) in (rows.0..rows.1).enumerate() {
        let row = &src[y * src_width * 3..(y + 1) * src_width * 3];
        let out_row = &mut data[oy * out_width * 3..(oy + 1) * out_width * 3];
        for (ox, px) in out_row.chunks_exact_mut(3).enumerate() {
            let (start, taps) = coeffs.taps(ox);
            px.copy_from_slice(&convolve(row, start, 3, taps));
        }
    }
    Plane { width: out_width, height, data }
}

/// Vertical pass (Pillow's `ImagingResampleVertical_8bpc`); `row_offset` is
/// the first input row held by `src`.
fn vertical_pass(src: &Plane, row_offset: usize, coeffs: &Coefficients) -> Plane {
    let out_height = coeffs.bounds.len();
    let stride = src.width * 3;
    let mut data = vec![0u8; src.width * out_height * 3];
    for (oy, out_row) in data.chunks_exact_mut(stride).enumerate() {
        let (start, taps) = coeffs.taps(oy);
        for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
            let column = &src.data[x * 3..];
            px.copy_from_slice(&convolve(column, start - row_offset, stride, taps));
        }
    }
    Plane { width: src.width, height: out_height, data }
}

/// Copies the `width x height` window at `(left, top)` out of the packed
/// RGB8 buffer `src` whose rows are `src_width` pixels long.
fn crop_plane(src: &[u8], src_width: usize, window: (usize, usize, usize, usize)) -> Plane {
    let (left, top, width, height) = window;
    let mut data = Vec::with_capacity(width * height * 3);
    for y in top..top + height {
        let start = (y * src_width + left) * 3;
        data.extend_from_slice(&src[start..start + width * 3]);
    }
    Plane { width, height, data }
}

/// The `(left, top, crop_w, crop_h)` window of the Pillow bicubic resize of
/// `image` to `out_w x out_h`, computing only the pixels inside the window
/// (identical to resizing everything, then cropping). The window must lie
/// inside `out_w x out_h`. An axis whose size does not change is not
/// resampled, as in Pillow.
pub(super) fn resize_window(image: &RgbImage, out: (u32, u32), window: (u32, u32, u32, u32)) -> RgbImage {
    let (left, top, crop_w, crop_h) = window;
    let (in_w, in_h) = image.dimensions();
    if in_w == 0 || in_h == 0 || crop_w == 0 || crop_h == 0 {
        return RgbImage::new(crop_w, crop_h);
    }
    let src = image.as_raw().as_slice();
    let vertical = (out.1 != in_h).then(|| Coefficients::new(in_h, out.1, top, crop_h));
    let rows = match &vertical {
        Some(v) => v.input_span(),
        None => (top as usize, (top + crop_h) as usize),
    };
    let horizontal = if out.0 != in_w {
        horizontal_pass(src, in_w as usize, rows, &Coefficients::new(in_w, out.0, left, crop_w))
    } else {
        let window = (left as usize, rows.0, crop_w as usize, rows.1 - rows.0);
        crop_plane(src, in_w as usize, window)
    };
    let result = match &vertical {
        Some(v) => vertical_pass(&horizontal, rows.0, v),
        None => horizontal,
    };
    debug_assert_eq!((result.width, result.height), (crop_w as usize, crop_h as usize));
    RgbImage::from_raw(crop_w, crop_h, result.data).expect("buffer size matches dimensions")
}

/// Resizes to `width x height` exactly as Pillow's
/// `Image.resize((width, height), Image.BICUBIC)` does for RGB images
/// (antialiased when shrinking). An empty input gives a black image.
pub fn resize_bicubic(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_window(image, (width, height), (0, 0, width, height))
}
