//! The GPT-2-style byte-level BPE tokenizer, rebuilt from a GGUF file's metadata
//! (`tokenizer.ggml.*`), as llama.cpp runs it: control tokens are matched in the text first, the
//! rest is split by the model's pre-tokenizer regexes, each piece is mapped byte → unicode and
//! merged by rank.
//!
//! Pre-tokenizers (`tokenizer.ggml.pre`) implemented: `smollm` (digits one by one, then the
//! GPT-2 pattern), `gpt2` and `default` (the GPT-2 pattern), `llama3`, `qwen2`.

use std::collections::HashMap;
use std::sync::Mutex;

use fancy_regex::Regex;

/// Why a tokenizer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A metadata key is missing or of the wrong type.
    #[error("GGUF tokenizer metadata: {0}")]
    Metadata(String),
    /// The model uses a tokenizer this build does not implement.
    #[error(
        "unsupported tokenizer {0}: this build implements gpt2-style BPE (SmolLM, Llama 3, Qwen2)"
    )]
    Unsupported(String),
}

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A byte-level BPE tokenizer.
pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), u32>,
    /// Control tokens (type 3) and user-defined ones (type 4), longest first.
    specials: Vec<(String, u32)>,
    special_ids: Vec<bool>,
    splitters: Vec<Regex>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence (and end of turn).
    pub eos: Vec<u32>,
    /// Whether a BOS token starts every prompt.
    pub add_bos: bool,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.tokens.len())
            .field("merges", &self.ranks.len())
            .finish_non_exhaustive()
    }
}

/// GPT-2's reversible byte → printable char map.
fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        map[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    map
}

/// What the tokenizer needs from the GGUF metadata.
pub struct Vocabulary {
    /// `tokenizer.ggml.model`.
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (1 normal, 3 control, 4 user-defined, 6 byte).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, `"a b"`.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id` and `eot_token_id`.
    pub eos: Vec<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
}

impl Tokenizer {
    /// Builds the tokenizer.
    pub fn new(v: Vocabulary) -> Result<Tokenizer, TokenizerError> {
        if v.model != "gpt2" {
            return Err(TokenizerError::Unsupported(format!("model {:?}", v.model)));
        }
        let patterns: Vec<&str> = match v.pre.as_str() {
            "smollm" => vec![r"\p{N}", GPT2],
            "gpt2" | "default" | "" => vec![GPT2],
            "llama3" | "llama-bpe" => vec![LLAMA3],
            "qwen2" => vec![QWEN2],
            other => {
                return Err(TokenizerError::Unsupported(format!(
                    "pre-tokenizer {other:?}"
                )))
            }
        };
        let splitters = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| TokenizerError::Metadata(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: HashMap<String, u32> = v
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut ranks = HashMap::with_capacity(v.merges.len());
        for (rank, merge) in v.merges.iter().enumerate() {
            let (a, b) = merge.split_once(' ').ok_or_else(|| {
                TokenizerError::Metadata(format!("merge {merge:?} is not \"a b\""))
            })?;
            ranks.insert((a.to_string(), b.to_string()), rank as u32);
        }
        let mut specials: Vec<(String, u32)> = Vec::new();
        let mut special_ids = vec![false; v.tokens.len()];
        for (i, t) in v.tokens.iter().enumerate() {
            if matches!(v.token_types.get(i), Some(3) | Some(4)) {
                specials.push((t.clone(), i as u32));
                special_ids[i] = v.token_types.get(i) == Some(&3);
            }
        }
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let byte_to_char = bytes_to_unicode();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, c)| (*c, b as u8))
            .collect();
        Ok(Tokenizer {
            tokens: v.tokens,
            ids,
            ranks,
            specials,
            special_ids,
            splitters,
            byte_to_char,
            char_to_byte,
            bos: v.bos,
            eos: v.eos,
            add_bos: v.add_bos,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Whether `id` is a control token (never shown in answers).
    pub fn is_control(&self, id: u32) -> bool {
        self.special_ids.get(id as usize).copied().unwrap_or(false)
    }

    /// Tokens of `text`. With `parse_special`, control tokens written in the text (as chat
    /// templates do) become their ids; otherwise they are ordinary text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if self.add_bos {
            out.extend(self.bos);
        }
        let mut rest = text;
        while !rest.is_empty() {
            let next = if parse_special {
                self.specials
                    .iter()
                    .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                    .min_by_key(|(at, len, _)| (*at, usize::MAX - len))
            } else {
                None
            };
            match next {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut pieces = vec![text.to_string()];
        for splitter in &self.splitters {
            let mut next = Vec::new();
            for piece in &pieces {
                let mut last = 0;
                for m in splitter.find_iter(piece).flatten() {
                    if m.start() > last {
                        next.push(piece[last..m.start()].to_string());
                    }
                    next.push(m.as_str().to_string());
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(piece[last..].to_string());
                }
            }
            pieces = next;
        }
        for piece in pieces {
            self.bpe(&piece, out);
        }
    }

    fn bpe(&self, piece: &str, out: &mut Vec<u32>) {
        if let Some(ids) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(piece)
        {
            out.extend_from_slice(ids);
            return;
        }
        let mut symbols: Vec<String> = piece
            .bytes()
            .map(|b| self.byte_to_char[b as usize].to_string())
            .collect();
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", symbols[i], symbols[i + 1]);
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        let mut ids = Vec::with_capacity(symbols.len());
        for s in &symbols {
            match self.ids.get(s) {
                Some(id) => ids.push(*id),
                // Not in the vocabulary: fall back to its single bytes.
                None => ids.extend(
                    s.chars()
                        .filter_map(|c| self.ids.get(&c.to_string()).copied()),
                ),
            }
        }
        out.extend_from_slice(&ids);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() < 100_000 {
            cache.insert(piece.to_string(), ids);
        }
    }

    /// The bytes of token `id` (control tokens give their text).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(token) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        if self.special_ids.get(id as usize).copied().unwrap_or(false) {
            return token.as_bytes().to_vec();
        }
        token
            .chars()
            .map(|c| match self.char_to_byte.get(&c) {
                Some(b) => vec![*b],
                None => c.to_string().into_bytes(),
            })
            .collect::<Vec<_>>()
            .concat()
    }

    /// The text of `ids` (invalid UTF-8 replaced), control tokens left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|id| !self.is_control(**id))
            .flat_map(|id| self.token_bytes(*id))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Turns a stream of token bytes into text pieces, holding back an incomplete UTF-8 sequence
/// until its last byte arrives.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds `bytes` and returns the text that is complete now.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let text = text.to_string();
                self.pending.clear();
                text
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // A sequence that can never complete is replaced now.
                if e.error_len().is_some() {
                    let text = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return text;
                }
                let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                text
            }
        }
    }

    /// What is left at the end.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Tokenizer {
        let byte_to_char = bytes_to_unicode();
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<|im_start|>".into()];
        tokens.extend((0..=255u8).map(|b| byte_to_char[b as usize].to_string()));
        tokens.extend([
            "he".into(),
            "ll".into(),
            "hell".into(),
            "hello".into(),
            "Ġw".into(),
        ]);
        let mut types = vec![3, 3];
        types.extend(std::iter::repeat_n(1, tokens.len() - 2));
        Tokenizer::new(Vocabulary {
            model: "gpt2".into(),
            pre: "smollm".into(),
            tokens,
            token_types: types,
            merges: vec![
                "h e".into(),
                "l l".into(),
                "he ll".into(),
                "hell o".into(),
                "Ġ w".into(),
            ],
            bos: Some(1),
            eos: vec![0],
            add_bos: false,
        })
        .unwrap()
    }

    #[test]
    fn merges_by_rank_splits_digits_and_round_trips_bytes() {
        let t = toy();
        let ids = t.encode("hello world 42 é", false);
        assert_eq!(t.decode(&ids), "hello world 42 é");
        assert_eq!(ids[0], t.ids["hello"]);
        assert_eq!(ids[1], t.ids["Ġw"]);
        // Digits one by one (smollm): "4" and "2" are separate pieces.
        let four = t.ids[&'4'.to_string()];
        let two = t.ids[&'2'.to_string()];
        assert!(ids.windows(2).any(|w| w == [four, two]));
    }

    #[test]
    fn control_tokens_are_parsed_only_when_asked_and_never_decoded() {
        let t = toy();
        let ids = t.encode("<|im_start|>hello", true);
        assert_eq!(ids[0], 1);
        assert_eq!(t.decode(&ids), "hello");
        let plain = t.encode("<|im_start|>", false);
        assert!(plain.len() > 1 && !plain.contains(&1));
    }

    #[test]
    fn utf8_stream_holds_back_split_characters() {
        let mut s = Utf8Stream::default();
        let bytes = "é!".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..]), "é!");
        assert_eq!(s.push(&[0xff]), "\u{fffd}");
        assert_eq!(s.push(&[0xe2, 0x82]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
