//! Criterion benches: the kernel matrix of `bitnet bench kernels`, one benchmark per
//! (op/format, ISA, threads, shape, regime), throughput in GB/s of packed weight bytes
//! (G weights/s, % of roofline and the roofline itself come from `bitnet bench kernels`).
//!
//! Names: `OP/FORMAT/ISA/tTHREADS/ROWSxCOLS/REGIME`, e.g. `gemv_i8/tq2_0/avx512/t1/6912x2560/cold`,
//! so `cargo bench -p bitnet-benches --bench kernels -- gemv_i8/tq2_0` filters. Which cases
//! run: see `bitnet_benches::cases_from_env` (a few minutes by default;
//! `BITNET_BENCH_FULL=1` for everything, `BITNET_ISA=...` for one ISA).

use std::time::Duration;

use bitnet_benches::{Op, Regime, cases_from_env};
use bitnet_runner::bench::kernels::{Inputs, Pool, Prepared};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Size of each cold pool: 4x the 32 MiB L3.
const COLD_BYTES: usize = 128 << 20;

fn kernels(c: &mut Criterion) {
    let cases = match cases_from_env() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let filter = plain_filters();
    let mut i = 0;
    while i < cases.len() {
        let (shape, format) = (cases[i].shape, cases[i].format);
        let mut j = i;
        while j < cases.len() && cases[j].shape == shape && cases[j].format == format {
            j += 1;
        }
        let group: Vec<_> = cases[i..j]
            .iter()
            .filter(|case| {
                let id = name(case);
                filter.is_empty() || filter.iter().any(|f| id.contains(f.as_str()))
            })
            .collect();
        i = j;
        if group.is_empty() {
            continue;
        }
        let cold = group.iter().any(|c| c.regime == Regime::Cold);
        let n = if cold {
            Pool::copies_for(format, shape, COLD_BYTES).unwrap_or(2)
        } else {
            1
        };
        let pool = match Pool::build(format, shape.rows, shape.cols, n, 0xc0ffee) {
            Ok(p) => p,
            Err(e) => panic!("{} {}: {e}", format.name(), shape.name()),
        };
        let inputs = Inputs::new(shape.cols, 128);
        for case in group {
            let mut p = match Prepared::new(case, &pool, &inputs) {
                Ok(p) => p,
                Err(e) => panic!("{}: {e}", name(case)),
            };
            let id = name(case);
            let (op, rest) = id.split_once('/').unwrap_or((id.as_str(), ""));
            let rest = rest.to_string();
            let mut g = c.benchmark_group(op);
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
            let bytes = if case.op == Op::ActQuant {
                (case.tokens * case.shape.cols * 4) as u64
            } else {
                pool.weight_bytes() as u64
            };
            g.throughput(Throughput::Bytes(bytes));
            let mut k = 0usize;
            g.bench_function(rest, |b| {
                b.iter(|| {
                    k += 1;
                    if let Err(e) = p.call(k) {
                        panic!("{e}");
                    }
                })
            });
            g.finish();
        }
    }
}

/// Criterion's positional filters, when they are plain substrings (no regex syntax), so that
/// pools no filter can select are not built. Any regex filter disables this shortcut
/// (criterion still applies it).
fn plain_filters() -> Vec<String> {
    const WITH_VALUE: [&str; 14] = [
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--noise-threshold",
        "--significance-level",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--confidence-level",
        "--output-format",
        "--color",
        "--profile-time",
    ];
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            if a.contains(|c: char| "^$.*+?()[]{}|\\".contains(c)) {
                return Vec::new();
            }
            out.push(a);
        }
    }
    out
}

fn name(c: &bitnet_benches::Case) -> String {
    format!(
        "{}/{}/{}/t{}/{}/{}",
        c.op.name(),
        c.format.name(),
        c.isa.name(),
        c.threads,
        c.shape.name(),
        c.regime.name()
    )
}

criterion_group!(benches, kernels);
criterion_main!(benches);
