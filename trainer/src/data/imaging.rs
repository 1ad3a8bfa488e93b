//! Image decoding for the image tower: decode (PNG, JPEG, WebP), convert to RGB,
//! resize to `S×S`, normalise with the ImageNet mean and standard deviation, and
//! write channel-major (`[3, S, S]`) floats.
//!
//! Resizing is a direct bilinear (`Triangle`) resize to the square, not a
//! resize-and-centre-crop: moderation images (memes, screenshots) often carry
//! their message at the edges, which a crop would cut. Both the pretrained
//! EfficientNet and the scratch CNN see the same transform in training and serving.

use std::path::Path;

use image::imageops::FilterType;
use image::{ImageReader, RgbImage};

use super::error::{BadRow, BadRowKind};

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

/// Decodes, resizes to `size×size` and writes `3·size·size` normalised floats
/// (CHW) into `out`.
pub fn load_normalised(path: &Path, rel: &str, size: u32, out: &mut [f32]) -> Result<(), BadRow> {
    let rgb = decode_rgb(path, rel)?;
    let rgb = if rgb.width() == size && rgb.height() == size {
        rgb
    } else {
        image::imageops::resize(&rgb, size, size, FilterType::Triangle)
    };
    normalise_chw(&rgb, out);
    Ok(())
}

/// Writes an RGB image as ImageNet-normalised CHW floats.
pub fn normalise_chw(rgb: &RgbImage, out: &mut [f32]) {
    let plane = (rgb.width() * rgb.height()) as usize;
    assert_eq!(out.len(), 3 * plane, "output buffer must be 3*H*W floats");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * IMAGENET_STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| IMAGENET_MEAN[c] / IMAGENET_STD[c]);
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
