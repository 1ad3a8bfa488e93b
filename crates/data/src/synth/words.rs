//! The synthetic vocabulary of the sample's texts, and its tokenizer.
//!
//! Texts are a few neutral words, sometimes a meaningless decoy word, and one
//! *trigger* word per label whose text signal is on. All trigger and decoy words
//! are invented (no abusive language): the structure is what matters. The
//! tokenizer is a Hugging Face `tokenizers` WordLevel model over exactly these
//! words with BERT special tokens (`[PAD]` = 0, `[UNK]`, `[CLS]`, `[SEP]`,
//! `[MASK]`) and a BERT post-processor, so the from-scratch text tower of
//! `configs/tiny.yaml` can use it like a pretrained BERT's tokenizer.

use std::str::FromStr;

use serde_json::json;

use crate::error::DataError;
use crate::rng::SplitMix64;

/// Everyday filler words.
pub const NEUTRAL: [&str; 40] = [
    "look", "at", "this", "today", "picture", "my", "friend", "weekend", "sunny", "park", "coffee",
    "morning", "cat", "dog", "garden", "street", "market", "train", "river", "music", "lunch",
    "city", "photo", "new", "old", "great", "nice", "day", "with", "and", "on", "in", "again",
    "really", "what", "see", "here", "our", "evening", "walk",
];

/// Invented words without meaning (noise a text-only model must learn to ignore).
pub const DECOY: [&str; 8] = [
    "plim", "wobnet", "sarvo", "keltic", "domber", "frindle", "yaxo", "mopsel",
];

/// Invented trigger words, three per label, in label order
/// (hate, harassment, violence, self_harm, spam).
pub const TRIGGERS: [[&str; 3]; 5] = [
    ["blorf", "snarkle", "grimble"],
    ["quazz", "zibber", "fenwick"],
    ["krang", "vorpa", "thrak"],
    ["lornish", "wispen", "drabble"],
    ["dealio", "clickz", "promoz"],
];

/// A text whose text signals are `triggers`.
pub fn text(rng: &mut SplitMix64, triggers: [bool; 5]) -> String {
    let n = rng.range(3, 6);
    let mut words: Vec<&str> = (0..n).map(|_| *rng.pick(&NEUTRAL)).collect();
    if rng.chance(0.5) {
        let at = rng.below(words.len() + 1);
        words.insert(at, *rng.pick(&DECOY));
    }
    for (l, on) in triggers.iter().enumerate() {
        if *on {
            let at = rng.below(words.len() + 1);
            words.insert(at, *rng.pick(&TRIGGERS[l]));
        }
    }
    words.join(" ")
}

/// The tokenizer JSON (pretty-printed by the `tokenizers` crate itself, so it is
/// exactly what `Tokenizer::from_file` reads back).
pub fn tokenizer_json() -> Result<String, DataError> {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut words: Vec<&str> = NEUTRAL
        .iter()
        .chain(DECOY.iter())
        .chain(TRIGGERS.iter().flatten())
        .copied()
        .collect();
    words.sort_unstable();
    words.dedup();
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials.iter().chain(words.iter()).enumerate() {
        vocab.insert((*w).to_string(), json!(i));
    }
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
                       "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    let err = |e: &dyn std::fmt::Display| DataError::Tokenizer {
        message: e.to_string(),
    };
    let tok = tokenizers::Tokenizer::from_str(&spec.to_string()).map_err(|e| err(&e))?;
    let mut out = tok.to_string(true).map_err(|e| err(&e))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_encodes_the_vocabulary_with_bert_specials() {
        let json = tokenizer_json().unwrap();
        assert_eq!(json, tokenizer_json().unwrap());
        let tok = tokenizers::Tokenizer::from_str(&json).unwrap();
        assert_eq!(tok.token_to_id("[PAD]"), Some(0));
        let enc = tok.encode("Look at THIS blorf", true).unwrap();
        let ids = enc.get_ids();
        assert_eq!(ids.first(), Some(&2));
        assert_eq!(ids.last(), Some(&3));
        assert!(
            !ids.contains(&1),
            "every sample word is in the vocabulary: {ids:?}"
        );
        assert_eq!(tok.encode("unseenword", true).unwrap().get_ids()[1], 1);
    }

    #[test]
    fn text_contains_its_triggers() {
        let mut rng = SplitMix64::new(1);
        let t = text(&mut rng, [true, false, false, false, true]);
        assert!(TRIGGERS[0].iter().any(|w| t.split(' ').any(|x| x == *w)));
        assert!(TRIGGERS[4].iter().any(|w| t.split(' ').any(|x| x == *w)));
        assert!(!TRIGGERS[2].iter().any(|w| t.split(' ').any(|x| x == *w)));
    }
}
