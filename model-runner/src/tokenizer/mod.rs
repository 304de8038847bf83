//! GGUF `gpt2` (byte-level BPE) tokenizer, built from plain metadata parts.
//!
//! Behaviour follows llama.cpp (`src/llama-vocab.cpp`), since that is what GGUF files are made
//! for:
//!
//! * **Pre-tokenization**: the regex list chosen by `tokenizer.ggml.pre` (see `pre.rs`; absent =
//!   llama.cpp's `default` list), each regex an isolated split, then GPT-2 byte→char mapping.
//! * **BPE**: merges by rank (lower index first, leftmost on ties), done by the HF `tokenizers`
//!   crate's `BPE` model; `ignore_merges` as llama.cpp sets it per `pre` family.
//! * **Special tokens** (llama.cpp `tokenizer_st_partition`): token type 4 (user-defined) is
//!   always matched whole in text; types 3 (control) and 2 (unknown) only when
//!   `parse_special` is set. Longer texts are cut out first. [`Tokenizer::encode`] does **not**
//!   parse control tokens (llama.cpp's default for prompts, `--special` off); use
//!   [`Tokenizer::encode_with_special`] to get them.
//! * **Decoding**: normal tokens are byte-level decoded to raw bytes; control / user-defined /
//!   unknown / unused tokens are shown as their text (llama.cpp `token_to_piece(special=true)`).

mod pre;
mod stream;

pub use stream::StreamDecoder;

use std::collections::HashSet;

use tokenizers::SplitDelimiterBehavior;
use tokenizers::Tokenizer as HfTokenizer;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_UNUSED: i32 = 5;

/// Token texts that end generation when present (subset of llama.cpp's EOG auto-detection).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<EOT>",
];

/// Tokenizer metadata as read from GGUF (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`; only `"gpt2"` is supported.
    pub model: String,
    /// `tokenizer.ggml.pre`; `None` selects llama.cpp's default regex list.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, index = id. Normal tokens are GPT-2 byte-level strings.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`, `"left right"`, rank = index.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, same length as `tokens` when present.
    pub token_types: Option<Vec<i32>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`; when absent, a `<|eot_id|>` token is used if present.
    pub eot: Option<u32>,
    /// Prepend BOS when encoding with `add_special`. When `tokenizer.ggml.add_bos_token` is
    /// absent, llama.cpp defaults it to true for the llama3 `pre` family (`llama-bpe`, ...);
    /// the metadata reader should apply that default.
    pub add_bos: bool,
    /// Append EOS when encoding with `add_special` (llama.cpp does the same).
    pub add_eos: bool,
}

/// Everything that can go wrong building or using a [`Tokenizer`]. No input panics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenizerError {
    #[error(
        "tokenizer model `llama` (SentencePiece/SPM) is not supported; only `gpt2` (byte-level BPE) is"
    )]
    UnsupportedSpm,
    #[error("unknown tokenizer model `{0}`; only `gpt2` (byte-level BPE) is supported")]
    UnknownModel(String),
    #[error("unknown tokenizer.ggml.pre `{pre}`; known: {known} (or absent)")]
    UnknownPre { pre: String, known: String },
    #[error("empty vocabulary")]
    EmptyVocab,
    #[error("vocabulary of {0} tokens does not fit u32 ids")]
    VocabTooLarge(usize),
    #[error("token_type has {types} entries but there are {tokens} tokens")]
    TokenTypesLength { types: usize, tokens: usize },
    #[error("{name} id {id} is out of range (vocab size {vocab_size})")]
    SpecialIdOutOfRange {
        name: &'static str,
        id: u32,
        vocab_size: usize,
    },
    #[error("add_{name}_token is set but no {name} id is given")]
    MissingSpecialId { name: &'static str },
    #[error("merge #{index} `{merge}` is not of the form `left right`")]
    MalformedMerge { index: usize, merge: String },
    #[error("merge #{index} names `{token}`, which is not in the vocabulary")]
    UnknownMergeToken { index: usize, token: String },
    #[error("token id {id} is out of range (vocab size {vocab_size})")]
    IdOutOfRange { id: u32, vocab_size: usize },
    #[error("text contains byte 0x{0:02X}, which has no byte token in this vocabulary")]
    MissingByteToken(u8),
    #[error("BPE backend: {0}")]
    Backend(String),
}

fn backend(e: tokenizers::Error) -> TokenizerError {
    TokenizerError::Backend(e.to_string())
}

/// A token matched whole in text before BPE.
#[derive(Debug, Clone)]
struct SpecialToken {
    id: u32,
    text: String,
    /// Control/unknown: matched only with `parse_special`. User-defined: always.
    needs_parse_special: bool,
}

/// Byte-level BPE tokenizer. Immutable after construction; `Send + Sync`.
#[derive(Clone)]
pub struct Tokenizer {
    /// Pre-tokenizer + BPE over text free of special tokens (no added tokens, no post-processor).
    hf: HfTokenizer,
    pre_name: &'static str,
    /// Decoded bytes of token `i` are `bytes[offsets[i]..offsets[i + 1]]`;
    /// `offsets.len() == vocab_size + 1`.
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    /// Sorted by text length, longest first (llama.cpp partition order); no empty texts.
    specials: Vec<SpecialToken>,
    /// Bytes that have no single-byte token (HF's BPE would silently drop them).
    missing_bytes: Vec<u8>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// Sorted, deduplicated end-of-generation ids.
    eog: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("pre", &self.pre_name)
            .field("specials", &self.specials.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("eog", &self.eog)
            .finish()
    }
}

/// GPT-2 `bytes_to_unicode`: printable Latin-1 bytes map to the same code point, the other 68
/// bytes to U+0100.. in byte order.
fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for (b, slot) in out.iter_mut().enumerate() {
        let b = b as u32;
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let cp = if printable {
            b
        } else {
            n += 1;
            0xFF + n
        };
        *slot = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
    }
    out
}

/// Split a GGUF merge like llama.cpp: at the first space at byte index >= 1.
fn split_merge(m: &str) -> Option<(&str, &str)> {
    let pos = m.as_bytes().get(1..)?.iter().position(|&c| c == b' ')? + 1;
    Some((&m[..pos], &m[pos + 1..]))
}

impl Tokenizer {
    /// Build and validate. Fails on anything that could later misbehave: unsupported model,
    /// unknown `pre`, empty vocab, bad `token_type` length, special ids out of range,
    /// `add_bos`/`add_eos` without an id, malformed merges or merges whose parts or result are
    /// not in the vocab. Duplicate token strings: the last id wins (llama.cpp); duplicate merges:
    /// the first rank wins (llama.cpp).
    pub fn from_spec(spec: TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        match spec.model.as_str() {
            "gpt2" => {}
            "llama" => return Err(TokenizerError::UnsupportedSpm),
            other => return Err(TokenizerError::UnknownModel(other.to_owned())),
        }
        let pre = pre::resolve(spec.pre.as_deref()).ok_or_else(|| TokenizerError::UnknownPre {
            pre: spec.pre.clone().unwrap_or_default(),
            known: pre::known_names(),
        })?;
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        if let Some(types) = &spec.token_types
            && types.len() != n
        {
            return Err(TokenizerError::TokenTypesLength {
                types: types.len(),
                tokens: n,
            });
        }
        for (name, id) in [("bos", spec.bos), ("eos", spec.eos), ("eot", spec.eot)] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(TokenizerError::SpecialIdOutOfRange {
                    name,
                    id,
                    vocab_size: n,
                });
            }
        }
        if spec.add_bos && spec.bos.is_none() {
            return Err(TokenizerError::MissingSpecialId { name: "bos" });
        }
        if spec.add_eos && spec.eos.is_none() {
            return Err(TokenizerError::MissingSpecialId { name: "eos" });
        }

        let type_of = |i: usize| spec.token_types.as_ref().map_or(1, |t| t[i]);

        // Decoded bytes table and special tokens.
        let chars = byte_chars();
        let mut char_byte = std::collections::HashMap::with_capacity(256);
        for (b, c) in chars.iter().enumerate() {
            char_byte.insert(*c, b as u8);
        }
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut specials = Vec::new();
        for (i, tok) in spec.tokens.iter().enumerate() {
            offsets.push(bytes.len());
            let ty = type_of(i);
            if matches!(
                ty,
                TYPE_UNKNOWN | TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNUSED
            ) {
                bytes.extend_from_slice(tok.as_bytes());
                if ty != TYPE_UNUSED && !tok.is_empty() {
                    specials.push(SpecialToken {
                        id: i as u32,
                        text: tok.clone(),
                        needs_parse_special: ty != TYPE_USER_DEFINED,
                    });
                }
            } else {
                // Characters outside the byte alphabet pass through as their UTF-8.
                for c in tok.chars() {
                    match char_byte.get(&c) {
                        Some(&b) => bytes.push(b),
                        None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
            }
        }
        offsets.push(bytes.len());
        specials.sort_by_key(|s| std::cmp::Reverse(s.text.len()));

        // BPE vocab (last duplicate wins) and validated merges.
        let vocab: Vocab = spec
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let missing_bytes = (0..=255u8)
            .filter(|&b| !vocab.contains_key(chars[b as usize].encode_utf8(&mut [0; 4]) as &str))
            .collect();
        let mut merges = Vec::with_capacity(spec.merges.len());
        let mut seen = HashSet::with_capacity(spec.merges.len());
        for (index, m) in spec.merges.iter().enumerate() {
            let (a, b) = split_merge(m).ok_or_else(|| TokenizerError::MalformedMerge {
                index,
                merge: m.clone(),
            })?;
            let joined = format!("{a}{b}");
            for token in [a, b, joined.as_str()] {
                if !vocab.contains_key(token) {
                    return Err(TokenizerError::UnknownMergeToken {
                        index,
                        token: token.to_owned(),
                    });
                }
            }
            if seen.insert((a, b)) {
                merges.push((a.to_owned(), b.to_owned()));
            }
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(pre.ignore_merges)
            .build()
            .map_err(backend)?;

        let mut steps = pre
            .regexes
            .iter()
            .map(|r| {
                Split::new(
                    SplitPattern::Regex((*r).to_owned()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map(PreTokenizerWrapper::from)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        steps.push(ByteLevel::new(false, true, false).into());
        let mut hf = HfTokenizer::new(bpe);
        hf.with_pre_tokenizer(Some(Sequence::new(steps)));

        let find = |text: &str| spec.tokens.iter().position(|t| t == text).map(|i| i as u32);
        let eot = spec.eot.or_else(|| find("<|eot_id|>"));
        let mut eog: Vec<u32> = spec.eos.into_iter().chain(eot).collect();
        eog.extend(EOG_TEXTS.iter().filter_map(|t| find(t)));
        eog.sort_unstable();
        eog.dedup();

        Ok(Tokenizer {
            hf,
            pre_name: pre.name,
            bytes,
            offsets,
            specials,
            missing_bytes,
            bos: spec.bos,
            eos: spec.eos,
            eot,
            add_bos: spec.add_bos,
            add_eos: spec.add_eos,
            eog,
        })
    }

    /// Encode prompt text. `add_special`: prepend BOS if `add_bos` (and append EOS if
    /// `add_eos`). Control tokens written in `text` are **not** recognised (tokenized as plain
    /// text); user-defined tokens are. Same as `encode_with_special(text, add_special, false)`.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with_special(text, add_special, false)
    }

    /// Like [`encode`](Self::encode); with `parse_special`, control tokens (e.g.
    /// `<|eot_id|>`) written in `text` become their single id.
    pub fn encode_with_special(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos); // validated Some in from_spec
        }
        for frag in self.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(s) => self.encode_plain(s, &mut out)?,
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// BPE-encode text that contains no special tokens.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if !self.missing_bytes.is_empty()
            && let Some(b) = text.bytes().find(|b| self.missing_bytes.contains(b))
        {
            return Err(TokenizerError::MissingByteToken(b));
        }
        let enc = self.hf.encode_fast(text, false).map_err(backend)?;
        out.extend_from_slice(enc.get_ids());
        Ok(())
    }

    /// llama.cpp `tokenizer_st_partition`: cut special-token occurrences out of the text, one
    /// special token at a time, longest text first, each over all remaining text fragments.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        for sp in &self.specials {
            if (sp.needs_parse_special && !parse_special) || !text.contains(sp.text.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for frag in frags {
                let Fragment::Text(mut rest) = frag else {
                    next.push(frag);
                    continue;
                };
                while let Some(pos) = rest.find(sp.text.as_str()) {
                    if pos > 0 {
                        next.push(Fragment::Text(&rest[..pos]));
                    }
                    next.push(Fragment::Token(sp.id));
                    rest = &rest[pos + sp.text.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }

    /// Decode ids to text: token bytes concatenated, invalid UTF-8 replaced by U+FFFD.
    /// Special/control tokens appear as their text.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut buf = Vec::new();
        for &id in ids {
            buf.extend_from_slice(self.bytes_of(id)?);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Raw bytes of one token (byte-level decoded; special tokens: their text). A token may be
    /// part of a multi-byte UTF-8 character, so this is not necessarily valid UTF-8.
    pub fn token_bytes(&self, id: u32) -> Result<Vec<u8>, TokenizerError> {
        self.bytes_of(id).map(<[u8]>::to_vec)
    }

    pub(crate) fn bytes_of(&self, id: u32) -> Result<&[u8], TokenizerError> {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => Ok(&self.bytes[a..b]),
            _ => Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size(),
            }),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// End-of-turn id: `tokenizer.ggml.eot_token_id`, else `<|eot_id|>` if in the vocab.
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }

    /// Whether `add_special` encoding prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Canonical name of the pre-tokenizer family in use (`default`, `llama3`, `gpt2`, ...).
    pub fn pre_name(&self) -> &'static str {
        self.pre_name
    }

    /// True for EOS, EOT and tokens whose text is a known end marker (`<|eot_id|>`,
    /// `<|eom_id|>`, `<|end_of_text|>`, `<|endoftext|>`, `<|im_end|>`, `<|end|>`,
    /// `<end_of_turn>`, `<EOT>`). False for out-of-range ids.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
}

/// A piece of input text: plain text for BPE, or an already-matched special token.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byte_vocab() -> Vec<String> {
        byte_chars().iter().map(|c| c.to_string()).collect()
    }

    fn spec(tokens: Vec<String>, merges: &[&str]) -> TokenizerSpec {
        TokenizerSpec {
            model: "gpt2".into(),
            tokens,
            merges: merges.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn tokenizer_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tokenizer>();
    }

    #[test]
    fn byte_chars_is_gpt2_mapping() {
        let c = byte_chars();
        assert_eq!(c[b' ' as usize], 'Ġ');
        assert_eq!(c[b'\n' as usize], 'Ċ');
        assert_eq!(c[b'!' as usize], '!');
        assert_eq!(c[0xAD], '\u{143}'); // last of the 68 remapped bytes
        assert_eq!(c.iter().collect::<HashSet<_>>().len(), 256);
    }

    #[test]
    fn split_merge_like_llama_cpp() {
        assert_eq!(split_merge("Ġ t"), Some(("Ġ", "t")));
        assert_eq!(split_merge("a b c"), Some(("a", "b c")));
        assert_eq!(split_merge(""), None);
        assert_eq!(split_merge(" "), None);
        assert_eq!(split_merge("ab"), None);
    }

    #[test]
    fn errors_not_panics() {
        use TokenizerError as E;
        let mk = |f: &dyn Fn(&mut TokenizerSpec)| {
            let mut s = spec(byte_vocab(), &[]);
            f(&mut s);
            Tokenizer::from_spec(s).map(|_| ())
        };
        assert_eq!(mk(&|s| s.model = "llama".into()), Err(E::UnsupportedSpm));
        assert!(matches!(
            mk(&|s| s.model = "bert".into()),
            Err(E::UnknownModel(_))
        ));
        assert!(matches!(
            mk(&|s| s.pre = Some("nope".into())),
            Err(E::UnknownPre { .. })
        ));
        assert_eq!(mk(&|s| s.tokens.clear()), Err(E::EmptyVocab));
        assert!(matches!(
            mk(&|s| s.token_types = Some(vec![1])),
            Err(E::TokenTypesLength { .. })
        ));
        assert!(matches!(
            mk(&|s| s.bos = Some(256)),
            Err(E::SpecialIdOutOfRange { .. })
        ));
        assert!(matches!(
            mk(&|s| s.add_bos = true),
            Err(E::MissingSpecialId { name: "bos" })
        ));
        assert!(matches!(
            mk(&|s| s.merges = vec!["ab".into()]),
            Err(E::MalformedMerge { .. })
        ));
        assert!(matches!(
            mk(&|s| s.merges = vec!["a ζ".into()]),
            Err(E::UnknownMergeToken { .. })
        ));
        // Both parts known but the result is not: must be an error, not a backend panic.
        assert!(matches!(
            mk(&|s| s.merges = vec!["a b".into()]),
            Err(E::UnknownMergeToken { .. })
        ));
        for p in ["default", "gpt-2", "llama-bpe", "llama3", "qwen2", "smollm"] {
            assert_eq!(mk(&|s| s.pre = Some(p.into())), Ok(()), "{p}");
        }
    }

    #[test]
    fn default_pre_splits_like_llama_cpp() {
        // Byte tokens have id = byte value here; merges make piece boundaries observable.
        let mut toks = byte_vocab();
        toks.push("12".into());
        toks.push("34".into());
        let mk = |pre: Option<&str>| {
            let mut s = spec(toks.clone(), &["1 2", "3 4"]);
            s.pre = pre.map(str::to_owned);
            Tokenizer::from_spec(s).unwrap()
        };
        // Default: `\p{N}+` then `[0-9][0-9][0-9]` cut "1234" into "123" "4".
        let ids = mk(None).encode("1234", false).unwrap();
        assert_eq!(ids, vec![256, u32::from(b'3'), u32::from(b'4')]);
        assert_eq!(mk(None).decode(&ids).unwrap(), "1234");
        // gpt-2: one number piece, both merges apply.
        assert_eq!(
            mk(Some("gpt-2")).encode("1234", false).unwrap(),
            vec![256, 257]
        );
    }

    #[test]
    fn out_of_range_ids() {
        let t = Tokenizer::from_spec(spec(byte_vocab(), &[])).unwrap();
        assert!(t.decode(&[256]).is_err());
        assert!(t.token_bytes(u32::MAX).is_err());
        assert!(!t.is_end_of_generation(u32::MAX));
        assert_eq!(t.token_bytes(u32::from(b'A')).unwrap(), b"A");
    }

    #[test]
    fn missing_byte_token_is_an_error() {
        let mut toks = byte_vocab();
        toks[usize::from(b'!')] = "<unused>".into(); // byte '!' no longer has a token
        let t = Tokenizer::from_spec(spec(toks, &[])).unwrap();
        assert_eq!(
            t.encode("hi!", false),
            Err(TokenizerError::MissingByteToken(b'!'))
        );
        assert!(t.encode("hi", false).is_ok());
    }
}
