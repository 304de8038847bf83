//! `bitnet kernel` from the shell: the verbs reproduce the golden vectors byte for byte, and
//! bad input gives one line on stderr, exit code 2 and no output file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bitnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitnet"))
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vectors")
}

/// A test's own scratch directory, removed with everything in it when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("bitnet-cli-kernel-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a failing command: exit code 2, exactly one stderr line, `out` not created.
fn fails(cmd: &mut Command, out: &Path, needle: &str) {
    let _ = std::fs::remove_file(out);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{cmd:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "`{err}` lacks `{needle}`");
    assert!(!out.exists(), "{} left behind", out.display());
}

struct I2sCase {
    name: &'static str,
    rows: usize,
    cols: usize,
    tokens: usize,
}

const I2S: [I2sCase; 3] = [
    I2sCase {
        name: "i2s_16x512_m1_d0_s7",
        rows: 16,
        cols: 512,
        tokens: 1,
    },
    I2sCase {
        name: "i2s_40x2560_m4_d0_s7",
        rows: 40,
        cols: 2560,
        tokens: 4,
    },
    I2sCase {
        name: "i2s_20x1024_m2_d2_s7",
        rows: 20,
        cols: 1024,
        tokens: 2,
    },
];

#[test]
fn i2s_verbs_reproduce_bitnet_cpp() {
    let scratch = Scratch::new("i2s-verbs");
    let v = vectors().join("i2s");
    for c in I2S {
        let f = |ext: &str| v.join(format!("{}.{ext}", c.name));
        let (rows, cols) = (c.rows.to_string(), c.cols.to_string());
        let shape = ["--format", "i2s", "--rows", &rows, "--cols", &cols];
        let packed = scratch.file(&format!("{}.packed", c.name));
        ok(bitnet()
            .args(["kernel", "pack"])
            .args(shape)
            .arg("--input")
            .arg(f("weights.f32"))
            .arg("--out")
            .arg(&packed));
        assert_eq!(
            std::fs::read(&packed).unwrap(),
            std::fs::read(f("packed.bin")).unwrap(),
            "{}",
            c.name
        );
        let unpacked = scratch.file(&format!("{}.w", c.name));
        ok(bitnet()
            .args(["kernel", "unpack"])
            .args(shape)
            .arg("--input")
            .arg(f("packed.bin"))
            .arg("--out")
            .arg(&unpacked));
        assert_eq!(
            std::fs::read(&unpacked).unwrap(),
            std::fs::read(f("weights.f32")).unwrap(),
            "{}",
            c.name
        );
        for isa in ["scalar", "auto"] {
            let y = scratch.file(&format!("{}.{isa}.y", c.name));
            ok(bitnet()
                .args(["kernel", "gemv"])
                .args(shape)
                .arg("--weights")
                .arg(f("packed.bin"))
                .arg("--input")
                .arg(f("x.f32"))
                .args(["--tokens", &c.tokens.to_string(), "--isa", isa, "-t", "2"])
                .arg("--out")
                .arg(&y));
            assert_eq!(
                std::fs::read(&y).unwrap(),
                std::fs::read(f("y.f32")).unwrap(),
                "{} on {isa}",
                c.name
            );
        }
    }
}

#[test]
fn tq_verbs_reproduce_gguf_py() {
    let scratch = Scratch::new("tq-verbs");
    let v = vectors().join("tq");
    for (fmt, name, rows, cols) in [
        ("tq2_0", "tq2_0_ties_3x768_s7", 3, 768),
        ("tq1_0", "tq1_0_ties_3x768_s7", 3, 768),
        ("tq2_0", "tq2_0_gaussian_16x2560_s7", 16, 2560),
        ("tq1_0", "tq1_0_zeros_and_spikes_2x1024_s7", 2, 1024),
    ] {
        let f = |ext: &str| v.join(format!("{name}.{ext}"));
        let (rows, cols) = (rows.to_string(), cols.to_string());
        let shape = ["--format", fmt, "--rows", &rows, "--cols", &cols];
        let packed = scratch.file(&format!("{name}.packed"));
        ok(bitnet()
            .args(["kernel", "pack"])
            .args(shape)
            .arg("--input")
            .arg(f("input.f32"))
            .arg("--out")
            .arg(&packed));
        assert_eq!(
            std::fs::read(&packed).unwrap(),
            std::fs::read(f("packed.bin")).unwrap(),
            "{name}"
        );
        let w = scratch.file(&format!("{name}.w"));
        ok(bitnet()
            .args(["kernel", "unpack"])
            .args(shape)
            .arg("--input")
            .arg(f("packed.bin"))
            .arg("--out")
            .arg(&w));
        assert_eq!(
            std::fs::read(&w).unwrap(),
            std::fs::read(f("dequant.f32")).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn bad_input_is_one_line_exit_2_and_no_output() {
    let scratch = Scratch::new("bad-input");
    let v = vectors().join("i2s");
    let packed = v.join("i2s_16x512_m1_d0_s7.packed.bin");
    let x = v.join("i2s_16x512_m1_d0_s7.x.f32");
    let out = scratch.file("never.f32");
    let gemv = |format: &str, rows: &str, cols: &str| {
        let mut c = bitnet();
        c.args([
            "kernel", "gemv", "--format", format, "--rows", rows, "--cols", cols,
        ])
        .arg("--weights")
        .arg(&packed)
        .arg("--input")
        .arg(&x)
        .arg("--out")
        .arg(&out);
        c
    };
    fails(&mut gemv("i2s", "17", "512"), &out, "expected exactly");
    fails(&mut gemv("i2s", "16", "500"), &out, "multiple of 128");
    fails(&mut gemv("q4_0", "16", "512"), &out, "unknown format");
    fails(&mut gemv("i2s", "0", "512"), &out, "zero dimension");
    fails(
        gemv("i2s", "16", "512").args(["--tokens", "2"]),
        &out,
        "needs 1024 f32",
    );
    fails(
        gemv("i2s", "16", "512").args(["--isa", "neon"]),
        &out,
        "unknown ISA",
    );
    fails(
        gemv("i2s", "16", "512").args(["--scale", "2"]),
        &out,
        "qk256 only",
    );
    fails(
        bitnet()
            .args([
                "kernel",
                "unpack",
                "--format",
                "tq2_0",
                "--rows",
                "1",
                "--cols",
                "256",
                "--input",
                "/nonexistent/p.bin",
            ])
            .arg("--out")
            .arg(&out),
        &out,
        "cannot read",
    );
    fails(
        bitnet()
            .args([
                "kernel", "pack", "--format", "tq1_0", "--rows", "3", "--cols", "256",
            ])
            .arg("--input")
            .arg(&x)
            .arg("--out")
            .arg(&out),
        &out,
        "needs 768 f32",
    );
    let dir_out = scratch.file("no-such-dir").join("y.f32");
    fails(
        bitnet()
            .args([
                "kernel", "gemv", "--format", "i2s", "--rows", "16", "--cols", "512",
            ])
            .arg("--weights")
            .arg(&packed)
            .arg("--input")
            .arg(&x)
            .arg("--out")
            .arg(&dir_out),
        &dir_out,
        "cannot write",
    );
}

#[test]
fn selftest_passes_on_this_cpu() {
    let o = bitnet()
        .args(["kernel", "selftest", "-t", "2"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{s}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(s.contains(" 0 failed"), "{s}");
}
