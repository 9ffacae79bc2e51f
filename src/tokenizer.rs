//! OpenAI CLIP's byte-pair-encoding tokenizer.
//!
//! Wraps `instant-clip-tokenizer` with OpenAI's vocabulary and adds what CLIP's
//! `clip.tokenize` does around it: the start token 49406, the end token 49407, zero padding to
//! the context length, and truncation that keeps the end token as the last token.

use instant_clip_tokenizer::{Token, Tokenizer};

/// CLIP's start-of-text token id.
pub const START_OF_TEXT: u32 = 49406;
/// CLIP's end-of-text token id; the text tower pools the position of this token.
pub const END_OF_TEXT: u32 = 49407;
/// CLIP's vocabulary: 256 bytes, the same with an end-of-word mark, 48,894 merges and the two
/// marker tokens.
const VOCABULARY_SIZE: u16 = 49408;

/// The part of OpenAI's `bpe_simple_vocab_16e6.txt` (MIT, from the CLIP repository) that a
/// vocabulary of [`VOCABULARY_SIZE`] reads: its header line and first 48,894 merges, 0.5 MB. The
/// whole file, which `instant-clip-tokenizer` embeds by default, is 3.2 MB and was the largest
/// single item in the WebAssembly module's data.
const BPE_MERGES: &[u8] = include_bytes!("../data/clip/bpe-merges.txt");

/// CLIP's context length (tokens per text).
pub const CONTEXT_LENGTH: usize = 77;

/// A CLIP tokenizer. Building one parses the vocabulary (a few tens of milliseconds):
/// build it once and reuse it.
pub struct ClipTokenizer {
    inner: Tokenizer,
}

impl Default for ClipTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipTokenizer {
    /// A tokenizer with OpenAI's CLIP vocabulary (49,408 tokens).
    pub fn new() -> Self {
        let inner = Tokenizer::with_vocabulary(std::io::Cursor::new(BPE_MERGES), VOCABULARY_SIZE)
            .expect("the bundled BPE merges are valid");
        Self { inner }
    }

    /// Tokenizes one text into exactly `context_length` ids: start token, the text's BPE tokens
    /// (lower-cased), end token, then zeros. A text too long is cut so that the end token stays.
    pub fn tokenize(&self, text: &str, context_length: usize) -> Vec<u32> {
        let context_length = context_length.max(2);
        let mut tokens: Vec<Token> = Vec::with_capacity(context_length);
        self.inner.encode(text, &mut tokens);
        let mut ids = Vec::with_capacity(context_length);
        ids.push(START_OF_TEXT);
        ids.extend(tokens.iter().take(context_length - 2).map(|t| u32::from(t.to_u16())));
        ids.push(END_OF_TEXT);
        ids.resize(context_length, 0);
        ids
    }

    /// Tokenizes several texts into a row-major `[texts, context_length]` array.
    pub fn tokenize_batch<S: AsRef<str>>(&self, texts: &[S], context_length: usize) -> Vec<u32> {
        texts.iter().flat_map(|t| self.tokenize(t.as_ref(), context_length)).collect()
    }
}
