//! [`TextTokenizer`]: a Hugging Face `tokenizer.json` turned into token ids and an
//! attention mask.
//!
//! Published tokenizer files often hard-code padding and truncation (the MiniLM
//! one pads and truncates at 128). Vigil owns those decisions: truncation comes from
//! `data.max_text_len`, and a batch is padded to its longest row (never beyond
//! `max_text_len`), so short batches cost less. The pad id is the file's own
//! padding id, else `[PAD]` (BERT), else `<pad>` (RoBERTa, XLM-R, SigLIP), else
//! `<|endoftext|>` (CLIP pads with its end token), else 0.

use std::path::{Path, PathBuf};

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use super::error::ModelError;

/// Token ids and attention mask of a batch, row-major `[batch, seq_len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids.
    pub ids: Vec<i64>,
    /// 1 for a real token, 0 for padding.
    pub mask: Vec<f32>,
    /// Rows.
    pub batch: usize,
    /// Columns (the longest row, at most `max_len`).
    pub seq_len: usize,
}

/// A tokenizer with Vigil's truncation and padding.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_len: usize,
    pad_id: u32,
    pad_to_max: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("max_len", &self.max_len)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and sets truncation to `max_len` tokens.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, ModelError> {
        if max_len < 2 {
            return Err(ModelError::config(
                "data.max_text_len",
                "must be at least 2 (room for [CLS] and [SEP])",
            ));
        }
        if !path.is_file() {
            return Err(ModelError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer file not found"),
            ));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|source| ModelError::Tokenizer {
            path: path.to_path_buf(),
            source,
        })?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .or_else(|| inner.token_to_id("<pad>"))
            .or_else(|| inner.token_to_id("<|endoftext|>"))
            .unwrap_or(0);
        let pad_token = inner
            .id_to_token(pad_id)
            .unwrap_or_else(|| "[PAD]".to_string());
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|source| ModelError::Tokenizer {
                path: path.to_path_buf(),
                source,
            })?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            max_len,
            pad_id,
            pad_to_max: false,
        })
    }

    /// Number of ids the tokenizer can produce (the embedding table's rows).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Truncation length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Pads every batch to `max_len` instead of its longest row (SigLIP's text
    /// tower was trained so).
    pub fn with_max_length_padding(mut self) -> Self {
        self.pad_to_max = true;
        self
    }

    /// Whether every batch is padded to `max_len`.
    pub fn pads_to_max(&self) -> bool {
        self.pad_to_max
    }

    /// Id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The tokenizer file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encodes a batch (with special tokens), truncated and padded to the longest row.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch, ModelError> {
        let inputs: Vec<&str> = texts.to_vec();
        let encodings =
            self.inner
                .encode_batch(inputs, true)
                .map_err(|source| ModelError::Tokenizer {
                    path: self.path.clone(),
                    source,
                })?;
        let seq_len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .clamp(1, self.max_len);
        let seq_len = if self.pad_to_max {
            self.max_len
        } else {
            seq_len
        };
        let batch = encodings.len();
        let mut ids = Vec::with_capacity(batch * seq_len);
        let mut mask = Vec::with_capacity(batch * seq_len);
        for e in &encodings {
            let (row_ids, row_mask) = (e.get_ids(), e.get_attention_mask());
            for j in 0..seq_len {
                match (row_ids.get(j), row_mask.get(j)) {
                    (Some(&id), Some(&m)) => {
                        ids.push(i64::from(id));
                        mask.push(m as f32);
                    }
                    _ => {
                        ids.push(i64::from(self.pad_id));
                        mask.push(0.0);
                    }
                }
            }
        }
        Ok(TokenBatch {
            ids,
            mask,
            batch,
            seq_len,
        })
    }
}
