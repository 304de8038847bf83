//! Tokenizer against the tiny model's `tokenizer.json` (see `models/README.md`, "Tokenizer").
//!
//! The spec is built from the JSON by hand (as the GGUF reader would from metadata) and
//! cross-checked id-for-id against HF `tokenizers` loading the same file.

use bitnet_runner::tokenizer::{StreamDecoder, Tokenizer, TokenizerSpec};
use serde_json::Value;

const JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tokenizer.json");
const BOS: u32 = 1022;
const EOS: u32 = 1023;

fn spec_with_pre(pre: Option<&str>) -> TokenizerSpec {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(JSON).unwrap()).unwrap();
    let model = &json["model"];
    let mut tokens = vec![String::new(); 1024];
    for (tok, id) in model["vocab"].as_object().unwrap() {
        tokens[id.as_u64().unwrap() as usize] = tok.clone();
    }
    for added in json["added_tokens"].as_array().unwrap() {
        tokens[added["id"].as_u64().unwrap() as usize] = added["content"].as_str().unwrap().into();
    }
    assert!(tokens.iter().all(|t| !t.is_empty()));
    // Merges are `["a", "b"]` pairs in the file; GGUF stores `"a b"`.
    let merges = model["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Value::Array(p) => format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()),
            Value::String(s) => s.clone(),
            other => panic!("bad merge {other}"),
        })
        .collect();
    let mut types = vec![1; 1024];
    types[BOS as usize] = 3;
    types[EOS as usize] = 3;
    TokenizerSpec {
        model: "gpt2".into(),
        pre: pre.map(str::to_owned),
        tokens,
        merges,
        token_types: Some(types),
        bos: Some(BOS),
        eos: Some(EOS),
        eot: None,
        add_bos: true,
        add_eos: false,
    }
}

fn tiny() -> Tokenizer {
    Tokenizer::from_spec(spec_with_pre(Some("llama-bpe"))).unwrap()
}

/// Small deterministic PRNG (xorshift64*), so the tests need no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A random char: mostly ASCII / whitespace, sometimes Latin-1, CJK, emoji or any scalar.
    fn char(&mut self) -> char {
        const PICK: &[char] = &[
            ' ', ' ', '\n', '\t', '\r', '\'', '.', ',', '!', '0', '7', 'é', 'ß', 'ſ', 'Ω', 'я',
            '中', '文', '😀', '👍', '\u{301}', '\u{a0}', '\u{3000}', '\u{200b}',
        ];
        match self.below(10) {
            0..=3 => (b' ' + self.below(95) as u8) as char,
            4..=5 => PICK[self.below(PICK.len())],
            6 => char::from_u32(0xA0 + self.below(0x500) as u32).unwrap_or('x'),
            7 => char::from_u32(0x4E00 + self.below(0x5000) as u32).unwrap_or('x'),
            8 => char::from_u32(0x1F300 + self.below(0x300) as u32).unwrap_or('x'),
            _ => loop {
                if let Some(c) = char::from_u32(self.below(0x11_0000) as u32) {
                    break c;
                }
            },
        }
    }
    fn string(&mut self, max_len: usize) -> String {
        (0..self.below(max_len + 1)).map(|_| self.char()).collect()
    }
}

/// A few hundred varied strings (no special-token texts in them).
fn corpus() -> Vec<String> {
    let fixed = [
        "",
        " ",
        "  ",
        "\n",
        "\n\n\n",
        "\t",
        "The meaning of life is",
        "A fool and his money",
        "Hello, world!",
        "hello   world   ",
        "  leading and trailing  ",
        "I'm sure you'll see they've done it; we'd've known. It's JOHN'S, DON'T!",
        "Numbers: 1 12 123 1234 12345 123456 1234567 3.14159 -42 1,000,000",
        "tabs\tand\ttabs\t\tdouble",
        "line one\nline two\r\nline three\n\n  indented\n\t\tmore",
        "punctuation!!! ??? ... --- ((())) [[]] {{}} <<>> @#$%^&*_+=|\\/~`",
        "mixed: a1b2c3 x_y-z foo.bar(baz)",
        "Ünïcödé lëttërs: café naïve façade Straße Ωμέγα привет мир",
        "emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
        "CJK: 中文字符测试 日本語のテキスト 한국어 텍스트",
        "Arabic: مرحبا بالعالم, Hebrew: שלום עולם, Hindi: नमस्ते दुनिया",
        "combining: e\u{301} a\u{308} n\u{303}",
        "zero\u{200b}width and nbsp\u{a0}here and ideographic\u{3000}space",
        "ſ long s 'ſ and Kelvin K",
        "code: fn main() { println!(\"{}\", x + 1); }\n    return 0;",
        "  \n  \n\t \r\n ",
        "'s 't 're 've 'm 'll 'd 'S 'T 'RE",
        "a'b'c''d'''e",
    ];
    let mut out: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    out.extend([
        "x".repeat(200),
        " ".repeat(50),
        "1".repeat(40),
        "\n".repeat(9),
    ]);
    let words = [
        "the", " quick", " brown", " fox", "!", " 2024", "\n", "  ", "\t", "é", " 中文", "😀",
        "'s", " don't", "...", " ", "A", "ß",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    while out.len() < 300 {
        let n = 1 + rng.below(12);
        let s: String = (0..n)
            .map(|_| {
                if rng.below(4) == 0 {
                    rng.string(4)
                } else {
                    words[rng.below(words.len())].to_string()
                }
            })
            .collect();
        out.push(s);
    }
    out
}

#[test]
fn readme_examples() {
    let t = tiny();
    assert_eq!(
        t.encode("The meaning of life is", true).unwrap(),
        [1022, 316, 422, 269, 278, 289, 688, 299]
    );
    assert_eq!(
        t.encode("A fool and his money", true).unwrap(),
        [1022, 32, 279, 779, 302, 470, 275, 1021]
    );
    assert_eq!(
        t.encode("The meaning of life is", false).unwrap(),
        [316, 422, 269, 278, 289, 688, 299]
    );
    assert_eq!(
        t.decode(&[1022, 316, 422]).unwrap(),
        "<|begin_of_text|>The me"
    );
    assert_eq!(t.vocab_size(), 1024);
    assert_eq!((t.bos(), t.eos()), (Some(BOS), Some(EOS)));
}

#[test]
fn matches_hf_tokenizers_on_corpus() {
    let ours = tiny();
    let hf = tokenizers::Tokenizer::from_file(JSON).unwrap();
    let corpus = corpus();
    assert!(corpus.len() >= 300);
    for s in &corpus {
        let want = hf.encode(s.as_str(), false).unwrap().get_ids().to_vec();
        let got = ours.encode(s, false).unwrap();
        assert_eq!(got, want, "ids differ for {s:?}");
        assert_eq!(ours.decode(&got).unwrap(), *s, "round trip of {s:?}");
    }
}

#[test]
fn random_strings_match_hf_and_round_trip() {
    let ours = tiny();
    let hf = tokenizers::Tokenizer::from_file(JSON).unwrap();
    let mut rng = Rng(42);
    for _ in 0..500 {
        let s = rng.string(40);
        let ids = ours.encode(&s, false).unwrap();
        assert_eq!(ours.decode(&ids).unwrap(), s);
        // `(?i:'s)` in the HF regex also matches `'ſ`; llama.cpp's form does not.
        if !s.contains('ſ') {
            assert_eq!(
                ids,
                hf.encode(s.as_str(), false).unwrap().get_ids(),
                "{s:?}"
            );
        }
    }
}

#[test]
fn special_tokens_in_text() {
    let t = tiny();
    let hf = tokenizers::Tokenizer::from_file(JSON).unwrap();
    let s = "Hi<|end_of_text|> there<|begin_of_text|>x";
    // Default: control tokens are plain text.
    let plain = t.encode(s, false).unwrap();
    assert!(!plain.contains(&EOS) && !plain.contains(&BOS));
    assert_eq!(t.decode(&plain).unwrap(), s);
    // parse_special: matched whole, as HF does for its special added tokens.
    let parsed = t.encode_with_special(s, false, true).unwrap();
    assert_eq!(parsed, hf.encode(s, false).unwrap().get_ids());
    assert!(parsed.contains(&EOS) && parsed.contains(&BOS));
    assert_eq!(t.decode(&parsed).unwrap(), s);
    assert!(t.is_end_of_generation(EOS));
    assert!(
        !t.is_end_of_generation(BOS) && !t.is_end_of_generation(5) && !t.is_end_of_generation(9999)
    );
}

#[test]
fn stream_decoder_holds_back_partial_chars() {
    let t = tiny();
    let text = "naïve café — 中文字符 😀👍🏽 done\n";
    let ids = t.encode(text, false).unwrap();
    let mut dec = StreamDecoder::new(&t);
    let mut out = String::new();
    let mut held_back = 0;
    for &id in &ids {
        let chunk = dec.push(id).unwrap();
        assert!(!chunk.contains('\u{FFFD}'), "chunk {chunk:?}");
        if chunk.is_empty() {
            held_back += 1;
        }
        out.push_str(&chunk);
    }
    assert!(
        held_back > 0,
        "text should split multi-byte chars across tokens"
    );
    assert_eq!(dec.finish(), "");
    assert_eq!(out, text);
}

#[test]
fn stream_decoder_random_ids_equal_lossy_decode() {
    let t = tiny();
    let mut rng = Rng(7);
    for _ in 0..300 {
        let ids: Vec<u32> = (0..rng.below(30)).map(|_| rng.below(1024) as u32).collect();
        let mut dec = StreamDecoder::new(&t);
        let mut out = String::new();
        for &id in &ids {
            out.push_str(&dec.push(id).unwrap());
        }
        out.push_str(&dec.finish());
        assert_eq!(out, t.decode(&ids).unwrap());
    }
    let mut dec = StreamDecoder::new(&t);
    assert!(dec.push(1024).is_err());
    assert!(t.decode(&[0, u32::MAX]).is_err());
}

#[test]
fn random_text_round_trips_with_every_pre() {
    for pre in [
        None,
        Some("gpt-2"),
        Some("llama3"),
        Some("qwen2"),
        Some("smollm"),
    ] {
        let mut spec = spec_with_pre(pre);
        spec.add_bos = false;
        let t = Tokenizer::from_spec(spec).unwrap();
        let mut rng = Rng(1234);
        for _ in 0..300 {
            let s = rng.string(60);
            let ids = t.encode(&s, true).unwrap();
            assert_eq!(t.decode(&ids).unwrap(), s, "pre {pre:?}");
            let mut dec = StreamDecoder::new(&t);
            let streamed: String = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
            assert_eq!(streamed + &dec.finish(), s);
        }
    }
}

#[test]
fn default_pre_differs_from_llama3_like_llama_cpp() {
    // llama.cpp's default list (used when `pre` is absent) isolates punctuation runs before the
    // GPT-2 rule, so contractions, " (" and ".\n" never form; llama3 keeps them together.
    let pieces = |t: &Tokenizer, s: &str| -> Vec<String> {
        let ids = t.encode(s, false).unwrap();
        ids.iter()
            .map(|&i| String::from_utf8(t.token_bytes(i).unwrap()).unwrap())
            .collect()
    };
    let d = Tokenizer::from_spec(spec_with_pre(None)).unwrap();
    let l = tiny();
    assert_eq!((d.pre_name(), l.pre_name()), ("default", "llama3"));
    let s = "don't (x).\n";
    let (dp, lp) = (pieces(&d, s), pieces(&l, s));
    for want in ["'t", " (", ".\n"] {
        assert!(lp.iter().any(|p| p == want), "llama3 {lp:?} lacks {want:?}");
        assert!(!dp.iter().any(|p| p == want), "default {dp:?} has {want:?}");
    }
    assert_eq!(dp.concat(), s);
    // Digits: `\p{N}+` then `[0-9]{3}` from the left; never a space joined to a number.
    assert_eq!(pieces(&d, " 1234567").concat(), " 1234567");
    assert!(
        pieces(&d, " 1234567")
            .iter()
            .all(|p| p.len() <= 3 && !p.starts_with(' ') || p == " ")
    );
}
