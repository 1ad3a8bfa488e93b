//! Image preprocessing as torchvision does it for ImageNet models:
//! `Resize((s, s))` (bilinear) → `ToTensor()` → `Normalize(mean, std)`.
//!
//! Used by `vigil embed`; the training data loader has its own pipeline with the
//! same constants.

use std::path::Path;

use image::imageops::FilterType;

use super::error::ModelError;

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes `path`, resizes to `size`×`size` and normalises: `3 × size × size` values, CHW.
pub fn load_image(path: &Path, size: u32) -> Result<Vec<f32>, ModelError> {
    let img = image::ImageReader::open(path)
        .map_err(|e| ModelError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| ModelError::io(path, e))?
        .decode()
        .map_err(|source| ModelError::Image {
            path: path.to_path_buf(),
            source,
        })?
        .to_rgb8();
    let img = if img.width() == size && img.height() == size {
        img
    } else {
        image::imageops::resize(&img, size, size, FilterType::Triangle)
    };
    Ok(normalize(&img))
}

/// CHW, `/255`, ImageNet-normalised values of an RGB image.
pub fn normalize(img: &image::RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}
