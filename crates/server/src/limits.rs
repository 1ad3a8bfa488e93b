//! [`Limits`]: what one request may ask of the server, and the queue's bound.
//!
//! Every bound is checked before work is spent on the request: the connection
//! count on accept, the headers' and the body's arrival time (connection closed;
//! 408), the body size while it is read (413) and the bytes of all bodies held at
//! once before it is read (503 with `Retry-After`), rows, text bytes and the
//! image's pixel count (from its header, before decoding) while it is parsed
//! (400), and the queue's length when it is submitted (503 with `Retry-After`).
//! A server without such bounds can be made to allocate, or to hold file
//! descriptors, without end by one client.
//!
//! Why 16,777,216 pixels (4096 × 4096) by default: the model sees
//! `data.image_size` pixels (224²), so a larger image only costs decode time and
//! memory; the bound admits a 12-megapixel phone photo (4032 × 3024) whole and
//! refuses a 5000 × 5000 header (a 204-byte JPEG "bomb") before decoding. Decode
//! time grows with pixels, so the pixel bound is also the per-image decode-time
//! bound (measured: 0.24 s of one core to decode and resize a 4096² JPEG, 0.055 s
//! for 2048², in the optimised dev profile);
//! the decoder's allocation is capped at 4 bytes per allowed pixel (RGBA8), so a
//! 16-bit or otherwise wide image at the pixel limit is refused rather than
//! allocating twice as much.

use std::time::Duration;

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
    /// Bytes of request bodies held at once, all requests together
    /// (`--max-inflight-bytes`): a body that does not fit → 503.
    pub max_inflight_bytes: usize,
    /// Whole request headers must arrive within this, and an idle keep-alive
    /// connection is closed after it (`--header-timeout-secs`).
    pub header_timeout: Duration,
    /// The whole body must arrive within this once the headers have
    /// (`--body-timeout-secs`): later → 408.
    pub body_timeout: Duration,
    /// Most connections open at once (`--max-connections`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_rows: 256,
            max_text_bytes: 64 << 10,
            max_image_pixels: 1 << 24,
            queue_bound: 256,
            max_inflight_bytes: 256 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

impl Limits {
    /// Every unusable bound, by flag name: a zero bound would refuse everything,
    /// and a budget smaller than one body would refuse every body of the largest
    /// size.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let checks: [(&str, bool); 7] = [
            ("--max-body-bytes", self.max_body_bytes == 0),
            ("--max-rows", self.max_rows == 0),
            ("--max-text-bytes", self.max_text_bytes == 0),
            ("--max-image-pixels", self.max_image_pixels == 0),
            ("--queue-bound", self.queue_bound == 0),
            ("--max-inflight-bytes", self.max_inflight_bytes == 0),
            ("--max-connections", self.max_connections == 0),
        ];
        for (flag, zero) in checks {
            if zero {
                out.push(format!("{flag} must be at least 1"));
            }
        }
        if self.max_inflight_bytes > 0 && self.max_inflight_bytes < self.max_body_bytes {
            out.push(format!(
                "--max-inflight-bytes {} is less than --max-body-bytes {}: a body of the \
                 largest size could never be admitted",
                self.max_inflight_bytes, self.max_body_bytes
            ));
        }
        for (flag, d) in [
            ("--header-timeout-secs", self.header_timeout),
            ("--body-timeout-secs", self.body_timeout),
        ] {
            if d.is_zero() {
                out.push(format!("{flag} must be more than 0"));
            }
        }
        out
    }

    /// The decoder's allocation cap for one image: 4 bytes (RGBA8) per allowed
    /// pixel.
    pub fn max_image_alloc(&self) -> u64 {
        self.max_image_pixels.saturating_mul(4)
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
        let l = Limits {
            max_body_bytes: 100,
            max_inflight_bytes: 99,
            body_timeout: Duration::ZERO,
            ..Limits::default()
        };
        let p = l.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("--max-inflight-bytes 99 is less than --max-body-bytes 100"));
        assert_eq!(p[1], "--body-timeout-secs must be more than 0");
    }

    #[test]
    fn the_default_pixel_bound_refuses_a_5000_square_header_and_admits_a_phone_photo() {
        let l = Limits::default();
        assert!(5000 * 5000 > l.max_image_pixels);
        assert!(4032 * 3024 <= l.max_image_pixels);
        assert_eq!(l.max_image_alloc(), 64 << 20);
        assert!(l.max_inflight_bytes >= l.max_body_bytes);
    }
}
