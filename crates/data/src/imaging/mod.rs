//! Image decoding for the image tower: decode (PNG, JPEG, WebP), convert to RGB,
//! resize to `S×S`, normalise with a per-channel mean and standard deviation, and
//! write channel-major (`[3, S, S]`) floats. What resize and which statistics is
//! an [`ImageTransform`] (`data.image_transform`), the same in training and serving.
//!
//! Vigil's own transform (the default, for EfficientNet and the scratch CNN) is a
//! direct triangle-filter (bilinear, area-weighted when shrinking) resize to the
//! square, not a resize-and-centre-crop: moderation images (memes, screenshots)
//! often carry their message at the edges, which a crop would cut. A Hugging Face
//! tower (ViT, CLIP, SigLIP) was pretrained on its processor's pixels instead:
//! Pillow's bilinear or bicubic resize ([`pil`], byte-exact), for CLIP of the
//! shorter side followed by a centre crop, and its own mean and std.
//!
//! The resize is our own separable filter fused with the normalisation: it uses
//! the same kernel and sample positions as `image::imageops::resize(Triangle)`
//! (results agree within one grey level) but works on `f32` rows directly and
//! writes the normalised CHW output in its second pass, about three times faster
//! than resizing with the `image` crate and normalising afterwards.

pub mod pil;

use std::path::Path;

use image::{ImageReader, RgbImage};
use vigil_config::{ImageFilter, ImageResize, ImageTransform};

use super::error::{BadRow, BadRowKind};
use pil::{PilFilter, pil_resize};

/// ImageNet channel means (RGB), as torchvision normalises.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Reads only the header: the format is known and the size is non-zero. Used at
/// load time so `on_bad_row: fail` stops before training on a broken file.
pub fn check_header(path: &Path, rel: &str) -> Result<(u32, u32), BadRow> {
    let reader = ImageReader::open(path)
        .map_err(|e| BadRow::new(BadRowKind::ImageNotFound, format!("image '{rel}': {e}")))?
        .with_guessed_format()
        .map_err(|e| corrupt(rel, &e))?;
    if reader.format().is_none() {
        return Err(BadRow::new(
            BadRowKind::CorruptImage,
            format!("image '{rel}' is not a PNG, JPEG or WebP file"),
        ));
    }
    match reader.into_dimensions() {
        Ok((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        Ok(_) => Err(BadRow::new(
            BadRowKind::CorruptImage,
            format!("image '{rel}' is empty (0 pixels)"),
        )),
        Err(e) => Err(corrupt(rel, &e)),
    }
}

/// Decodes the whole image into RGB (the audit uses this to find files whose
/// header is fine but whose body is broken).
pub fn decode_rgb(path: &Path, rel: &str) -> Result<RgbImage, BadRow> {
    let reader = ImageReader::open(path)
        .map_err(|e| BadRow::new(BadRowKind::ImageNotFound, format!("image '{rel}': {e}")))?
        .with_guessed_format()
        .map_err(|e| corrupt(rel, &e))?;
    let img = reader.decode().map_err(|e| corrupt(rel, &e))?;
    Ok(img.into_rgb8())
}

/// The tower's input: a side and how images are brought to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageSpec {
    /// Side of the square input (`data.image_size`).
    pub size: u32,
    /// Resize, filter and statistics (`data.image_transform`).
    pub transform: ImageTransform,
}

impl ImageSpec {
    /// The spec of `data`: its side and transform (Vigil's own when unset).
    pub fn of(data: &vigil_config::DataSection) -> Self {
        Self {
            size: data.image_size,
            transform: data.image_transform.unwrap_or_default(),
        }
    }

    /// Floats per image (`3·size²`).
    pub fn floats(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Decodes the file and writes its `3·size²` floats into `out`.
    pub fn load(&self, path: &Path, rel: &str, out: &mut [f32]) -> Result<(), BadRow> {
        load_transformed(path, rel, self.size, &self.transform, out)
    }

    /// Writes the `3·size²` floats of a decoded image into `out`.
    pub fn apply(&self, rgb: &RgbImage, out: &mut [f32]) {
        transform_chw(rgb, self.size, &self.transform, out);
    }
}

/// Decodes, resizes to `size×size` and writes `3·size·size` ImageNet-normalised
/// floats (CHW) into `out` (Vigil's default transform).
pub fn load_normalised(path: &Path, rel: &str, size: u32, out: &mut [f32]) -> Result<(), BadRow> {
    load_transformed(path, rel, size, &ImageTransform::default(), out)
}

/// Decodes and writes the `3·size·size` floats (CHW) `transform` makes of the image.
pub fn load_transformed(
    path: &Path,
    rel: &str,
    size: u32,
    transform: &ImageTransform,
    out: &mut [f32],
) -> Result<(), BadRow> {
    let rgb = decode_rgb(path, rel)?;
    transform_chw(&rgb, size, transform, out);
    Ok(())
}

/// The size an image is resized to before the crop, as Hugging Face computes it
/// (`get_resize_output_image_size` with `default_to_square=False`): the shorter
/// side becomes `edge`, the longer one `int(edge · long / short)`.
fn shortest_edge_dims(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let (short, long) = (width.min(height), width.max(height));
    let scaled = (f64::from(edge) * f64::from(long) / f64::from(short)) as u32;
    if width <= height {
        (edge, scaled.max(edge))
    } else {
        (scaled.max(edge), edge)
    }
}

/// Brings a decoded image to the tower's `[3, size, size]` input under `transform`.
pub fn transform_chw(rgb: &RgbImage, size: u32, transform: &ImageTransform, out: &mut [f32]) {
    let (rw, rh) = match transform.resize {
        ImageResize::Square => (size, size),
        ImageResize::ShortestEdge => shortest_edge_dims(
            rgb.width(),
            rgb.height(),
            transform.shortest_edge.unwrap_or(size),
        ),
    };
    // The centred crop of the resized image (`center_crop`: offsets floor-halved).
    let crop = ((rw - size.min(rw)) / 2, (rh - size.min(rh)) / 2);
    let stats = Stats::of(transform);
    let pil = match transform.filter {
        ImageFilter::Triangle => None,
        ImageFilter::Bilinear => Some(PilFilter::Bilinear),
        ImageFilter::Bicubic => Some(PilFilter::Bicubic),
    };
    match pil {
        _ if rgb.width() == rw && rgb.height() == rh => {
            normalise_window(rgb, crop, size, &stats, out)
        }
        None => resize_window(rgb, (rw, rh), crop, size, &stats, out),
        Some(filter) => {
            let resized = pil_resize(rgb, rw, rh, filter);
            normalise_window(&resized, crop, size, &stats, out);
        }
    }
}

/// `v · scale − shift` per channel: `(v / 255 − mean) / std`.
struct Stats {
    scale: [f32; 3],
    shift: [f32; 3],
}

impl Stats {
    fn of(t: &ImageTransform) -> Self {
        Self {
            scale: std::array::from_fn(|c| 1.0 / (255.0 * t.std[c])),
            shift: std::array::from_fn(|c| t.mean[c] / t.std[c]),
        }
    }
}

/// Normalises the `size²` window at `crop` of an image already at its final scale.
fn normalise_window(rgb: &RgbImage, crop: (u32, u32), size: u32, stats: &Stats, out: &mut [f32]) {
    let n = size as usize;
    assert_eq!(out.len(), 3 * n * n, "output buffer must be 3*S*S floats");
    let plane = n * n;
    let w = rgb.width() as usize;
    let src = rgb.as_raw();
    for y in 0..n.min(rgb.height() as usize) {
        let row = (y + crop.1 as usize) * w;
        for x in 0..n.min(w) {
            let p = &src[(row + x + crop.0 as usize) * 3..][..3];
            for c in 0..3 {
                out[c * plane + y * n + x] = f32::from(p[c]) * stats.scale[c] - stats.shift[c];
            }
        }
    }
}

/// Triangle-filter taps: for each output coordinate the first input index and
/// its weights (summing to 1), as `image::imageops` computes them.
fn taps(input: u32, output: u32) -> Vec<(usize, Vec<f32>)> {
    let ratio = input as f32 / output as f32;
    let sratio = ratio.max(1.0);
    let support = sratio; // the triangle kernel's support is 1
    (0..output)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, i64::from(input) - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, i64::from(input));
            let centre = centre - 0.5;
            let mut w: Vec<f32> = (left..right)
                .map(|i| (1.0 - ((i as f32 - centre) / sratio).abs()).max(0.0))
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|x| *x /= sum);
            }
            (left as usize, w)
        })
        .collect()
}

/// Resizes `rgb` to `size×size` (triangle filter) and writes ImageNet-normalised
/// CHW floats into `out` (`3·size·size`).
pub fn resize_normalise_chw(rgb: &RgbImage, size: u32, out: &mut [f32]) {
    let stats = Stats::of(&ImageTransform::default());
    resize_window(rgb, (size, size), (0, 0), size, &stats, out);
}

/// Resizes `rgb` to `resized` (triangle filter, in float) and writes the
/// normalised `size²` window at `crop` as CHW floats into `out` (`3·size·size`).
fn resize_window(
    rgb: &RgbImage,
    resized: (u32, u32),
    crop: (u32, u32),
    size: u32,
    stats: &Stats,
    out: &mut [f32],
) {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let n = size as usize;
    assert_eq!(out.len(), 3 * n * n, "output buffer must be 3*S*S floats");
    let xs = taps(rgb.width(), resized.0);
    let ys = taps(rgb.height(), resized.1);
    // Only the columns and rows of the crop are computed.
    let xs = &xs[crop.0 as usize..crop.0 as usize + n];
    let ys = &ys[crop.1 as usize..crop.1 as usize + n];
    let src = rgb.as_raw();
    // Pass 1: every input row resized horizontally, interleaved RGB floats.
    let mut rows = vec![0.0f32; h * n * 3];
    for y in 0..h {
        let line = &src[y * w * 3..(y + 1) * w * 3];
        let dst = &mut rows[y * n * 3..(y + 1) * n * 3];
        for (ox, (left, weights)) in xs.iter().enumerate() {
            let mut acc = [0.0f32; 3];
            for (k, wt) in weights.iter().enumerate() {
                let p = &line[(left + k) * 3..(left + k) * 3 + 3];
                acc[0] += f32::from(p[0]) * wt;
                acc[1] += f32::from(p[1]) * wt;
                acc[2] += f32::from(p[2]) * wt;
            }
            dst[ox * 3..ox * 3 + 3].copy_from_slice(&acc);
        }
    }
    // Pass 2: vertical filter over whole rows (contiguous, vectorisable), then
    // normalise into the three planes.
    let (scale, shift) = (stats.scale, stats.shift);
    let plane = n * n;
    let mut acc = vec![0.0f32; n * 3];
    for (oy, (top, weights)) in ys.iter().enumerate() {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (k, wt) in weights.iter().enumerate() {
            let row = &rows[(top + k) * n * 3..(top + k + 1) * n * 3];
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v * wt;
            }
        }
        for ox in 0..n {
            for c in 0..3 {
                let v = acc[ox * 3 + c].clamp(0.0, 255.0);
                out[c * plane + oy * n + ox] = v * scale[c] - shift[c];
            }
        }
    }
}

/// Writes an RGB image as ImageNet-normalised CHW floats.
pub fn normalise_chw(rgb: &RgbImage, out: &mut [f32]) {
    let plane = (rgb.width() * rgb.height()) as usize;
    assert_eq!(out.len(), 3 * plane, "output buffer must be 3*H*W floats");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let Stats { scale, shift } = Stats::of(&ImageTransform::default());
    for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        r[i] = f32::from(px[0]) * scale[0] - shift[0];
        g[i] = f32::from(px[1]) * scale[1] - shift[1];
        b[i] = f32::from(px[2]) * scale[2] - shift[2];
    }
}

fn corrupt(rel: &str, e: &dyn std::fmt::Display) -> BadRow {
    BadRow::new(
        BadRowKind::CorruptImage,
        format!("image '{rel}' is corrupt: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_channel_major() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        img.put_pixel(1, 0, image::Rgb([0, 255, 0]));
        let mut out = vec![0.0; 6];
        normalise_chw(&img, &mut out);
        let want_r0 = (1.0 - 0.485) / 0.229;
        assert!((out[0] - want_r0).abs() < 1e-5);
        assert!((out[1] - (-0.485 / 0.229)).abs() < 1e-5);
        assert!((out[3] - (1.0 - 0.456) / 0.224).abs() < 1e-5);
    }

    #[test]
    fn fused_resize_matches_the_image_crate_within_a_grey_level() {
        let mut g = crate::rng::SplitMix64::new(4);
        let img = RgbImage::from_fn(50, 37, |x, y| {
            let n = g.below(40) as u8;
            image::Rgb([(x * 4) as u8 + n, (y * 6) as u8, 200 - n])
        });
        for size in [16u32, 37, 100, 224] {
            let reference =
                image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle);
            let n = (size * size * 3) as usize;
            let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
            normalise_chw(&reference, &mut want);
            resize_normalise_chw(&img, size, &mut got);
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // One grey level is 1/(255·0.224) ≈ 0.0175 in normalised units.
            assert!(worst < 0.0176, "size {size}: off by {worst}");
        }
    }

    #[test]
    fn decodes_resizes_and_flags_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        RgbImage::from_pixel(10, 6, image::Rgb([10, 20, 30]))
            .save(&p)
            .unwrap();
        assert_eq!(check_header(&p, "a.png").unwrap(), (10, 6));
        let mut out = vec![0.0; 3 * 8 * 8];
        load_normalised(&p, "a.png", 8, &mut out).unwrap();
        assert!((out[0] - (10.0 / 255.0 - 0.485) / 0.229).abs() < 1e-4);
        let bad = dir.path().join("b.png");
        std::fs::write(&bad, b"not an image at all").unwrap();
        assert_eq!(
            check_header(&bad, "b.png").unwrap_err().kind,
            BadRowKind::CorruptImage
        );
        // A valid header with a truncated body passes the header check but not decoding.
        let bytes = std::fs::read(&p).unwrap();
        let cut = dir.path().join("c.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(check_header(&cut, "c.png").is_ok());
        assert_eq!(
            decode_rgb(&cut, "c.png").unwrap_err().kind,
            BadRowKind::CorruptImage
        );
    }
}
