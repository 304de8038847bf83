//! quickcheck: pack ∘ unpack = id on ternary inputs, for every format, through the kernels'
//! packers and unpackers (codes and, via the quantizers, ternary·scale values).

use bitnet_kernels::{I2SQk256NoScale, I2s, TernaryMatrix, Tq1_0, Tq2_0};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// A ternary matrix: codes in 0..=2, with a shape valid for every format's block rules
/// chosen at test time.
#[derive(Debug, Clone)]
struct Ternary {
    rows: usize,
    blocks: usize,
    extra: usize,
    codes: Vec<u8>,
    scale: f32,
}

impl Arbitrary for Ternary {
    fn arbitrary(g: &mut Gen) -> Self {
        let rows = usize::arbitrary(g) % 6 + 1;
        let blocks = usize::arbitrary(g) % 6 + 1;
        let extra = usize::arbitrary(g) % 256;
        let n = rows * (blocks * 256 + extra);
        let codes = (0..n).map(|_| u8::arbitrary(g) % 3).collect();
        // Powers of two times small odd numbers survive f16 exactly.
        let scale =
            f32::from(u8::arbitrary(g) % 7 * 2 + 1) * 2f32.powi(i32::from(i8::arbitrary(g) % 8));
        Ternary {
            rows,
            blocks,
            extra,
            codes,
            scale,
        }
    }
}

impl Ternary {
    /// The codes of a `rows x cols` prefix-shaped matrix (`cols` = whole blocks, or + extra).
    fn codes_for(&self, cols: usize) -> Vec<u8> {
        let full = self.blocks * 256 + self.extra;
        (0..self.rows)
            .flat_map(|r| self.codes[r * full..r * full + cols].iter().copied())
            .collect()
    }
    fn values(&self, codes: &[u8]) -> Vec<f32> {
        codes
            .iter()
            .map(|&c| (c as i32 - 1) as f32 * self.scale)
            .collect()
    }
}

fn unpacked<M: TernaryMatrix>(m: &M) -> Vec<u8> {
    let mut out = vec![0u8; m.rows() * m.cols()];
    m.unpack_codes(&mut out).unwrap();
    out
}

fn dequantized<M: TernaryMatrix>(m: &M) -> Vec<f32> {
    let mut out = vec![0f32; m.rows() * m.cols()];
    m.dequantize(&mut out).unwrap();
    out
}

fn i2s_roundtrip(t: Ternary) -> bool {
    let cols = t.blocks * 256 + t.extra / 128 * 128;
    let codes = t.codes_for(cols);
    let by_codes = I2s::from_codes(&codes, t.rows, cols, t.scale).unwrap();
    let by_values = I2s::quantize(&t.values(&codes), t.rows, cols).unwrap();
    let all_zero = codes.iter().all(|&c| c == 1);
    unpacked(&by_codes) == codes
        && unpacked(&by_values) == codes
        && (all_zero || by_values.scale() == t.scale)
        && dequantized(&by_codes) == t.values(&codes)
}

fn qk256_roundtrip(t: Ternary) -> bool {
    let cols = t.blocks * 256 + t.extra;
    let codes = t.codes_for(cols);
    let m = I2SQk256NoScale::from_codes(&codes, t.rows, cols)
        .unwrap()
        .with_scale(t.scale);
    unpacked(&m) == codes && dequantized(&m) == t.values(&codes)
}

fn tq2_roundtrip(t: Ternary) -> bool {
    let cols = t.blocks * 256;
    let codes = t.codes_for(cols);
    let values = t.values(&codes);
    let by_codes =
        Tq2_0::from_codes(&codes, &vec![t.scale; t.rows * t.blocks], t.rows, cols).unwrap();
    let by_values = Tq2_0::quantize(&values, t.rows, cols).unwrap();
    // A block whose codes are all 1 quantizes to d = 0, which is the same values.
    unpacked(&by_codes) == codes
        && unpacked(&by_values) == codes
        && dequantized(&by_values) == values
}

fn tq1_roundtrip(t: Ternary) -> bool {
    let cols = t.blocks * 256;
    let codes = t.codes_for(cols);
    let values = t.values(&codes);
    let by_codes =
        Tq1_0::from_codes(&codes, &vec![t.scale; t.rows * t.blocks], t.rows, cols).unwrap();
    let by_values = Tq1_0::quantize(&values, t.rows, cols).unwrap();
    unpacked(&by_codes) == codes
        && unpacked(&by_values) == codes
        && dequantized(&by_values) == values
}

const TESTS: u64 = 200;

#[test]
fn quickcheck_i2s_pack_unpack_is_identity() {
    QuickCheck::new()
        .tests(TESTS)
        .quickcheck(i2s_roundtrip as fn(Ternary) -> bool);
}

#[test]
fn quickcheck_qk256_pack_unpack_is_identity() {
    QuickCheck::new()
        .tests(TESTS)
        .quickcheck(qk256_roundtrip as fn(Ternary) -> bool);
}

#[test]
fn quickcheck_tq2_0_pack_unpack_is_identity() {
    QuickCheck::new()
        .tests(TESTS)
        .quickcheck(tq2_roundtrip as fn(Ternary) -> bool);
}

#[test]
fn quickcheck_tq1_0_pack_unpack_is_identity() {
    QuickCheck::new()
        .tests(TESTS)
        .quickcheck(tq1_roundtrip as fn(Ternary) -> bool);
}
