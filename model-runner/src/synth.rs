//! Synthetic BitNet b1.58 models: random ternary weights with real shapes, written through
//! [`GgufWriter`] as a valid `bitnet-b1.58` GGUF with a minimal gpt2 tokenizer (256 byte
//! tokens, filler words up to the vocabulary size, BOS/EOS), so that every command runs on
//! them. Weight bytes are a pure function of `(seed, tensor index, byte offset)`; the file
//! is written streaming, without holding the tensors in memory.

use std::io::{self, Write};
use std::path::Path;

use half::f16;

use crate::gguf::{Array, GgmlType, GgufError, GgufWriter, Value};

/// Shapes and tokenizer layout of a synthetic model.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    /// `general.name`.
    pub name: String,
    pub hidden: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    /// Ids from here on are control tokens (BOS, EOS, reserved ...).
    pub first_special: usize,
    pub bos: u32,
    pub eos: u32,
    /// `<|eot_id|>`, where the real model has one.
    pub eot: Option<u32>,
}

impl SynthSpec {
    /// The tiny test model's shapes: hidden 256, 4 layers, 8/4 heads, FFN 512, vocab 1024.
    pub fn tiny() -> SynthSpec {
        SynthSpec {
            name: "synth-tiny".into(),
            hidden: 256,
            n_layer: 4,
            n_head: 8,
            n_head_kv: 4,
            ffn: 512,
            vocab: 1024,
            context: 256,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            first_special: 1022,
            bos: 1022,
            eos: 1023,
            eot: None,
        }
    }

    /// BitNet b1.58 2B-4T: hidden 2560, 30 layers, 20/5 heads, FFN 6912, vocab 128256,
    /// context 4096, θ 500000; BOS 128000, EOS 128001, `<|eot_id|>` 128009.
    pub fn b2b4t() -> SynthSpec {
        SynthSpec {
            name: "synth-2b4t".into(),
            hidden: 2560,
            n_layer: 30,
            n_head: 20,
            n_head_kv: 5,
            ffn: 6912,
            vocab: 128256,
            context: 4096,
            rope_theta: 500000.0,
            rms_eps: 1e-5,
            first_special: 128000,
            bos: 128000,
            eos: 128001,
            eot: Some(128009),
        }
    }

    /// `tiny` or `2b4t`.
    pub fn preset(name: &str) -> Option<SynthSpec> {
        match name.to_ascii_lowercase().as_str() {
            "tiny" => Some(Self::tiny()),
            "2b4t" | "2b-4t" | "2b" => Some(Self::b2b4t()),
            _ => None,
        }
    }
}

/// Projection storage of a synthetic model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthType {
    /// bitnet.cpp I2_S (file_type 40).
    I2s,
    /// llama.cpp TQ2_0 (file_type 37).
    Tq2_0,
    /// llama.cpp TQ1_0 (file_type 36).
    Tq1_0,
}

impl SynthType {
    /// The names `parse` knows, for error messages.
    pub const NAMES: &'static str = "i2s, tq2_0, tq1_0";

    /// `i2s`, `tq2_0` or `tq1_0`.
    pub fn parse(name: &str) -> Option<SynthType> {
        match name.to_ascii_lowercase().as_str() {
            "i2s" | "i2_s" => Some(SynthType::I2s),
            "tq2_0" | "tq2" => Some(SynthType::Tq2_0),
            "tq1_0" | "tq1" => Some(SynthType::Tq1_0),
            _ => None,
        }
    }

    fn ggml(self) -> GgmlType {
        match self {
            SynthType::I2s => GgmlType::I2_S,
            SynthType::Tq2_0 => GgmlType::TQ2_0,
            SynthType::Tq1_0 => GgmlType::TQ1_0,
        }
    }

    fn file_type(self) -> u32 {
        match self {
            SynthType::I2s => 40,
            SynthType::Tq2_0 => 37,
            SynthType::Tq1_0 => 36,
        }
    }
}

/// What one tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// F16 embedding values uniform in `[-a, a)`, `a = 2 / sqrt(hidden / 3)`
    /// (a / 4 for the byte tokens).
    Embedding,
    /// F32 ones.
    Ones,
    /// Random ternary codes (never code 3) with one per-tensor scale `sqrt(3 / (2 cols))`.
    Ternary,
}

/// One tensor of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    /// ggml `ne` order: `[cols, rows]` for matrices.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub n_bytes: u64,
    pub content: Content,
}

/// The metadata of a synthetic model, in file order.
pub fn metadata(spec: &SynthSpec, ty: SynthType) -> Vec<(String, Value)> {
    let arch = "bitnet-b1.58";
    let k = |s: &str| format!("{arch}.{s}");
    let (tokens, types) = vocabulary(spec);
    vec![
        ("general.architecture".into(), arch.into()),
        ("general.name".into(), spec.name.clone().into()),
        ("general.file_type".into(), ty.file_type().into()),
        ("general.quantization_version".into(), 2u32.into()),
        ("general.alignment".into(), 32u32.into()),
        (k("vocab_size"), (spec.vocab as u32).into()),
        (k("context_length"), (spec.context as u32).into()),
        (k("embedding_length"), (spec.hidden as u32).into()),
        (k("block_count"), (spec.n_layer as u32).into()),
        (k("feed_forward_length"), (spec.ffn as u32).into()),
        (
            k("rope.dimension_count"),
            ((spec.hidden / spec.n_head) as u32).into(),
        ),
        (k("attention.head_count"), (spec.n_head as u32).into()),
        (k("attention.head_count_kv"), (spec.n_head_kv as u32).into()),
        (k("attention.layer_norm_rms_epsilon"), spec.rms_eps.into()),
        (k("rope.freq_base"), spec.rope_theta.into()),
        ("tokenizer.ggml.model".into(), "gpt2".into()),
        ("tokenizer.ggml.pre".into(), "llama-bpe".into()),
        ("tokenizer.ggml.tokens".into(), Array::String(tokens).into()),
        ("tokenizer.ggml.token_type".into(), Array::I32(types).into()),
        (
            "tokenizer.ggml.merges".into(),
            Array::String(Vec::new()).into(),
        ),
        ("tokenizer.ggml.bos_token_id".into(), spec.bos.into()),
        ("tokenizer.ggml.eos_token_id".into(), spec.eos.into()),
        ("tokenizer.ggml.add_bos_token".into(), true.into()),
        ("tokenizer.ggml.add_eos_token".into(), false.into()),
    ]
}

/// GPT-2 `bytes_to_unicode`.
fn byte_char(b: u8) -> char {
    let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable {
        char::from(b)
    } else {
        let n = (0u8..b)
            .filter(|&c| !((0x21..=0x7E).contains(&c) || (0xA1..=0xAC).contains(&c) || c >= 0xAE))
            .count() as u32;
        char::from_u32(0x100 + n).unwrap_or('?')
    }
}

/// Tokens and token types: 256 byte tokens (id = byte), unique filler words `Ġ` + letters
/// up to `first_special`, then control tokens.
pub fn vocabulary(spec: &SynthSpec) -> (Vec<String>, Vec<i32>) {
    let mut tokens = Vec::with_capacity(spec.vocab);
    let mut types = Vec::with_capacity(spec.vocab);
    for b in 0..=255u8 {
        tokens.push(byte_char(b).to_string());
        types.push(1);
    }
    for i in 256..spec.vocab {
        if i < spec.first_special {
            // Bijective base-26 word of (i - 256): unique for every id.
            let mut n = i - 256 + 1;
            let mut w = Vec::new();
            while n > 0 {
                n -= 1;
                w.push(b'a' + (n % 26) as u8);
                n /= 26;
            }
            w.reverse();
            tokens.push(format!("Ġ{}", String::from_utf8_lossy(&w)));
            types.push(1);
        } else {
            let id = i as u32;
            let text = if id == spec.bos {
                "<|begin_of_text|>".to_owned()
            } else if id == spec.eos {
                "<|end_of_text|>".to_owned()
            } else if Some(id) == spec.eot {
                "<|eot_id|>".to_owned()
            } else {
                format!("<|reserved_special_token_{}|>", i - spec.first_special)
            };
            tokens.push(text);
            types.push(3);
        }
    }
    (tokens, types)
}

/// Every tensor, in the order of the real files.
pub fn tensor_plan(spec: &SynthSpec, ty: SynthType) -> Vec<TensorPlan> {
    let (h, f, v) = (spec.hidden as u64, spec.ffn as u64, spec.vocab as u64);
    let kv = (spec.hidden / spec.n_head * spec.n_head_kv) as u64;
    let mut plan = Vec::new();
    let mut add = |name: String, dims: Vec<u64>, ggml_type: GgmlType, content| {
        // Shapes come from valid presets; a failure here is a preset bug.
        let n_bytes = ggml_type.n_bytes(&dims).unwrap_or(0);
        plan.push(TensorPlan {
            name,
            dims,
            ggml_type,
            n_bytes,
            content,
        });
    };
    add(
        "token_embd.weight".into(),
        vec![h, v],
        GgmlType::F16,
        Content::Embedding,
    );
    add(
        "output_norm.weight".into(),
        vec![h],
        GgmlType::F32,
        Content::Ones,
    );
    for i in 0..spec.n_layer {
        for (n, w) in [
            ("attn_norm", h),
            ("attn_sub_norm", h),
            ("ffn_norm", h),
            ("ffn_sub_norm", f),
        ] {
            add(
                format!("blk.{i}.{n}.weight"),
                vec![w],
                GgmlType::F32,
                Content::Ones,
            );
        }
        for (n, cols, rows) in [
            ("attn_q", h, h),
            ("attn_k", h, kv),
            ("attn_v", h, kv),
            ("attn_output", h, h),
            ("ffn_gate", h, f),
            ("ffn_up", h, f),
            ("ffn_down", f, h),
        ] {
            add(
                format!("blk.{i}.{n}.weight"),
                vec![cols, rows],
                ty.ggml(),
                Content::Ternary,
            );
        }
    }
    plan
}

/// Bytes whose four 2-bit fields are all valid codes (0, 1, 2).
fn valid_code_byte(i: u64) -> u8 {
    let i = (i % 81) as u8;
    (i % 3) | ((i / 3 % 3) << 2) | ((i / 9 % 3) << 4) | ((i / 27) << 6)
}

/// A TQ1_0 byte as llama.cpp's quantizer stores it: the base-3 number `b < 243` of five
/// codes becomes `ceil(b · 256 / 243)`. The `qh` bytes (`tail`) hold four codes and a zero
/// last digit, so `b` is a multiple of 3.
fn tq1_code_byte(i: u64, tail: bool) -> u8 {
    let b = if tail { i % 81 * 3 } else { i % 243 };
    (b * 256).div_ceil(243) as u8
}

fn mix(seed: u64, tensor: u64, i: u64) -> u64 {
    let mut z =
        seed ^ tensor.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-tensor scale of a ternary tensor with `cols` inputs: keeps outputs at unit
/// variance for unit-variance inputs (2/3 of the codes are non-zero).
pub fn ternary_scale(cols: u64) -> f32 {
    (3.0 / (2.0 * cols as f64)).sqrt() as f32
}

/// Writes bytes `offset..offset + out.len()` of tensor `index` of `plan`.
pub fn fill_tensor(plan: &[TensorPlan], index: usize, seed: u64, offset: u64, out: &mut [u8]) {
    let t = &plan[index];
    let ti = index as u64;
    match t.content {
        Content::Ones => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = 1f32.to_le_bytes()[((offset + j as u64) % 4) as usize];
            }
        }
        Content::Embedding => {
            // Logits of O(1) through the tied head; the 256 byte tokens get a quarter of the
            // amplitude so that random models rarely emit partial UTF-8.
            let amp = 2.0 / (t.dims[0] as f64 / 3.0).sqrt();
            for (j, o) in out.iter_mut().enumerate() {
                let p = offset + j as u64;
                let r = mix(seed, ti, p / 2);
                let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                let row_amp = if p / 2 / t.dims[0] < 256 {
                    amp / 4.0
                } else {
                    amp
                };
                let v = f16::from_f64((2.0 * u - 1.0) * row_amp);
                *o = v.to_le_bytes()[(p % 2) as usize];
            }
        }
        Content::Ternary => {
            let scale = ternary_scale(t.dims[0]);
            match t.ggml_type {
                GgmlType::TQ2_0 => {
                    let d = f16::from_f32(scale).to_le_bytes();
                    for (j, o) in out.iter_mut().enumerate() {
                        let p = offset + j as u64;
                        let in_block = p % 66;
                        *o = if in_block < 64 {
                            valid_code_byte(mix(seed, ti, p))
                        } else {
                            d[(in_block - 64) as usize]
                        };
                    }
                }
                GgmlType::TQ1_0 => {
                    let d = f16::from_f32(scale).to_le_bytes();
                    for (j, o) in out.iter_mut().enumerate() {
                        let p = offset + j as u64;
                        let in_block = p % 54;
                        *o = match in_block {
                            0..48 => tq1_code_byte(mix(seed, ti, p), false),
                            48..52 => tq1_code_byte(mix(seed, ti, p), true),
                            _ => d[(in_block - 52) as usize],
                        };
                    }
                }
                _ => {
                    let codes = t.n_bytes - 32;
                    let s = scale.to_le_bytes();
                    for (j, o) in out.iter_mut().enumerate() {
                        let p = offset + j as u64;
                        *o = if p < codes {
                            valid_code_byte(mix(seed, ti, p))
                        } else if p < codes + 4 {
                            s[(p - codes) as usize]
                        } else {
                            0
                        };
                    }
                }
            }
        }
    }
}

/// The whole of tensor `index` (for small models and tests).
pub fn tensor_bytes(plan: &[TensorPlan], index: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; plan[index].n_bytes as usize];
    fill_tensor(plan, index, seed, 0, &mut v);
    v
}

/// A complete in-memory writer for a (small) synthetic model.
pub fn writer(
    spec: &SynthSpec,
    ty: SynthType,
    seed: u64,
) -> Result<GgufWriter<'static>, GgufError> {
    let mut w = GgufWriter::new();
    for (k, v) in metadata(spec, ty) {
        w.add(k, v)?;
    }
    let plan = tensor_plan(spec, ty);
    for (i, t) in plan.iter().enumerate() {
        w.add_tensor(
            t.name.clone(),
            &t.dims,
            t.ggml_type,
            tensor_bytes(&plan, i, seed),
        )?;
    }
    Ok(w)
}

/// Writes a synthetic model to `path`, streaming: tensor bytes are generated in 1 MiB
/// pieces while the file is written. `progress(done_bytes, total_bytes)` is called after
/// each piece. Returns the file size.
pub fn write_model(
    spec: &SynthSpec,
    ty: SynthType,
    seed: u64,
    path: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, GgufError> {
    let plan = tensor_plan(spec, ty);
    // The writer only needs each tensor's length: lend it slices of one zeroed buffer that is
    // never read (the allocator maps it lazily) and substitute the real bytes on the way out.
    let max = plan.iter().map(|t| t.n_bytes).max().unwrap_or(0) as usize;
    let placeholder = vec![0u8; max];
    let mut w = GgufWriter::new();
    for (k, v) in metadata(spec, ty) {
        w.add(k, v)?;
    }
    for t in &plan {
        w.add_tensor(
            t.name.clone(),
            &t.dims,
            t.ggml_type,
            &placeholder[..t.n_bytes as usize],
        )?;
    }
    let total = w.encoded_len();
    let align = w.alignment();
    let data_len: u64 = plan.iter().map(|t| t.n_bytes.div_ceil(align) * align).sum();
    let mut start = total - data_len;
    let mut regions = Vec::with_capacity(plan.len());
    for t in &plan {
        regions.push((start, start + t.n_bytes));
        start += t.n_bytes.div_ceil(align) * align;
    }
    let io = |op, source| GgufError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(|e| io("create", e))?;
    let mut sub = Substitute {
        inner: io::BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        regions,
        plan: &plan,
        seed,
        buf: vec![0u8; 1 << 20],
        total,
        progress: &mut progress,
    };
    w.write_to(&mut sub)?;
    sub.inner.flush().map_err(|e| io("write", e))?;
    let file = sub
        .inner
        .into_inner()
        .map_err(|e| io("write", e.into_error()))?;
    file.sync_all().map_err(|e| io("sync", e))?;
    // Drop the written (small-page) copy from the page cache, so the first mapping reads
    // the file back in 2 MiB folios (see `GgufFile::open`). Best effort.
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    Ok(total)
}

/// Passes the header and padding through; replaces tensor regions with generated bytes.
struct Substitute<'p, W: Write> {
    inner: W,
    pos: u64,
    regions: Vec<(u64, u64)>,
    plan: &'p [TensorPlan],
    seed: u64,
    buf: Vec<u8>,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl<W: Write> Write for Substitute<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let end = self.pos + data.len() as u64;
        let mut cur = self.pos;
        while cur < end {
            // First region that ends after `cur` (regions are sorted and disjoint).
            let r = self.regions.partition_point(|&(_, e)| e <= cur);
            match self.regions.get(r) {
                Some(&(s, e)) if s <= cur => {
                    let stop = e.min(end);
                    let mut p = cur;
                    while p < stop {
                        let n = ((stop - p) as usize).min(self.buf.len());
                        fill_tensor(self.plan, r, self.seed, p - s, &mut self.buf[..n]);
                        self.inner.write_all(&self.buf[..n])?;
                        p += n as u64;
                        (self.progress)(p, self.total);
                    }
                    cur = stop;
                }
                next => {
                    let stop = next.map_or(end, |&(s, _)| s.min(end));
                    let a = (cur - self.pos) as usize;
                    let b = (stop - self.pos) as usize;
                    self.inner.write_all(&data[a..b])?;
                    cur = stop;
                }
            }
        }
        self.pos = end;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_bytes_are_valid_and_cover_all() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..81 {
            let b = valid_code_byte(i);
            for g in 0..4 {
                assert!((b >> (2 * g)) & 3 < 3);
            }
            seen.insert(b);
        }
        assert_eq!(seen.len(), 81);
    }

    #[test]
    fn tq1_bytes_are_the_quantizers_bytes() {
        // Every stored byte must decode (digit n = ((s·3ⁿ mod 256)·3) >> 8) to the codes it
        // was made from, and the tail bytes' fifth digit must be 0.
        let digits = |s: u8| -> [u64; 5] {
            let mut d = [0; 5];
            let mut q = s;
            for x in &mut d {
                *x = ((q as u16 * 3) >> 8) as u64;
                q = q.wrapping_mul(3);
            }
            d
        };
        for i in 0..243 {
            let d = digits(tq1_code_byte(i, false));
            assert_eq!(d.iter().fold(0, |b, &x| b * 3 + x), i, "qs byte of {i}");
        }
        for i in 0..81 {
            let d = digits(tq1_code_byte(i, true));
            assert_eq!(d.iter().fold(0, |b, &x| b * 3 + x), i * 3, "qh byte of {i}");
            assert_eq!(d[4], 0);
        }
    }

    #[test]
    fn streamed_file_equals_in_memory_file() {
        let spec = SynthSpec::tiny();
        for ty in [SynthType::I2s, SynthType::Tq2_0, SynthType::Tq1_0] {
            let path = std::env::temp_dir().join(format!(
                "bitnet-synth-unit-{}-{:?}.gguf",
                std::process::id(),
                ty
            ));
            let n = write_model(&spec, ty, 5, &path, |_, _| {}).unwrap();
            let streamed = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).ok();
            let mem = writer(&spec, ty, 5).unwrap().to_bytes().unwrap();
            assert_eq!(n as usize, streamed.len());
            assert!(streamed == mem, "{ty:?}: streamed bytes differ");
        }
    }

    #[test]
    fn vocabulary_is_unique() {
        let (t, _) = vocabulary(&SynthSpec::tiny());
        let set: std::collections::HashSet<_> = t.iter().collect();
        assert_eq!(set.len(), t.len());
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(0xAD), '\u{143}');
    }
}
