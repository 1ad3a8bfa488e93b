//! Inline thumbnails: each reported row's image shrunk and re-encoded as JPEG in
//! a `data:` URI, so the report is one file that needs no image next to it.
//!
//! A missing or undecodable image is not an error (the report is about the
//! model, and the image may have moved since the run): the row shows no
//! thumbnail and says why.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::DynamicImage;
use image::codecs::jpeg::JpegEncoder;

/// Longest side of a thumbnail, in pixels.
pub const THUMB_PX: u32 = 96;
const QUALITY: u8 = 80;

/// A thumbnail of the image at `path` as `data:image/jpeg;base64,…`, or why not.
pub fn thumbnail_uri(path: &Path) -> Result<String, String> {
    let img = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(jpeg_uri(&img.thumbnail(THUMB_PX, THUMB_PX)))
}

/// `img` as a base64 JPEG data URI.
pub fn jpeg_uri(img: &DynamicImage) -> String {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut Cursor::new(&mut bytes), QUALITY)
        .encode_image(&DynamicImage::ImageRgb8(img.to_rgb8()))
        .expect("encoding an RGB image in memory");
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn a_png_becomes_a_small_decodable_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        RgbImage::from_fn(200, 100, |x, _| Rgb([x as u8, 0, 255]))
            .save(&path)
            .unwrap();
        let uri = thumbnail_uri(&path).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "JPEG magic");
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (96, 48));
        assert!(thumbnail_uri(&dir.path().join("missing.png")).is_err());
    }
}
