//! Criterion benches over the same kernel matrix as `bitnet bench kernels` (format × op × ISA
//! × threads × 2B-4T shape × hot/cold); see `benches/kernels.rs` and `compare.sh`.
//!
//! The case list, matrix pools and roofline probe live in `bitnet_runner::bench` so that the
//! CLI and criterion measure exactly the same calls.

pub use bitnet_runner::bench::kernels::{Case, Config, Op, Regime, Shape};

use bitnet_kernels::Isa;

/// The cases criterion runs.
///
/// Default (a few minutes): the best ISA on one thread for every format, op and regime of
/// the FFN shape 2560→6912 (`6912x2560`), plus decode GEMV (`gemv_i8`) for every 2B-4T shape
/// on 1 and all cores. `BITNET_BENCH_FULL=1`: the whole matrix (every ISA, thread count and
/// shape; long). `BITNET_ISA=scalar|avx2|avx512` restricts either to one ISA (an ISA this
/// CPU lacks is an error).
pub fn cases_from_env() -> Result<Vec<Case>, String> {
    let isa = match std::env::var("BITNET_ISA") {
        Ok(name) => Some(
            Isa::parse(&name)
                .and_then(Isa::require)
                .map_err(|e| format!("BITNET_ISA: {e}"))?,
        ),
        Err(_) => None,
    };
    let full = std::env::var("BITNET_BENCH_FULL").is_ok_and(|v| v != "0" && !v.is_empty());
    let mut cases = Vec::new();
    if full {
        let mut cfg = Config::full();
        if let Some(isa) = isa {
            cfg.isas = vec![isa];
        }
        cases = cfg.cases();
    } else {
        let best = isa.unwrap_or_else(Isa::best);
        let mut one = Config::full();
        one.isas = vec![best];
        one.threads = vec![1];
        one.shapes = vec![Shape {
            rows: 6912,
            cols: 2560,
        }];
        let mut decode = Config::full();
        decode.isas = vec![best];
        decode.ops = vec![Op::GemvI8];
        for c in one.cases().into_iter().chain(decode.cases()) {
            if !cases.contains(&c) {
                cases.push(c);
            }
        }
    }
    // Group by shape and format so that each pool of matrices is built once.
    cases.sort_by_key(|c| {
        (
            c.shape.rows,
            c.shape.cols,
            c.format.name(),
            c.op,
            c.isa,
            c.threads,
            c.regime == Regime::Cold,
        )
    });
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_selection_covers_every_format_and_shape() {
        // The default selection (the variables are unset in CI).
        if std::env::var("BITNET_BENCH_FULL").is_ok() || std::env::var("BITNET_ISA").is_ok() {
            return;
        }
        let cases = cases_from_env().unwrap();
        for f in bitnet_kernels::Format::ALL {
            for s in Shape::B2_4T {
                assert!(
                    cases
                        .iter()
                        .any(|c| c.format == f && c.shape == s && c.op == Op::GemvI8)
                );
            }
        }
        assert!(cases.iter().any(|c| c.op == Op::GemmI8 && c.tokens == 128));
        assert!(cases.iter().any(|c| c.regime == Regime::Cold));
    }
}
