//! [`Limits`]: what one request may ask of the server, and the queue's bound.
//!
//! Every bound is checked before work is spent on the request: the body size while
//! it is read (413), rows, text bytes and the image's pixel count (from its header,
//! before decoding) while it is parsed (400), and the queue's length when it is
//! submitted (503 with `Retry-After`). A server without such bounds can be made to
//! allocate without end by one client.

/// Bounds on requests and on the queue (flags of `vigil serve`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body, bytes (`--max-body-bytes`): larger → 413.
    pub max_body_bytes: usize,
    /// Most rows (batch elements) in one request (`--max-rows`).
    pub max_rows: usize,
    /// Longest text element, bytes of UTF-8 (`--max-text-bytes`).
    pub max_text_bytes: usize,
    /// Most pixels (width × height) of one image, read from its header
    /// (`--max-image-pixels`).
    pub max_image_pixels: u64,
    /// Most requests waiting for a worker (`--queue-bound`): more → 503.
    pub queue_bound: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_rows: 256,
            max_text_bytes: 64 << 10,
            max_image_pixels: 25_000_000,
            queue_bound: 256,
        }
    }
}

impl Limits {
    /// Every zero bound, by flag name (a zero bound would refuse everything).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let checks: [(&str, bool); 5] = [
            ("--max-body-bytes", self.max_body_bytes == 0),
            ("--max-rows", self.max_rows == 0),
            ("--max-text-bytes", self.max_text_bytes == 0),
            ("--max-image-pixels", self.max_image_pixels == 0),
            ("--queue-bound", self.queue_bound == 0),
        ];
        for (flag, zero) in checks {
            if zero {
                out.push(format!("{flag} must be at least 1"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_usable_and_zero_bounds_are_named() {
        assert!(Limits::default().problems().is_empty());
        let l = Limits {
            max_rows: 0,
            queue_bound: 0,
            ..Limits::default()
        };
        assert_eq!(
            l.problems(),
            vec![
                "--max-rows must be at least 1",
                "--queue-bound must be at least 1"
            ]
        );
    }
}
