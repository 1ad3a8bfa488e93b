//! The TensorBoard view of the top errors: per label, one PNG grid with the top
//! false positives in the first row and the top false negatives in the second,
//! each a thumbnail framed in its row's colour (orange: false positive, blue:
//! false negative) over a score bar.
//!
//! No font crate is in the build, so scores are drawn, not written: the bar's
//! filled part is the score (0 to 1 across the tile) and the black tick is the
//! shipped threshold. Rows without an image get a grey tile. The report page
//! lists the same rows with ids, scores as numbers and text.

use std::io::Cursor;
use std::path::Path;

use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ImageEncoder, Rgb, RgbImage};

/// Columns (errors shown per kind).
pub const COLUMNS: usize = 4;
const TILE: u32 = 64;
const BAR: u32 = 8;
const PAD: u32 = 4;
const FP: Rgb<u8> = Rgb([217, 119, 6]);
const FN: Rgb<u8> = Rgb([29, 78, 216]);

/// One tile: the row's image (if any), its score and the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile<'a> {
    /// The image file, if the row has one.
    pub image: Option<&'a Path>,
    /// The label's score.
    pub score: f32,
}

/// The grid as an RGB image: `fps` in row 0, `fns` in row 1 (at most
/// [`COLUMNS`] each), `threshold` ticked on every bar (`None`: argmax, no tick).
pub fn error_grid(fps: &[Tile<'_>], fns: &[Tile<'_>], threshold: Option<f32>) -> RgbImage {
    let cell_w = TILE + 2 * 2 + PAD;
    let cell_h = TILE + 2 * 2 + BAR + 2 + PAD;
    let w = PAD + COLUMNS as u32 * cell_w;
    let h = PAD + 2 * cell_h;
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for (row, (tiles, color)) in [(fps, FP), (fns, FN)].into_iter().enumerate() {
        for (col, tile) in tiles.iter().take(COLUMNS).enumerate() {
            let x = PAD + col as u32 * cell_w;
            let y = PAD + row as u32 * cell_h;
            fill(&mut img, x, y, TILE + 4, TILE + 4, color);
            let thumb = tile
                .image
                .and_then(|p| image::open(p).ok())
                .map(|i| i.resize_exact(TILE, TILE, FilterType::Triangle).to_rgb8());
            match thumb {
                Some(t) => {
                    image::imageops::replace(&mut img, &t, i64::from(x + 2), i64::from(y + 2))
                }
                None => fill(&mut img, x + 2, y + 2, TILE, TILE, Rgb([200, 200, 200])),
            }
            let by = y + TILE + 4 + 2;
            let bw = TILE + 4;
            fill(&mut img, x, by, bw, BAR, Rgb([225, 225, 225]));
            let filled = (tile.score.clamp(0.0, 1.0) * bw as f32).round() as u32;
            fill(&mut img, x, by, filled, BAR, color);
            if let Some(t) = threshold {
                let tx = x + ((t.clamp(0.0, 1.0) * (bw - 1) as f32).round() as u32);
                fill(&mut img, tx, by, 1, BAR, Rgb([0, 0, 0]));
            }
        }
    }
    img
}

fn fill(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, c: Rgb<u8>) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, c);
        }
    }
}

/// `img` encoded as PNG.
pub fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut Cursor::new(&mut out))
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding a PNG in memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_thumbnails_with_score_bars_and_the_threshold_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        RgbImage::from_pixel(20, 10, Rgb([0, 200, 0]))
            .save(&path)
            .unwrap();
        let fps = [
            Tile {
                image: Some(&path),
                score: 0.9,
            },
            Tile {
                image: None,
                score: 0.6,
            },
        ];
        let fns = [Tile {
            image: Some(&path),
            score: 0.1,
        }];
        let img = error_grid(&fps, &fns, Some(0.5));
        let cell_w = TILE + 4 + PAD;
        assert_eq!(img.width(), PAD + COLUMNS as u32 * cell_w);
        // The first FP tile: frame, then the (resized) green image.
        assert_eq!(*img.get_pixel(PAD, PAD), FP);
        assert_eq!(*img.get_pixel(PAD + 10, PAD + 10), Rgb([0, 200, 0]));
        // The tile without an image is grey.
        assert_eq!(
            *img.get_pixel(PAD + cell_w + 10, PAD + 10),
            Rgb([200, 200, 200])
        );
        // Score bar of the first FP: 0.9 filled, so its end is coloured; the
        // threshold tick at 0.5 is black.
        let by = PAD + TILE + 6 + 1;
        assert_eq!(*img.get_pixel(PAD + (TILE + 4) * 8 / 10, by), FP);
        assert_eq!(
            *img.get_pixel(PAD + ((0.5 * (TILE + 3) as f32).round() as u32), by),
            Rgb([0, 0, 0])
        );
        // The FN row starts with a blue frame.
        let cell_h = TILE + 4 + BAR + 2 + PAD;
        assert_eq!(*img.get_pixel(PAD, PAD + cell_h), FN);
        let bytes = png(&img);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (img.width(), img.height()));
    }
}
