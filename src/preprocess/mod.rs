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

mod decode;
mod geometry;
mod resize;

pub use decode::decode_image;
pub use geometry::{preprocess_mask, preprocess_mask_image, CropGeometry};
pub use resize::resize_bicubic;

use geometry::crop_offset;
use image::RgbImage;
use resize::resize_window;

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
