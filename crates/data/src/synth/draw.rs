//! Synthetic images: simple shapes whose *colour* carries one label's visual
//! signal each, drawn with integer arithmetic so every platform produces the same
//! pixels.
//!
//! | label | signal |
//! |---|---|
//! | hate | red disc |
//! | harassment | blue horizontal stripes |
//! | violence | orange triangle |
//! | self_harm | green square |
//! | spam | magenta frame |
//!
//! Distractors use the same shapes in neutral colours (grey, brown, black, white,
//! tan; a dark frame), so a model must look at colour and shape together; the
//! background is a pale neutral tint. Shapes are large (a quarter of the image)
//! so the signal survives downscaling to 32×32 for the scratch CNN and is salient
//! for a frozen ImageNet EfficientNet at 224×224.

use image::{Rgb, RgbImage};

use crate::rng::SplitMix64;

const SIGNAL: [[u8; 3]; 5] = [
    [220, 30, 30],  // hate: red
    [30, 60, 220],  // harassment: blue
    [250, 150, 0],  // violence: orange
    [20, 170, 60],  // self_harm: green
    [210, 40, 200], // spam: magenta
];

const NEUTRAL: [[u8; 3]; 5] = [
    [70, 70, 70],
    [120, 80, 40],
    [20, 20, 20],
    [250, 250, 250],
    [200, 180, 140],
];

const BACKGROUND: [[u8; 3]; 5] = [
    [236, 236, 226],
    [222, 230, 236],
    [240, 228, 216],
    [226, 234, 222],
    [232, 224, 234],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Disc,
    Stripes,
    Triangle,
    Square,
}

const SHAPE_OF: [Shape; 4] = [Shape::Disc, Shape::Stripes, Shape::Triangle, Shape::Square];

/// Draws a `px×px` image showing the signals of `signals` (one flag per label).
pub fn draw(rng: &mut SplitMix64, signals: [bool; 5], px: u32) -> RgbImage {
    let bg = *rng.pick(&BACKGROUND);
    let mut img = RgbImage::from_pixel(px, px, Rgb(bg));
    let half = px / 2;

    // Objects placed in the four quadrants: the active slot signals, then 1–2
    // neutral distractors while quadrants remain.
    let mut objects: Vec<(Shape, [u8; 3])> = (0..4)
        .filter(|&l| signals[l])
        .map(|l| (SHAPE_OF[l], SIGNAL[l]))
        .collect();
    let distractors = rng.range(1, 2);
    for _ in 0..distractors {
        if objects.len() < 4 {
            objects.push((*rng.pick(&SHAPE_OF), *rng.pick(&NEUTRAL)));
        }
    }
    let mut quadrants = [0u32, 1, 2, 3];
    rng.shuffle(&mut quadrants);
    let border = (px / 16).max(2);
    for ((shape, colour), q) in objects.iter().zip(quadrants) {
        let (qx, qy) = ((q % 2) * half, (q / 2) * half);
        let inner = half - border;
        let size = rng.range((inner * 5 / 8) as usize, (inner * 7 / 8) as usize) as u32;
        let ox = qx + border / 2 + rng.below((inner - size + 1) as usize) as u32;
        let oy = qy + border / 2 + rng.below((inner - size + 1) as usize) as u32;
        fill(&mut img, *shape, Rgb(*colour), ox, oy, size, px);
    }
    // The spam signal is a frame; a dark frame is its distractor.
    let frame = if signals[4] {
        Some(SIGNAL[4])
    } else if rng.chance(0.25) {
        Some(NEUTRAL[0])
    } else {
        None
    };
    if let Some(c) = frame {
        for y in 0..px {
            for x in 0..px {
                if x < border || y < border || x >= px - border || y >= px - border {
                    img.put_pixel(x, y, Rgb(c));
                }
            }
        }
    }
    img
}

fn fill(img: &mut RgbImage, shape: Shape, colour: Rgb<u8>, ox: u32, oy: u32, s: u32, px: u32) {
    let stripe = (px / 16).max(1);
    for dy in 0..s {
        for dx in 0..s {
            let inside = match shape {
                Shape::Square => true,
                Shape::Disc => {
                    // (2dx+1-s)^2 + (2dy+1-s)^2 <= s^2, in integers.
                    let (a, b) = (
                        2 * i64::from(dx) + 1 - i64::from(s),
                        2 * i64::from(dy) + 1 - i64::from(s),
                    );
                    a * a + b * b <= i64::from(s) * i64::from(s)
                }
                Shape::Triangle => {
                    let centre = i64::from(s) / 2;
                    (i64::from(dx) - centre).abs() <= (i64::from(dy) + 1) / 2
                }
                Shape::Stripes => (dy / stripe).is_multiple_of(2),
            };
            if inside && ox + dx < px && oy + dy < px {
                img.put_pixel(ox + dx, oy + dy, colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(img: &RgbImage, c: [u8; 3]) -> usize {
        img.pixels().filter(|p| p.0 == c).count()
    }

    #[test]
    fn each_signal_shows_its_colour_and_only_then() {
        for l in 0..5 {
            let mut on = [false; 5];
            on[l] = true;
            for seed in 0..20 {
                let img = draw(&mut SplitMix64::new(seed), on, 64);
                assert!(count(&img, SIGNAL[l]) > 60, "label {l} seed {seed}");
                for (m, c) in SIGNAL.iter().enumerate() {
                    if m != l {
                        assert_eq!(count(&img, *c), 0, "label {m} leaked into {l}");
                    }
                }
            }
        }
    }

    #[test]
    fn same_seed_same_pixels() {
        let a = draw(
            &mut SplitMix64::new(3),
            [true, false, true, false, true],
            64,
        );
        let b = draw(
            &mut SplitMix64::new(3),
            [true, false, true, false, true],
            64,
        );
        assert_eq!(a, b);
        let big = draw(&mut SplitMix64::new(3), [true; 5], 256);
        assert_eq!(big.dimensions(), (256, 256));
    }
}
