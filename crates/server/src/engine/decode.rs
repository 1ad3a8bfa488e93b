//! Encoded images: the pixel bound checked from the header alone
//! ([`check_image_header`]), then decoding under an allocation bound, resizing
//! and normalising as the data layer does ([`decode_image`]).

use std::io::Cursor;

use image::ImageReader;
use vigil_data::ImageSpec;

/// The pixel count of an encoded image, read from its header only (no pixel is
/// decoded): refused when it is not a PNG, JPEG or WebP file, empty, or more than
/// `max_pixels`. Cheap enough for the HTTP handler to run before queueing.
pub fn check_image_header(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), String> {
    let r = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    if r.format().is_none() {
        return Err("not a PNG, JPEG or WebP file".into());
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| format!("the image is corrupt: {e}"))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels == 0 {
        return Err("the image is empty (0 pixels)".into());
    }
    if pixels > max_pixels {
        return Err(format!(
            "{w}×{h} = {pixels} pixels is more than --max-image-pixels {max_pixels}"
        ));
    }
    Ok((w, h))
}

/// Decodes an encoded image, checks its pixel count from the header first, and
/// writes the `3·size·size` floats `spec` makes of it (as the data layer does for
/// files: the export's side and image transform). The
/// decoder may allocate at most `max_alloc` bytes (a PNG whose header is within
/// the pixel bound but whose pixels are wide is refused, not decoded).
pub fn decode_image(
    bytes: &[u8],
    spec: &ImageSpec,
    max_pixels: u64,
    max_alloc: u64,
    out: &mut [f32],
) -> Result<(), String> {
    let (w, h) = check_image_header(bytes, max_pixels)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    let rgb = reader
        .decode()
        .map_err(|e| match e {
            image::ImageError::Limits(l) => format!(
                "decoding {w}×{h} pixels would allocate more than {max_alloc} bytes \
                 (4 per pixel of --max-image-pixels): {l}"
            ),
            e => format!("the image is corrupt: {e}"),
        })?
        .into_rgb8();
    spec.apply(&rgb, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    fn spec8() -> vigil_data::ImageSpec {
        vigil_data::ImageSpec {
            size: 8,
            transform: Default::default(),
        }
    }

    use std::time::{Duration, Instant};

    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 30]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    /// A baseline JPEG of `w`×`h` in 172 bytes: quantisation and Huffman tables,
    /// the frame header, a scan header and almost no data — the shape of a
    /// decompression bomb (hundreds of bytes declaring millions of pixels).
    fn jpeg_bomb(w: u16, h: u16) -> Vec<u8> {
        let mut j = vec![0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00];
        j.extend_from_slice(&[1u8; 64]);
        j.extend_from_slice(&[0xff, 0xc0, 0x00, 0x0b, 0x08]);
        j.extend_from_slice(&h.to_be_bytes());
        j.extend_from_slice(&w.to_be_bytes());
        j.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        for class in [0x00, 0x10] {
            j.extend_from_slice(&[0xff, 0xc4, 0x00, 0x14, class, 1]);
            j.extend_from_slice(&[0u8; 15]);
            j.push(0x00);
        }
        j.extend_from_slice(&[0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00]);
        j.extend_from_slice(&[0u8; 32]);
        j.extend_from_slice(&[0xff, 0xd9]);
        j
    }

    #[test]
    fn a_bomb_is_refused_from_its_header_in_milliseconds() {
        let bomb = jpeg_bomb(5000, 5000);
        let started = Instant::now();
        let err = check_image_header(&bomb, crate::Limits::default().max_image_pixels).unwrap_err();
        assert!(err.contains("5000×5000 = 25000000 pixels"), "{err}");
        let mut out = vec![0.0; 3 * 8 * 8];
        let l = crate::Limits::default();
        let err = decode_image(
            &bomb,
            &spec8(),
            l.max_image_pixels,
            l.max_image_alloc(),
            &mut out,
        );
        assert!(err.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // The same bytes within the bound are a JPEG that decodes (to black).
        assert!(check_image_header(&jpeg_bomb(64, 48), 1000).is_err());
        assert_eq!(check_image_header(&jpeg_bomb(64, 48), 10_000), Ok((64, 48)));
    }

    #[test]
    fn images_decode_like_files_and_bad_ones_are_refused() {
        let mut out = vec![0.0; 3 * 8 * 8];
        decode_image(&png(16, 12), &spec8(), 1000, 4000, &mut out).unwrap();
        let expect = (200.0 / 255.0 - vigil_data::IMAGENET_MEAN[0]) / vigil_data::IMAGENET_STD[0];
        assert!((out[0] - expect).abs() < 1e-4);
        let err = decode_image(&png(40, 30), &spec8(), 1000, 4000, &mut out).unwrap_err();
        assert!(err.contains("--max-image-pixels 1000"), "{err}");
        let err = decode_image(b"not an image", &spec8(), 1000, 4000, &mut out).unwrap_err();
        assert!(err.contains("not a PNG"), "{err}");
        let mut broken = png(16, 12);
        broken.truncate(broken.len() / 2);
        assert!(decode_image(&broken, &spec8(), 1000, 4000, &mut out).is_err());
        // Within the pixel bound, but the decoder may not allocate its pixels.
        let err = decode_image(&png(16, 12), &spec8(), 1000, 100, &mut out).unwrap_err();
        assert!(err.contains("allocate more than 100 bytes"), "{err}");
    }
}
