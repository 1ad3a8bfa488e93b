//! Pillow's resampling (`Image.resize` with `BILINEAR` or `BICUBIC`), byte for
//! byte: what Hugging Face image processors (CLIP, SigLIP, ViT) run on every
//! training image of the checkpoints they describe, so a tower pretrained on them
//! sees the same pixels here.
//!
//! The arithmetic is Pillow's `Resample.c` for 8-bit images: per output pixel the
//! filter's taps in double precision (support scaled by the reduction factor, so
//! shrinking is antialiased), normalised, then turned into fixed-point integers
//! with 22 fractional bits; each pass accumulates in integers from a rounding
//! half, shifts and clamps to 0–255. One pass writes an 8-bit intermediate image
//! and the other reads it (the rounding between passes is part of the result), in
//! Pillow 13's order: horizontal first unless the height shrinks by more than
//! twice as many pixels as the width (Pillow before 13 always went horizontal
//! first; the two orders differ by at most one grey level).

use image::RgbImage;

/// Pillow's resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PilFilter {
    /// `Image.BILINEAR` (2): a triangle of support 1.
    Bilinear,
    /// `Image.BICUBIC` (3): Keys' cubic with a = −0.5, support 2.
    Bicubic,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => (1.0 - x).max(0.0),
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output index: the first input index and the fixed-point weights.
fn coefficients(input: u32, output: u32, filter: PilFilter) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(input) / f64::from(output);
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..output)
        .map(|o| {
            let centre = (f64::from(o) + 0.5) * scale;
            // Pillow truncates `x + 0.5` toward zero (a C cast) to round.
            let min = ((centre - support + 0.5) as i64).max(0);
            let max = ((centre + support + 0.5) as i64).min(i64::from(input));
            let weights: Vec<f64> = (min..max)
                .map(|x| filter.weight((x as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    if scaled < 0.0 {
                        (scaled - 0.5) as i32
                    } else {
                        (scaled + 0.5) as i32
                    }
                })
                .collect();
            (min as usize, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `img` to `width × height` as Pillow's `Image.resize(.., filter)` does.
pub fn pil_resize(img: &RgbImage, width: u32, height: u32, filter: PilFilter) -> RgbImage {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let shrink_h = h - i64::from(height);
    let horizontal_first = !(shrink_h > 0 && shrink_h > (w - i64::from(width)) * 2);
    if horizontal_first {
        vertical(&horizontal(img, width, filter), height, filter)
    } else {
        horizontal(&vertical(img, height, filter), width, filter)
    }
}

/// The horizontal pass: every row to `width` pixels.
fn horizontal(img: &RgbImage, width: u32, filter: PilFilter) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    if width == w {
        return img.clone();
    }
    let taps = coefficients(w, width, filter);
    let src = img.as_raw();
    let mut out = vec![0u8; (width * h) as usize * 3];
    for y in 0..h as usize {
        let line = &src[y * w as usize * 3..(y + 1) * w as usize * 3];
        for (ox, (first, k)) in taps.iter().enumerate() {
            for c in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (i, wt) in k.iter().enumerate() {
                    acc += i64::from(line[(first + i) * 3 + c]) * i64::from(*wt);
                }
                out[(y * width as usize + ox) * 3 + c] = clip8(acc);
            }
        }
    }
    RgbImage::from_raw(width, h, out).unwrap_or_else(|| img.clone())
}

/// The vertical pass: every column to `height` pixels.
fn vertical(img: &RgbImage, height: u32, filter: PilFilter) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    if height == h {
        return img.clone();
    }
    let taps = coefficients(h, height, filter);
    let src = img.as_raw();
    let row = w as usize * 3;
    let mut out = vec![0u8; height as usize * row];
    for (oy, (first, k)) in taps.iter().enumerate() {
        for x in 0..row {
            let mut acc: i64 = 1 << (PRECISION_BITS - 1);
            for (i, wt) in k.iter().enumerate() {
                acc += i64::from(src[(first + i) * row + x]) * i64::from(*wt);
            }
            out[oy * row + x] = clip8(acc);
        }
    }
    RgbImage::from_raw(w, height, out).unwrap_or_else(|| img.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_each_output_sum_to_one_in_fixed_point() {
        for filter in [PilFilter::Bilinear, PilFilter::Bicubic] {
            for (input, output) in [(48, 32), (30, 32), (224, 7), (5, 19)] {
                for (_, k) in coefficients(input, output, filter) {
                    let sum: i64 = k.iter().map(|&w| i64::from(w)).sum();
                    assert!((sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64);
                }
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_same_size_is_identity() {
        let img = RgbImage::from_pixel(17, 9, image::Rgb([10, 128, 250]));
        for filter in [PilFilter::Bilinear, PilFilter::Bicubic] {
            let out = pil_resize(&img, 5, 13, filter);
            assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
        }
        let noisy = RgbImage::from_fn(6, 4, |x, y| image::Rgb([(x * 40) as u8, (y * 60) as u8, 7]));
        assert_eq!(pil_resize(&noisy, 6, 4, PilFilter::Bicubic), noisy);
    }
}
