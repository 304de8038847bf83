//! Model commands: `run`, `logits`, `inspect`, `chat`, `synth`. Without `-m`, `run`,
//! `logits` and `chat` use the embedded tiny model (`models/tiny-b158-i2s.gguf`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bitnet_kernels::{Exec, I2s, Isa, TernaryMatrix, Tq1_0, Tq2_0};
use bitnet_runner::chat::{ChatFormat, ChatMessage, PLAIN_STOP};
use bitnet_runner::gguf::{Array, GgmlType, GgufError, GgufFile, Value};
use bitnet_runner::model::{
    Config, HeadMode, Model, Numerics, State, load_tokenizer, tokenizer_spec,
};
use bitnet_runner::sampler::{Sampler, SamplerConfig};
use bitnet_runner::synth::{SynthSpec, SynthType, write_model};
use bitnet_runner::tokenizer::{StreamDecoder, Tokenizer};
use clap::{Args, Subcommand};
use serde_json::json;

use super::CliResult;

/// The embedded default model, resolved at compile time from this crate's directory.
const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny-b158-i2s.gguf");

/// Most positions a chat session keeps (bounds the KV cache of large-context models).
const CHAT_MAX_CONTEXT: usize = 2048;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCmd {
    /// Generate text: the prompt and its continuation stream to stdout, timings to stderr.
    Run(RunArgs),
    /// Print the prompt's token ids and the top logits at the last position as JSON.
    Logits(LogitsArgs),
    /// Describe a GGUF model: hyper-parameters, tokenizer, tensors, I2_S checks.
    Inspect(InspectArgs),
    /// Chat interactively on stdin (the model's chat template if it has one).
    Chat(ChatArgs),
    /// Write a synthetic model (random ternary weights, real shapes).
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Threads (default: all cores; 1 for models under 16 MiB, where threads cost more
    /// than they save).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Activations of the ternary projections: bitnet (per-token int8) or f32 (exact).
    #[arg(long, default_value = "bitnet")]
    numerics: String,
    /// Kernel ISA: auto, scalar, avx2, avx512.
    #[arg(long, default_value = "auto")]
    isa: String,
    /// Output head: f16 (the stored head, exact) or int8 (repacked once at load: half the
    /// bytes per token, logits rounded through int8).
    #[arg(long, default_value = "f16")]
    head: String,
    /// KV cache element type: f32 (exact) or f16 (half the memory, keys and values rounded).
    #[arg(long, default_value = "f32")]
    kv: String,
    /// Lock the model file's pages in RAM (mlock) so the OS cannot evict the weights; needs a
    /// memory-lock limit (`ulimit -l`) of at least the file size.
    #[arg(long)]
    mlock: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SampleArgs {
    /// Tokens to generate (at most what the context leaves).
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n: usize,
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// RNG seed (default: random, printed to stderr).
    #[arg(long)]
    seed: Option<u64>,
    /// Always take the most likely token.
    #[arg(long)]
    greedy: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// GGUF model (default: the embedded tiny model).
    #[arg(short = 'm', long)]
    model: Option<PathBuf>,
    /// Prompt text.
    #[arg(short = 'p', long)]
    prompt: String,
    #[command(flatten)]
    sample: SampleArgs,
    #[command(flatten)]
    exec: ExecArgs,
    /// Write a JSON receipt: CPU, git revision, model hash, kernels and ISA executed, the
    /// figures, and a quick roofline probe measured right after the run.
    #[arg(long)]
    receipt: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LogitsArgs {
    /// GGUF model (default: the embedded tiny model).
    #[arg(short = 'm', long)]
    model: Option<PathBuf>,
    /// Prompt text (tokenized with BOS as the model specifies).
    #[arg(
        short = 'p',
        long,
        conflicts_with = "tokens",
        required_unless_present = "tokens"
    )]
    prompt: Option<String>,
    /// Token ids, comma separated (e.g. 1022,316,422).
    #[arg(long)]
    tokens: Option<String>,
    /// Write the full last-position logits here (f32 little-endian, vocab_size values).
    #[arg(long)]
    out: Option<PathBuf>,
    /// How many of the largest logits to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    exec: ExecArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// GGUF model file.
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// GGUF model (default: the embedded tiny model).
    #[arg(short = 'm', long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    sample: SampleArgs,
    #[command(flatten)]
    exec: ExecArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Shapes: 2b4t (BitNet b1.58 2B-4T, ~1.2 GB) or tiny (the tiny model's shapes).
    #[arg(long)]
    preset: String,
    /// Output GGUF file.
    #[arg(long)]
    out: PathBuf,
    /// Projection type: i2s, tq2_0 or tq1_0.
    #[arg(long = "type", default_value = "i2s")]
    ty: String,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(cmd: ModelCmd) -> CliResult {
    match cmd {
        ModelCmd::Run(a) => cmd_run(a),
        ModelCmd::Logits(a) => cmd_logits(a),
        ModelCmd::Inspect(a) => cmd_inspect(a),
        ModelCmd::Chat(a) => cmd_chat(a),
        ModelCmd::Synth(a) => cmd_synth(a),
    }
}

// ---- shared helpers ------------------------------------------------------------------

fn model_path(m: &Option<PathBuf>) -> PathBuf {
    m.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL))
}

fn open(path: &Path) -> Result<GgufFile, String> {
    GgufFile::open(path).map_err(|e| match e {
        // I/O errors already name the path.
        GgufError::Io { .. } => e.to_string(),
        _ => format!("{}: {e}", path.display()),
    })
}

/// Below this many bytes of weights, one thread is faster than several.
const SMALL_MODEL_BYTES: usize = 16 << 20;

fn exec_of(a: &ExecArgs, model_bytes: usize) -> Result<(Exec, Numerics), String> {
    let isa = Isa::parse(&a.isa).map_err(|e| format!("--isa: {e}"))?;
    let threads = match a.threads {
        Some(t) => t,
        None if model_bytes < SMALL_MODEL_BYTES => 1,
        None => Exec::auto().threads(),
    };
    let exec = Exec::new(isa, threads).map_err(|e| format!("--isa/--threads: {e}"))?;
    let numerics = Numerics::parse(&a.numerics).ok_or_else(|| {
        format!(
            "--numerics: unknown value '{}' (known: bitnet, f32)",
            a.numerics
        )
    })?;
    Ok((exec, numerics))
}

fn sampler_of(a: &SampleArgs) -> Result<SamplerConfig, String> {
    let seed = a.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()).rotate_left(32)
    });
    let cfg = SamplerConfig {
        temperature: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        greedy: a.greedy,
        seed,
        ..SamplerConfig::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

/// A loaded model with its tokenizer, for the commands that compute.
struct Loaded<'f> {
    model: Model<'f>,
    load_ms: f64,
}

fn load<'f>(file: &'f GgufFile, ea: &ExecArgs, t0: Instant) -> Result<Loaded<'f>, String> {
    let (exec, numerics) = exec_of(ea, file.bytes().len())?;
    if ea.mlock {
        file.lock().map_err(|e| {
            format!("--mlock: {e} (raise the limit with `ulimit -l`, or run without --mlock)")
        })?;
    }
    let mut model = Model::load(file).map_err(|e| format!("{}: {e}", file.path().display()))?;
    model.set_exec(exec);
    model.set_numerics(numerics);
    let head = super::head_arg(&ea.head)?;
    if head == HeadMode::Int8 {
        let h = model.weights.head();
        eprintln!(
            "bitnet: repacking the {} x {} output head to int8 (once, {:.1} MB)",
            h.rows(),
            h.cols(),
            (h.rows() * h.cols()) as f64 / 1e6
        );
    }
    model
        .set_head_mode(head)
        .map_err(|e| format!("{}: {e}", file.path().display()))?;
    model.set_kv_type(super::kv_arg(&ea.kv)?);
    Ok(Loaded {
        model,
        load_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}

fn tokenizer(file: &GgufFile) -> Result<Tokenizer, String> {
    load_tokenizer(file.gguf()).map_err(|e| format!("{}: {e}", file.path().display()))
}

fn projection_type(model: &Model<'_>) -> String {
    model.weights.layers.first().map_or_else(
        || "-".to_owned(),
        |l| match l.wq.w.format().ggml_type().and_then(GgmlType::from_id) {
            Some(t) => t.name().to_owned(),
            None => l.wq.w.format().name().to_owned(),
        },
    )
}

/// Set by Ctrl-C; a second Ctrl-C while set exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_ctrlc() {
    static ONCE: OnceLock<bool> = OnceLock::new();
    ONCE.get_or_init(|| {
        ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!();
                std::process::exit(130);
            }
        })
        .is_ok()
    });
}

fn rate(n: usize, secs: f64) -> String {
    if secs > 0.0 && n > 0 {
        format!("{:.1} tok/s", n as f64 / secs)
    } else {
        "-".into()
    }
}

fn tok_err(e: impl std::fmt::Display) -> String {
    format!("tokenizer: {e}")
}

fn model_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---- run -----------------------------------------------------------------------------

fn cmd_run(a: RunArgs) -> CliResult {
    let t0 = Instant::now();
    let path = model_path(&a.model);
    let scfg = sampler_of(&a.sample)?;
    let file = open(&path)?;
    let Loaded { model, load_ms } = load(&file, &a.exec, t0)?;
    let tok = tokenizer(&file)?;
    let cfg = &model.config;
    let ids = tok.encode(&a.prompt, true).map_err(tok_err)?;
    if ids.is_empty() {
        return Err("the prompt is empty and the model adds no BOS token".into());
    }
    if ids.len() >= cfg.context_length {
        return Err(format!(
            "the prompt is {} tokens, but the model's context holds {} (with room for at least one new token)",
            ids.len(),
            cfg.context_length
        ));
    }
    let n = a.sample.n.min(cfg.context_length - ids.len());
    let mut state = model.new_state(ids.len() + n.max(1)).map_err(model_err)?;
    let mut sampler = Sampler::new(scfg);
    let mut logits = vec![0f32; cfg.vocab_size];

    eprintln!(
        "bitnet: {} ({}, {} layers, hidden {}, {}), isa {}, threads {}, numerics {}, head {}, kv {}, seed {}{}",
        path.display(),
        cfg.arch_name,
        cfg.n_layer,
        cfg.hidden,
        projection_type(&model),
        model.exec().isa(),
        model.exec().threads(),
        model.numerics().name(),
        model.head_mode().name(),
        model.kv_type().name(),
        scfg.seed,
        if scfg.is_greedy() { ", greedy" } else { "" },
    );
    install_ctrlc();
    INTERRUPTED.store(false, Ordering::SeqCst);

    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| format!("writing to stdout: {e}");
    out.write_all(a.prompt.as_bytes()).map_err(io)?;
    out.flush().map_err(io)?;

    let tp = Instant::now();
    model
        .forward(&mut state, &ids, Some(&mut logits))
        .map_err(model_err)?;
    let prompt_s = tp.elapsed().as_secs_f64();

    let mut history = ids.clone();
    let mut dec = StreamDecoder::new(&tok);
    let td = Instant::now();
    let mut generated = 0usize;
    let mut stop = "length";
    for i in 0..n {
        if INTERRUPTED.load(Ordering::SeqCst) {
            stop = "interrupted";
            break;
        }
        let next = sampler.sample(&logits, &history);
        if tok.is_end_of_generation(next) {
            stop = "end of generation";
            break;
        }
        history.push(next);
        generated += 1;
        let piece = dec.push(next).map_err(tok_err)?;
        out.write_all(piece.as_bytes()).map_err(io)?;
        out.flush().map_err(io)?;
        if i + 1 < n {
            model
                .forward(&mut state, &[next], Some(&mut logits))
                .map_err(model_err)?;
        }
    }
    let decode_s = td.elapsed().as_secs_f64();
    let tail = dec.finish();
    out.write_all(tail.as_bytes()).map_err(io)?;
    out.write_all(b"\n").map_err(io)?;
    out.flush().map_err(io)?;
    if stop == "length" && generated == cfg.context_length - ids.len() {
        stop = "context full";
    }
    // Decode time per token counts the forward passes after each sampled token.
    let decode_steps =
        generated.saturating_sub(usize::from(stop == "length" || stop == "context full"));
    eprintln!(
        "bitnet: load {load_ms:.1} ms | prompt {} tok in {:.1} ms ({}) | decode {generated} tok in {:.1} ms ({}) | stop: {stop}",
        ids.len(),
        prompt_s * 1e3,
        rate(ids.len(), prompt_s),
        decode_s * 1e3,
        rate(decode_steps, decode_s),
    );
    INTERRUPTED.store(false, Ordering::SeqCst);
    if let Some(receipt) = &a.receipt {
        let figures = RunFigures {
            load_ms,
            prompt_tokens: ids.len(),
            prompt_s,
            generated,
            decode_steps,
            decode_s,
        };
        write_run_receipt(receipt, &path, &model, &figures)?;
    }
    Ok(())
}

/// What `bitnet run` measured, for its receipt.
struct RunFigures {
    load_ms: f64,
    prompt_tokens: usize,
    prompt_s: f64,
    generated: usize,
    decode_steps: usize,
    decode_s: f64,
}

fn write_run_receipt(
    file: &Path,
    model_path: &Path,
    model: &Model<'_>,
    f: &RunFigures,
) -> CliResult {
    use bitnet_runner::bench::model as model_bench;
    use bitnet_runner::bench::receipt::Receipt;
    let mut r = Receipt::new("run");
    r.model = Some(model_bench::model_info(model_path)?);
    let exec = model.exec();
    r.isas = vec![exec.isa().name().to_string()];
    r.threads = vec![exec.threads()];
    if let Some(l) = model.weights.layers.first() {
        let format = l.wq.w.format().name();
        let ops: &[&str] = match model.numerics() {
            Numerics::F32 => &["gemv_f32"],
            _ => &["gemm_i8", "gemv_i8"],
        };
        for op in ops {
            r.kernels
                .push(format!("{format}.{op}.{}", exec.isa().name()));
        }
    }
    let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    r.metric("load_time", f.load_ms, "ms");
    r.metric("prompt_tokens", f.prompt_tokens as f64, "tokens");
    r.metric(
        "prompt_tok_per_s",
        per_s(f.prompt_tokens, f.prompt_s),
        "tok/s",
    );
    r.metric("generated_tokens", f.generated as f64, "tokens");
    r.metric(
        "decode_tok_per_s",
        per_s(f.decode_steps, f.decode_s),
        "tok/s",
    );
    if let Some(rss) = model_bench::peak_rss_bytes() {
        r.metric("peak_rss", rss as f64, "bytes");
    }
    r.notes.push(format!(
        "numerics {}, head {}, kv cache {}",
        model.numerics().name(),
        model.head_mode().name(),
        model.kv_type().name()
    ));
    r.roofline = Some(super::bench::quick_roofline(exec.threads()));
    r.finish();
    r.write(file)?;
    eprintln!("bitnet: receipt written to {}", file.display());
    Ok(())
}

// ---- logits --------------------------------------------------------------------------

fn parse_tokens(s: &str, vocab: usize) -> Result<Vec<u32>, String> {
    let ids = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("--tokens: '{t}' is not a token id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err("--tokens: no token ids given".into());
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(format!(
            "--tokens: id {id} is out of range (vocabulary of {vocab})"
        ));
    }
    Ok(ids)
}

fn cmd_logits(a: LogitsArgs) -> CliResult {
    let t0 = Instant::now();
    let path = model_path(&a.model);
    let file = open(&path)?;
    let Loaded { model, .. } = load(&file, &a.exec, t0)?;
    let cfg = &model.config;
    let tok = match &a.prompt {
        Some(_) => Some(tokenizer(&file)?),
        None => load_tokenizer(file.gguf()).ok(),
    };
    let ids = match (&a.prompt, &a.tokens) {
        (Some(p), _) => tok
            .as_ref()
            .map(|t| t.encode(p, true))
            .transpose()
            .map_err(tok_err)?
            .unwrap_or_default(),
        (None, Some(t)) => parse_tokens(t, cfg.vocab_size)?,
        (None, None) => return Err("give a prompt (-p) or token ids (--tokens)".into()),
    };
    if ids.is_empty() {
        return Err("the prompt is empty and the model adds no BOS token".into());
    }
    if ids.len() > cfg.context_length {
        return Err(format!(
            "{} tokens are more than the model's context of {}",
            ids.len(),
            cfg.context_length
        ));
    }
    let mut state = model.new_state(ids.len()).map_err(model_err)?;
    let mut logits = vec![0f32; cfg.vocab_size];
    model
        .forward(&mut state, &ids, Some(&mut logits))
        .map_err(model_err)?;
    if let Some(out) = &a.out {
        let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    let mut order: Vec<u32> = (0..cfg.vocab_size as u32).collect();
    order.sort_by(|&x, &y| {
        logits[y as usize]
            .total_cmp(&logits[x as usize])
            .then(x.cmp(&y))
    });
    let piece = |id: u32| -> Option<String> {
        tok.as_ref()
            .and_then(|t| t.token_bytes(id).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let top: Vec<_> = order
        .iter()
        .take(a.top)
        .map(|&id| json!({"id": id, "logit": logits[id as usize], "piece": piece(id)}))
        .collect();
    let doc = json!({
        "model": path.display().to_string(),
        "architecture": cfg.arch_name,
        "numerics": model.numerics().name(),
        "head": model.head_mode().name(),
        "isa": model.exec().isa().name(),
        "n_vocab": cfg.vocab_size,
        "token_ids": ids,
        "tokens": ids.iter().map(|&id| piece(id)).collect::<Vec<_>>(),
        "position": ids.len() - 1,
        "top": top,
        "logits_file": a.out.as_ref().map(|p| p.display().to_string()),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
    );
    Ok(())
}

// ---- inspect -------------------------------------------------------------------------

/// One I2_S / TQ flavor check result.
struct TensorCheck {
    name: String,
    ty: &'static str,
    scale: Option<f32>,
    problems: Vec<String>,
}

fn check_ternary(name: &str, ty: GgmlType, dims: &[u64], data: &[u8]) -> Option<TensorCheck> {
    if !matches!(ty, GgmlType::I2_S | GgmlType::TQ2_0 | GgmlType::TQ1_0) {
        return None;
    }
    let mut c = TensorCheck {
        name: name.to_owned(),
        ty: ty.name(),
        scale: None,
        problems: Vec::new(),
    };
    if dims.len() != 2 {
        c.problems
            .push(format!("{} dims, expected a 2-D matrix", dims.len()));
        return Some(c);
    }
    let (cols, rows) = (dims[0] as usize, dims[1] as usize);
    let strict = |m: &dyn TernaryMatrix, c: &mut TensorCheck| {
        if let Err(e) = m.check_codes_strict() {
            c.problems.push(e.to_string());
        }
    };
    match ty {
        GgmlType::I2_S => {
            let n4 = rows * cols / 4;
            if data.len() == n4 + 32 {
                let s = f32::from_le_bytes([data[n4], data[n4 + 1], data[n4 + 2], data[n4 + 3]]);
                c.scale = Some(s);
                if !(s.is_finite() && s > 0.0) {
                    c.problems
                        .push(format!("scale {s} is not finite and positive"));
                }
                if data[n4 + 4..].iter().any(|&b| b != 0) {
                    c.problems
                        .push("the 28 padding bytes after the scale are not zero".into());
                }
            }
            match I2s::new(rows, cols, data) {
                Ok(m) => strict(&m, &mut c),
                Err(e) => c.problems.push(e.to_string()),
            }
        }
        GgmlType::TQ2_0 => match Tq2_0::new(rows, cols, data) {
            Ok(m) => strict(&m, &mut c),
            Err(e) => c.problems.push(e.to_string()),
        },
        _ => match Tq1_0::new(rows, cols, data) {
            Ok(m) => strict(&m, &mut c),
            Err(e) => c.problems.push(e.to_string()),
        },
    }
    Some(c)
}

fn value_summary(v: &Value) -> serde_json::Value {
    const MAX_STR: usize = 200;
    let short = |s: &str| {
        if s.len() > MAX_STR {
            let mut end = MAX_STR;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes)", &s[..end], s.len())
        } else {
            s.to_owned()
        }
    };
    match v {
        Value::String(s) => json!(short(s)),
        Value::Bool(b) => json!(b),
        Value::F32(f) => f32_json(*f),
        Value::F64(f) => json!(f),
        Value::Array(a) => {
            let n = a.len();
            let head: Vec<serde_json::Value> = match a {
                Array::String(s) => s.iter().take(4).map(|x| json!(short(x))).collect(),
                Array::F32(f) => f.iter().take(4).map(|&x| f32_json(x)).collect(),
                Array::F64(f) => f.iter().take(4).map(|x| json!(x)).collect(),
                Array::Bool(b) => b.iter().take(4).map(|x| json!(x)).collect(),
                _ => (0..n.min(4))
                    .filter_map(|i| a.integer_at(i))
                    .map(int_json)
                    .collect(),
            };
            json!({"array": a.elem_type().name(), "len": n, "first": head})
        }
        other => match other.as_integer() {
            Some(i) => int_json(i),
            None => json!(other.type_description()),
        },
    }
}

/// An f32 as its shortest decimal (1e-5, not 9.999999747378752e-6).
fn f32_json(v: f32) -> serde_json::Value {
    v.to_string()
        .parse::<f64>()
        .map_or_else(|_| json!(v.to_string()), |f| json!(f))
}

fn int_json(i: i128) -> serde_json::Value {
    if let Ok(v) = i64::try_from(i) {
        json!(v)
    } else if let Ok(v) = u64::try_from(i) {
        json!(v)
    } else {
        json!(i.to_string())
    }
}

fn cmd_inspect(a: InspectArgs) -> CliResult {
    let file = open(&a.model)?;
    let g = file.gguf();
    let file_len = file.bytes().len();
    let arch = g.metadata.opt_str("general.architecture").ok().flatten();
    let config = Config::from_gguf(g);
    let model = Model::load(&file);
    let tok_spec = tokenizer_spec(g);
    let tokenizer = load_tokenizer(g);

    let checks: Vec<TensorCheck> = file
        .tensors()
        .filter_map(|(t, d)| check_ternary(&t.name, t.ggml_type, &t.dims, d))
        .collect();
    let n_bad = checks.iter().filter(|c| !c.problems.is_empty()).count();
    let mut type_counts: Vec<(&'static str, usize, u64)> = Vec::new();
    for t in &g.tensors {
        match type_counts.iter_mut().find(|e| e.0 == t.ggml_type.name()) {
            Some(e) => {
                e.1 += 1;
                e.2 += t.n_bytes;
            }
            None => type_counts.push((t.ggml_type.name(), 1, t.n_bytes)),
        }
    }

    let tok_json = match (&tok_spec, &tokenizer) {
        (Ok(s), tk) => {
            let text = |id: Option<u32>| {
                id.and_then(|i| s.tokens.get(i as usize).cloned())
                    .unwrap_or_default()
            };
            json!({
                "model": s.model, "pre": s.pre, "tokens": s.tokens.len(), "merges": s.merges.len(),
                "bos": s.bos, "bos_text": text(s.bos), "eos": s.eos, "eos_text": text(s.eos),
                "eot": tk.as_ref().ok().and_then(|t| t.eot()),
                "add_bos": s.add_bos, "add_eos": s.add_eos,
                "pre_family": tk.as_ref().ok().map(|t| t.pre_name()),
                "chat_template": g.metadata.opt_str("tokenizer.chat_template").ok().flatten().map(|t| t.len()),
                "status": match tk { Ok(_) => "ok".to_owned(), Err(e) => format!("error: {e}") },
            })
        }
        (Err(e), _) => json!({"status": format!("error: {e}")}),
    };
    let model_status = match &model {
        Ok(m) => format!(
            "ok: every tensor of the {} graph is present with a supported type and the expected shape; output head {}",
            m.config.arch_name,
            if m.weights.output.is_some() {
                "output.weight"
            } else {
                "tied to token_embd"
            }
        ),
        Err(e) => format!("error: {e}"),
    };

    if a.json {
        let doc = json!({
            "file": a.model.display().to_string(),
            "bytes": file_len,
            "version": g.version,
            "alignment": g.alignment,
            "data_offset": g.data_offset,
            "architecture": arch,
            "hyper_parameters": config.as_ref().ok().map(|c| json!({
                "arch": c.arch_name, "vocab_size": c.vocab_size, "context_length": c.context_length,
                "embedding_length": c.hidden, "block_count": c.n_layer, "feed_forward_length": c.ffn,
                "head_count": c.n_head, "head_count_kv": c.n_head_kv, "head_dim": c.head_dim,
                "rms_eps": c.rms_eps, "rope_theta": c.rope_theta,
                "ffn_activation": format!("{:?}", c.arch.ffn_activation()),
            })),
            "config_error": config.as_ref().err().map(|e| e.to_string()),
            "model_check": model_status,
            "tokenizer": tok_json,
            "metadata": g.metadata.iter().map(|(k, v)| json!({"key": k, "type": v.type_description(), "value": value_summary(v)})).collect::<Vec<_>>(),
            "tensor_types": type_counts.iter().map(|(t, n, b)| json!({"type": t, "count": n, "bytes": b})).collect::<Vec<_>>(),
            "tensors": g.tensors.iter().map(|t| json!({
                "name": t.name, "type": t.ggml_type.name(), "type_id": t.ggml_type.id(),
                "shape": t.dims, "bytes": t.n_bytes, "offset": t.offset,
            })).collect::<Vec<_>>(),
            "ternary_checks": {
                "checked": checks.len(),
                "failed": n_bad,
                "tensors": checks.iter().map(|c| json!({
                    "name": c.name, "type": c.ty, "scale": c.scale, "ok": c.problems.is_empty(), "problems": c.problems,
                })).collect::<Vec<_>>(),
            },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
        return Ok(());
    }

    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(o, "file:          {} ({file_len} bytes)", a.model.display());
    let _ = writeln!(
        o,
        "gguf:          version {}, {} tensors, {} metadata keys, alignment {}, data at byte {}",
        g.version,
        g.tensors.len(),
        g.metadata.len(),
        g.alignment,
        g.data_offset
    );
    let _ = writeln!(o, "architecture:  {}", arch.unwrap_or("(none)"));
    match &config {
        Ok(c) => {
            let _ = writeln!(
                o,
                "hyper-params:  vocab {}, context {}, hidden {}, layers {}, FFN {}, heads {} / KV heads {} (head dim {}, GQA group {}), RMSNorm eps {:e}, RoPE NEOX θ {}, FFN {:?}",
                c.vocab_size,
                c.context_length,
                c.hidden,
                c.n_layer,
                c.ffn,
                c.n_head,
                c.n_head_kv,
                c.head_dim,
                c.gqa_group(),
                c.rms_eps,
                c.rope_theta,
                c.arch.ffn_activation()
            );
        }
        Err(e) => {
            let _ = writeln!(o, "hyper-params:  error: {e}");
        }
    }
    let _ = writeln!(o, "model check:   {model_status}");
    if let Ok(m) = &model {
        let weight_bytes: u64 = g.tensors.iter().map(|t| t.n_bytes).sum();
        let _ = writeln!(
            o,
            "weights:       {:.1} MiB borrowed from the memory map (projections {})",
            weight_bytes as f64 / (1 << 20) as f64,
            projection_type(m)
        );
    }
    match (&tok_spec, &tokenizer) {
        (Ok(s), tk) => {
            let text = |id: Option<u32>| match id {
                Some(i) => format!(
                    "{i} {}",
                    s.tokens
                        .get(i as usize)
                        .map_or("(out of range)", |t| t.as_str())
                ),
                None => "-".into(),
            };
            let _ = writeln!(
                o,
                "tokenizer:     {} (pre {}{}), {} tokens, {} merges, BOS {}, EOS {}, add_bos {}, add_eos {}, chat template {}{}",
                s.model,
                s.pre.as_deref().unwrap_or("(none: llama.cpp default)"),
                tk.as_ref()
                    .map(|t| format!(" → {}", t.pre_name()))
                    .unwrap_or_default(),
                s.tokens.len(),
                s.merges.len(),
                text(s.bos),
                text(s.eos),
                s.add_bos,
                s.add_eos,
                match g.metadata.opt_str("tokenizer.chat_template").ok().flatten() {
                    Some(t) => format!("yes ({} bytes)", t.len()),
                    None => "no".into(),
                },
                match tk {
                    Ok(_) => String::new(),
                    Err(e) => format!("; error: {e}"),
                }
            );
        }
        (Err(e), _) => {
            let _ = writeln!(o, "tokenizer:     error: {e}");
        }
    }
    let _ = writeln!(o, "metadata:");
    for (k, v) in g.metadata.iter() {
        if k == "tokenizer.chat_template" {
            let _ = writeln!(o, "  {k:<48} {}", v.type_description());
            continue;
        }
        let _ = writeln!(
            o,
            "  {k:<48} {}",
            serde_json::to_string(&value_summary(v)).unwrap_or_default()
        );
    }
    let _ = writeln!(o, "tensor types:");
    for (t, n, b) in &type_counts {
        let _ = writeln!(o, "  {t:<8} {n:>5} tensors {b:>14} bytes");
    }
    let _ = writeln!(o, "tensors:");
    let _ = writeln!(
        o,
        "  {:<32} {:<6} {:<20} {:>12} {:>12}",
        "name", "type", "shape (ne)", "bytes", "offset"
    );
    for t in &g.tensors {
        let shape = format!("{:?}", t.dims);
        let _ = writeln!(
            o,
            "  {:<32} {:<6} {:<20} {:>12} {:>12}",
            t.name,
            t.ggml_type.name(),
            shape,
            t.n_bytes,
            t.offset
        );
    }
    if checks.is_empty() {
        let _ = writeln!(o, "ternary checks: no ternary tensors");
    } else {
        let scales: Vec<f32> = checks.iter().filter_map(|c| c.scale).collect();
        let _ = writeln!(
            o,
            "ternary checks: {}/{} tensors ok (I2_S: scale finite and positive, 28 padding bytes zero; all: codes never 3){}",
            checks.len() - n_bad,
            checks.len(),
            if scales.is_empty() {
                String::new()
            } else {
                format!(
                    "; I2_S scales in [{:.6}, {:.6}]",
                    scales.iter().copied().fold(f32::INFINITY, f32::min),
                    scales.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                )
            }
        );
        for c in checks.iter().filter(|c| !c.problems.is_empty()) {
            let _ = writeln!(o, "  {} ({}): {}", c.name, c.ty, c.problems.join("; "));
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(o.as_bytes())
        .map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(())
}

// ---- chat ----------------------------------------------------------------------------

/// Longest suffix of `s` that is a proper prefix of `stop`, in bytes (text held back in
/// case the stop string is being written).
fn holdback(s: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&n| {
            s.len() >= n && s.is_char_boundary(s.len() - n) && stop.starts_with(&s[s.len() - n..])
        })
        .unwrap_or(0)
}

fn cmd_chat(a: ChatArgs) -> CliResult {
    let t0 = Instant::now();
    let path = model_path(&a.model);
    let scfg = sampler_of(&a.sample)?;
    let file = open(&path)?;
    let Loaded { model, load_ms } = load(&file, &a.exec, t0)?;
    let tok = tokenizer(&file)?;
    let cfg = &model.config;
    let md = &file.gguf().metadata;
    let text_of = |id: Option<u32>| {
        id.and_then(|i| tok.token_bytes(i).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let format = match md
        .opt_str("tokenizer.chat_template")
        .map_err(|e| e.to_string())?
    {
        Some(t) => ChatFormat::Template {
            source: t.to_owned(),
            bos: text_of(tok.bos()),
            eos: text_of(tok.eos()),
        },
        None => ChatFormat::Plain,
    };
    let capacity = cfg.context_length.min(CHAT_MAX_CONTEXT);
    let mut state: State = model.new_state(capacity).map_err(model_err)?;
    let mut sampler = Sampler::new(scfg);
    let mut logits = vec![0f32; cfg.vocab_size];
    eprintln!(
        "bitnet chat: {} ({} layers, hidden {}), {}; isa {}, threads {}, seed {}; loaded in {load_ms:.0} ms. Empty line: skip; Ctrl-D: quit; Ctrl-C: stop a reply.",
        path.display(),
        cfg.n_layer,
        cfg.hidden,
        format.describe(),
        model.exec().isa(),
        model.exec().threads(),
        scfg.seed
    );
    install_ctrlc();

    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    let io = |e: std::io::Error| format!("terminal: {e}");
    let mut messages: Vec<ChatMessage> = Vec::new();
    let mut cached: Vec<u32> = Vec::new();
    let mut line = String::new();
    loop {
        write!(out, "> ").map_err(io)?;
        out.flush().map_err(io)?;
        line.clear();
        if input.read_line(&mut line).map_err(io)? == 0 {
            writeln!(out).map_err(io)?;
            break;
        }
        INTERRUPTED.store(false, Ordering::SeqCst);
        let user = line.trim_end_matches(['\n', '\r']);
        if user.trim().is_empty() {
            continue;
        }
        messages.push(ChatMessage::new("user", user));
        let encode = |msgs: &[ChatMessage]| -> Result<Vec<u32>, String> {
            let text = format.render(msgs, true)?;
            let mut ids = tok
                .encode_with_special(&text, false, true)
                .map_err(tok_err)?;
            if tok.add_bos()
                && let Some(b) = tok.bos()
                && ids.first() != Some(&b)
            {
                ids.insert(0, b);
            }
            Ok(ids)
        };
        let mut ids = encode(&messages)?;
        if ids.len() >= capacity {
            eprintln!("bitnet chat: the conversation no longer fits the context; starting over");
            messages.drain(..messages.len() - 1);
            cached.clear();
            ids = encode(&messages)?;
            if ids.len() >= capacity {
                eprintln!(
                    "bitnet chat: that message is {} tokens; the context holds {capacity}",
                    ids.len()
                );
                messages.clear();
                continue;
            }
        }
        // Reuse the cached prefix; recompute at least the last token for fresh logits.
        let mut keep = cached.iter().zip(&ids).take_while(|(x, y)| x == y).count();
        keep = keep.min(ids.len() - 1).min(state.pos());
        state.truncate(keep);
        model
            .forward(&mut state, &ids[keep..], Some(&mut logits))
            .map_err(model_err)?;
        cached = ids.clone();

        let mut dec = StreamDecoder::new(&tok);
        let mut reply = String::new();
        let mut printed = 0usize;
        let room = capacity - state.pos();
        let n = a.sample.n.min(room);
        let mut history = ids;
        for i in 0..n {
            if INTERRUPTED.load(Ordering::SeqCst) {
                break;
            }
            let next = sampler.sample(&logits, &history);
            if tok.is_end_of_generation(next) {
                break;
            }
            history.push(next);
            cached.push(next);
            reply.push_str(&dec.push(next).map_err(tok_err)?);
            let mut stop = false;
            let mut upto = reply.len();
            if let ChatFormat::Plain = format {
                if let Some(at) = reply.find(PLAIN_STOP) {
                    reply.truncate(at);
                    upto = at;
                    stop = true;
                } else {
                    upto -= holdback(&reply, PLAIN_STOP);
                }
            }
            // Replies usually open with the space after "Assistant:"; do not print it.
            let lead = reply.len() - reply.trim_start_matches(' ').len();
            let from = printed.max(lead);
            if upto > from {
                write!(out, "{}", &reply[from..upto]).map_err(io)?;
                out.flush().map_err(io)?;
                printed = upto;
            }
            if stop {
                break;
            }
            if i + 1 < n {
                model
                    .forward(&mut state, &[next], Some(&mut logits))
                    .map_err(model_err)?;
            }
        }
        // The state holds the prompt and every sampled token that was fed back (not the last
        // one when the loop stopped right after sampling it): keep the cache key in step.
        cached.truncate(state.pos());
        let lead = reply.len() - reply.trim_start_matches(' ').len();
        let from = printed.max(lead);
        if from < reply.len() {
            write!(out, "{}", &reply[from..]).map_err(io)?;
        }
        writeln!(out).map_err(io)?;
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            eprintln!("bitnet chat: (reply stopped)");
        }
        messages.push(ChatMessage::new("assistant", reply.trim()));
    }
    Ok(())
}

// ---- synth ---------------------------------------------------------------------------

fn cmd_synth(a: SynthArgs) -> CliResult {
    let spec = SynthSpec::preset(&a.preset).ok_or_else(|| {
        format!(
            "--preset: unknown preset '{}' (known: 2b4t, tiny)",
            a.preset
        )
    })?;
    let ty = SynthType::parse(&a.ty).ok_or_else(|| {
        format!(
            "--type: unknown type '{}' (known: {})",
            a.ty,
            SynthType::NAMES
        )
    })?;
    let t0 = Instant::now();
    let mut last = Instant::now();
    let mut err = std::io::stderr();
    let total = write_model(&spec, ty, a.seed, &a.out, |done, total| {
        if last.elapsed().as_millis() >= 500 || done == total {
            last = Instant::now();
            let _ = write!(err, "\rbitnet synth: {} / {} MiB", done >> 20, total >> 20);
            let _ = err.flush();
        }
    })
    .map_err(|e| e.to_string())?;
    eprintln!(
        "\rbitnet synth: wrote {} ({} bytes, preset {}, {:?}, seed {}) in {:.1} s",
        a.out.display(),
        total,
        a.preset,
        ty,
        a.seed,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
