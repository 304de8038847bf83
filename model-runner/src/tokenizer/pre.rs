//! `tokenizer.ggml.pre` → split regexes, mirroring llama.cpp (`src/llama-vocab.cpp`,
//! `llm_tokenizer_bpe` constructor and the `tokenizer_pre == ...` table in `llama_vocab::load`).
//!
//! Each regex list is applied in order, every regex splitting each piece left by the previous
//! one into matches *and* the gaps between them (llama.cpp `unicode_regex_split`; HF
//! `Split(behavior = Isolated)`). Regexes run on the piece only: look-arounds never see across
//! a piece boundary (llama.cpp: `OUT_OF_RANGE`), which is exactly what a `Sequence` of HF
//! `Split`s does.

/// GPT-2 word regex. llama.cpp lists it without the final `|\s+`, but routes that string to
/// `unicode_regex_split_custom_gpt2`, whose documented (and implemented) regex ends in `|\s+`;
/// with gaps kept the two are equivalent anyway.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// LLaMA-3 regex in llama.cpp's adapted form: `(?i:'s|...)` spelled out as `'[sS]|...` so the
/// case-insensitive contractions cannot match non-ASCII case variants such as `'ſ` (U+017F).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2 regex (LLaMA-3 with single digits), llama.cpp's adapted form.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A resolved pre-tokenizer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PreSpec {
    /// Canonical family name (for messages).
    pub name: &'static str,
    /// Regexes applied in sequence (isolated splits).
    pub regexes: &'static [&'static str],
    /// llama.cpp `ignore_merges`: a pre-token that is itself a vocab entry is emitted whole.
    pub ignore_merges: bool,
}

/// llama.cpp `LLAMA_VOCAB_PRE_TYPE_DEFAULT`: used when `tokenizer.ggml.pre` is absent (with the
/// "GENERATION QUALITY WILL BE DEGRADED" warning) or is `"default"`. Punctuation runs are cut
/// out first, then the GPT-2 rule, then number runs, then groups of three ASCII digits.
const DEFAULT: PreSpec = PreSpec {
    name: "default",
    regexes: &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    ignore_merges: false,
};

/// `(names, family)`: every accepted `tokenizer.ggml.pre` value.
const TABLE: &[(&[&str], PreSpec)] = &[
    (&["default"], DEFAULT),
    (
        &["llama3", "llama-v3", "llama-bpe", "falcon3"],
        PreSpec {
            name: "llama3",
            regexes: &[LLAMA3],
            ignore_merges: true,
        },
    ),
    (
        &["gpt-2", "phi-2", "mpt", "olmo"],
        PreSpec {
            name: "gpt2",
            regexes: &[GPT2],
            ignore_merges: false,
        },
    ),
    (
        &["qwen2", "stablelm2"],
        PreSpec {
            name: "qwen2",
            regexes: &[QWEN2],
            ignore_merges: false,
        },
    ),
    (
        &["starcoder", "refact", "smollm", "codeshell"],
        PreSpec {
            name: "starcoder",
            regexes: &[r"\p{N}", GPT2],
            ignore_merges: false,
        },
    ),
];

/// All accepted `pre` names, comma separated (for the error message).
pub(super) fn known_names() -> String {
    TABLE
        .iter()
        .flat_map(|(names, _)| names.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolve `tokenizer.ggml.pre`; `None` (or an empty string, which GGUF writers drop) is the
/// llama.cpp default. Unknown names are `None` (llama.cpp refuses them too).
pub(super) fn resolve(pre: Option<&str>) -> Option<PreSpec> {
    match pre {
        None | Some("") => Some(DEFAULT),
        Some(p) => TABLE
            .iter()
            .find(|(names, _)| names.contains(&p))
            .map(|(_, spec)| *spec),
    }
}
