//! Stable replay of the committed fuzz corpora: every file of every
//! `fuzz/corpus/<target>/` goes through the same function its cargo-fuzz target calls
//! (`bitnet_lab::fuzz_targets`), so CI re-checks every input that ever mattered without
//! nightly or libFuzzer. The whole replay is meant to take well under a minute in release
//! mode (see `docs/security.md`).
//!
//! `write_seed_corpus` (ignored) writes the hand-made seeds into the corpus folders; it is
//! run by hand before fuzzing: `cargo test -p bitnet-lab --test fuzz_replay -- --ignored`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitnet_lab::fuzz_targets::{self, TARGETS};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
        .join("corpus")
}

/// Files of one corpus folder, sorted (hidden files skipped).
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_root().join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus folder {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Time budget of the whole replay. Release builds take a few seconds; unoptimized
/// builds are several times slower, so they get more room.
fn budget() -> Duration {
    if cfg!(debug_assertions) {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(60)
    }
}

fn replay(target: &str) -> (usize, Duration) {
    let files = corpus_files(target);
    assert!(
        !files.is_empty(),
        "fuzz/corpus/{target}/ is empty: the replay would check nothing"
    );
    let start = Instant::now();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| fuzz_targets::run(target, &data));
        match outcome {
            Ok(known) => assert!(known, "no fuzz target called {target}"),
            Err(_) => panic!(
                "{target}: corpus file {} fails (reproduce with `cargo fuzz run {target} {}`)",
                path.display(),
                path.display()
            ),
        }
    }
    (files.len(), start.elapsed())
}

#[test]
fn every_corpus_replays_without_a_failure() {
    let start = Instant::now();
    let mut report = Vec::new();
    for target in TARGETS {
        let (n, took) = replay(target);
        report.push(format!("{target}: {n} files in {took:.2?}"));
    }
    let total = start.elapsed();
    eprintln!(
        "fuzz corpus replay:\n  {}\n  total {total:.2?}",
        report.join("\n  ")
    );
    assert!(
        total < budget(),
        "corpus replay took {total:?}, over the {:?} budget: minimize the corpora \
         (`cargo fuzz cmin`)",
        budget()
    );
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let fuzz_dir = corpus_root().join("..");
    let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for target in TARGETS {
        let src = fuzz_dir.join("fuzz_targets").join(format!("{target}.rs"));
        let body = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(
            body.contains(&format!("bitnet_lab::fuzz_targets::{target}(")),
            "{} does not call the lab function",
            src.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
    }
    assert!(!fuzz_targets::run("no_such_target", b""));
}

#[test]
fn the_empty_input_is_handled_by_every_target() {
    for target in TARGETS {
        assert!(fuzz_targets::run(target, b""));
    }
}

/// Writes the hand-made seeds (`fuzz_targets::seed_inputs`) into `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes files into fuzz/corpus; run by hand before fuzzing"]
fn write_seed_corpus() {
    let seeds = fuzz_targets::seed_inputs();
    for target in TARGETS {
        assert!(
            seeds.iter().any(|(t, _, _)| *t == target),
            "no seed for {target}"
        );
    }
    for (target, name, bytes) in &seeds {
        // Every seed must pass its own target before it goes in.
        assert!(fuzz_targets::run(target, bytes));
        let dir = corpus_root().join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
    eprintln!(
        "wrote {} seeds under {}",
        seeds.len(),
        corpus_root().display()
    );
}
