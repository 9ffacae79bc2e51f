//! CLIP image preprocessing from encoded bytes, matching PIL + torchvision.
//!
//! OpenAI CLIP preprocesses an image with
//!
//! ```text
//! Resize(S, interpolation=BICUBIC)   # shorter side -> S, on a PIL image
//! CenterCrop(S)
//! ToTensor()                         # /255, CHW
//! Normalize(CLIP_MEAN, CLIP_STD)
//! ```
//!
//! This module reproduces that pipeline in plain Rust (no threads, no file
//! system, so it also runs on `wasm32-unknown-unknown`):
//!
//! * [`resize_bicubic`] is a faithful port of Pillow's `libImaging/Resample.c`
//!   (antialiased bicubic with `a = -0.5`, support scaled by the downscale
//!   factor, normalised per-output-pixel coefficients converted to 22-bit fixed
//!   point, horizontal pass first then vertical, 8-bit rounded and clamped
//!   intermediate image), so its output is bit-identical to
//!   `PIL.Image.resize(..., Image.BICUBIC)` on RGB images with Pillow up to
//!   12.x. (Pillow 13 sometimes runs the vertical pass first when the height
//!   shrinks more than the width, python-pillow/Pillow#9549; for those sizes
//!   its output differs from this one by a few 8-bit levels.)
//! * [`CropGeometry`] computes torchvision's output size and crop offsets
//!   (including its truncation and banker's rounding) and maps model-input
//!   coordinates back into the original image.
//! * [`preprocess_rgb`] only resamples the pixels that survive the centre crop;
//!   because every output pixel of Pillow's resampler depends only on its own
//!   coefficients, this is exactly equal to resizing everything and cropping,
//!   but it never allocates the (possibly huge) full resized image.
//!
//! Differences from the Python pipeline, all confined to [`decode_image`]:
//! JPEG decoding uses `zune-jpeg` rather than libjpeg, so decoded JPEG pixels
//! may differ by a few levels; EXIF orientation is applied (PIL's `open` does
//! not); 16-bit samples keep their high byte (what PIL does for 16-bit RGB/RGBA
//! PNGs, whereas PIL clamps 16-bit grayscale to 255).

use std::io::Cursor;

use image::error::{ImageError, LimitErrorKind};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

/// Per-channel (R, G, B) mean used by CLIP's `Normalize`.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];

/// Per-channel (R, G, B) standard deviation used by CLIP's `Normalize`.
// Written exactly as in OpenAI's CLIP source, although f32 rounds them.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Largest accepted image width or height, in pixels, when decoding.
pub const MAX_IMAGE_DIMENSION: u32 = 16_384;

/// Largest accepted decoded-pixel buffer, in bytes (512 MiB), when decoding.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Why an image could not be decoded or preprocessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// There was nothing to decode: no bytes, or an image with no pixels.
    #[error("empty image: {0}")]
    Empty(String),
    /// The bytes are not a PNG, JPEG, WebP or GIF file, or use a feature of
    /// one of those formats that the decoder does not support.
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    /// The bytes look like a supported format but could not be decoded.
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    /// The image is larger than the decoding limits allow (protection
    /// against decompression bombs).
    #[error("image too large: {width} x {height} exceeds the limit of {limit}")]
    TooLarge {
        /// Width the image claims, in pixels (0 if it could not be read).
        width: u32,
        /// Height the image claims, in pixels (0 if it could not be read).
        height: u32,
        /// The limit that was exceeded, in words.
        limit: String,
    },
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes PNG, JPEG, WebP or GIF (first frame) bytes into an RGB8 image.
///
/// The format is guessed from the leading bytes. EXIF orientation is applied
/// when the decoder reports one (JPEG, WebP, PNG `eXIf`). Colour handling
/// follows PIL's `convert("RGB")`: grayscale is replicated to three
/// channels, alpha is dropped (not composited), and 16-bit samples keep their
/// high byte (`v >> 8`; `image`'s own `to_rgb8` would round `v / 257`, which
/// differs by at most one level).
///
/// Images wider or taller than [`MAX_IMAGE_DIMENSION`], or whose decoded
/// pixels need more than [`MAX_DECODED_BYTES`], are rejected with
/// [`PreprocessError::TooLarge`] before their pixels are allocated.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty("no bytes to decode".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(PreprocessError::UnsupportedFormat(
            "unknown format: the bytes are not PNG, JPEG, WebP or GIF".into(),
        ));
    }
    // Dimensions are checked by hand below so that the error can name them.
    reader.limits(allocation_limits());
    let mut decoder = reader.into_decoder().map_err(|e| map_image_error(e, (0, 0)))?;
    let (width, height) = decoder.dimensions();
    check_decoded_size(width, height, decoder.total_bytes())?;
    decoder.set_limits(decode_limits()).map_err(|e| map_image_error(e, (width, height)))?;
    // A malformed EXIF block should not make an otherwise fine image fail.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, (width, height)))?;
    image.apply_orientation(orientation);
    Ok(to_rgb8(image))
}

/// Limits with only the allocation cap (used while reading headers).
fn allocation_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    limits
}

/// The full decoding limits: dimensions and allocation.
fn decode_limits() -> Limits {
    let mut limits = allocation_limits();
    limits.max_image_width = Some(MAX_IMAGE_DIMENSION);
    limits.max_image_height = Some(MAX_IMAGE_DIMENSION);
    limits
}

/// Rejects empty images, oversized dimensions and oversized pixel buffers.
fn check_decoded_size(width: u32, height: u32, total_bytes: u64) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::Empty(format!("{width} x {height} pixels")));
    }
    if width > MAX_IMAGE_DIMENSION || height > MAX_IMAGE_DIMENSION {
        return Err(too_large((width, height), format!("{MAX_IMAGE_DIMENSION} pixels per side")));
    }
    // The RGB8 copy made after decoding is never larger than the decoded
    // buffer plus 3 bytes per pixel; budget for both.
    let rgb_bytes = u64::from(width) * u64::from(height) * 3;
    if total_bytes.saturating_add(rgb_bytes) > MAX_DECODED_BYTES {
        return Err(too_large((width, height), decoded_bytes_limit()));
    }
    Ok(())
}

/// Builds a [`PreprocessError::TooLarge`].
fn too_large((width, height): (u32, u32), limit: String) -> PreprocessError {
    PreprocessError::TooLarge { width, height, limit }
}

/// The allocation limit, in words.
fn decoded_bytes_limit() -> String {
    format!("{} MiB of decoded pixels", MAX_DECODED_BYTES / (1024 * 1024))
}

/// Maps an `image` crate error onto [`PreprocessError`].
fn map_image_error(error: ImageError, dimensions: (u32, u32)) -> PreprocessError {
    match error {
        ImageError::Limits(e) => {
            let limit = match e.kind() {
                LimitErrorKind::DimensionError => {
                    format!("{MAX_IMAGE_DIMENSION} pixels per side")
                }
                _ => decoded_bytes_limit(),
            };
            too_large(dimensions, limit)
        }
        ImageError::Unsupported(e) => PreprocessError::UnsupportedFormat(e.to_string()),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            PreprocessError::Corrupt(format!("unexpected end of data ({e})"))
        }
        other => PreprocessError::Corrupt(other.to_string()),
    }
}

/// Converts any decoded image to RGB8 the way PIL's `convert("RGB")` would.
fn to_rgb8(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => high_bytes(&image),
        other => other.to_rgb8(),
    }
}

/// Converts a 16-bit image to RGB8 by keeping the high byte of each sample.
fn high_bytes(image: &DynamicImage) -> RgbImage {
    let rgb16 = image.to_rgb16();
    let (width, height) = rgb16.dimensions();
    let raw: Vec<u8> = rgb16.into_raw().iter().map(|&v| (v >> 8) as u8).collect();
    RgbImage::from_raw(width, height, raw).expect("buffer size matches dimensions")
}

// ---------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------

/// How an image of `original_width x original_height` is resized (shorter
/// side to `size`, torchvision `Resize`) and centre-cropped to
/// `size x size` (torchvision `CenterCrop`).
///
/// Coordinates are continuous pixel coordinates: pixel `(i, j)` covers
/// `[i, i+1) x [j, j+1)`, so its centre is `(i + 0.5, j + 0.5)`. This is the
/// convention of Pillow's resampler, where resized coordinate `u` samples
/// original coordinate `u * original / resized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropGeometry {
    /// Width of the input image, in pixels.
    pub original_width: u32,
    /// Height of the input image, in pixels.
    pub original_height: u32,
    /// Width after the shorter-side resize.
    pub resized_width: u32,
    /// Height after the shorter-side resize.
    pub resized_height: u32,
    /// Left edge of the crop in the resized image.
    pub left: u32,
    /// Top edge of the crop in the resized image.
    pub top: u32,
    /// Side of the square crop (the model input size).
    pub size: u32,
}

impl CropGeometry {
    /// Computes torchvision's resize-then-centre-crop geometry.
    ///
    /// The shorter side becomes `size`; the longer becomes
    /// `int(size * long / short)` (truncated, as torchvision computes it).
    /// The crop offset along each axis is `round((resized - size) / 2)` with
    /// Python's round-half-to-even. An empty image gives a 0 x 0 resize.
    pub fn for_image(width: u32, height: u32, size: u32) -> Self {
        let (resized_width, resized_height) = resized_dimensions(width, height, size);
        CropGeometry {
            original_width: width,
            original_height: height,
            resized_width,
            resized_height,
            left: crop_offset(resized_width, size).max(0) as u32,
            top: crop_offset(resized_height, size).max(0) as u32,
            size,
        }
    }

    /// Horizontal and vertical factors from resized to original pixels.
    fn scale(&self) -> (f64, f64) {
        let ratio = |orig: u32, resized: u32| {
            if resized == 0 {
                0.0
            } else {
                f64::from(orig) / f64::from(resized)
            }
        };
        (ratio(self.original_width, self.resized_width), ratio(self.original_height, self.resized_height))
    }

    /// Maps a point `(x, y)` of the `size x size` model input (continuous
    /// pixel coordinates, `(0, 0)` = top-left corner of the crop) to the
    /// corresponding point of the original image.
    pub fn model_to_original(&self, x: f32, y: f32) -> (f32, f32) {
        let (sx, sy) = self.scale();
        let ox = (f64::from(x) + f64::from(self.left)) * sx;
        let oy = (f64::from(y) + f64::from(self.top)) * sy;
        (ox as f32, oy as f32)
    }

    /// Maps a point of the original image to model-input coordinates; the
    /// inverse of [`CropGeometry::model_to_original`]. Points outside the
    /// crop give coordinates outside `[0, size]`.
    pub fn original_to_model(&self, x: f32, y: f32) -> (f32, f32) {
        let (sx, sy) = self.scale();
        let inv = |v: f32, s: f64, offset: u32| {
            if s == 0.0 {
                0.0
            } else {
                f64::from(v) / s - f64::from(offset)
            }
        };
        (inv(x, sx, self.left) as f32, inv(y, sy, self.top) as f32)
    }

    /// The crop as `(left, top, width, height)` in original-image pixels.
    pub fn crop_box_in_original(&self) -> (f32, f32, f32, f32) {
        let (sx, sy) = self.scale();
        let size = f64::from(self.size);
        ((f64::from(self.left) * sx) as f32, (f64::from(self.top) * sy) as f32, (size * sx) as f32, (size * sy) as f32)
    }
}

/// A decoded ground-truth mask at the model's input, `[size, size]` row-major.
///
/// The mask goes through exactly the image's geometry: shorter side to `size` with the same
/// (Pillow-exact) antialiased bicubic resampler, then the same torchvision centre crop, so that
/// mask pixel `(x, y)` covers the same part of the scene as input pixel `(x, y)`. A pixel is
/// foreground when its brightest channel, resampled, is at least 128 (`> 0.5` of full scale);
/// masks whose values are only 0 and 1 are read as labels (1 = foreground) first. (The
/// reference resizes masks to `size x size` with nearest neighbour, ignoring the aspect ratio,
/// while its images are resized and centre-cropped, so its masks and heatmaps are misaligned on
/// non-square images.)
pub fn preprocess_mask_image(mask: &RgbImage, size: u32) -> Vec<bool> {
    let (width, height) = mask.dimensions();
    let labels = mask.pixels().all(|p| p.0.iter().all(|&c| c <= 1));
    let binary = RgbImage::from_fn(width, height, |x, y| {
        let level = mask.get_pixel(x, y).0.into_iter().max().unwrap_or(0);
        let on = if labels { level == 1 } else { level >= 128 };
        image::Rgb(if on { [255; 3] } else { [0; 3] })
    });
    let geometry = CropGeometry::for_image(width, height, size);
    let resized = resize_bicubic(&binary, geometry.resized_width, geometry.resized_height);
    center_crop(&resized, size).pixels().map(|p| p.0[0] >= 128).collect()
}

/// Decodes a ground-truth mask (PNG, JPEG, WebP, GIF; any non-black pixel of a 0/1 mask, or
/// any pixel at least half-bright, is foreground) and brings it to the model's input like its
/// image ([`preprocess_mask_image`]). The mask must have the image's size
/// (`image_width x image_height`, after EXIF orientation).
pub fn preprocess_mask(bytes: &[u8], image_width: u32, image_height: u32, size: u32) -> crate::Result<Vec<bool>> {
    let mask =
        decode_image(bytes).map_err(|e| crate::Error::InvalidInput(format!("the mask cannot be decoded: {e}")))?;
    if mask.dimensions() != (image_width, image_height) {
        return Err(crate::Error::InvalidInput(format!(
            "the mask is {} x {}, its image {image_width} x {image_height}",
            mask.width(),
            mask.height()
        )));
    }
    Ok(preprocess_mask_image(&mask, size))
}

/// torchvision's `Resize(size)` output for a `width x height` image.
fn resized_dimensions(width: u32, height: u32, size: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    let long_side = |short: u32, long: u32| {
        // Python: int(size * long / short); the product is exact in f64 and
        // the division is correctly rounded in both languages.
        (f64::from(size) * f64::from(long) / f64::from(short)) as u32
    };
    if width <= height {
        (size, long_side(width, height))
    } else {
        (long_side(height, width), size)
    }
}

/// torchvision's `CenterCrop` offset along one axis: the crop start in the
/// input, or minus the zero padding placed before the input when it is
/// shorter than `size` (`(size - len) // 2`).
fn crop_offset(len: u32, size: u32) -> i64 {
    if len < size {
        -i64::from((size - len) / 2)
    } else {
        // int(round((len - size) / 2.0)) with round-half-to-even.
        let diff = i64::from(len - size);
        let half = diff / 2;
        if diff % 2 == 1 && half % 2 == 1 {
            half + 1
        } else {
            half
        }
    }
}

// ---------------------------------------------------------------------------
// Pillow's bicubic resampler
// ---------------------------------------------------------------------------

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
fn resize_window(image: &RgbImage, out: (u32, u32), window: (u32, u32, u32, u32)) -> RgbImage {
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

// ---------------------------------------------------------------------------
// Crop, normalise, pipeline
// ---------------------------------------------------------------------------

/// torchvision `CenterCrop(size)`: the central `size x size` window, with
/// offsets `round((len - size) / 2)` (round-half-to-even). Along an axis
/// shorter than `size` the image is zero-padded first, `(size - len) // 2`
/// before it and the rest after, as torchvision does.
pub fn center_crop(image: &RgbImage, size: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let dx = crop_offset(width, size);
    let dy = crop_offset(height, size);
    let mut out = RgbImage::new(size, size);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let sx = i64::from(x) + dx;
        let sy = i64::from(y) + dy;
        if (0..i64::from(width)).contains(&sx) && (0..i64::from(height)).contains(&sy) {
            *px = *image.get_pixel(sx as u32, sy as u32);
        }
    }
    out
}

/// `ToTensor` + `Normalize(CLIP_MEAN, CLIP_STD)`: CHW `f32`, each value
/// `(v / 255 - mean[c]) / std[c]`, computed in `f32` like torchvision.
pub fn normalize(image: &RgbImage) -> Vec<f32> {
    let raw = image.as_raw();
    let pixels = raw.len() / 3;
    let mut out = Vec::with_capacity(raw.len());
    for c in 0..3 {
        out.extend((0..pixels).map(|i| (f32::from(raw[i * 3 + c]) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c]));
    }
    out
}

/// A preprocessed image ready for CLIP's vision encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// Normalised pixels, CHW `[3, size, size]`.
    pub pixels: Vec<f32>,
    /// Side of the square model input.
    pub size: u32,
    /// How the original image maps onto the model input.
    pub geometry: CropGeometry,
}

/// Decodes `bytes` ([`decode_image`]) and preprocesses the result
/// ([`preprocess_rgb`]) to a `size x size` model input.
pub fn preprocess_image(bytes: &[u8], size: u32) -> Result<Preprocessed, PreprocessError> {
    let image = decode_image(bytes)?;
    Ok(preprocess_rgb(&image, size))
}

/// CLIP preprocessing of an already decoded image: shorter side to `size`
/// (Pillow bicubic), torchvision centre crop to `size x size`, normalise.
///
/// Only the cropped pixels are resampled, so very elongated images cost no
/// more than the crop. An image with no pixels gives the normalised value of
/// black everywhere (torchvision's zero padding).
pub fn preprocess_rgb(image: &RgbImage, size: u32) -> Preprocessed {
    let (width, height) = image.dimensions();
    let geometry = CropGeometry::for_image(width, height, size);
    let crop = if width == 0 || height == 0 {
        RgbImage::new(size, size)
    } else {
        resize_window(
            image,
            (geometry.resized_width, geometry.resized_height),
            (geometry.left, geometry.top, size, size),
        )
    };
    Preprocessed { pixels: normalize(&crop), size, geometry }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(image: &image::RgbImage) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    /// An 8 x 4 mask whose left half is foreground goes through the image's geometry (identity
    /// resize, crop of columns 2..6): model columns 0, 1 (original 2, 3) are foreground, 2, 3 are
    /// not. The same mask as 0/1 labels gives the same; a mask of another size or bytes that are
    /// no image are errors.
    #[test]
    fn masks_are_preprocessed_like_their_images() {
        let left_half =
            |on: u8| image::RgbImage::from_fn(8, 4, |x, _| image::Rgb(if x < 4 { [on; 3] } else { [0; 3] }));
        let expected: Vec<bool> = (0..16).map(|i| i % 4 < 2).collect();
        assert_eq!(preprocess_mask(&png(&left_half(255)), 8, 4, 4).unwrap(), expected);
        assert_eq!(preprocess_mask(&png(&left_half(1)), 8, 4, 4).unwrap(), expected);
        let mismatch = preprocess_mask(&png(&left_half(255)), 9, 4, 4).unwrap_err().to_string();
        assert!(mismatch.contains("the mask is 8 x 4, its image 9 x 4"), "{mismatch}");
        let garbage = preprocess_mask(b"not a png", 8, 4, 4).unwrap_err().to_string();
        assert!(garbage.contains("the mask cannot be decoded"), "{garbage}");
    }
}
