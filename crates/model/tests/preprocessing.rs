//! Hugging Face image processors reproduced: each fixture's
//! `preprocessor_config.json` read as a [`vigil_config::ImageTransform`] and applied
//! by the data layer to the fixture images gives the `pixel_values` transformers'
//! processor computed (Pillow resize, CLIP's shortest-edge resize and centre crop,
//! each model's mean and std).

use std::path::Path;

use serde::Deserialize;
use vigil_data::{decode_rgb, transform_chw};
use vigil_model::read_preprocessor;

#[derive(Deserialize)]
struct Reference {
    images: Vec<String>,
    pixel_values_shape: [usize; 4],
    pixel_values: Vec<f32>,
}

#[test]
fn each_processor_gives_transformers_pixel_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders");
    for name in ["vit", "clip", "siglip"] {
        let dir = root.join(name);
        let r: Reference =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let p = read_preprocessor(&dir.join("preprocessor_config.json")).unwrap();
        let [n, c, h, w] = r.pixel_values_shape;
        assert_eq!(
            (c, h, w),
            (3, p.image_size as usize, p.image_size as usize),
            "{name}"
        );
        let mut ours = vec![0f32; n * c * h * w];
        for (i, image) in r.images.iter().enumerate() {
            let rgb = decode_rgb(&root.join(image), image).unwrap();
            transform_chw(
                &rgb,
                p.image_size,
                &p.transform,
                &mut ours[i * c * h * w..(i + 1) * c * h * w],
            );
        }
        let worst = ours
            .iter()
            .zip(&r.pixel_values)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("{name}: {:?}, max |diff| {worst:.2e}", p.transform.filter);
        assert!(worst <= 1e-5, "{name}: pixel values differ by {worst}");
    }
}
