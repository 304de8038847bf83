//! The model commands through the real `bitnet` binary: the embedded default model, JSON
//! outputs, and bad input (one error line, exit code 2).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_bitnet");
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

fn bitnet(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run bitnet")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2 with exactly one `bitnet: error:` line naming `what`.
fn assert_one_line_error(o: &Output, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {err}");
    assert!(lines[0].starts_with("bitnet: error: "), "{err}");
    assert!(
        lines[0].contains(what),
        "error does not mention '{what}': {err}"
    );
}

#[test]
fn run_default_model_greedy() {
    let err = run_readme_greedy(&[]);
    for needle in ["load", "prompt 8 tok", "tok/s", "decode", "isa "] {
        assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    }
}

/// Runs the README's prompt greedily for 12 tokens on one thread with `extra` flags, checks
/// the README's continuation, and returns stderr.
fn run_readme_greedy(extra: &[&str]) -> String {
    let mut args = vec![
        "run",
        "-p",
        "The meaning of life is",
        "--greedy",
        "-n",
        "12",
        "-t",
        "1",
    ];
    args.extend_from_slice(extra);
    let o = bitnet(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The README's greedy continuation: " a fact that it is not according.\n\t\t-- John ..."
    assert!(
        stdout(&o).starts_with("The meaning of life is a fact that it is not according."),
        "{}",
        stdout(&o)
    );
    stderr(&o)
}

#[test]
fn run_same_seed_same_text() {
    let args = [
        "run",
        "-p",
        "A fool and his money",
        "-n",
        "24",
        "--seed",
        "7",
        "--temp",
        "1.0",
    ];
    let a = bitnet(&args);
    let b = bitnet(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    let c = bitnet(&[
        "run",
        "-p",
        "A fool and his money",
        "-n",
        "24",
        "--seed",
        "8",
        "--temp",
        "1.0",
        "--top-k",
        "0",
        "--top-p",
        "1",
        "--min-p",
        "0",
        "--repeat-penalty",
        "1.1",
    ]);
    assert!(c.status.success(), "{}", stderr(&c));
}

/// The opt-in switches change nothing in the greedy text of the tiny model's README prompt
/// (its int8 head agrees there), and report themselves on stderr.
#[test]
fn run_with_int8_head_f16_cache_and_mlock() {
    let err = run_readme_greedy(&["--head", "int8", "--kv", "f16", "--mlock"]);
    for needle in ["head int8", "kv f16", "repacking"] {
        assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    }
}

#[test]
fn run_bad_input() {
    assert_one_line_error(
        &bitnet(&["run", "-m", "/no/such/model.gguf", "-p", "x"]),
        "/no/such/model.gguf",
    );
    let cargo_toml = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert_one_line_error(
        &bitnet(&["run", "-m", cargo_toml, "-p", "x"]),
        "not a GGUF file",
    );
    let long = "word ".repeat(400);
    assert_one_line_error(&bitnet(&["run", "-p", &long]), "context");
    assert_one_line_error(
        &bitnet(&["run", "-p", "x", "--numerics", "int4"]),
        "--numerics",
    );
    assert_one_line_error(&bitnet(&["run", "-p", "x", "--isa", "neon"]), "neon");
    assert_one_line_error(&bitnet(&["run", "-p", "x", "--head", "int4"]), "--head");
    assert_one_line_error(&bitnet(&["run", "-p", "x", "--kv", "bf16"]), "--kv");
    assert_one_line_error(&bitnet(&["run", "-p", "x", "--top-p", "1.5"]), "--top-p");
    assert_eq!(
        bitnet(&["run", "-p", "x", "--bogus"]).status.code(),
        Some(2)
    );
}

#[test]
fn logits_json_and_out_file() {
    let out = std::env::temp_dir().join(format!("bitnet-cli-logits-{}.f32", std::process::id()));
    let o = bitnet(&[
        "logits",
        "-p",
        "The meaning of life is",
        "--top",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<u64> = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1022, 316, 422, 269, 278, 289, 688, 299]);
    let top: Vec<u64> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_u64().unwrap())
        .collect();
    assert_eq!(top, [258, 263, 469, 364, 285], "README top-5");
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(bytes.len(), 1024 * 4);
    // Same logits as the reference file, within the bound of model_reference.rs.
    let reference = std::fs::read(format!("{MODELS}/tiny-b158-i2s.ref.bin")).unwrap();
    for (a, b) in bytes.chunks_exact(4).zip(reference[..4096].chunks_exact(4)) {
        let (a, b) = (
            f32::from_le_bytes(a.try_into().unwrap()),
            f32::from_le_bytes(b.try_into().unwrap()),
        );
        assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
    }
    let o = bitnet(&["logits", "--tokens", "1022,316,422", "--top", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["top"].as_array().unwrap().len(), 3);
    assert_one_line_error(&bitnet(&["logits", "--tokens", "1,99999"]), "99999");
    assert_one_line_error(&bitnet(&["logits", "--tokens", "1,x"]), "--tokens");
}

#[test]
fn inspect_text_and_json() {
    for stem in ["tiny-b158-i2s", "tiny-b158-tq2"] {
        let path = format!("{MODELS}/{stem}.gguf");
        let o = bitnet(&["inspect", &path]);
        assert!(o.status.success(), "{}", stderr(&o));
        let s = stdout(&o);
        for needle in [
            "architecture:  bitnet-b1.58",
            "hidden 256, layers 4",
            "model check:   ok",
            "blk.3.ffn_down.weight",
            "ternary checks: 28/28 tensors ok",
        ] {
            assert!(s.contains(needle), "{stem}: no '{needle}' in\n{s}");
        }
        let o = bitnet(&["inspect", &path, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["tensors"].as_array().unwrap().len(), 46);
        assert_eq!(v["ternary_checks"]["failed"], 0);
        assert_eq!(v["hyper_parameters"]["head_count_kv"], 4);
        assert_eq!(v["tokenizer"]["bos"], 1022);
    }
    assert_one_line_error(&bitnet(&["inspect", "/no/such.gguf"]), "/no/such.gguf");
}

fn chat(input: &[u8], extra: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("chat")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn chat_exits_cleanly_on_eof() {
    let o = chat(b"", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = chat(
        b"Tell me a joke\n\nWhat is love?\n",
        &["--greedy", "-n", "16"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("plain User:/Assistant:"),
        "{}",
        stderr(&o)
    );
    // Two prompts answered, then the final prompt marker and EOF.
    assert!(stdout(&o).matches("> ").count() >= 3, "{}", stdout(&o));
}

#[test]
fn synth_then_run() {
    let path = std::env::temp_dir().join(format!("bitnet-cli-synth-{}.gguf", std::process::id()));
    let p = path.to_str().unwrap();
    let o = bitnet(&[
        "synth", "--preset", "tiny", "--out", p, "--type", "tq2_0", "--seed", "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bitnet(&["run", "-m", p, "-p", "hello", "-n", "5", "--seed", "1"]);
    std::fs::remove_file(&path).ok();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("hello"));
    assert_one_line_error(
        &bitnet(&["synth", "--preset", "7b", "--out", p]),
        "--preset",
    );
    assert_one_line_error(
        &bitnet(&["synth", "--preset", "tiny", "--out", p, "--type", "q4"]),
        "--type",
    );
}

#[test]
fn chat_uses_the_files_chat_template() {
    use bitnet_runner::synth::{SynthSpec, SynthType, writer};
    let path = std::env::temp_dir().join(format!("bitnet-cli-chat-{}.gguf", std::process::id()));
    let mut w = writer(&SynthSpec::tiny(), SynthType::I2s, 4).unwrap();
    w.add(
        "tokenizer.chat_template",
        "{% for m in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{{ m['role'] | capitalize }}: {{ m['content'] | trim }}<|end_of_text|>{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}",
    )
    .unwrap();
    w.write_file(&path).unwrap();
    let o = chat(
        b"hello there\nand again\n",
        &["-m", path.to_str().unwrap(), "-n", "8", "--seed", "5"],
    );
    std::fs::remove_file(&path).ok();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the model's chat template"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).matches("> ").count() >= 3, "{}", stdout(&o));
}

#[test]
fn run_writes_a_receipt_that_verifies() {
    let path = std::env::temp_dir().join(format!("bitnet-run-receipt-{}.json", std::process::id()));
    let p = path.to_str().unwrap();
    let o = bitnet(&["run", "-p", "A fool", "-n", "4", "--greedy", "--receipt", p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(r["kind"], "run");
    assert_eq!(r["model"]["arch"], "bitnet-b1.58");
    assert!(
        r["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k.as_str().unwrap().starts_with("i2s.gemv_i8."))
    );
    assert!(
        r["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "decode_tok_per_s")
    );
    assert!(r["roofline"].is_object());
    let v = bitnet(&["receipt", "verify", p]);
    assert!(v.status.success(), "{}", stderr(&v));
    let _ = std::fs::remove_file(&path);
}

/// The metrics (name, value) of the receipt at `path`.
fn metrics(path: &std::path::Path) -> Vec<(String, f64)> {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap().to_owned();
            (name, m["value"].as_f64().unwrap_or(f64::NAN))
        })
        .collect()
}

/// The metric names of the receipt at `path`.
fn metric_names(path: &std::path::Path) -> Vec<String> {
    metrics(path).into_iter().map(|(name, _)| name).collect()
}

/// `--targets --rounds 2` judges every target in each round against that round's own
/// figures, says how many rounds met it, and keeps each round's metrics apart; `--rounds`
/// without `--targets` is refused.
#[test]
fn bench_model_targets_in_rounds() {
    let path = std::env::temp_dir().join(format!("bitnet-rounds-{}.json", std::process::id()));
    let p = path.to_str().unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny-b158-i2s.gguf");
    let args = [
        "bench",
        "model",
        "-m",
        model,
        "-t",
        "2",
        "--prompt-tokens",
        "8",
    ];
    let o = bitnet(
        &[
            &args[..],
            &["--gen", "4", "--targets", "--rounds", "2", "--receipt", p],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("round 1:") && out.contains("round 2:"),
        "{out}"
    );
    let verdicts = out
        .lines()
        .filter(|l| {
            ["met 0/2 ", "met 1/2 ", "met 2/2 "]
                .iter()
                .any(|v| l.starts_with(v))
        })
        .count();
    assert!(verdicts >= 6, "{out}");
    let names = metric_names(&path);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for round in [1, 2] {
        let key = format!("round{round}_f16_2t_decode_tok_per_s");
        assert!(names.contains(&key.as_str()), "{key} in {names:?}");
    }
    let rounds_met = names
        .iter()
        .filter(|n| n.starts_with("target_met_rounds: "))
        .count();
    assert!(rounds_met >= 6, "{names:?}");
    let v = bitnet(&["receipt", "verify", p]);
    assert!(v.status.success(), "{}", stderr(&v));
    let _ = std::fs::remove_file(&path);
    let o = bitnet(&[&args[..], &["--rounds", "2"]].concat());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--rounds goes with --targets"),
        "{}",
        stderr(&o)
    );
}

/// `bench model --targets` runs both heads on 1 and 2 threads, judges every target on its
/// own figure, and writes a receipt that verifies (tiny model, short run).
#[test]
fn bench_model_targets_judges_every_target() {
    let path = std::env::temp_dir().join(format!("bitnet-targets-{}.json", std::process::id()));
    let p = path.to_str().unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny-b158-i2s.gguf");
    let o = bitnet(&[
        "bench",
        "model",
        "-m",
        model,
        "--targets",
        "-t",
        "2",
        "--prompt-tokens",
        "8",
        "--gen",
        "4",
        "--receipt",
        p,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for target in [
        "decode, f16 head, 2 thr",
        "decode, int8 head, 2 thr",
        "prefill 8 tokens, 2 thr",
        "1 -> 2 threads",
        "the memory itself: DRAM probe",
        "anonymous memory beyond the KV cache",
    ] {
        assert!(out.contains(target), "{target} missing:\n{out}");
    }
    let names = metric_names(&path);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for head in ["f16", "int8"] {
        for t in [1, 2] {
            let key = format!("{head}_{t}t_decode_tok_per_s");
            assert!(names.contains(&key.as_str()), "{key} in {names:?}");
        }
    }
    assert!(
        names
            .iter()
            .filter(|n| n.starts_with("target_met: "))
            .count()
            >= 6
    );
    let v = bitnet(&["receipt", "verify", p]);
    assert!(v.status.success(), "{}", stderr(&v));
    let _ = std::fs::remove_file(&path);
}

/// `bench model` on the tiny model without a roofline, `prompt` and `decode` tokens, plus
/// `extra`; its receipt goes to a temporary file named after `name`, returned with the output.
fn bench_tiny_model(name: &str, prompt: &str, decode: &str, extra: &[&str]) -> (Output, PathBuf) {
    let path = std::env::temp_dir().join(format!("bitnet-{name}-{}.json", std::process::id()));
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny-b158-i2s.gguf");
    let mut args = vec![
        "bench",
        "model",
        "-m",
        model,
        "--no-roofline",
        "--prompt-tokens",
        prompt,
        "--gen",
        decode,
        "--receipt",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = bitnet(&args);
    (o, path)
}

/// `bench model` prints where a warm prompt and a decode step go, stage by stage, and keeps
/// the same figures in its receipt, per prompt and per token: every stage is there, and the
/// stages fit inside the whole pass.
#[test]
fn bench_model_reports_stage_times() {
    let (o, path) = bench_tiny_model("stages", "8", "4", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "stages, warm prompt ms/prompt: ",
        "stages, decode      ms/token: ",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let all = metrics(&path);
    let metric = |name: &str| {
        all.iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
            .unwrap_or_else(|| panic!("{name} in the receipt"))
    };
    for what in ["prefill", "decode"] {
        let part = |stage: &str| metric(&format!("{what}_stage_{stage}_ms"));
        let parts: f64 = ["projections", "attention", "norms", "head", "rest"]
            .iter()
            .map(|s| part(s))
            .sum();
        let whole = part("forward");
        assert!(part("projections") > 0.0 && part("head") > 0.0, "{what}");
        // Each part is rounded to whole nanoseconds per pass before the division.
        assert!(
            (parts - whole).abs() <= 1e-3 * whole.max(1.0),
            "{what}: {parts} vs {whole}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// `bench model --mlock` keeps the model file locked for the whole benchmark and says so in
/// its receipt (the tiny model is far below the usual 8 MiB memory-lock limit).
#[test]
fn bench_model_mlock_locks_and_says_so() {
    let (o, path) = bench_tiny_model("mlock", "4", "2", &["--mlock"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("model file locked in RAM (--mlock)"),
        "receipt notes: {text}"
    );
    let _ = std::fs::remove_file(&path);
}
