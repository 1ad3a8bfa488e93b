//! The bearer token: read from `--auth-token-file`, validated once at start, and
//! compared with what a request sends (pure; no I/O but the caller's read).
//!
//! The comparison hashes both sides with SHA-256 and folds the digests with xor,
//! so it takes the same time whatever the sent token's length or how many of its
//! bytes match: a byte-wise compare that returns at the first difference, or
//! refuses at once on a length mismatch, tells a timing attacker the length and
//! then the token a byte at a time. The scheme is case-insensitive (RFC 9110
//! §11.1: `Bearer`, `bearer`, `BEARER`).

use sha2::{Digest, Sha256};

/// A token that may be sent in an `Authorization` header: only its digest is kept.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a token file's content cannot be a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenProblem {
    /// Nothing but whitespace.
    #[error("is empty (or only whitespace)")]
    Empty,
    /// A byte that a client cannot send in a header value as typed: a control
    /// character, a space inside, or non-ASCII.
    #[error(
        "byte {offset} (0x{byte:02x}) is not visible ASCII: a token must be printable \
         ASCII without spaces (0x21-0x7e), as it is sent in an HTTP header"
    )]
    NotVisibleAscii {
        /// Its offset in the trimmed token.
        offset: usize,
        /// The byte.
        byte: u8,
    },
}

impl Token {
    /// The token in a token file's bytes: surrounding whitespace (a trailing
    /// newline from `echo`) trimmed; empty or a byte outside 0x21..=0x7e refused.
    pub fn parse(file: &[u8]) -> Result<Self, TokenProblem> {
        let t = file.trim_ascii();
        if t.is_empty() {
            return Err(TokenProblem::Empty);
        }
        if let Some(offset) = t.iter().position(|b| !(0x21..=0x7e).contains(b)) {
            return Err(TokenProblem::NotVisibleAscii {
                offset,
                byte: t[offset],
            });
        }
        Ok(Self {
            digest: Sha256::digest(t).into(),
        })
    }

    /// Whether an `Authorization` header value carries this token: scheme
    /// `Bearer` in any case, one or more spaces, the token (surrounding
    /// whitespace ignored). Constant time in the sent token's content and length.
    pub fn admits(&self, header: &[u8]) -> bool {
        let scheme = b"bearer";
        let Some((head, rest)) = header.split_at_checked(scheme.len()) else {
            return false;
        };
        if !head.eq_ignore_ascii_case(scheme) || rest.first() != Some(&b' ') {
            return false;
        }
        let given: [u8; 32] = Sha256::digest(rest.trim_ascii()).into();
        given
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_trimmed_and_must_be_visible_ascii() {
        let t = Token::parse(b"s3cret\n").unwrap();
        assert!(t.admits(b"Bearer s3cret"));
        assert!(
            Token::parse(b"  s3cret \r\n")
                .unwrap()
                .admits(b"Bearer s3cret")
        );
        assert_eq!(Token::parse(b"\n \t").unwrap_err(), TokenProblem::Empty);
        assert_eq!(
            Token::parse("sécret".as_bytes()).unwrap_err(),
            TokenProblem::NotVisibleAscii {
                offset: 1,
                byte: 0xc3
            }
        );
        let err = Token::parse(b"two words").unwrap_err();
        assert!(err.to_string().contains("byte 3 (0x20)"), "{err}");
        assert!(format!("{t:?}").contains("redacted"));
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_must_match_exactly() {
        let t = Token::parse(b"s3cret").unwrap();
        for ok in [
            &b"Bearer s3cret"[..],
            b"bearer s3cret",
            b"BEARER s3cret",
            b"Bearer   s3cret ",
        ] {
            assert!(t.admits(ok), "{}", String::from_utf8_lossy(ok));
        }
        for no in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearers3cret",
            b"Bearer s3cre",
            b"Bearer s3cret2",
            b"Bearer S3CRET",
            b"Basic s3cret",
            b"Bearer\ts3cret",
        ] {
            assert!(!t.admits(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
