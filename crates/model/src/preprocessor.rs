//! A Hugging Face image processor's `preprocessor_config.json` as Vigil's
//! [`ImageTransform`]: the pixels a ViT, CLIP or SigLIP tower was pretrained on.
//!
//! Read: `do_resize` + `size` (`{height, width}` square, or `{shortest_edge}`),
//! `resample` (2 bilinear, 3 bicubic: Pillow's, reproduced byte for byte by
//! `vigil_data::pil`), `do_center_crop` + `crop_size` (square), `rescale_factor`
//! (1/255), `do_normalize` + `image_mean` / `image_std`. Anything else Vigil cannot
//! reproduce (a non-square output, another filter or rescale factor) is an error
//! naming the key, never an approximation.

use std::path::Path;

use serde_json::Value;
use vigil_config::{ImageFilter, ImageResize, ImageTransform};

use super::error::ModelError;

/// The processor's output side and transform.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessing {
    /// Side of the square input (`data.image_size`).
    pub image_size: u32,
    /// Resize, filter and statistics (`data.image_transform`).
    pub transform: ImageTransform,
}

/// Reads `preprocessor_config.json` at `path`.
pub fn read_preprocessor(path: &Path) -> Result<ImageProcessing, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |key: &str, message: String| ModelError::BadConfig {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    let flag =
        |key: &str, default: bool| value.get(key).and_then(Value::as_bool).unwrap_or(default);
    let side = |v: Option<&Value>, key: &str| -> Result<u32, ModelError> {
        v.and_then(Value::as_u64)
            .filter(|s| (1..=8192).contains(s))
            .map(|s| s as u32)
            .ok_or_else(|| bad(key, "must be a size in 1..=8192".into()))
    };
    if !flag("do_resize", true) {
        return Err(bad(
            "do_resize",
            "false is not supported (images of any size arrive)".into(),
        ));
    }
    let size = value.get("size").cloned().unwrap_or(Value::Null);
    let (resize, resized) = match (
        size.get("shortest_edge"),
        size.get("height"),
        size.get("width"),
    ) {
        (Some(edge), _, _) => (
            ImageResize::ShortestEdge,
            side(Some(edge), "size.shortest_edge")?,
        ),
        (None, Some(h), Some(w)) => {
            let (h, w) = (side(Some(h), "size.height")?, side(Some(w), "size.width")?);
            if h != w {
                return Err(bad("size", format!("{h}x{w} is not square")));
            }
            (ImageResize::Square, h)
        }
        _ => {
            return Err(bad(
                "size",
                "needs {height, width} or {shortest_edge}".into(),
            ));
        }
    };
    let filter = match value.get("resample").and_then(Value::as_u64).unwrap_or(3) {
        2 => ImageFilter::Bilinear,
        3 => ImageFilter::Bicubic,
        other => {
            return Err(bad(
                "resample",
                format!("{other} is not supported (2 bilinear, 3 bicubic)"),
            ));
        }
    };
    let image_size = if flag("do_center_crop", false) {
        let crop = value.get("crop_size").cloned().unwrap_or(Value::Null);
        let (h, w) = (
            side(crop.get("height"), "crop_size.height")?,
            side(crop.get("width"), "crop_size.width")?,
        );
        if h != w || h > resized {
            return Err(bad(
                "crop_size",
                format!("{h}x{w} must be square and at most the resized side {resized}"),
            ));
        }
        h
    } else if resize == ImageResize::ShortestEdge {
        return Err(bad(
            "do_center_crop",
            "shortest_edge without a centre crop gives non-square images".into(),
        ));
    } else {
        resized
    };
    if flag("do_rescale", true) {
        let factor = value
            .get("rescale_factor")
            .and_then(Value::as_f64)
            .unwrap_or(1.0 / 255.0);
        if (factor - 1.0 / 255.0).abs() > 1e-12 {
            return Err(bad(
                "rescale_factor",
                format!("{factor} is not supported (1/255)"),
            ));
        }
    } else {
        return Err(bad("do_rescale", "false is not supported".into()));
    }
    let stats = |key: &str| -> Result<[f32; 3], ModelError> {
        let v: Vec<f32> = value
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_f64)
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default();
        <[f32; 3]>::try_from(v).map_err(|_| bad(key, "must be three numbers (RGB)".into()))
    };
    let (mean, std) = if flag("do_normalize", true) {
        (stats("image_mean")?, stats("image_std")?)
    } else {
        ([0.0; 3], [1.0; 3])
    };
    if std.iter().any(|s| *s <= 0.0) {
        return Err(bad("image_std", "must be positive".into()));
    }
    Ok(ImageProcessing {
        image_size,
        transform: ImageTransform {
            resize,
            shortest_edge: (resize == ImageResize::ShortestEdge).then_some(resized),
            filter,
            mean,
            std,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<ImageProcessing, ModelError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor_config.json");
        std::fs::write(&path, json).unwrap();
        read_preprocessor(&path)
    }

    #[test]
    fn clip_and_vit_processors_read() {
        let clip = read(
            r#"{"do_resize": true, "size": {"shortest_edge": 224}, "resample": 3,
                "do_center_crop": true, "crop_size": {"height": 224, "width": 224},
                "do_rescale": true, "rescale_factor": 0.00392156862745098,
                "do_normalize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
        )
        .unwrap();
        assert_eq!(clip.image_size, 224);
        assert_eq!(clip.transform.resize, ImageResize::ShortestEdge);
        assert_eq!(clip.transform.shortest_edge, Some(224));
        assert_eq!(clip.transform.filter, ImageFilter::Bicubic);
        let vit = read(
            r#"{"size": {"height": 384, "width": 384}, "resample": 2,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#,
        )
        .unwrap();
        assert_eq!(
            (vit.image_size, vit.transform.filter),
            (384, ImageFilter::Bilinear)
        );
        assert_eq!(vit.transform.resize, ImageResize::Square);
    }

    #[test]
    fn what_vigil_cannot_reproduce_names_its_key() {
        for (json, key) in [
            (r#"{"size": {"height": 20, "width": 30}}"#, "size"),
            (
                r#"{"size": {"height": 20, "width": 20}, "resample": 1}"#,
                "resample",
            ),
            (r#"{"size": {"shortest_edge": 20}}"#, "do_center_crop"),
            (
                r#"{"size": {"height": 20, "width": 20}, "rescale_factor": 0.5}"#,
                "rescale_factor",
            ),
            (
                r#"{"size": {"height": 20, "width": 20}, "image_mean": [0.5]}"#,
                "image_mean",
            ),
        ] {
            let text = read(json).unwrap_err().to_string();
            assert!(
                text.contains(&format!("preprocessor_config.json: {key}")),
                "{text}"
            );
        }
    }
}
