//! Where the model's square input lies in the original image (torchvision's `Resize` and
//! `CenterCrop` arithmetic), and ground-truth masks brought to the model's input like their
//! images.

use image::RgbImage;

use super::{center_crop, decode_image, resize_bicubic};

/// How an image of `original_width x original_height` is resized (shorter
/// side to `size`, torchvision `Resize`) and centre-cropped to
/// `size x size` (torchvision `CenterCrop`).
///
/// Coordinates are continuous pixel coordinates: pixel `(i, j)` covers
/// `[i, i+1) x [j, j+1)`, so its centre is `(i + 0.5, j + 0.5)`. This is the
/// convention of Pillow's resampler, where resized coordinate `u` samples
/// original coordinate `u * original / resized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
pub(super) fn crop_offset(len: u32, size: u32) -> i64 {
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
