//! Run receipts: a JSON record of what ran, where, and how fast, with the roofline measured
//! in the same run, and a verifier for its schema and invariants.
//!
//! Invariants checked by [`verify`]:
//! - schema name and version are the ones this build writes;
//! - every ISA listed is known and available on the recorded CPU (its feature flags);
//! - every kernel listed is a known `format.op.isa` whose ISA is listed;
//! - every figure names a listed kernel, has finite positive numbers that agree with each
//!   other (GB/s = bytes / time), the memory level its regime implies, and is not above its
//!   roofline by more than [`TOLERANCE`] (the roofline recomputed from the receipt's own
//!   probe figures, not taken from the figure);
//! - a model, when present, has a 64-hex-digit SHA-256.

use std::path::Path;

use bitnet_kernels::Isa;
use serde::{Deserialize, Serialize};

use super::kernels::{Op, parse_kernel_name};
use super::roofline::{Level, Roofline};

/// Schema name written in every receipt.
pub const SCHEMA: &str = "bitnet-bench-receipt";
/// Schema version this build writes and verifies.
pub const SCHEMA_VERSION: u32 = 1;
/// How far above its roofline a figure may be before the receipt is rejected (fraction):
/// the probe and the kernels run seconds apart on a shared machine, so their noise differs.
pub const TOLERANCE: f64 = 0.20;

/// The CPU a receipt was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// `model name` from `/proc/cpuinfo`.
    pub model: String,
    /// `flags` from `/proc/cpuinfo`.
    pub features: Vec<String>,
    /// Logical CPUs available to the process.
    pub logical_cpus: usize,
}

impl CpuInfo {
    /// Reads `/proc/cpuinfo` (empty model and features where it is absent).
    pub fn detect() -> CpuInfo {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        CpuInfo {
            model: field("model name").unwrap_or_else(|| "unknown".into()),
            features: field("flags")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            logical_cpus: bitnet_kernels::exec::default_threads(),
        }
    }
}

/// `/proc/cpuinfo` flags an ISA of the kernels needs (None for an unknown ISA name).
pub fn isa_required_flags(isa: &str) -> Option<&'static [&'static str]> {
    match Isa::parse(isa).ok().filter(|_| isa != "auto")? {
        Isa::Scalar => Some(&[]),
        Isa::Avx2 => Some(&["avx2", "fma", "f16c"]),
        Isa::Avx512Vnni => Some(&[
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512dq",
            "avx512cd",
            "avx512_vnni",
        ]),
    }
}

/// The model a receipt is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Path as given.
    pub path: String,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// File size, bytes.
    pub bytes: u64,
    /// `general.architecture` (or what the loader reports).
    pub arch: String,
}

/// One kernel measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelFigure {
    /// `format.op.isa`.
    pub kernel: String,
    /// Format name.
    pub format: String,
    /// Op name.
    pub op: String,
    /// ISA name.
    pub isa: String,
    /// Threads.
    pub threads: usize,
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// Tokens (activation rows; 0 for unpack).
    pub tokens: usize,
    /// `hot` or `cold`.
    pub regime: String,
    /// Calls timed.
    pub reps: u32,
    /// Fastest call, µs.
    pub time_us: f64,
    /// Median call, µs.
    pub median_us: f64,
    /// Packed weight bytes read by one call (0 for act_quant).
    pub weight_bytes: u64,
    /// Bytes one call moves through the bounding memory level (weights, activations, outputs).
    pub bytes_moved: u64,
    /// Work of one call: weight·token products (products), weights (unpack, f32 GEMV), or
    /// activation elements (act_quant).
    pub work: u64,
    /// Weight bytes per second, GB/s (10^9 B/s).
    pub weight_gbps: f64,
    /// Work per second, 10^9/s (G weights/s for a GEMV).
    pub gops: f64,
    /// Memory level the weights come from (`dram` when cold).
    pub level: String,
    /// What binds: the level's name (bandwidth) or `int8_peak`.
    pub bound: String,
    /// Fastest time the roofline allows, µs.
    pub roofline_us: f64,
    /// `roofline_us / time_us` (1.0 = at the roofline).
    pub roofline_fraction: f64,
}

/// A named figure with its unit (model benches, roofline summaries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name, e.g. `decode_tok_per_s`.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit, e.g. `tok/s`, `ms`, `bytes`.
    pub unit: String,
}

/// A benchmark receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Always [`SCHEMA_VERSION`] for this build.
    pub schema_version: u32,
    /// `roofline`, `kernels`, `model` or `run`.
    pub kind: String,
    /// Seconds since the Unix epoch at creation.
    pub created_unix_s: u64,
    /// The command line.
    pub command: Vec<String>,
    /// `git rev-parse HEAD` (with `-dirty` for a modified tree), `BITNET_GIT_REV`, or `unknown`.
    pub git_revision: String,
    /// The CPU.
    pub cpu: CpuInfo,
    /// Load average (1, 5, 15 min) at the start: the machine may be shared.
    pub load_average_start: Option<[f64; 3]>,
    /// Load average at the end.
    pub load_average_end: Option<[f64; 3]>,
    /// ISAs executed.
    pub isas: Vec<String>,
    /// Kernels executed (`format.op.isa`).
    pub kernels: Vec<String>,
    /// Thread counts used.
    pub threads: Vec<usize>,
    /// The model, if one was involved.
    pub model: Option<ModelInfo>,
    /// The roofline measured in the same run.
    pub roofline: Option<Roofline>,
    /// Tolerance (fraction) allowed above the roofline by [`verify`].
    pub tolerance: f64,
    /// Kernel figures.
    pub figures: Vec<KernelFigure>,
    /// Other figures, with units.
    pub metrics: Vec<Metric>,
    /// Free-form remarks (what could not be measured, and why).
    pub notes: Vec<String>,
}

impl Receipt {
    /// A receipt of `kind` for this process: CPU, git revision, command line, load, time.
    pub fn new(kind: &str) -> Receipt {
        Receipt {
            schema: SCHEMA.to_string(),
            schema_version: SCHEMA_VERSION,
            kind: kind.to_string(),
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            command: std::env::args().collect(),
            git_revision: git_revision(),
            cpu: CpuInfo::detect(),
            load_average_start: super::load_average(),
            load_average_end: None,
            isas: Vec::new(),
            kernels: Vec::new(),
            threads: Vec::new(),
            model: None,
            roofline: None,
            tolerance: TOLERANCE,
            figures: Vec::new(),
            metrics: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds kernel figures, listing their kernels, ISAs and thread counts.
    pub fn add_figures(&mut self, figs: Vec<KernelFigure>) {
        for f in &figs {
            if !self.kernels.contains(&f.kernel) {
                self.kernels.push(f.kernel.clone());
            }
            if !self.isas.contains(&f.isa) {
                self.isas.push(f.isa.clone());
            }
            if !self.threads.contains(&f.threads) {
                self.threads.push(f.threads);
            }
        }
        self.figures.extend(figs);
    }

    /// Adds a metric.
    pub fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit: unit.into(),
        });
    }

    /// Records the end-of-run load.
    pub fn finish(&mut self) {
        self.load_average_end = super::load_average();
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Parses JSON (schema shape only; see [`verify`] for the invariants).
    pub fn from_json(text: &str) -> Result<Receipt, String> {
        serde_json::from_str(text).map_err(|e| format!("not a receipt: {e}"))
    }

    /// Writes pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.to_json() + "\n")
            .map_err(|e| format!("{}: cannot write receipt: {e}", path.display()))
    }
}

/// The git revision of the working directory's repository at run time: `BITNET_GIT_REV` if
/// set, else `git rev-parse HEAD` (plus `-dirty` if `git status` shows changes), else
/// `unknown`.
pub fn git_revision() -> String {
    if let Ok(v) = std::env::var("BITNET_GIT_REV")
        && !v.trim().is_empty()
    {
        return v.trim().to_string();
    }
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        _ => "unknown".to_string(),
    }
}

/// SHA-256 of a file, lower-case hex, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The fastest time (seconds) the roofline allows for `fig`, and what binds it: the
/// bandwidth of the figure's level for its bytes, or, for int8 products, the int8 peak
/// times the thread count for its work, whichever is slower. None if the level is unknown or
/// the roofline lacks it.
pub fn roofline_bound(fig: &KernelFigure, roof: &Roofline) -> Option<(f64, String)> {
    let level = match fig.level.as_str() {
        "dram" => Level::Dram,
        "l3" => Level::L3,
        "l2" => Level::L2,
        _ => return None,
    };
    let bw = roof.bandwidth(level, fig.threads)?;
    let t_bw = fig.bytes_moved as f64 / (bw * 1e9);
    let int8 = Op::parse(&fig.op).is_some_and(Op::is_int8_product);
    let t_peak = if int8 && roof.int8_peak_gops > 0.0 {
        fig.work as f64 / (roof.int8_peak_gops * fig.threads.max(1) as f64 * 1e9)
    } else {
        0.0
    };
    Some(if t_peak > t_bw {
        (t_peak, "int8_peak".to_string())
    } else {
        (t_bw, level.name().to_string())
    })
}

/// `v` rounded to 12 significant digits, so that its JSON text (at most 12 digits) parses
/// back to the same `f64` with any correctly rounding parser.
pub fn tidy(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let d = 11 - v.abs().log10().floor() as i32;
    if !(-22..=22).contains(&d) {
        return v;
    }
    let p = 10f64.powi(d.abs());
    if d >= 0 {
        (v * p).round() / p
    } else {
        (v / p).round() * p
    }
}

/// Fills `fig`'s derived fields (GB/s, G ops/s, roofline) from its time and traffic.
pub fn complete_figure(fig: &mut KernelFigure, roof: &Roofline) {
    fig.time_us = tidy(fig.time_us);
    fig.median_us = tidy(fig.median_us.max(fig.time_us));
    let secs = fig.time_us * 1e-6;
    fig.weight_gbps = tidy(fig.weight_bytes as f64 / secs / 1e9);
    fig.gops = tidy(fig.work as f64 / secs / 1e9);
    if let Some((limit, bound)) = roofline_bound(fig, roof) {
        fig.bound = bound;
        fig.roofline_us = tidy(limit * 1e6);
        fig.roofline_fraction = tidy(limit / secs);
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

/// Checks a receipt's schema and invariants; the error is one line naming the first failure.
pub fn verify(r: &Receipt) -> Result<(), String> {
    if r.schema != SCHEMA {
        return Err(format!("schema is `{}`, expected `{SCHEMA}`", r.schema));
    }
    if r.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "schema version {} is not {SCHEMA_VERSION}",
            r.schema_version
        ));
    }
    if r.git_revision.is_empty() {
        return Err("git_revision is empty (\"unknown\" if absent)".into());
    }
    if !(0.0..=TOLERANCE).contains(&r.tolerance) {
        return Err(format!(
            "tolerance {} is outside 0..={TOLERANCE}",
            r.tolerance
        ));
    }
    for isa in &r.isas {
        let flags = isa_required_flags(isa).ok_or_else(|| format!("unknown ISA `{isa}`"))?;
        if let Some(missing) = flags
            .iter()
            .find(|f| !r.cpu.features.iter().any(|c| c == *f))
        {
            return Err(format!(
                "ISA `{isa}` needs CPU feature `{missing}`, absent from the recorded CPU ({})",
                r.cpu.model
            ));
        }
    }
    for k in &r.kernels {
        let (_, _, isa) = parse_kernel_name(k).ok_or_else(|| format!("unknown kernel `{k}`"))?;
        if !r.isas.iter().any(|i| i == isa.name()) {
            return Err(format!(
                "kernel `{k}`: ISA `{}` is not listed in isas",
                isa.name()
            ));
        }
    }
    if let Some(m) = &r.model
        && (m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("model {}: sha256 is not 64 hex digits", m.path));
    }
    for m in &r.metrics {
        if !m.value.is_finite() || m.unit.is_empty() || m.name.is_empty() {
            return Err(format!(
                "metric `{}`: value must be finite, name and unit non-empty",
                m.name
            ));
        }
    }
    if let Some(roof) = &r.roofline {
        verify_roofline(roof)?;
    }
    for (i, f) in r.figures.iter().enumerate() {
        verify_figure(r, f).map_err(|e| format!("figure {i} ({}): {e}", f.kernel))?;
    }
    Ok(())
}

fn verify_roofline(roof: &Roofline) -> Result<(), String> {
    let lists = [
        ("dram", &roof.dram_read_gbps),
        ("l3", &roof.l3_read_gbps),
        ("l2", &roof.l2_read_gbps),
    ];
    for (name, list) in lists {
        if list.is_empty() {
            return Err(format!("roofline: no {name} bandwidth"));
        }
        if let Some(b) = list
            .iter()
            .find(|b| b.threads == 0 || !b.gbps.is_finite() || b.gbps <= 0.0)
        {
            return Err(format!(
                "roofline: {name} bandwidth {} GB/s at {} threads is not a positive figure",
                b.gbps, b.threads
            ));
        }
    }
    if !roof.int8_peak_gops.is_finite() || roof.int8_peak_gops < 0.0 {
        return Err("roofline: int8 peak is not a finite figure".into());
    }
    if roof.int8_peak_gops > 0.0 && parse_kernel_name(&roof.int8_peak_kernel).is_none() {
        return Err(format!(
            "roofline: int8 peak kernel `{}` is unknown",
            roof.int8_peak_kernel
        ));
    }
    Ok(())
}

fn verify_figure(r: &Receipt, f: &KernelFigure) -> Result<(), String> {
    if !r.kernels.contains(&f.kernel) {
        return Err("kernel not listed in kernels".into());
    }
    let (format, op, isa) =
        parse_kernel_name(&f.kernel).ok_or_else(|| "unknown kernel".to_string())?;
    if format.name() != f.format || op.name() != f.op || isa.name() != f.isa {
        return Err("format/op/isa fields disagree with the kernel name".into());
    }
    if op != Op::ActQuant && format.packed_len(f.rows, f.cols).ok() != Some(f.weight_bytes as usize)
    {
        return Err(format!(
            "weight_bytes {} is not the packed size of a {}x{} {} matrix",
            f.weight_bytes, f.rows, f.cols, f.format
        ));
    }
    if f.threads == 0 || f.rows == 0 || f.cols == 0 || f.reps == 0 {
        return Err("threads, rows, cols and reps must be positive".into());
    }
    for (name, v) in [
        ("time_us", f.time_us),
        ("median_us", f.median_us),
        ("weight_gbps", f.weight_gbps),
        ("gops", f.gops),
        ("roofline_us", f.roofline_us),
        ("roofline_fraction", f.roofline_fraction),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{name} = {v} is not a finite non-negative number"));
        }
    }
    if f.time_us <= 0.0 || f.median_us < f.time_us {
        return Err("time_us must be positive and no larger than median_us".into());
    }
    let secs = f.time_us * 1e-6;
    if !close(f.weight_gbps, f.weight_bytes as f64 / secs / 1e9, 1e-6) {
        return Err("weight_gbps disagrees with weight_bytes / time_us".into());
    }
    if !close(f.gops, f.work as f64 / secs / 1e9, 1e-6) {
        return Err("gops disagrees with work / time_us".into());
    }
    let roof = r
        .roofline
        .as_ref()
        .ok_or_else(|| "a kernel figure needs the roofline of the same run".to_string())?;
    let want_level = match f.regime.as_str() {
        "cold" => Level::Dram,
        "hot" => roof.hot_level(f.bytes_moved, f.threads),
        other => return Err(format!("unknown regime `{other}`")),
    };
    if f.level != want_level.name() {
        return Err(format!(
            "level `{}`, but a {} working set of {} bytes on {} thread(s) is `{}`",
            f.level,
            f.regime,
            f.bytes_moved,
            f.threads,
            want_level.name()
        ));
    }
    let (limit_s, bound) = roofline_bound(f, roof)
        .ok_or_else(|| format!("roofline has no `{}` bandwidth", f.level))?;
    let fraction = limit_s / secs;
    if fraction > 1.0 + r.tolerance {
        return Err(format!(
            "{:.1}% of its {bound} roofline, above 100% + {:.0}% tolerance ({:.1} µs measured, {:.1} µs allowed)",
            fraction * 100.0,
            r.tolerance * 100.0,
            f.time_us,
            limit_s * 1e6
        ));
    }
    if !close(fraction, f.roofline_fraction, 1e-6) || bound != f.bound {
        return Err(format!(
            "stored roofline fraction {:.4} ({}) disagrees with the recomputed {fraction:.4} ({bound})",
            f.roofline_fraction, f.bound
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::roofline::Bandwidth;
    use super::*;

    fn roof() -> Roofline {
        let bw = |a, b| {
            vec![
                Bandwidth {
                    threads: 1,
                    gbps: a,
                },
                Bandwidth {
                    threads: 2,
                    gbps: b,
                },
            ]
        };
        Roofline {
            l2_cache_bytes: 1 << 20,
            l3_cache_bytes: 32 << 20,
            dram_buffer_bytes: 1 << 30,
            l3_buffer_bytes: 8 << 20,
            l2_buffer_bytes_per_thread: 512 << 10,
            probe_simd: "512-bit".into(),
            dram_read_gbps: bw(20.0, 30.0),
            l3_read_gbps: bw(60.0, 110.0),
            l2_read_gbps: bw(120.0, 240.0),
            int8_peak_gops: 100.0,
            int8_peak_kernel: "tq2_0.gemv_i8.avx512".into(),
            int8_peak_tokens: 1,
            int8_hw_peak_gops: 0.0,
            int8_hw_peak_instructions: String::new(),
        }
    }

    /// A figure whose fastest call is `time_us`, with its derived fields filled in.
    fn figure(roof: &Roofline, kernel: &str, regime: &str, time_us: f64) -> KernelFigure {
        let (format, op, isa) = parse_kernel_name(kernel).unwrap();
        let (rows, cols) = (6912usize, 2560usize);
        let weight_bytes = format.packed_len(rows, cols).unwrap() as u64;
        let bytes_moved = weight_bytes + cols as u64 + 4 * rows as u64;
        let work = (rows * cols) as u64;
        let level = match regime {
            "cold" => Level::Dram,
            _ => roof.hot_level(bytes_moved, 1),
        };
        let mut f = KernelFigure {
            kernel: kernel.into(),
            format: format.name().into(),
            op: op.name().into(),
            isa: isa.name().into(),
            threads: 1,
            rows,
            cols,
            tokens: 1,
            regime: regime.into(),
            reps: 10,
            time_us,
            median_us: time_us * 1.1,
            weight_bytes,
            bytes_moved,
            work,
            weight_gbps: weight_bytes as f64 / (time_us * 1e-6) / 1e9,
            gops: work as f64 / (time_us * 1e-6) / 1e9,
            level: level.name().into(),
            bound: String::new(),
            roofline_us: 0.0,
            roofline_fraction: 0.0,
        };
        complete_figure(&mut f, roof);
        f
    }

    fn receipt(figs: Vec<KernelFigure>) -> Receipt {
        let mut r = Receipt::new("kernels");
        r.git_revision = "0123abcd".into();
        r.cpu = CpuInfo {
            model: "Test CPU".into(),
            features: ["fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512vl"]
                .iter()
                .chain(&["avx512dq", "avx512cd", "avx512_vnni"])
                .map(|s| s.to_string())
                .collect(),
            logical_cpus: 2,
        };
        r.roofline = Some(roof());
        r.add_figures(figs);
        r.metric("peak_rss", 1234.0, "bytes");
        r.model = Some(ModelInfo {
            path: "m.gguf".into(),
            sha256: sha256_hex(b"abc"),
            bytes: 3,
            arch: "bitnet-b1.58".into(),
        });
        r.finish();
        r
    }

    fn sha256_hex(data: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn tidy_values_survive_json() {
        for v in [
            0.45921280000000003,
            1.0 / 3.0,
            123456.789e3,
            2.5e-7,
            9.99999999999999e21,
        ] {
            let t = tidy(v);
            assert!((t - v).abs() <= 1e-11 * v.abs(), "{v} -> {t}");
            let back: f64 = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(back, t, "{v}");
        }
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_consistent_receipt_round_trips_and_verifies() {
        let roof = roof();
        // 4.56 MB of weights from DRAM at 20 GB/s is ~228 µs: 500 µs is ~46% of the roofline.
        let cold = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0);
        let hot = figure(&roof, "i2s.gemv_i8.avx2", "hot", 300.0);
        assert_eq!(cold.bound, "dram");
        assert!(
            (cold.roofline_fraction - 0.456).abs() < 0.01,
            "{}",
            cold.roofline_fraction
        );
        let r = receipt(vec![cold, hot]);
        let back = Receipt::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        verify(&back).unwrap();
        assert_eq!(back.kernels.len(), 2);
        assert_eq!(back.isas, vec!["avx512".to_string(), "avx2".to_string()]);
    }

    #[test]
    fn verify_rejects_a_figure_above_its_roofline() {
        let roof = roof();
        // 100 µs for 4.56 MB is 45.6 GB/s, over twice the 20 GB/s DRAM roofline.
        let f = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 100.0);
        let err = verify(&receipt(vec![f])).unwrap_err();
        assert!(err.contains("above 100%"), "{err}");
        // Just inside the tolerance passes.
        let limit = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 1000.0).roofline_us;
        let f = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", limit / 1.15);
        verify(&receipt(vec![f])).unwrap();
    }

    #[test]
    fn verify_rejects_a_figure_that_lies_about_its_roofline() {
        let roof = roof();
        let mut f = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0);
        f.roofline_fraction = 0.1;
        assert!(
            verify(&receipt(vec![f.clone()]))
                .unwrap_err()
                .contains("disagrees")
        );
        f = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0);
        f.level = "l3".into();
        assert!(
            verify(&receipt(vec![f.clone()]))
                .unwrap_err()
                .contains("level")
        );
        f = figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0);
        f.weight_gbps *= 2.0;
        assert!(
            verify(&receipt(vec![f]))
                .unwrap_err()
                .contains("weight_gbps")
        );
    }

    #[test]
    fn verify_rejects_an_unknown_kernel() {
        let roof = roof();
        let mut r = receipt(vec![figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0)]);
        r.kernels.push("tq3_0.gemv_i8.avx512".into());
        let err = verify(&r).unwrap_err();
        assert!(
            err.contains("unknown kernel `tq3_0.gemv_i8.avx512`"),
            "{err}"
        );

        let mut r = receipt(vec![figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0)]);
        r.figures[0].kernel = "tq2_0.gemv_i8.avx2".into();
        assert!(verify(&r).unwrap_err().contains("not listed"));
    }

    #[test]
    fn verify_rejects_an_isa_missing_from_the_cpu_features() {
        let roof = roof();
        let mut r = receipt(vec![figure(&roof, "tq2_0.gemv_i8.avx512", "cold", 500.0)]);
        r.cpu.features.retain(|f| f != "avx512_vnni");
        let err = verify(&r).unwrap_err();
        assert!(err.contains("avx512_vnni"), "{err}");

        let mut r = receipt(vec![figure(&roof, "tq2_0.gemv_i8.scalar", "cold", 500.0)]);
        r.cpu.features.clear();
        verify(&r).unwrap();
        r.isas.push("neon".into());
        assert!(verify(&r).unwrap_err().contains("unknown ISA"));
    }

    #[test]
    fn verify_rejects_other_schemas_and_bad_hashes() {
        let mut r = receipt(vec![]);
        r.schema_version = 99;
        assert!(verify(&r).unwrap_err().contains("version"));
        let mut r = receipt(vec![]);
        r.schema = "something-else".into();
        assert!(verify(&r).unwrap_err().contains("schema"));
        let mut r = receipt(vec![]);
        if let Some(m) = r.model.as_mut() {
            m.sha256 = "xyz".into();
        }
        assert!(verify(&r).unwrap_err().contains("sha256"));
        let mut r = receipt(vec![]);
        r.tolerance = 5.0;
        assert!(verify(&r).unwrap_err().contains("tolerance"));
        assert!(Receipt::from_json("{\"schema\": 1}").is_err());
    }
}
