//! `bitnet bench ...` and `bitnet receipt ...`: the roofline probe, the kernel matrix, whole
//! model figures, and receipts. The measuring itself lives in `bitnet_runner::bench`.

use std::path::{Path, PathBuf};

use bitnet_kernels::{Format, Isa};
use bitnet_runner::bench::kernels::{self, Config, Op, Regime, Shape};
use bitnet_runner::bench::model::RunSpec;
use bitnet_runner::bench::progress::Progress;
use bitnet_runner::bench::receipt::{self, Receipt};
use bitnet_runner::bench::roofline::{self, ProbeConfig, Roofline};
use bitnet_runner::bench::{Budget, model as model_bench};
use bitnet_runner::gguf::GgufFile;
use bitnet_runner::model::{HeadMode, StageTimes};
use clap::{Args, Subcommand};

use super::CliResult;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Measure this machine's memory bandwidth (DRAM, L3, L2; 1 and N threads) and int8 peak.
    Roofline {
        /// Thread counts, comma-separated (default: 1 and all cores).
        #[arg(long, value_delimiter = ',')]
        threads: Vec<usize>,
        /// Smaller DRAM buffer (256 MiB) and fewer passes.
        #[arg(long)]
        quick: bool,
        /// Print the receipt JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Write a JSON receipt to FILE.
        #[arg(long, value_name = "FILE")]
        receipt: Option<PathBuf>,
    },
    /// Time every format × op × ISA × threads × shape, hot and cold, against the roofline.
    Kernels(KernelArgs),
    /// Whole-model figures: prompt and decode tok/s, time to first token, peak RSS.
    Model(ModelArgs),
    /// Redraw the plot of a `bench kernels` receipt (no measuring).
    Plot {
        /// The receipt JSON file.
        receipt: PathBuf,
        /// The SVG file to write.
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct KernelArgs {
    /// Formats, comma-separated: i2s, qk256, tq2_0, tq1_0 (default: all).
    #[arg(long, value_delimiter = ',')]
    formats: Vec<String>,
    /// Operations: unpack, gemv_f32, gemv_i8, gemm_i8, act_quant (default: all).
    #[arg(long, value_delimiter = ',')]
    ops: Vec<String>,
    /// ISAs: scalar, avx2, avx512, auto (the best) or all (default: all this CPU has).
    /// Naming one this CPU lacks is an error.
    #[arg(long, value_delimiter = ',')]
    isa: Vec<String>,
    /// Thread counts (default: 1 and all cores).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Shapes ROWSxCOLS (default: the 2B-4T ones, 2560x2560,640x2560,6912x2560,2560x6912).
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Regimes: hot, cold (default: both).
    #[arg(long, value_delimiter = ',')]
    regimes: Vec<String>,
    /// Shorter timing budget, 64 MiB cold pools, quick roofline.
    #[arg(long)]
    quick: bool,
    /// Size of each cold pool in MiB (default 128, or 64 with --quick).
    #[arg(long, value_name = "MIB")]
    cold_mib: Option<usize>,
    /// Tokens of the prefill GEMM and the activation quantizer.
    #[arg(long, default_value_t = 128)]
    prefill_tokens: usize,
    /// Print the receipt JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Draw achieved GB/s against the roofline into this SVG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Write a JSON receipt to FILE.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// GGUF model file (default: a synthetic 2B-4T-shaped model, see --synth).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Synthetic model PRESET[:TYPE] used without -m (presets tiny, 2b4t; types i2s,
    /// tq2_0, tq1_0), written once to the temp directory.
    #[arg(long, default_value = "2b4t:i2s")]
    synth: String,
    /// ISA (default: the best this CPU has).
    #[arg(long, default_value = "auto")]
    isa: String,
    /// Skip the roofline probe (the receipt then has no roofline).
    #[arg(long)]
    no_roofline: bool,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens to generate.
    #[arg(long = "gen", default_value_t = 32)]
    gen_tokens: usize,
    /// Threads (default: all cores).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Output head: f16 (stored, exact) or int8 (repacked at load, before timing starts).
    #[arg(long, default_value = "f16")]
    head: String,
    /// KV cache element type: f32 or f16.
    #[arg(long, default_value = "f32")]
    kv: String,
    /// Print the receipt JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write a JSON receipt to FILE.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Run the whole-model targets: f16 and int8 heads on 1 thread and on --threads (all
    /// cores by default), then one roofline; prints each target against its figure
    /// (--head is ignored).
    #[arg(long)]
    targets: bool,
    /// With --targets: measure this many rounds (each its runs, then its roofline), judge
    /// every target in every round against that round's figures, and report how many
    /// rounds met it (a shared machine's bandwidth moves by tens of percent within minutes).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Lock the model file's pages in RAM (mlock) for the whole benchmark, so that page
    /// reclaim while the model sits idle (the roofline probe, the gaps between runs) cannot
    /// evict them or break their 2 MiB pages; needs a memory-lock limit (`ulimit -l`) of at
    /// least the file size.
    #[arg(long)]
    mlock: bool,
}

/// With `--mlock`: the model file opened and locked in RAM for as long as the value lives;
/// every run of the benchmark uses this one mapping.
fn lock_model(a: &ModelArgs, path: &Path, r: &mut Receipt) -> Result<Option<GgufFile>, String> {
    if !a.mlock {
        return Ok(None);
    }
    let file = GgufFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.lock().map_err(|e| {
        format!("--mlock: {e} (raise the limit with `ulimit -l`, or run without --mlock)")
    })?;
    r.notes
        .push("model file locked in RAM (--mlock) for the whole benchmark; every run uses that one mapping, and its load time leaves out opening the file".into());
    Ok(Some(file))
}

pub(crate) fn run(cmd: BenchCmd) -> CliResult {
    match cmd {
        BenchCmd::Roofline {
            threads,
            quick,
            json,
            receipt,
        } => run_roofline(threads, quick, json, receipt.as_deref()),
        BenchCmd::Kernels(args) => run_kernels(args),
        BenchCmd::Model(args) => run_model(args),
        BenchCmd::Plot { receipt, out } => {
            let r = read_receipt(&receipt)?;
            let roof = r
                .roofline
                .as_ref()
                .ok_or_else(|| format!("{}: no roofline in the receipt", receipt.display()))?;
            bitnet_runner::bench::plot::plot_svg(&out, &r.figures, roof, &plot_title(&r))?;
            eprintln!("plot: {} written", out.display());
            Ok(())
        }
    }
}

fn default_threads(given: Vec<usize>) -> Result<Vec<usize>, String> {
    if given.contains(&0) {
        return Err("--threads: a thread count must be at least 1".into());
    }
    if !given.is_empty() {
        return Ok(given);
    }
    let cores = bitnet_kernels::exec::default_threads();
    let mut t = vec![1, cores];
    t.dedup();
    Ok(t)
}

/// The quick roofline probe for a receipt written by another command (`bitnet run`),
/// measured right after that command's work, on 1 and `threads` threads.
pub(crate) fn quick_roofline(threads: usize) -> Roofline {
    let mut t = vec![1, threads];
    t.dedup();
    let mut progress = Progress::new(1, false);
    let r = probe(&t, true, &mut progress);
    progress.finish();
    r
}

fn probe(threads: &[usize], quick: bool, progress: &mut Progress) -> Roofline {
    let cfg = if quick {
        ProbeConfig::quick(threads.to_vec())
    } else {
        ProbeConfig::full(threads.to_vec())
    };
    roofline::probe(&cfg, |s| progress.step(s))
}

fn roofline_text(r: &Roofline) -> String {
    let list = |v: &[roofline::Bandwidth]| {
        v.iter()
            .map(|b| format!("{:.1} GB/s ({} thr)", b.gbps, b.threads))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "roofline (same run; probe loads {}):\n  DRAM read  {}  [{} MiB buffer]\n  L3 read    {}  [{} MiB]\n  L2 read    {}  [{} KiB per thread]\n  int8 peak  {:.1} G products/s, 1 thread ({}, {} token(s), cache-resident){}\n",
        r.probe_simd,
        list(&r.dram_read_gbps),
        r.dram_buffer_bytes >> 20,
        list(&r.l3_read_gbps),
        r.l3_buffer_bytes >> 20,
        list(&r.l2_read_gbps),
        r.l2_buffer_bytes_per_thread >> 10,
        r.int8_peak_gops,
        r.int8_peak_kernel,
        r.int8_peak_tokens,
        if r.int8_hw_peak_gops > 0.0 {
            format!(
                "\n  CPU int8   {:.1} G products/s, 1 thread ({} on registers, no loads)",
                r.int8_hw_peak_gops,
                if r.int8_hw_peak_instructions.is_empty() {
                    "vpdpbusd"
                } else {
                    &r.int8_hw_peak_instructions
                }
            )
        } else {
            String::new()
        },
    )
}

fn load_text(r: &Receipt) -> String {
    let f = |l: Option<[f64; 3]>| {
        l.map_or("?".to_string(), |l| {
            format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
        })
    };
    format!(
        "machine: {} ({} logical CPUs); load average at start {} / end {}; git {}\n",
        r.cpu.model,
        r.cpu.logical_cpus,
        f(r.load_average_start),
        f(r.load_average_end),
        r.git_revision
    )
}

fn finish_receipt(r: &mut Receipt, json: bool, path: Option<&Path>) -> CliResult {
    r.finish();
    if json {
        println!("{}", r.to_json());
    }
    if let Some(p) = path {
        r.write(p)?;
    }
    match receipt::verify(r) {
        Ok(()) => {
            if let Some(p) = path {
                eprintln!("receipt: {} written and verified", p.display());
            }
            Ok(())
        }
        Err(e) => Err(format!("receipt does not verify: {e}")),
    }
}

fn run_roofline(threads: Vec<usize>, quick: bool, json: bool, path: Option<&Path>) -> CliResult {
    let threads = default_threads(threads)?;
    let mut r = Receipt::new("roofline");
    let mut progress = Progress::new(1, !json);
    let roof = probe(&threads, quick, &mut progress);
    progress.finish();
    r.threads = threads;
    if !json {
        print!("{}", roofline_text(&roof));
    }
    r.kernels.push(roof.int8_peak_kernel.clone());
    r.isas.push(Isa::best().name().to_string());
    r.roofline = Some(roof);
    if !json {
        r.finish();
        print!("{}", load_text(&r));
    }
    finish_receipt(&mut r, json, path)
}

fn parse_list<T>(
    given: &[String],
    all: Vec<T>,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    if given.is_empty() {
        return Ok(all);
    }
    given
        .iter()
        .map(|s| parse(s.trim()).ok_or_else(|| format!("unknown {what} `{s}`")))
        .collect()
}

fn parse_isas(given: &[String]) -> Result<Vec<Isa>, String> {
    let mut out = Vec::new();
    for s in given {
        match s.trim() {
            "all" => out.extend(Isa::available()),
            name => {
                let isa = Isa::parse(name).map_err(|e| e.to_string())?;
                out.push(isa.require().map_err(|e| e.to_string())?);
            }
        }
    }
    if out.is_empty() {
        out = Isa::available();
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn run_kernels(a: KernelArgs) -> CliResult {
    let mut cfg = Config::full();
    cfg.formats = parse_list(&a.formats, Format::ALL.to_vec(), "format", |s| {
        Format::parse(s).ok()
    })?;
    cfg.ops = parse_list(&a.ops, Op::ALL.to_vec(), "op", Op::parse)?;
    cfg.isas = parse_isas(&a.isa)?;
    cfg.threads = default_threads(a.threads)?;
    cfg.shapes = parse_list(
        &a.shapes,
        Shape::B2_4T.to_vec(),
        "shape (ROWSxCOLS)",
        Shape::parse,
    )?;
    cfg.regimes = parse_list(
        &a.regimes,
        vec![Regime::Hot, Regime::Cold],
        "regime",
        Regime::parse,
    )?;
    if a.prefill_tokens == 0 {
        return Err("--prefill-tokens must be at least 1".into());
    }
    cfg.prefill_tokens = a.prefill_tokens;
    if a.quick {
        cfg.budget = Budget::QUICK;
        cfg.cold_bytes = 64 << 20;
    }
    if let Some(m) = a.cold_mib {
        cfg.cold_bytes = m.max(1) << 20;
    }
    let cases = cfg.cases();
    if cases.is_empty() {
        return Err("nothing to run: no case matches the filters".into());
    }
    let mut r = Receipt::new("kernels");
    let mut progress = Progress::new(cases.len(), !a.quiet);
    let mut roof = probe(&cfg.threads, a.quick, &mut progress);
    let mut figs = kernels::run(&cfg, &roof, &mut progress)?;
    // The machine's bandwidth moves while the kernels run: probe again and set every figure
    // against the best of both probes, so that a quiet moment the kernels caught but the
    // first probe missed is not taken for a figure above the roofline.
    roof.keep_best(&probe(&cfg.threads, a.quick, &mut progress));
    for f in &mut figs {
        receipt::complete_figure(f, &roof);
    }
    progress.finish();
    r.add_figures(figs);
    r.roofline = Some(roof.clone());
    r.notes.push(format!(
        "figures are the fastest of repeated calls (median beside); cold = rotation through >= {} MiB of copies; hot = one matrix repeated; roofline = the best of probes before and after the kernels",
        cfg.cold_bytes >> 20
    ));
    r.notes.push(
        "unpack has no ISA/thread parameter in the kernels API (recorded as scalar, 1 thread); Q8_K quantization (tq formats' act_quant) ignores the ISA"
            .into(),
    );
    r.finish();
    if let Some(p) = &a.plot {
        bitnet_runner::bench::plot::plot_svg(p, &r.figures, &roof, &plot_title(&r))?;
        eprintln!("plot: {} written", p.display());
    }
    if !a.json {
        print!("{}", roofline_text(&roof));
        print!("{}", load_text(&r));
        println!();
        print!("{}", kernels::table(&r.figures));
        print!("{}", targets_text(&r));
    }
    finish_receipt(&mut r, a.json, a.receipt.as_deref())
}

fn plot_title(r: &Receipt) -> String {
    let rev: String = r.git_revision.chars().take(12).collect();
    format!(
        "bitnet bench kernels — {} — git {rev} — load avg {} — weight GB/s per kernel vs read bandwidth measured in the same run",
        r.cpu.model,
        r.load_average_start
            .map_or("?".into(), |l| format!("{:.2}", l[0]))
    )
}

fn read_receipt(file: &Path) -> Result<Receipt, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Receipt::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// The issue-3 targets, read off the figures.
fn targets_text(r: &Receipt) -> String {
    let mut s = String::from("\ntargets (decode GEMV 2560→6912 = rows 6912, cols 2560):\n");
    let best = |threads: usize, regime: &str| {
        r.figures
            .iter()
            .filter(|f| {
                f.op == "gemv_i8"
                    && f.rows == 6912
                    && f.cols == 2560
                    && f.threads == threads
                    && f.regime == regime
            })
            .max_by(|a, b| a.roofline_fraction.total_cmp(&b.roofline_fraction))
    };
    for (t, goal) in [(1usize, 0.85), (2, 0.80)] {
        match best(t, "cold") {
            Some(f) => {
                s += &format!(
                    "  cold, {t} thread(s): best {} {:.1} µs = {:.1}% of DRAM read bandwidth (target ≥ {:.0}%): {}\n",
                    f.kernel,
                    f.time_us,
                    f.roofline_fraction * 100.0,
                    goal * 100.0,
                    if f.roofline_fraction >= goal {
                        "met"
                    } else {
                        "NOT met"
                    }
                );
            }
            None => s += &format!("  cold, {t} thread(s): not measured\n"),
        }
    }
    let hot = r
        .figures
        .iter()
        .filter(|f| f.op == "gemv_i8" && f.threads == 1 && f.regime == "hot" && f.isa == "avx512")
        .max_by(|a, b| a.gops.total_cmp(&b.gops));
    match hot {
        Some(f) => {
            s += &format!(
                "  hot, 1 thread, VNNI: best {} {}→{} {:.1} G weights/s (target ≥ 95): {}\n",
                f.kernel,
                f.cols,
                f.rows,
                f.gops,
                if f.gops >= 95.0 { "met" } else { "NOT met" }
            );
        }
        None => s += "  hot, 1 thread, VNNI: not measured\n",
    }
    s
}

fn run_model(a: ModelArgs) -> CliResult {
    if !a.targets && a.rounds != 1 {
        return Err("--rounds goes with --targets".into());
    }
    if a.targets {
        return run_model_targets(a);
    }
    let threads = a
        .threads
        .unwrap_or_else(bitnet_kernels::exec::default_threads);
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isa = Isa::parse(&a.isa)
        .and_then(Isa::require)
        .map_err(|e| e.to_string())?;
    let mut r = Receipt::new("model");
    let path = bench_model_path(&a)?;
    r.model = Some(model_bench::model_info(&path)?);
    let locked = lock_model(&a, &path, &mut r)?;
    let mut progress = Progress::new(2, !a.json);
    // The model first: the probe's large buffer would otherwise set the peak RSS.
    progress.step("model: load, prompt, decode");
    let head = super::head_arg(&a.head)?;
    let kv = super::kv_arg(&a.kv)?;
    let m = model_bench::run(&RunSpec {
        path: &path,
        opened: locked.as_ref(),
        prompt_tokens: a.prompt_tokens,
        gen_tokens: a.gen_tokens,
        isa,
        threads,
        head,
        kv,
    })?;
    progress.inc();
    if !a.no_roofline {
        let mut t = vec![1, threads];
        t.dedup();
        r.roofline = Some(probe(&t, true, &mut progress));
    }
    progress.inc();
    progress.finish();
    r.threads = vec![threads];
    r.isas = vec![isa.name().to_string()];
    for f in &m.formats {
        for op in ["gemm_i8", "gemv_i8"] {
            r.kernels.push(format!("{f}.{op}.{}", isa.name()));
        }
    }
    if let Some(info) = r.model.as_mut() {
        info.arch = m.arch.clone();
    }
    r.metric("load_ms", m.load_ms, "ms");
    r.metric("prompt_tokens", m.prompt_tokens as f64, "tokens");
    r.metric("gen_tokens", m.gen_tokens as f64, "tokens");
    r.metric("time_to_first_token_ms", m.ttft_ms, "ms");
    r.metric("prompt_tok_per_s", m.prompt_tok_per_s, "tok/s");
    r.metric("prompt_warm_tok_per_s", m.warm_prompt_tok_per_s(), "tok/s");
    r.metric("decode_tok_per_s", m.decode_tok_per_s, "tok/s");
    r.metric(
        "ternary_bytes_per_token",
        m.ternary_bytes_per_token as f64,
        "bytes",
    );
    r.metric(
        "head_bytes_per_token",
        m.head_bytes_per_token as f64,
        "bytes",
    );
    let decode_gbps = m.weight_bytes_per_token() as f64 * m.decode_tok_per_s / 1e9;
    r.metric("decode_weight_gbps", decode_gbps, "GB/s");
    if let Some(s) = m.stream_gbps {
        r.metric("interleaved_stream_gbps", s, "GB/s");
        r.metric(
            "decode_fraction_of_interleaved_stream",
            decode_gbps / s,
            "fraction",
        );
    }
    // (receipt key, printed label, per, stage times, passes)
    let stages = [
        (
            "prefill",
            "warm prompt",
            "prompt",
            m.prefill_stages,
            m.warm_prompt_ms.len(),
        ),
        ("decode", "decode", "token", m.decode_stages, m.gen_tokens),
    ];
    for (key, _, _, t, n) in stages {
        if let Some(t) = t {
            for (stage, ms) in stage_ms(&t, n) {
                r.metric(&format!("{key}_stage_{stage}_ms"), ms, "ms");
            }
        }
    }
    if let Some(rss) = m.peak_rss_bytes {
        r.metric("peak_rss_bytes", rss as f64, "bytes");
    }
    if let Some(b) = m.file_huge_mapped_bytes {
        r.metric("file_huge_mapped_bytes", b as f64, "bytes");
    }
    r.metric("kv_cache_bytes", m.kv_cache_bytes as f64, "bytes");
    if let Some(b) = m.anon_rss_bytes {
        r.metric("anon_rss_bytes", b as f64, "bytes");
        r.metric(
            "anon_rss_beyond_kv_bytes",
            b.saturating_sub(m.kv_cache_bytes) as f64,
            "bytes",
        );
    }
    let dram = r
        .roofline
        .as_ref()
        .and_then(|roof| roof.bandwidth(roofline::Level::Dram, threads));
    if let Some(bw) = dram {
        r.metric(
            "decode_bound_tok_per_s",
            bw * 1e9 / m.weight_bytes_per_token() as f64,
            "tok/s",
        );
        r.metric(
            "decode_fraction_of_bandwidth_bound",
            decode_gbps / bw,
            "fraction",
        );
    }
    r.notes.push(
        format!("head {}, kv cache {}; ", head.name(), kv.name())
            + "decode reads every weight once per token: decode_weight_gbps = (ternary + head bytes) x tok/s; the bound is the DRAM read bandwidth measured with the same threads; prompt tokens are pseudo-random ids",
    );
    if !a.json {
        let info = r.model.as_ref().map_or(String::new(), |i| {
            format!(
                "{} ({}, {:.1} MiB, sha256 {})",
                i.path,
                i.arch,
                i.bytes as f64 / 1048576.0,
                &i.sha256[..16]
            )
        });
        println!("model: {info}");
        println!(
            "formats {}, ISA {}, {threads} thread(s), head {}, kv cache {}",
            m.formats.join(","),
            isa.name(),
            head.name(),
            kv.name()
        );
        println!("load                 {:>10.1} ms", m.load_ms);
        println!(
            "prompt ({} tokens)   {:>10.1} tok/s   time to first token {:.1} ms (first prompt: maps the weights)",
            m.prompt_tokens, m.prompt_tok_per_s, m.ttft_ms
        );
        println!(
            "  again, warm         {:>10.1} tok/s   median of {} runs ({} ms)",
            m.warm_prompt_tok_per_s(),
            m.warm_prompt_ms.len(),
            m.warm_prompt_ms
                .iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
        println!(
            "decode ({} tokens)    {:>10.2} tok/s   weights {:.0} MB/token ({:.0} ternary + {:.0} head) = {:.2} GB/s{}",
            m.gen_tokens,
            m.decode_tok_per_s,
            m.weight_bytes_per_token() as f64 / 1e6,
            m.ternary_bytes_per_token as f64 / 1e6,
            m.head_bytes_per_token as f64 / 1e6,
            decode_gbps,
            dram.map_or(String::new(), |bw| format!(
                "\n                                          = {:.1}% of the bound {:.1} tok/s (DRAM read {bw:.1} GB/s, {threads} thread(s), same run)",
                decode_gbps / bw * 100.0,
                bw * 1e9 / m.weight_bytes_per_token() as f64
            ))
        );
        if let Some(s) = m.stream_gbps {
            println!(
                "                                          = {:.1}% of plain reads of the model file, interleaved ({s:.1} GB/s, {threads} thread(s), every {} tokens)",
                decode_gbps / s * 100.0,
                model_bench::STREAM_EVERY
            );
        }
        for (_, what, unit, t, n) in stages {
            if let Some(t) = t {
                println!(
                    "  stages, {what:<11} ms/{unit}: {}",
                    stage_ms(&t, n)
                        .iter()
                        .map(|(stage, ms)| format!("{stage} {ms:.2}"))
                        .collect::<Vec<_>>()
                        .join(" · ")
                );
            }
        }
        if let Some(rss) = m.peak_rss_bytes {
            println!("peak RSS             {:>10.1} MiB", rss as f64 / 1048576.0);
        }
        if let Some(b) = m.anon_rss_bytes {
            println!(
                "anonymous RSS        {:>10.1} MiB = KV cache {:.1} + {:.1} beyond it",
                b as f64 / 1048576.0,
                m.kv_cache_bytes as f64 / 1048576.0,
                b.saturating_sub(m.kv_cache_bytes) as f64 / 1048576.0
            );
        }
        if let Some(b) = m.file_huge_mapped_bytes {
            println!(
                "2 MiB file pages     {:>10.1} MiB mapped{}",
                b as f64 / 1048576.0,
                if b == 0 {
                    " (the model's page cache is in small pages: see docs/performance.md, huge pages)"
                } else {
                    ""
                }
            );
        }
        r.finish();
        print!("{}", load_text(&r));
    }
    finish_receipt(&mut r, a.json, a.receipt.as_deref())
}

/// The model to bench: `-m`, or the synthetic one (written once).
fn bench_model_path(a: &ModelArgs) -> Result<PathBuf, String> {
    match &a.model {
        Some(p) => Ok(p.clone()),
        None => {
            eprintln!(
                "bench model: synthetic model {} (written once to the temp directory)",
                a.synth
            );
            model_bench::synth_model(&a.synth, |_, _| {})
        }
    }
}

/// Whole-model targets (issue 7): decode at ≥ 85% of the bandwidth bound with the F16 head
/// and ≥ 30 tok/s with the int8 head on all cores, prefill ≥ 150 tok/s, ≥ 1.7× from 1 to
/// all cores, ≤ 64 MB of anonymous memory beyond the KV cache. Every run in one process;
/// each round's roofline right after its runs, and each round judged on its own figures.
fn run_model_targets(a: ModelArgs) -> CliResult {
    let n = a
        .threads
        .unwrap_or_else(bitnet_kernels::exec::default_threads);
    if n == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isa = Isa::parse(&a.isa)
        .and_then(Isa::require)
        .map_err(|e| e.to_string())?;
    let kv = super::kv_arg(&a.kv)?;
    let path = bench_model_path(&a)?;
    let mut r = Receipt::new("model");
    r.model = Some(model_bench::model_info(&path)?);
    let locked = lock_model(&a, &path, &mut r)?;
    let mut threads = vec![1, n];
    threads.dedup();
    let heads = [HeadMode::Stored, HeadMode::Int8];
    let base = RunSpec {
        path: &path,
        opened: locked.as_ref(),
        prompt_tokens: a.prompt_tokens,
        gen_tokens: a.gen_tokens,
        isa,
        threads: n,
        head: HeadMode::Stored,
        kv,
    };
    let rounds = a.rounds as usize;
    let mut progress = Progress::new(rounds * (heads.len() * threads.len() + 1), !a.json);
    let mut judged = Vec::new();
    let mut best_roof: Option<Roofline> = None;
    let mut huge: Option<u64> = None;
    for round in 1..=rounds {
        let tag = if rounds > 1 {
            format!("round {round}/{rounds}: ")
        } else {
            String::new()
        };
        let mut runs = Vec::new();
        for head in heads {
            for &t in &threads {
                progress.step(&format!("{tag}model: head {}, {t} thread(s)", head.name()));
                let m = model_bench::run(&RunSpec {
                    threads: t,
                    head,
                    ..base
                })?;
                runs.push((head, t, m));
                progress.inc();
            }
        }
        let roof = probe(&threads, true, &mut progress);
        progress.inc();
        let prefix = if rounds > 1 {
            format!("round{round}_")
        } else {
            String::new()
        };
        judged.push(judge_targets(&runs, &roof, n, &prefix, &mut r));
        huge = runs
            .iter()
            .filter_map(|(_, _, m)| m.file_huge_mapped_bytes)
            .chain(huge)
            .min();
        match &mut best_roof {
            Some(b) => b.keep_best(&roof),
            None => best_roof = Some(roof),
        }
    }
    progress.finish();
    r.threads = threads.clone();
    r.isas = vec![isa.name().to_string()];
    if rounds > 1 {
        // How many rounds met each target (the names are the same in every round).
        for (i, (name, _, _)) in judged[0].1.iter().enumerate() {
            let met = judged
                .iter()
                .filter(|(_, t)| t.get(i).is_some_and(|x| x.2 == Some(true)))
                .count();
            r.metric(
                &format!("target_met_rounds: {name}"),
                met as f64 / rounds as f64,
                "fraction",
            );
        }
    }
    r.roofline = best_roof;
    r.notes.push(format!(
        "kv cache {}; prompt {} tokens, {} decoded; {rounds} round(s), each judged against its own roofline (the receipt's roofline is the best of the rounds' probes); decode bounds: DRAM probe (best window) and plain reads of the model file interleaved with the decode",
        kv.name(),
        a.prompt_tokens,
        a.gen_tokens
    ));
    if !a.json {
        println!(
            "model: {}, ISA {}, kv cache {}",
            path.display(),
            isa.name(),
            kv.name()
        );
        for (i, (lines, _)) in judged.iter().enumerate() {
            if rounds > 1 {
                println!("round {}:", i + 1);
            }
            println!("head  thr   prompt    decode    GB/s   of DRAM    of reads    anon MiB");
            println!("            warm tok/s   tok/s                (interleaved) beyond KV");
            for l in lines {
                println!("{l}");
            }
        }
        if let (Some(b), Some(info)) = (huge, r.model.as_ref()) {
            println!(
                "model file in 2 MiB pages: {:.0} of {:.0} MiB (fewest of the runs; see docs/performance.md, Huge pages)",
                b as f64 / 1048576.0,
                info.bytes as f64 / 1048576.0
            );
        }
        println!();
        for (i, (name, _, _)) in judged[0].1.iter().enumerate() {
            let verdicts: Vec<Option<bool>> = judged.iter().map(|(_, t)| t[i].2).collect();
            let met = verdicts.iter().filter(|v| **v == Some(true)).count();
            let v = if verdicts.contains(&None) {
                "?".to_string()
            } else if rounds == 1 {
                if met == 1 { "met" } else { "NOT met" }.to_string()
            } else {
                format!("met {met}/{rounds}")
            };
            println!("{v:<8} {name}");
            for (k, (_, t)) in judged.iter().enumerate() {
                let round = if rounds > 1 {
                    format!("round {}: ", k + 1)
                } else {
                    String::new()
                };
                println!("         {round}{}", t[i].1);
            }
        }
        r.finish();
        print!("{}", load_text(&r));
    }
    finish_receipt(&mut r, a.json, a.receipt.as_deref())
}

/// A target's name, its figure in words, and whether the figure meets it (`None`: no figure).
type Target = (String, String, Option<bool>);

/// One round's figures as table lines, and every target judged on them; the round's
/// metrics go to `r`, their names prefixed by `prefix`.
fn judge_targets(
    runs: &[(HeadMode, usize, model_bench::ModelFigures)],
    roof: &Roofline,
    n: usize,
    prefix: &str,
    r: &mut Receipt,
) -> (Vec<String>, Vec<Target>) {
    let fig = |head: HeadMode, t: usize| {
        runs.iter()
            .find(|(h, tt, _)| *h == head && *tt == t)
            .map(|(_, _, m)| m)
    };
    let mut lines = Vec::new();
    for (head, t, m) in runs {
        let key = format!("{prefix}{}_{t}t_", head.name());
        let gbps = m.weight_bytes_per_token() as f64 * m.decode_tok_per_s / 1e9;
        r.metric(
            &(key.clone() + "prompt_tok_per_s"),
            m.prompt_tok_per_s,
            "tok/s",
        );
        r.metric(
            &(key.clone() + "prompt_warm_tok_per_s"),
            m.warm_prompt_tok_per_s(),
            "tok/s",
        );
        r.metric(
            &(key.clone() + "decode_tok_per_s"),
            m.decode_tok_per_s,
            "tok/s",
        );
        r.metric(&(key.clone() + "decode_weight_gbps"), gbps, "GB/s");
        let dram = roof.bandwidth(roofline::Level::Dram, *t);
        if let Some(bw) = dram {
            r.metric(
                &(key.clone() + "decode_fraction_of_bandwidth_bound"),
                gbps / bw,
                "fraction",
            );
        }
        if let Some(s) = m.stream_gbps {
            r.metric(
                &(key.clone() + "decode_fraction_of_interleaved_stream"),
                gbps / s,
                "fraction",
            );
        }
        if let Some(b) = m.anon_rss_bytes {
            r.metric(
                &(key + "anon_rss_beyond_kv_bytes"),
                b.saturating_sub(m.kv_cache_bytes) as f64,
                "bytes",
            );
        }
        lines.push(format!(
            "{:<5} {:>2}   {:>7.1}   {:>7.2}   {:>6.1}   {:>9}   {:>11}   {:>8.1}",
            head.name(),
            t,
            m.warm_prompt_tok_per_s(),
            m.decode_tok_per_s,
            gbps,
            dram.map_or("-".into(), |bw| format!("{:.1}%", gbps / bw * 100.0)),
            m.stream_gbps
                .map_or("-".into(), |s| format!("{:.1}%", gbps / s * 100.0)),
            m.anon_rss_bytes
                .map_or(0.0, |b| b.saturating_sub(m.kv_cache_bytes) as f64
                    / 1048576.0)
        ));
    }
    // The targets, each judged on its figure of this run.
    let mut targets: Vec<Target> = Vec::new();
    let verdict = |ok: bool| Some(ok);
    if let Some(m) = fig(HeadMode::Stored, n) {
        let gbps = m.weight_bytes_per_token() as f64 * m.decode_tok_per_s / 1e9;
        let dram = roof.bandwidth(roofline::Level::Dram, n);
        let frac = dram.map(|bw| gbps / bw);
        targets.push((
            format!("decode, f16 head, {n} thr: >= 85% of the DRAM bound"),
            format!(
                "{:.2} tok/s = {} of {:.1} GB/s{}",
                m.decode_tok_per_s,
                frac.map_or("-".into(), |f| format!("{:.1}%", f * 100.0)),
                dram.unwrap_or(0.0),
                m.stream_gbps.map_or(String::new(), |s| format!(
                    " ({:.1}% of plain reads, interleaved)",
                    gbps / s * 100.0
                ))
            ),
            frac.map(|f| f >= 0.85),
        ));
    }
    if let Some(m) = fig(HeadMode::Int8, n) {
        targets.push((
            format!("decode, int8 head, {n} thr: >= 30 tok/s"),
            format!("{:.2} tok/s", m.decode_tok_per_s),
            verdict(m.decode_tok_per_s >= 30.0),
        ));
    }
    if let Some(m) = fig(HeadMode::Stored, n) {
        // The CPU's own peak where measured, else the kernels' best; the kernels' best if a
        // busy moment left the CPU's below it (a bound is never under what was reached).
        let (peak, which) = if roof.int8_hw_peak_gops >= roof.int8_peak_gops {
            (roof.int8_hw_peak_gops, "CPU int8 peak")
        } else {
            (roof.int8_peak_gops, "kernels' int8 peak")
        };
        let bound = peak * 1e9 * n as f64 / m.ternary_products_per_token as f64;
        r.metric(
            &format!("{prefix}prefill_{n}t_compute_bound_tok_per_s"),
            bound,
            "tok/s",
        );
        targets.push((
            format!("prefill {} tokens, {n} thr: >= 150 tok/s", m.prompt_tokens),
            format!(
                "{:.1} tok/s warm = {:.1}% of the compute bound {bound:.0} tok/s ({n} x {which} {peak:.0} G/s over {:.2} G products/token); first prompt {:.1} tok/s",
                m.warm_prompt_tok_per_s(),
                m.warm_prompt_tok_per_s() / bound * 100.0,
                m.ternary_products_per_token as f64 / 1e9,
                m.prompt_tok_per_s
            ),
            verdict(m.warm_prompt_tok_per_s() >= 150.0),
        ));
    }
    if n > 1 {
        for (what, head, get) in [
            ("decode, f16", HeadMode::Stored, 0),
            ("decode, int8", HeadMode::Int8, 0),
            ("prefill, f16", HeadMode::Stored, 1),
        ] {
            if let (Some(one), Some(all)) = (fig(head, 1), fig(head, n)) {
                let v = |m: &model_bench::ModelFigures| {
                    if get == 0 {
                        m.decode_tok_per_s
                    } else {
                        m.warm_prompt_tok_per_s()
                    }
                };
                let x = v(all) / v(one);
                r.metric(
                    &format!("{prefix}{}_scaling_1_to_{n}", what.replace(", ", "_")),
                    x,
                    "ratio",
                );
                // A memory-bound decode cannot scale further than the memory does: give
                // the same run's 1 -> n ratios of the DRAM probe and of the plain reads.
                let memory = if get == 0 {
                    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}x", b / a),
                        _ => "-".into(),
                    };
                    let dram = |t| roof.bandwidth(roofline::Level::Dram, t);
                    format!(
                        "; the memory itself: DRAM probe {}, plain reads of the file {}",
                        ratio(dram(1), dram(n)),
                        ratio(one.stream_gbps, all.stream_gbps)
                    )
                } else {
                    String::new()
                };
                targets.push((
                    format!("{what}: 1 -> {n} threads >= 1.7x"),
                    format!("{x:.2}x ({:.1} -> {:.1} tok/s){memory}", v(one), v(all)),
                    verdict(x >= 1.7),
                ));
            }
        }
    }
    if let Some(m) = fig(HeadMode::Stored, n)
        && let Some(b) = m.anon_rss_bytes
    {
        let beyond = b.saturating_sub(m.kv_cache_bytes);
        targets.push((
            "anonymous memory beyond the KV cache, f16 head: <= 64 MB".into(),
            format!("{:.1} MB", beyond as f64 / 1e6),
            verdict(beyond <= 64_000_000),
        ));
    }
    for (name, _, ok) in &targets {
        if let Some(ok) = ok {
            r.metric(
                &format!("{prefix}target_met: {name}"),
                if *ok { 1.0 } else { 0.0 },
                "bool",
            );
        }
    }
    (lines, targets)
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReceiptCmd {
    /// Verify a receipt's schema and invariants (exit 2 and one line on failure).
    Verify {
        /// The receipt JSON file.
        file: std::path::PathBuf,
    },
}

pub(crate) fn run_receipt(cmd: ReceiptCmd) -> CliResult {
    match cmd {
        ReceiptCmd::Verify { file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let r = Receipt::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            receipt::verify(&r).map_err(|e| format!("{}: {e}", file.display()))?;
            println!(
                "{}: ok ({} receipt, schema {} v{}, git {}, {} kernels, {} figures, {} metrics)",
                file.display(),
                r.kind,
                r.schema,
                r.schema_version,
                r.git_revision,
                r.kernels.len(),
                r.figures.len(),
                r.metrics.len()
            );
            Ok(())
        }
    }
}

/// A forward pass's stages in ms per pass, from `t` summed over `passes` passes: the
/// projections, attention, norms, head, the rest, and the whole pass.
fn stage_ms(t: &StageTimes, passes: usize) -> [(&'static str, f64); 6] {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / passes.max(1) as f64;
    [
        ("projections", ms(t.projections)),
        ("attention", ms(t.attention)),
        ("norms", ms(t.norms)),
        ("head", ms(t.head)),
        ("rest", ms(t.rest())),
        ("forward", ms(t.forward)),
    ]
}
