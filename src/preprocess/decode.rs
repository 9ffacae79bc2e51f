//! Decoding PNG, JPEG, WebP and GIF bytes into RGB8 with PIL's colour handling, EXIF
//! orientation, and limits that refuse decompression bombs before their pixels are allocated.

use std::io::Cursor;

use image::error::{ImageError, LimitErrorKind};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use super::{PreprocessError, MAX_DECODED_BYTES, MAX_IMAGE_DIMENSION};

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
