//! Tests of `clip_lens::preprocess`: PIL parity on the tiny-a fixtures,
//! torchvision geometry, error handling and the supported formats.

use crate::common::{fixture_path, with_exif_orientation};
use clip_lens::preprocess::*;
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Luma, Rgb, RgbImage, Rgba};

const FIXTURE_SIZE: u32 = 64;
const FIXTURE_COUNT: usize = 48;

fn fixture_png(index: usize) -> Vec<u8> {
    let path = fixture_path(&format!("images/img{index:03}.png"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The reference PIL/torchvision preprocessing, `[48, 3, 64, 64]` f32.
fn reference_pixels() -> Vec<f32> {
    let bytes = std::fs::read(fixture_path("pixels.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor("pixels").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    let size = FIXTURE_SIZE as usize;
    assert_eq!(view.shape(), &[FIXTURE_COUNT, 3, size, size]);
    view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

// ---------------------------------------------------------------------------
// 1. golden
// ---------------------------------------------------------------------------

#[test]
fn golden_matches_pil_reference() {
    let reference = reference_pixels();
    let per_image = 3 * (FIXTURE_SIZE * FIXTURE_SIZE) as usize;
    let (mut worst_mean, mut worst_max, mut total_abs) = (0f32, 0f32, 0f64);
    let mut differing = 0usize;
    for i in 0..FIXTURE_COUNT {
        let out = preprocess_image(&fixture_png(i), FIXTURE_SIZE).unwrap();
        assert_eq!(out.size, FIXTURE_SIZE);
        assert_eq!(out.pixels.len(), per_image);
        let expected = &reference[i * per_image..(i + 1) * per_image];
        let diffs: Vec<f32> = out.pixels.iter().zip(expected).map(|(a, b)| (a - b).abs()).collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let max = diffs.iter().cloned().fold(0f32, f32::max);
        differing += diffs.iter().filter(|&&d| d > 1e-5).count();
        total_abs += diffs.iter().map(|&d| f64::from(d)).sum::<f64>();
        let g = out.geometry;
        println!(
            "img{i:03}: {}x{} -> {}x{} crop@({},{}) mean {mean:.2e} max {max:.2e}",
            g.original_width, g.original_height, g.resized_width, g.resized_height, g.left, g.top
        );
        assert!(mean < 0.02, "img{i:03}: mean abs diff {mean}");
        assert!(max < 0.25, "img{i:03}: max abs diff {max}");
        worst_mean = worst_mean.max(mean);
        worst_max = worst_max.max(max);
    }
    let overall = total_abs / (per_image * FIXTURE_COUNT) as f64;
    println!(
        "golden: overall mean {overall:.3e}, worst per-image mean {worst_mean:.3e}, \
         worst max {worst_max:.3e}, values differing by >1e-5: {differing} of {}",
        per_image * FIXTURE_COUNT
    );
}

// ---------------------------------------------------------------------------
// 2. geometry
// ---------------------------------------------------------------------------

fn geometry(w: u32, h: u32, s: u32, resized: (u32, u32), left: u32, top: u32) {
    let g = CropGeometry::for_image(w, h, s);
    let expected = CropGeometry {
        original_width: w,
        original_height: h,
        resized_width: resized.0,
        resized_height: resized.1,
        left,
        top,
        size: s,
    };
    assert_eq!(g, expected, "{w}x{h} at {s}");
}

#[test]
fn geometry_matches_torchvision() {
    // Portrait 480x640, S=224: short side w -> 224; h = int(224*640/480)
    // = int(298.67) = 298; top = round((298-224)/2) = round(37.0) = 37.
    geometry(480, 640, 224, (224, 298), 0, 37);
    // Landscape 640x480: the same, transposed.
    geometry(640, 480, 224, (298, 224), 37, 0);
    // Square 500x500 -> 224x224, no offset.
    geometry(500, 500, 224, (224, 224), 0, 0);
    // Odd 333x500: h = int(224*500/333) = int(112000/333 = 336.34) = 336;
    // top = round(112/2) = 56.
    geometry(333, 500, 224, (224, 336), 0, 56);
    // Odd 1000x333: w = int(224000/333 = 672.67) = 672; left = 448/2 = 224.
    geometry(1000, 333, 224, (672, 224), 224, 0);
    // Truncation + banker's rounding: 3x7 at 64: h = int(448/3 = 149.33)
    // = 149; top = round(85/2 = 42.5) = 42 (half to even).
    geometry(3, 7, 64, (64, 149), 0, 42);
    // Banker's rounding: 65x64 -> left = round(0.5) = 0; 67x64 -> round(1.5)
    // = 2; 69x64 -> round(2.5) = 2; 71x64 -> round(3.5) = 4.
    geometry(65, 64, 64, (65, 64), 0, 0);
    geometry(67, 64, 64, (67, 64), 2, 0);
    geometry(69, 64, 64, (69, 64), 2, 0);
    geometry(71, 64, 64, (71, 64), 4, 0);
    // Upscaling a small image: 10x20 at 64 -> h = int(64*20/10) = 128;
    // top = round(64/2) = 32.
    geometry(10, 20, 64, (64, 128), 0, 32);
    // Exact division: 100x150 at 64 -> h = int(9600/100) = 96; top = 16.
    geometry(100, 150, 64, (64, 96), 0, 16);
}

fn close(a: (f32, f32), b: (f32, f32)) -> bool {
    (a.0 - b.0).abs() < 1e-3 && (a.1 - b.1).abs() < 1e-3
}

#[test]
fn geometry_maps_crop_corners() {
    for &(w, h) in &[(480, 640), (640, 480), (500, 500), (333, 500), (1000, 333), (3, 7)] {
        let s = 224;
        let g = CropGeometry::for_image(w, h, s);
        let (bl, bt, bw, bh) = g.crop_box_in_original();
        let sf = s as f32;
        let corners = [(0.0, 0.0), (sf, 0.0), (0.0, sf), (sf, sf)];
        for &(mx, my) in &corners {
            let o = g.model_to_original(mx, my);
            let want = (bl + bw * mx / sf, bt + bh * my / sf);
            assert!(close(o, want), "{w}x{h}: {o:?} != {want:?}");
            let back = g.original_to_model(o.0, o.1);
            assert!(close(back, (mx, my)), "{w}x{h}: round trip {back:?}");
            assert!(o.0 >= -1e-3 && o.0 <= w as f32 + 1e-3);
            assert!(o.1 >= -1e-3 && o.1 <= h as f32 + 1e-3);
        }
    }
    // 480x640: scale 640/298 vertically; top 37 -> 37*640/298 = 79.46;
    // height 224*640/298 = 481.07; horizontally the whole width.
    let (l, t, w, h) = CropGeometry::for_image(480, 640, 224).crop_box_in_original();
    assert!(close((l, t), (0.0, 79.463)), "{l} {t}");
    assert!(close((w, h), (480.0, 481.074)), "{w} {h}");
}

// ---------------------------------------------------------------------------
// resampling / crop / normalise building blocks
// ---------------------------------------------------------------------------

#[test]
fn resize_same_size_is_identity_and_crop_pads() {
    let img = RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8 * 40, y as u8 * 80, 7]));
    assert_eq!(resize_bicubic(&img, 5, 3), img);
    // Constant images stay constant under the normalised bicubic filter.
    let flat = RgbImage::from_pixel(37, 23, Rgb([10, 128, 250]));
    let down = resize_bicubic(&flat, 11, 17);
    assert!(down.pixels().all(|p| *p == Rgb([10, 128, 250])));
    // 5x3 cropped to 4: columns round(0.5) = 0..4; rows padded 0 above, 1 below.
    let c = center_crop(&img, 4);
    assert_eq!(c.dimensions(), (4, 4));
    assert_eq!(*c.get_pixel(3, 2), *img.get_pixel(3, 2));
    assert_eq!(*c.get_pixel(0, 3), Rgb([0, 0, 0]));
    // Crop of a full resize equals the windowed pipeline.
    let src = RgbImage::from_fn(50, 31, |x, y| Rgb([(x * 5) as u8, (y * 8) as u8, ((x * y) % 256) as u8]));
    let g = CropGeometry::for_image(50, 31, 16);
    let full = resize_bicubic(&src, g.resized_width, g.resized_height);
    let cropped = center_crop(&full, 16);
    assert_eq!(preprocess_rgb(&src, 16).pixels, normalize(&cropped));
}

#[test]
fn normalize_is_chw() {
    let img = RgbImage::from_fn(2, 1, |x, _| if x == 0 { Rgb([255, 0, 0]) } else { Rgb([0, 255, 0]) });
    let v = normalize(&img);
    assert_eq!(v.len(), 6);
    let n = |value: f32, c: usize| (value - CLIP_MEAN[c]) / CLIP_STD[c];
    let want = [n(1.0, 0), n(0.0, 0), n(0.0, 1), n(1.0, 1), n(0.0, 2), n(0.0, 2)];
    for (a, b) in v.iter().zip(want) {
        assert!((a - b).abs() < 1e-6);
    }
}

// ---------------------------------------------------------------------------
// 3. errors
// ---------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A 1x1 PNG from the `image` encoder with its IHDR patched to claim
/// `width x height` (CRC recomputed).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(&[1, 2, 3], 1, 1, ExtendedColorType::Rgb8).unwrap();
    // 8-byte signature, then IHDR: length (4) "IHDR" (4) data (13) CRC (4).
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn truncated_png_is_corrupt() {
    let bytes = fixture_png(0);
    let err = decode_image(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, PreprocessError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("corrupt or truncated"), "{err}");
    assert!(preprocess_image(&bytes[..bytes.len() / 2], 64).is_err());
}

#[test]
fn random_bytes_are_unsupported() {
    let mut state = 0x1234_5678u32;
    let bytes: Vec<u8> = (0..1000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let err = decode_image(&bytes).unwrap_err();
    assert!(matches!(err, PreprocessError::UnsupportedFormat(_)), "{err:?}");
    assert!(err.to_string().contains("unsupported image format"), "{err}");
}

#[test]
fn empty_input_is_empty() {
    let err = decode_image(&[]).unwrap_err();
    assert_eq!(err, PreprocessError::Empty("no bytes to decode".into()));
    assert!(err.to_string().starts_with("empty image"), "{err}");
}

#[test]
fn huge_png_header_is_too_large() {
    let err = decode_image(&png_claiming(100_000, 100_000)).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge { width: 100_000, height: 100_000, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("image too large: 100000 x 100000 exceeds the limit of"), "{msg}");
    // Within the side limit but over the allocation limit.
    let err = decode_image(&png_claiming(16_000, 16_000)).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge { width: 16_000, .. }), "{err:?}");
    println!("{err}");
}

#[test]
fn empty_rgb_image_gives_black() {
    let out = preprocess_rgb(&RgbImage::new(0, 5), 4);
    assert_eq!(out.pixels.len(), 3 * 16);
    assert!((out.pixels[0] - (-CLIP_MEAN[0] / CLIP_STD[0])).abs() < 1e-6);
}

// ---------------------------------------------------------------------------
// 4. formats
// ---------------------------------------------------------------------------

const W: u32 = 32;
const H: u32 = 16;

/// 8x8 blocks of solid colour, distinct per block (JPEG-friendly).
fn block_colour(x: u32, y: u32) -> [u8; 3] {
    let (bx, by) = (x / 8, y / 8);
    [(bx * 60 + 20) as u8, (by * 150 + 40) as u8, (200 - bx * 40) as u8]
}

fn synthetic() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| Rgb(block_colour(x, y)))
}

fn assert_colours(img: &RgbImage, tolerance: i32, what: &str) {
    assert_eq!(img.dimensions(), (W, H), "{what}");
    for by in 0..H / 8 {
        for bx in 0..W / 8 {
            let (x, y) = (bx * 8 + 4, by * 8 + 4);
            let got = img.get_pixel(x, y).0;
            let want = block_colour(x, y);
            for c in 0..3 {
                let d = (i32::from(got[c]) - i32::from(want[c])).abs();
                assert!(d <= tolerance, "{what}: ({x},{y}) {got:?} vs {want:?}");
            }
        }
    }
}

fn encode_png(data: &[u8], colour: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(data, W, H, colour).unwrap();
    out
}

#[test]
fn decodes_png_variants() {
    let rgb = synthetic();
    assert_colours(&decode_image(&encode_png(rgb.as_raw(), ExtendedColorType::Rgb8)).unwrap(), 0, "rgb8");

    // Alpha is dropped, not composited, even where fully transparent.
    let rgba: ImageBuffer<Rgba<u8>, _> = ImageBuffer::from_fn(W, H, |x, y| {
        let [r, g, b] = block_colour(x, y);
        Rgba([r, g, b, ((x * 8) % 256) as u8])
    });
    assert_colours(&decode_image(&encode_png(rgba.as_raw(), ExtendedColorType::Rgba8)).unwrap(), 0, "rgba8");

    let gray: ImageBuffer<Luma<u8>, _> = ImageBuffer::from_fn(W, H, |x, _| Luma([(x * 7) as u8]));
    let decoded = decode_image(&encode_png(gray.as_raw(), ExtendedColorType::L8)).unwrap();
    assert_eq!(decoded.dimensions(), (W, H));
    assert!(decoded.enumerate_pixels().all(|(x, _, p)| p.0 == [(x * 7) as u8; 3]));

    // 16-bit: low byte 0xFF, so keeping the high byte differs from rounding.
    let rgb16: Vec<u8> = rgb.as_raw().iter().flat_map(|&v| (u16::from(v) << 8 | 0xFF).to_ne_bytes()).collect();
    let decoded = decode_image(&encode_png(&rgb16, ExtendedColorType::Rgb16)).unwrap();
    assert_colours(&decoded, 0, "rgb16");
}

#[test]
fn decodes_jpeg_webp_gif() {
    let rgb = synthetic();
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 95).write_image(rgb.as_raw(), W, H, ExtendedColorType::Rgb8).unwrap();
    assert_colours(&decode_image(&jpeg).unwrap(), 12, "jpeg");

    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp).write_image(rgb.as_raw(), W, H, ExtendedColorType::Rgb8).unwrap();
    assert_colours(&decode_image(&webp).unwrap(), 0, "webp");

    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        encoder.encode(rgb.as_raw(), W, H, ExtendedColorType::Rgb8).unwrap();
    }
    assert_colours(&decode_image(&gif).unwrap(), 8, "gif");

    // The full pipeline runs on every format.
    let out = preprocess_image(&webp, 8).unwrap();
    assert_eq!(out.pixels.len(), 3 * 64);
    assert_eq!(out.geometry, CropGeometry::for_image(W, H, 8));
}

#[test]
fn jpeg_exif_orientation_is_applied() {
    // 32x16, top-left 8x8 block red, everything else mid grey.
    let img = RgbImage::from_fn(W, H, |x, y| if x < 8 && y < 8 { Rgb([230, 20, 20]) } else { Rgb([128, 128, 128]) });
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 95).write_image(img.as_raw(), W, H, ExtendedColorType::Rgb8).unwrap();
    let plain = decode_image(&jpeg).unwrap();
    assert_eq!(plain.dimensions(), (W, H));

    let rotated = decode_image(&with_exif_orientation(&jpeg, 6)).unwrap();
    // Orientation 6: rotate 90 degrees clockwise; (x, y) -> (H-1-y, x).
    assert_eq!(rotated.dimensions(), (H, W));
    let red = |p: &Rgb<u8>| p.0[0] > 180 && p.0[1] < 80 && p.0[2] < 80;
    // The red corner block moves from the top-left to the top-right.
    assert!(red(rotated.get_pixel(H - 4, 4)), "{:?}", rotated.get_pixel(H - 4, 4));
    assert!(!red(rotated.get_pixel(4, 4)));
    assert!(!red(rotated.get_pixel(H - 4, W - 4)));
    assert!(!red(rotated.get_pixel(4, W - 4)));
}
