//! The seed's three tests, by name.

use bitnet_kernels::{Exec, I2SQk256NoScale, KernelError, TernaryMatrix};
use bitnet_lab::all_execs;
use bitnet_lab::bounds::check_gemm_f32;
use bitnet_reference::testdata::SplitMix64;
use proptest::prelude::*;

/// `rows * ceil(cols/256) * 64`, written out independently of the crate under test.
fn expected_len(rows: usize, cols: usize) -> usize {
    rows * cols.div_ceil(256) * 64
}

#[test]
fn test_qk256_struct_creation() {
    for &(rows, cols) in &[
        (1usize, 1usize),
        (1, 256),
        (3, 255),
        (4, 257),
        (16, 2560),
        (7, 6912),
        (2, 3000),
    ] {
        let exact = expected_len(rows, cols);
        let m = I2SQk256NoScale::new(rows, cols, vec![0x55u8; exact]).expect("exact size accepted");
        assert_eq!(m.rows(), rows);
        assert_eq!(m.cols(), cols);
        assert_eq!(m.blocks_per_row(), cols.div_ceil(256));
        assert_eq!(m.row_stride_bytes(), cols.div_ceil(256) * 64);
        assert_eq!(m.qs().len(), exact);
        assert_eq!(m.scale(), 1.0);

        for delta in [1isize, -1, 64, -64, 128, -128, 256, -256] {
            let Some(len) = exact.checked_add_signed(delta) else {
                continue;
            };
            let err =
                I2SQk256NoScale::new(rows, cols, vec![0u8; len]).expect_err("wrong size rejected");
            let KernelError::ByteLength {
                got,
                expected,
                rows: r,
                cols: c,
                row_stride_bytes,
                ..
            } = err.clone()
            else {
                panic!("wrong error variant: {err:?}");
            };
            assert_eq!(
                (got, expected, r, c, row_stride_bytes),
                (len, exact, rows, cols, m.row_stride_bytes())
            );
            let msg = err.to_string();
            for needle in [
                format!("got {len}"),
                format!("expected exactly {exact}"),
                format!("rows={rows}"),
                format!("cols={cols}"),
                format!("row_stride_bytes={}", m.row_stride_bytes()),
            ] {
                assert!(msg.contains(&needle), "`{msg}` lacks `{needle}`");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Kernels' f32 GEMV (every ISA × 1..=3 threads) vs the reference twin, within the bound
    /// derived in `bitnet_lab::bounds` (2·γ_{n+1}·Σ|w·x| per output).
    #[test]
    fn prop_gemv_qk256_matches_fp32_reference(
        rows in 1usize..=300,
        cols in 1usize..=3000,
        seed in any::<u64>(),
        scale in 0.001f32..10.0,
    ) {
        let mut rng = SplitMix64::new(seed);
        let codes: Vec<u8> = (0..rows * cols).map(|_| (rng.next_u64() % 3) as u8).collect();
        let x: Vec<f32> = (0..cols).map(|_| rng.uniform(-8.0, 8.0)).collect();
        let qs = bitnet_reference::pack_qk256(&codes, rows, cols);
        let m = I2SQk256NoScale::new(rows, cols, &qs[..]).unwrap().with_scale(scale);
        let want = bitnet_reference::gemv_f32_qk256(&qs, rows, cols, scale, &x, 1);
        let w = bitnet_reference::dequantize_qk256(&qs, rows, cols, scale);
        for exec in all_execs() {
            let mut y = vec![0f32; rows];
            m.gemm_f32(&x, 1, &mut y, &exec).unwrap();
            if let Err(e) = check_gemm_f32(&y, &want, &w, &x, rows, cols, 1) {
                return Err(TestCaseError::fail(format!("{exec:?}: {e}")));
            }
        }
    }

    /// Every byte length other than the exact one is rejected with `ByteLength`; the exact
    /// one is accepted.
    #[test]
    fn prop_i2s_qk256_no_scale_dimension_validation(
        rows in 1usize..=512,
        cols in 1usize..=8192,
        delta in prop_oneof![Just(0isize), -300isize..=300, any::<i16>().prop_map(isize::from)],
    ) {
        let exact = expected_len(rows, cols);
        let Some(len) = exact.checked_add_signed(delta) else { return Ok(()) };
        let got = I2SQk256NoScale::new(rows, cols, vec![1u8; len]);
        if delta == 0 {
            prop_assert!(got.is_ok());
        } else {
            let is_len_err = matches!(got, Err(KernelError::ByteLength { got, expected, .. }) if got == len && expected == exact);
            prop_assert!(is_len_err, "len {} (exact {}) gave {:?}", len, exact, got.map(|_| ()));
        }
    }
}

#[test]
fn qk256_rejects_zero_and_overflowing_dimensions() {
    assert!(matches!(
        I2SQk256NoScale::new(0, 256, vec![]),
        Err(KernelError::ZeroDimension { .. })
    ));
    assert!(matches!(
        I2SQk256NoScale::new(4, 0, vec![]),
        Err(KernelError::ZeroDimension { .. })
    ));
    assert!(matches!(
        I2SQk256NoScale::new(usize::MAX, 256, vec![]),
        Err(KernelError::Overflow { .. })
    ));
    assert!(matches!(
        I2SQk256NoScale::new(2, usize::MAX, vec![]),
        Err(KernelError::Overflow { .. })
    ));
    let _ = Exec::best();
}
