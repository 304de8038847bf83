//! Dense F32/F16/BF16 GEMM (embeddings, output head) on every ISA and thread count, against
//! the exact sum computed in f64: `|y − Σ w·x| ≤ γ_n · Σ|w·x|` (any summation order, exact
//! f16/bf16 → f32 conversion, `n` products and additions rounded; see `bounds`).

use bitnet_kernels::Exec;
use bitnet_kernels::dense::{Dense, DenseType};
use bitnet_lab::all_execs;
use bitnet_lab::bounds::gamma;
use bitnet_reference::testdata::SplitMix64;
use half::{bf16, f16};
use proptest::prelude::*;

fn encode(ty: DenseType, v: &[f32]) -> (Vec<u8>, Vec<f32>) {
    match ty {
        DenseType::F32 => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.to_vec()),
        DenseType::F16 => {
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            (
                h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                h.iter().map(|x| x.to_f32()).collect(),
            )
        }
        DenseType::Bf16 => {
            let h: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            (
                h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                h.iter().map(|x| x.to_f32()).collect(),
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]
    #[test]
    fn dense_gemm_within_bound_of_exact(
        ty in prop_oneof![Just(DenseType::F32), Just(DenseType::F16), Just(DenseType::Bf16)],
        rows in 1usize..=70, cols in 1usize..=700, tokens in 1usize..=3, seed in any::<u64>(),
    ) {
        let mut g = SplitMix64::new(seed);
        let (bytes, w) = encode(ty, &g.values(rows * cols, -2.0, 2.0));
        let x = g.values(tokens * cols, -3.0, 3.0);
        let m = Dense::new(ty, rows, cols, &bytes).unwrap();
        for exec in all_execs() {
            let mut y = vec![0f32; tokens * rows];
            m.gemm(&x, tokens, &mut y, &exec).unwrap();
            for t in 0..tokens {
                for r in 0..rows {
                    let (wr, xt) = (&w[r * cols..(r + 1) * cols], &x[t * cols..(t + 1) * cols]);
                    let exact: f64 = wr.iter().zip(xt).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                    let mag: f64 = wr.iter().zip(xt).map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs()).sum();
                    let bound = gamma(cols) * mag + cols as f64 * 2f64.powi(-149);
                    let d = (f64::from(y[t * rows + r]) - exact).abs();
                    prop_assert!(d <= bound, "{:?} {:?} t{} r{}: |{} - {}| > {}", ty, exec, t, r, y[t * rows + r], exact, bound);
                }
            }
        }
    }
}

#[test]
fn dense_rejects_bad_lengths_and_converts_rows() {
    let (bytes, w) = encode(DenseType::F16, &[1.5, -2.0, 0.25, 8.0, 3.0, -1.0]);
    assert!(Dense::new(DenseType::F16, 2, 3, &bytes[..11]).is_err());
    assert!(Dense::new(DenseType::F16, 0, 3, &bytes).is_err());
    assert!(Dense::new(DenseType::F16, usize::MAX, 3, &bytes).is_err());
    let m = Dense::new(DenseType::F16, 2, 3, &bytes).unwrap();
    let mut row = [0f32; 3];
    m.row_to_f32(1, &mut row).unwrap();
    assert_eq!(row, [w[3], w[4], w[5]]);
    assert!(m.row_to_f32(2, &mut row).is_err());
    assert!(m.row_to_f32(0, &mut [0f32; 2]).is_err());
    let mut y = [0f32; 2];
    assert!(m.gemm(&[1.0; 4], 1, &mut y, &Exec::best()).is_err());
    assert!(m.gemm(&[1.0; 3], 1, &mut y[..1], &Exec::best()).is_err());
    m.gemm(&[1.0; 3], 1, &mut y, &Exec::best()).unwrap();
    assert_eq!(y, [w[0] + w[1] + w[2], w[3] + w[4] + w[5]]);
}
