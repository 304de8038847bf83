//! Validation: every constructor and compute entry point rejects every wrong dimension or
//! length with a typed error and never panics (lengths off by one, empty, huge, overflowing).

use bitnet_kernels::act::{quantize_i8, quantize_q8k};
use bitnet_kernels::{
    Exec, Format, I2SQk256NoScale, I2s, Isa, KernelError, TernaryMatrix, Tq1_0, Tq2_0,
};
use proptest::prelude::*;

/// The exact byte length, computed here from the formats' definitions (not the crate's).
fn expected_len(format: Format, rows: usize, cols: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    match format {
        Format::I2s => cols
            .is_multiple_of(128)
            .then(|| rows.checked_mul(cols / 4)?.checked_add(32))
            .flatten(),
        Format::Qk256 => rows.checked_mul(cols.div_ceil(256) * 64),
        Format::Tq2_0 => cols
            .is_multiple_of(256)
            .then(|| rows.checked_mul(cols / 256 * 66))
            .flatten(),
        _ => cols
            .is_multiple_of(256)
            .then(|| rows.checked_mul(cols / 256 * 54))
            .flatten(),
    }
}

fn construct(
    format: Format,
    rows: usize,
    cols: usize,
    bytes: &[u8],
) -> Result<Box<dyn TernaryMatrix + '_>, KernelError> {
    Ok(match format {
        Format::I2s => Box::new(I2s::new(rows, cols, bytes)?),
        Format::Qk256 => Box::new(I2SQk256NoScale::new(rows, cols, bytes)?),
        Format::Tq2_0 => Box::new(Tq2_0::new(rows, cols, bytes)?),
        _ => Box::new(Tq1_0::new(rows, cols, bytes)?),
    })
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::I2s),
        Just(Format::Qk256),
        Just(Format::Tq2_0),
        Just(Format::Tq1_0)
    ]
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=1100,
        1 => (0usize..=12).prop_map(|b| b * 128),
        1 => Just(usize::MAX),
        1 => (1usize..=64).prop_map(|s| usize::MAX >> s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Constructors accept exactly the right length and reject everything else with a typed
    /// error (ByteLength naming got/expected, or ZeroDimension / ColsNotMultiple / Overflow).
    #[test]
    fn constructors_accept_exactly_the_right_length(
        format in format(), rows in dim(), cols in dim(), delta in -70isize..=70,
    ) {
        let exact = expected_len(format, rows, cols);
        let len = exact.unwrap_or(0).saturating_add_signed(delta).min(1 << 20);
        let bytes = vec![0x55u8; len];
        match (construct(format, rows, cols, &bytes), exact) {
            (Ok(m), Some(e)) => {
                prop_assert_eq!(len, e);
                prop_assert_eq!((m.rows(), m.cols()), (rows, cols));
            }
            (Ok(_), None) => prop_assert!(false, "accepted an invalid shape {}x{}", rows, cols),
            (Err(KernelError::ByteLength { got, expected, .. }), Some(e)) => {
                prop_assert_eq!(got, len);
                prop_assert_eq!(expected, e);
                prop_assert_ne!(len, e);
            }
            (Err(KernelError::ZeroDimension { .. } | KernelError::ColsNotMultiple { .. } | KernelError::Overflow { .. }), _) => {
                prop_assert!(exact.is_none() || exact.is_some_and(|e| e > 1 << 20) || rows == 0 || cols == 0);
            }
            (Err(e), _) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every compute entry point rejects wrong x / y / output lengths and bad token counts
    /// with an error, on every ISA, and succeeds on the right ones.
    #[test]
    fn entry_points_check_every_length(
        format in format(), rows in 1usize..=9, blocks in 1usize..=3,
        dx in -3isize..=3, dy in -3isize..=3, tokens in 0usize..=3,
    ) {
        let cols = blocks * 256;
        let bytes = vec![0x5au8; expected_len(format, rows, cols).unwrap()];
        let m = construct(format, rows, cols, &bytes).unwrap();
        let x = vec![0.25f32; (tokens * cols).saturating_add_signed(dx)];
        let mut y = vec![0f32; (tokens * rows).saturating_add_signed(dy)];
        let right = tokens > 0 && dx == 0 && dy == 0;
        for isa in Isa::available() {
            let exec = Exec::new(isa, 2).unwrap();
            prop_assert_eq!(m.gemm_f32(&x, tokens, &mut y, &exec).is_ok(), right);
            prop_assert_eq!(m.gemm_i8(&x, tokens, &mut y, &exec).is_ok(), right);
        }
        let mut codes = vec![0u8; (rows * cols).saturating_add_signed(dx)];
        prop_assert_eq!(m.unpack_codes(&mut codes).is_ok(), dx == 0);
        let mut w = vec![0f32; (rows * cols).saturating_add_signed(dy)];
        prop_assert_eq!(m.dequantize(&mut w).is_ok(), dy == 0);
        let mut row = vec![0f32; cols.saturating_add_signed(dx)];
        prop_assert_eq!(m.dequantize_row(rows - 1, &mut row).is_ok(), dx == 0);
        prop_assert!(m.dequantize_row(rows, &mut vec![0f32; cols]).is_err());
        prop_assert!(m.unpack_codes_row(usize::MAX, &mut vec![0u8; cols]).is_err());
    }
}

#[test]
fn activation_quantizers_reject_bad_input() {
    let exec = Exec::best();
    assert!(quantize_i8(&[1.0; 10], 0, 1, &exec).is_err());
    assert!(quantize_i8(&[1.0; 10], 10, 0, &exec).is_err());
    assert!(quantize_i8(&[1.0; 10], 5, 3, &exec).is_err());
    assert!(quantize_i8(&[1.0; 10], usize::MAX, 2, &exec).is_err());
    assert!(matches!(
        quantize_i8(&[1.0, f32::NAN], 2, 1, &exec),
        Err(KernelError::NonFiniteActivation { token: 0 })
    ));
    assert!(matches!(
        quantize_i8(&[1.0, 2.0, f32::INFINITY, 0.0], 2, 2, &exec),
        Err(KernelError::NonFiniteActivation { token: 1 })
    ));
    assert!(quantize_q8k(&[1.0; 255], 255, 1).is_err());
    assert!(quantize_q8k(&[1.0; 256], 256, 2).is_err());
    let mut x = vec![1.0f32; 512];
    x[300] = f32::NAN;
    assert!(matches!(
        quantize_q8k(&x, 256, 2),
        Err(KernelError::NonFiniteActivation { token: 1 })
    ));
}

#[test]
fn bad_scales_and_isas_are_errors() {
    let mut b = [0u8; 32 + 32];
    b[32..36].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        I2s::new(1, 128, &b[..]),
        Err(KernelError::NonFiniteScale { .. })
    ));
    let q = I2SQk256NoScale::new(1, 10, vec![0u8; 64]).unwrap();
    assert!(q.try_with_scale(f32::INFINITY).is_err());
    assert!(Exec::new(Isa::Scalar, 0).is_err());
    for isa in Isa::ALL {
        assert_eq!(Exec::new(isa, 1).is_ok(), isa.is_available());
    }
    assert!(Isa::parse("neon").is_err());
    assert!(Format::parse("q4_0").is_err());
}

#[test]
fn i2s_to_qk256_view_is_zero_copy() {
    let codes: Vec<u8> = (0..4 * 512).map(|i| (i % 3) as u8).collect();
    let t = I2s::from_codes(&codes, 4, 512, 0.75).unwrap();
    let q = t.as_qk256().unwrap();
    assert_eq!(
        q.qs().as_ptr(),
        t.bytes().as_ptr(),
        "the view borrows the tensor's bytes"
    );
    assert_eq!(q.qs().len(), 4 * 512 / 4);
    assert_eq!(q.scale(), 0.75);
    let odd = I2s::from_codes(&codes[..4 * 384], 4, 384, 1.0).unwrap();
    assert!(matches!(
        odd.as_qk256(),
        Err(KernelError::ColsNotMultiple { multiple: 256, .. })
    ));
}
