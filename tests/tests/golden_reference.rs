//! Golden vectors vs the reference twin: `bitnet-reference` must reproduce what the real
//! producers wrote (bitnet.cpp for I2_S, gguf-py for TQ1_0/TQ2_0) — bytes byte for byte,
//! dequantized values and bitnet.cpp's int8-activation GEMV bit for bit.

use bitnet_lab::vectors::{I2sCase, TqCase, TqFormat, i2s_cases, tq_cases};
use bitnet_reference as r;

/// Asserts two f32 slices are equal bit for bit, naming the first difference.
fn assert_bits_eq(case: &str, what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: {what}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{case}: {what}: {} of {} values differ; first at {i}: got {:e} ({:#010x}), want {:e} ({:#010x})",
            bad.len(),
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// Asserts two byte slices are equal, naming the first difference.
fn assert_bytes_eq(case: &str, what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{case}: {what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let bad = (0..got.len()).filter(|&i| got[i] != want[i]).count();
        panic!(
            "{case}: {what}: {bad} bytes differ; first at {i}: got {:#04x}, want {:#04x}",
            got[i], want[i]
        );
    }
}

fn check_i2s(c: &I2sCase) {
    let n = c.rows * c.cols;
    let name = c.name.as_str();
    assert_eq!(
        r::i2s_tensor_bytes(n),
        c.packed.len(),
        "{name}: tensor bytes"
    );

    // Decode: scale and values.
    let scale = r::i2s_scale(&c.packed, n);
    assert_eq!(scale.to_bits(), c.weight_scale.to_bits(), "{name}: scale");
    assert_bits_eq(
        name,
        "dequantize_i2s",
        &r::dequantize_i2s(&c.packed, c.rows, c.cols),
        &c.weights,
    );
    let codes = r::unpack_codes_i2s(&c.packed, n);
    assert!(
        codes.iter().all(|&k| k <= 2),
        "{name}: code 3 in a bitnet.cpp tensor"
    );
    let from_codes: Vec<f32> = codes
        .iter()
        .map(|&k| (f32::from(k) - 1.0) * scale)
        .collect();
    assert_bits_eq(name, "unpack_codes_i2s", &from_codes, &c.weights);

    // Encode: bitnet.cpp's quantizer and the plain packer.
    assert_bytes_eq(
        name,
        "quantize_i2s",
        &r::quantize_i2s(&c.weights, c.rows, c.cols),
        &c.packed,
    );
    assert_bytes_eq(
        name,
        "pack_i2s_codes",
        &r::pack_i2s_codes(&codes, scale),
        &c.packed,
    );

    // bitnet.cpp's int8-activation mul_mat, bit for bit.
    assert_bits_eq(
        name,
        "gemv_i8_i2s",
        &r::gemv_i8_i2s(&c.packed, c.rows, c.cols, &c.x, c.tokens),
        &c.y,
    );

    // The QK256 view: with cols % 256 == 0 the code bytes are a QK256 matrix as they stand.
    if c.cols.is_multiple_of(256) {
        let qs = &c.packed[..n / 4];
        assert_eq!(
            qs.len(),
            c.rows * r::qk256_row_stride_bytes(c.cols),
            "{name}: QK256 size"
        );
        assert_eq!(
            r::unpack_codes_qk256(qs, c.rows, c.cols),
            codes,
            "{name}: unpack_codes_qk256"
        );
        assert_bytes_eq(
            name,
            "pack_qk256",
            &r::pack_qk256(&codes, c.rows, c.cols),
            qs,
        );
        assert_bits_eq(
            name,
            "dequantize_qk256",
            &r::dequantize_qk256(qs, c.rows, c.cols, scale),
            &c.weights,
        );
        assert_bits_eq(
            name,
            "gemv_i8_qk256",
            &r::gemv_i8_qk256(qs, c.rows, c.cols, scale, &c.x, c.tokens),
            &c.y,
        );
    }
}

#[test]
fn i2s_golden_vectors() {
    let cases = i2s_cases();
    assert_eq!(cases.len(), 6);
    let mut qk256_views = 0;
    for c in &cases {
        check_i2s(c);
        qk256_views += usize::from(c.cols.is_multiple_of(256));
    }
    assert!(qk256_views > 0, "no case exercised the QK256 view");
}

fn check_tq(c: &TqCase) {
    let name = c.name.as_str();
    let (packed, dequant) = match c.format {
        TqFormat::Tq2_0 => (
            r::quantize_tq2_0(&c.input, c.rows, c.cols),
            r::dequantize_tq2_0(&c.packed, c.rows, c.cols),
        ),
        TqFormat::Tq1_0 => (
            r::quantize_tq1_0(&c.input, c.rows, c.cols),
            r::dequantize_tq1_0(&c.packed, c.rows, c.cols),
        ),
    };
    assert_bytes_eq(name, "quantize", &packed, &c.packed);
    assert_bits_eq(name, "dequantize", &dequant, &c.dequant);

    // Unpack → pack with the stored f16 scales reproduces the bytes.
    let (codes, repacked) = match c.format {
        TqFormat::Tq2_0 => {
            let codes = r::unpack_codes_tq2_0(&c.packed, c.rows, c.cols);
            let scales: Vec<f32> = c
                .packed
                .chunks_exact(66)
                .map(|b| f16_le(b[64], b[65]))
                .collect();
            let repacked = r::pack_tq2_0_codes(&codes, &scales, c.rows, c.cols);
            (codes, repacked)
        }
        TqFormat::Tq1_0 => {
            let codes = r::unpack_codes_tq1_0(&c.packed, c.rows, c.cols);
            let scales: Vec<f32> = c
                .packed
                .chunks_exact(54)
                .map(|b| f16_le(b[52], b[53]))
                .collect();
            let repacked = r::pack_tq1_0_codes(&codes, &scales, c.rows, c.cols);
            (codes, repacked)
        }
    };
    assert!(
        codes.iter().all(|&k| k <= 2),
        "{name}: code 3 in a gguf-py tensor"
    );
    assert_bytes_eq(name, "pack(unpack)", &repacked, &c.packed);
}

fn f16_le(lo: u8, hi: u8) -> f32 {
    half::f16::from_le_bytes([lo, hi]).to_f32()
}

#[test]
fn tq_golden_vectors() {
    let cases = tq_cases();
    assert_eq!(
        cases.iter().filter(|c| c.format == TqFormat::Tq2_0).count(),
        6
    );
    assert_eq!(
        cases.iter().filter(|c| c.format == TqFormat::Tq1_0).count(),
        6
    );
    for c in &cases {
        check_tq(c);
    }
}
