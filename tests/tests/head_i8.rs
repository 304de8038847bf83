//! The opt-in int8 output head (`DenseI8`): repack and product on every ISA and thread count
//! equal the reference twin bit for bit. The integer sum is exact and the float finish is one
//! formula, so there is no tolerance here; how far int8 logits sit from the F16 head is a
//! model-level figure (`model-runner/tests/head_i8_agreement.rs`).

use bitnet_kernels::dense::{Dense, DenseType};
use bitnet_kernels::dense_i8::DenseI8;
use bitnet_kernels::{Exec, Isa, KernelError};
use bitnet_lab::all_execs;
use bitnet_reference::testdata::SplitMix64;
use bitnet_reference::{gemv_head_i8, repack_head_i8};
use half::f16;
use proptest::prelude::*;

/// F16 bytes of `v` and their exact f32 values.
fn f16_matrix(v: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    (
        h.iter().flat_map(|x| x.to_le_bytes()).collect(),
        h.iter().map(|x| x.to_f32()).collect(),
    )
}

fn check(rows: usize, cols: usize, seed: u64, zero_row: bool) {
    let mut g = SplitMix64::new(seed);
    let mut w = g.values(rows * cols, -2.0, 2.0);
    if zero_row {
        w[..cols].fill(0.0);
    }
    let (bytes, exact) = f16_matrix(&w);
    let dense = Dense::new(DenseType::F16, rows, cols, &bytes).unwrap();
    let twin = repack_head_i8(&exact, rows, cols);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut ours = None;
    for exec in all_execs() {
        let h = DenseI8::from_dense(&dense, &exec).unwrap();
        assert_eq!(h.values(), &twin.q[..], "{rows}x{cols} {exec:?}: values");
        assert_eq!(bits(h.scales()), bits(&twin.scale), "{rows}x{cols}: scales");
        ours = Some(h);
    }
    let ours = ours.unwrap();
    let x = g.values(cols, -3.0, 3.0);
    let want = gemv_head_i8(&twin, &x);
    for exec in all_execs() {
        let mut y = vec![f32::NAN; rows];
        ours.gemv(&x, &mut y, &exec).unwrap();
        assert_eq!(bits(&y), bits(&want), "{rows}x{cols} {exec:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn head_i8_matches_twin(rows in 1usize..=40, cols in 1usize..=600, seed in any::<u64>(),
                            zero_row in any::<bool>()) {
        check(rows, cols, seed, zero_row);
    }
}

/// Large enough (1.3M products) that the rows are split across threads.
#[test]
fn head_i8_threaded_shape_matches_twin() {
    check(520, 2560, 7, false);
}

#[test]
fn head_i8_errors_not_panics() {
    let mut bytes = Vec::new();
    for v in [1.0f32, f32::INFINITY, 0.5, 0.25] {
        bytes.extend(f16::from_f32(v).to_le_bytes());
    }
    let d = Dense::new(DenseType::F16, 2, 2, &bytes).unwrap();
    assert!(matches!(
        DenseI8::from_dense(&d, &Exec::new(Isa::Scalar, 1).unwrap()),
        Err(KernelError::NonFiniteWeight { row: 0 })
    ));
    let bytes: Vec<u8> = [1.0f32, -1.0, 0.5, 0.25]
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    let exec = Exec::new(Isa::best(), 1).unwrap();
    let h = DenseI8::from_dense(&Dense::new(DenseType::F16, 2, 2, &bytes).unwrap(), &exec).unwrap();
    let mut y = [0f32; 2];
    assert!(h.gemv(&[1.0], &mut y, &exec).is_err(), "short x");
    assert!(h.gemv(&[1.0, 2.0], &mut y[..1], &exec).is_err(), "short y");
    assert!(matches!(
        h.gemv(&[f32::NAN, 2.0], &mut y, &exec),
        Err(KernelError::NonFiniteActivation { .. })
    ));
    h.gemv(&[1.0, 2.0], &mut y, &exec).unwrap();
}
