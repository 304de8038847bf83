//! Whole-model figures: load time, prompt (prefill) and decode tokens per second, time to
//! first token, peak resident memory; plus the model file's identity (SHA-256, arch).
//!
//! The model is a GGUF file given by path, or a synthetic one ([`crate::synth`], e.g. the
//! 2B-4T shapes with random ternary weights) written once to the temp directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bitnet_kernels::{Exec, Isa};

use super::receipt::{ModelInfo, sha256_file};
use crate::gguf::GgufFile;
use crate::model::{HeadMode, KvType, Model, StageTimes, argmax};
use crate::synth::{SynthSpec, SynthType};

/// What `bitnet bench model` measured.
///
/// Decode reads every weight byte once per token: `weight_bytes_per_token()` is the memory
/// traffic that bounds it (beside it, an f32 KV cache adds 0.15 MB per position at 2B-4T,
/// 22 MB = 1.9% of the F16-head bytes after 145 positions; norms and one embedding row far
/// less).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFigures {
    /// Memory-map + parse + weight validation, ms.
    pub load_ms: f64,
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Tokens generated (greedy).
    pub gen_tokens: usize,
    /// The first prompt's forward pass up to the first token's logits, ms: what a fresh
    /// process sees (it maps the weights' pages and grows the per-thread buffers).
    pub ttft_ms: f64,
    /// `prompt_tokens / ttft`: the first prompt's rate.
    pub prompt_tok_per_s: f64,
    /// The same prompt again from position 0, [`PROMPT_REPEATS`] times after the first, ms
    /// each: prefill once the weights are mapped (as in a server's later requests).
    pub warm_prompt_ms: Vec<f64>,
    /// Generated tokens per second (one forward pass each, KV cache extended).
    pub decode_tok_per_s: f64,
    /// Mean read bandwidth of plain passes over the whole model file with the same threads,
    /// interleaved with the decode steps (one every [`STREAM_EVERY`] tokens), GB/s: the
    /// decode's bound under the same conditions of a shared machine. `None` without decode.
    pub stream_gbps: Option<f64>,
    /// Peak resident set size (VmHWM), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Anonymous resident memory after decode (`RssAnon`: heap, stacks, KV cache, the int8
    /// head when chosen; the mapped weights are file pages, not counted), bytes.
    pub anon_rss_bytes: Option<u64>,
    /// The KV cache's bytes (part of `anon_rss_bytes`).
    pub kv_cache_bytes: u64,
    /// File bytes this process maps with 2 MiB pages (`FilePmdMapped`), after decode: the
    /// model file's share tells whether the weights stream without 4 KiB TLB misses.
    pub file_huge_mapped_bytes: Option<u64>,
    /// Ternary weight bytes read per decoded token (all projections of all layers).
    pub ternary_bytes_per_token: u64,
    /// Ternary weight·token products per token (all projections of all layers): the
    /// prefill's integer work.
    pub ternary_products_per_token: u64,
    /// Output-head bytes read per decoded token (the whole head matrix, as stored or int8).
    pub head_bytes_per_token: u64,
    /// Formats of the ternary projections (e.g. `i2s`).
    pub formats: Vec<String>,
    /// Stage times of the warm prompts, summed over all of them (see [`StageTimes`]).
    pub prefill_stages: Option<StageTimes>,
    /// Stage times of the decode steps, summed over all of them.
    pub decode_stages: Option<StageTimes>,
    /// Architecture name from the config.
    pub arch: String,
}

impl ModelFigures {
    /// Ternary projections plus the output head, bytes per decoded token.
    pub fn weight_bytes_per_token(&self) -> u64 {
        self.ternary_bytes_per_token + self.head_bytes_per_token
    }

    /// The warm prefill rate: prompt tokens over the median of [`Self::warm_prompt_ms`]
    /// (the first prompt's rate when there are no warm runs).
    pub fn warm_prompt_tok_per_s(&self) -> f64 {
        let mut ms = self.warm_prompt_ms.clone();
        ms.sort_by(f64::total_cmp);
        match ms.get(ms.len() / 2) {
            Some(&med) if med > 0.0 => self.prompt_tokens as f64 / (med / 1e3),
            _ => self.prompt_tok_per_s,
        }
    }
}

/// Warm repeats of the prompt after the first (see [`ModelFigures::warm_prompt_ms`]).
pub const PROMPT_REPEATS: usize = 3;

/// Decode steps between two timed passes over the model file (see
/// [`ModelFigures::stream_gbps`]).
pub const STREAM_EVERY: usize = 4;

/// A synthetic model `preset[:type]` (`2b4t`, `tiny`; `i2s`, `tq2_0` or `tq1_0`), written to
/// the temp directory unless already there; returns its path.
pub fn synth_model(spec: &str, progress: impl FnMut(u64, u64)) -> Result<PathBuf, String> {
    let (preset, ty) = spec.split_once(':').unwrap_or((spec, "i2s"));
    let s = SynthSpec::preset(preset)
        .ok_or_else(|| format!("unknown synthetic preset `{preset}` (known: tiny, 2b4t)"))?;
    let t = SynthType::parse(ty).ok_or_else(|| {
        format!(
            "unknown synthetic type `{ty}` (known: {})",
            SynthType::NAMES
        )
    })?;
    let path = std::env::temp_dir().join(format!(
        "bitnet-bench-{}-{}.gguf",
        s.name,
        ty.to_ascii_lowercase()
    ));
    if !path.exists() {
        let tmp = path.with_extension("partial");
        crate::synth::write_model(&s, t, 0xb17e7, &tmp, progress)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// One `bench model` run: the model, the workload and the settings it runs under.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    /// The GGUF file.
    pub path: &'a Path,
    /// `path` already opened (and locked in RAM, for `--mlock`), used instead of a new
    /// mapping; the load time then leaves out the opening.
    pub opened: Option<&'a GgufFile>,
    /// Prompt length in tokens (at least 1).
    pub prompt_tokens: usize,
    /// Greedy decode steps after the prompt.
    pub gen_tokens: usize,
    /// Kernels' ISA.
    pub isa: Isa,
    /// Threads of the run.
    pub threads: usize,
    /// Output head.
    pub head: HeadMode,
    /// KV cache element type.
    pub kv: KvType,
}

/// Loads `spec.path`, runs a `prompt_tokens` prompt (pseudo-random ids below the special
/// tokens) and `gen_tokens` greedy decode steps on `isa` and `threads`.
pub fn run(spec: &RunSpec<'_>) -> Result<ModelFigures, String> {
    let RunSpec {
        path,
        opened,
        prompt_tokens,
        gen_tokens,
        isa,
        threads,
        head,
        kv,
    } = *spec;
    let exec = Exec::new(isa, threads).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let own;
    let file = match opened {
        Some(f) => f,
        None => {
            own = GgufFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            &own
        }
    };
    let mut model = Model::load(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    model.set_exec(exec);
    model.set_kv_type(kv);
    model
        .set_head_mode(head)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let c = &model.config;
    if prompt_tokens == 0 {
        return Err("--prompt-tokens must be at least 1".into());
    }
    let capacity = prompt_tokens + gen_tokens.max(1);
    let mut state = model
        .new_state(capacity)
        .map_err(|e| format!("state for {capacity} positions: {e}"))?;
    let mut rng = super::Rng::new(0x70c3);
    let ordinary = c.vocab_size.saturating_sub(300).max(1) as u64;
    let prompt: Vec<u32> = (0..prompt_tokens)
        .map(|_| (rng.next_u64() % ordinary) as u32)
        .collect();
    let mut logits = vec![0f32; c.vocab_size];
    let t = Instant::now();
    model
        .forward(&mut state, &prompt, Some(&mut logits))
        .map_err(|e| format!("prompt: {e}"))?;
    let ttft = t.elapsed().as_secs_f64();
    let mut warm_prompt_ms = Vec::with_capacity(PROMPT_REPEATS);
    state.time_stages(true);
    for _ in 0..PROMPT_REPEATS {
        state.reset();
        let t = Instant::now();
        model
            .forward(&mut state, &prompt, Some(&mut logits))
            .map_err(|e| format!("prompt: {e}"))?;
        warm_prompt_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let prefill_stages = state.stage_times();
    state.time_stages(true);
    let mut next = argmax(&logits);
    let mut decode = 0f64;
    let mut streams = Vec::new();
    for i in 0..gen_tokens {
        if i % STREAM_EVERY == 0 {
            streams.push(super::roofline::stream_read_gbps(file.bytes(), threads));
        }
        let t = Instant::now();
        model
            .forward(&mut state, &[next], Some(&mut logits))
            .map_err(|e| format!("decode: {e}"))?;
        next = argmax(&logits);
        decode += t.elapsed().as_secs_f64();
    }
    let decode_stages = state.stage_times().filter(|_| gen_tokens > 0);
    if gen_tokens > 0 {
        streams.push(super::roofline::stream_read_gbps(file.bytes(), threads));
    }
    streams.retain(|g| *g > 0.0);
    let mut formats: Vec<String> = Vec::new();
    let mut ternary_bytes = 0u64;
    let mut ternary_products = 0u64;
    for l in &model.weights.layers {
        for p in [&l.wq, &l.wk, &l.wv, &l.wo, &l.wgate, &l.wup, &l.wdown] {
            let f = p.w.format().name().to_string();
            let m = p.w.matrix();
            ternary_products += (m.rows() * m.cols()) as u64;
            ternary_bytes += p.w.format().packed_len(m.rows(), m.cols()).unwrap_or(0) as u64;
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
    }
    let head_bytes = model.head_bytes() as u64;
    Ok(ModelFigures {
        load_ms,
        prompt_tokens,
        gen_tokens,
        ttft_ms: ttft * 1e3,
        prompt_tok_per_s: prompt_tokens as f64 / ttft,
        warm_prompt_ms,
        decode_tok_per_s: if gen_tokens > 0 {
            gen_tokens as f64 / decode
        } else {
            0.0
        },
        stream_gbps: (!streams.is_empty())
            .then(|| streams.iter().sum::<f64>() / streams.len() as f64),
        peak_rss_bytes: peak_rss_bytes(),
        file_huge_mapped_bytes: proc_kb("/proc/self/smaps_rollup", "FilePmdMapped:"),
        anon_rss_bytes: proc_kb("/proc/self/status", "RssAnon:"),
        kv_cache_bytes: state.kv_cache().bytes() as u64,
        ternary_bytes_per_token: ternary_bytes,
        ternary_products_per_token: ternary_products,
        head_bytes_per_token: head_bytes,
        formats,
        prefill_stages,
        decode_stages,
        arch: c.arch_name.clone(),
    })
}

/// Hash, size and `general.architecture` of a GGUF file.
pub fn model_info(path: &Path) -> Result<ModelInfo, String> {
    let sha256 = sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let arch = match GgufFile::open(path) {
        Ok(f) => f
            .gguf()
            .architecture()
            .map_or_else(|e| format!("unknown ({e})"), str::to_string),
        Err(e) => format!("unknown (not GGUF: {e})"),
    };
    Ok(ModelInfo {
        path: path.display().to_string(),
        sha256,
        bytes,
        arch,
    })
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM:")
}

/// The `key  N kB` line of a `/proc` file, in bytes.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line
        .trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn model_info_of_a_shipped_model() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-b158-tq2.gguf");
        if p.exists() {
            let m = model_info(&p).unwrap();
            assert_eq!(m.sha256.len(), 64);
            assert!(m.bytes > 0);
            assert!(!m.arch.starts_with("unknown"), "{}", m.arch);
        }
    }
}
