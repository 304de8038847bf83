//! Twin agreement: for every format × operation × ISA on this CPU × threads {1, 2, 3},
//! `bitnet-kernels` equals `bitnet-reference` — bit for bit on unpacking, dequantization,
//! activation quantization and the int8 products; within the derived bound
//! (`bitnet_lab::bounds`) on the f32 products. Shapes include tails (QK256 cols not a
//! multiple of 256, I2_S with an odd block count), one row, and rows not a multiple of the
//! 4-row tile.

use bitnet_kernels::{
    Activations, Exec, Format, I2SQk256NoScale, I2s, Isa, KernelError, TernaryMatrix, Tq1_0, Tq2_0,
    act,
};
use bitnet_lab::bounds::check_gemm_f32;
use bitnet_lab::{all_execs, bits};
use bitnet_reference as r;
use proptest::prelude::*;

/// One generated case: a packed matrix (bytes made by the *reference* packers) plus inputs.
#[derive(Debug, Clone)]
struct Case {
    format: Format,
    rows: usize,
    cols: usize,
    tokens: usize,
    packed: Vec<u8>,
    scale: f32,
    x: Vec<f32>,
}

impl Case {
    fn matrix(&self) -> Box<dyn TernaryMatrix + '_> {
        let (rows, cols, p) = (self.rows, self.cols, &self.packed[..]);
        match self.format {
            Format::I2s => Box::new(I2s::new(rows, cols, p).unwrap()),
            Format::Qk256 => Box::new(
                I2SQk256NoScale::new(rows, cols, p)
                    .unwrap()
                    .with_scale(self.scale),
            ),
            Format::Tq2_0 => Box::new(Tq2_0::new(rows, cols, p).unwrap()),
            Format::Tq1_0 => Box::new(Tq1_0::new(rows, cols, p).unwrap()),
        }
    }

    fn ref_codes(&self) -> Vec<u8> {
        let (rows, cols, p) = (self.rows, self.cols, &self.packed[..]);
        match self.format {
            Format::I2s => r::unpack_codes_i2s(p, rows * cols),
            Format::Qk256 => r::unpack_codes_qk256(p, rows, cols),
            Format::Tq2_0 => r::unpack_codes_tq2_0(p, rows, cols),
            Format::Tq1_0 => r::unpack_codes_tq1_0(p, rows, cols),
        }
    }

    fn ref_dequant(&self) -> Vec<f32> {
        let (rows, cols, p) = (self.rows, self.cols, &self.packed[..]);
        match self.format {
            Format::I2s => r::dequantize_i2s(p, rows, cols),
            Format::Qk256 => r::dequantize_qk256(p, rows, cols, self.scale),
            Format::Tq2_0 => r::dequantize_tq2_0(p, rows, cols),
            Format::Tq1_0 => r::dequantize_tq1_0(p, rows, cols),
        }
    }

    fn ref_gemm_f32(&self) -> Vec<f32> {
        let (rows, cols, p, x, t) = (
            self.rows,
            self.cols,
            &self.packed[..],
            &self.x[..],
            self.tokens,
        );
        match self.format {
            Format::I2s => r::gemv_f32_i2s(p, rows, cols, x, t),
            Format::Qk256 => r::gemv_f32_qk256(p, rows, cols, self.scale, x, t),
            Format::Tq2_0 => r::gemv_f32_tq2_0(p, rows, cols, x, t),
            Format::Tq1_0 => r::gemv_f32_tq1_0(p, rows, cols, x, t),
        }
    }

    fn ref_gemm_int(&self) -> Vec<f32> {
        let (rows, cols, p, x, t) = (
            self.rows,
            self.cols,
            &self.packed[..],
            &self.x[..],
            self.tokens,
        );
        match self.format {
            Format::I2s => r::gemv_i8_i2s(p, rows, cols, x, t),
            Format::Qk256 => r::gemv_i8_qk256(p, rows, cols, self.scale, x, t),
            Format::Tq2_0 => r::gemv_q8k_tq2_0(p, rows, cols, x, t),
            Format::Tq1_0 => r::gemv_q8k_tq1_0(p, rows, cols, x, t),
        }
    }
}

fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let m = c.matrix();
    let n = c.rows * c.cols;

    let mut codes = vec![0u8; n];
    m.unpack_codes(&mut codes).unwrap();
    prop_assert_eq!(&codes, &c.ref_codes(), "unpack codes");
    let mut i8s = vec![0i8; n];
    m.unpack_i8(&mut i8s).unwrap();
    prop_assert!(
        i8s.iter().zip(&codes).all(|(&v, &c)| v == c as i8 - 1),
        "unpack i8"
    );
    let w = c.ref_dequant();
    let mut wk = vec![0f32; n];
    m.dequantize(&mut wk).unwrap();
    prop_assert_eq!(bits(&wk), bits(&w), "dequantize");

    let want_f32 = c.ref_gemm_f32();
    let want_int = c.ref_gemm_int();
    for exec in all_execs() {
        let mut y = vec![0f32; c.tokens * c.rows];
        m.gemm_f32(&c.x, c.tokens, &mut y, &exec).unwrap();
        if let Err(e) = check_gemm_f32(&y, &want_f32, &w, &c.x, c.rows, c.cols, c.tokens) {
            return Err(TestCaseError::fail(format!(
                "{:?} f32 on {exec:?}: {e}",
                c.format
            )));
        }
        let mut yi = vec![0f32; c.tokens * c.rows];
        m.gemm_i8(&c.x, c.tokens, &mut yi, &exec).unwrap();
        prop_assert_eq!(
            bits(&yi),
            bits(&want_int),
            "{:?} int8 GEMM on {:?}",
            c.format,
            exec
        );
    }
    Ok(())
}

/// Activations: uniform, or half-integers with max |x| = 127 so that `x * s` lands exactly
/// on rounding ties (s = 1), or all zero.
fn activations(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        4 => proptest::collection::vec(-50.0f32..50.0, len),
        2 => proptest::collection::vec((-254i32..=254).prop_map(|k| k as f32 / 2.0), len).prop_map(|mut v| {
            v[0] = 127.0;
            v
        }),
        1 => Just(vec![0.0; len]),
    ]
}

fn codes(len: usize, max_code: u8) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0..=max_code, len)
}

fn case(
    format: Format,
    rows: usize,
    cols: usize,
    tokens: usize,
    code_max: u8,
) -> impl Strategy<Value = Case> {
    let nb = rows * cols / 256;
    (
        codes(rows * cols, code_max),
        activations(tokens * cols),
        0.01f32..4.0,
        proptest::collection::vec(0.01f32..4.0, nb.max(1)),
    )
        .prop_map(move |(codes, x, scale, scales)| {
            let packed = match format {
                Format::I2s => r::pack_i2s_codes(&codes, scale),
                Format::Qk256 => r::pack_qk256(&codes, rows, cols),
                Format::Tq2_0 => r::pack_tq2_0_codes(&codes, &scales[..nb], rows, cols),
                Format::Tq1_0 => r::pack_tq1_0_codes(&codes, &scales[..nb], rows, cols),
            };
            Case {
                format,
                rows,
                cols,
                tokens,
                packed,
                scale,
                x,
            }
        })
}

/// Cases of a property: `n`, or a few under Miri, which interprets every SIMD lane (about
/// a million times slower); there the point is its checks of the unsafe SIMD layer's
/// memory accesses and the ISAs this CPU lacks (`docs/testing.md`, Miri).
const fn cases(n: u32) -> u32 {
    if cfg!(miri) { 3 } else { n }
}

fn shapes(format: Format) -> impl Strategy<Value = (usize, usize, usize)> {
    // Under Miri: small, with the tails and a prompt long enough to be split by tokens (≥ 16).
    let miri = cfg!(miri);
    let cols = match format {
        Format::I2s => (1usize..=if miri { 3 } else { 24 })
            .prop_map(|b| b * 128)
            .boxed(),
        Format::Qk256 => (1usize..=if miri { 600 } else { 1600 }).boxed(),
        _ => (1usize..=if miri { 2 } else { 8 })
            .prop_map(|b| b * 256)
            .boxed(),
    };
    // Prompts of 16 tokens and more go through the token-split prefill (tiles of four or
    // eight tokens, and a remainder).
    let tokens = if miri {
        prop_oneof![Just(1usize), 2usize..=5, Just(17)].boxed()
    } else {
        prop_oneof![2 => Just(1usize), 2 => 1usize..=9, 1 => 16usize..=40].boxed()
    };
    (
        prop_oneof![Just(1usize), 1usize..=if miri { 9 } else { 70 }],
        cols,
        tokens,
    )
}

macro_rules! twin_test {
    ($name:ident, $format:expr, $code_max:expr, $cases:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: cases($cases), ..ProptestConfig::default() })]
            #[test]
            fn $name(c in shapes($format).prop_flat_map(|(r, c, t)| case($format, r, c, t, $code_max))) {
                check_case(&c)?;
            }
        }
    };
}

twin_test!(twin_i2s, Format::I2s, 2, 40);
twin_test!(twin_i2s_code3, Format::I2s, 3, 12);
twin_test!(twin_qk256, Format::Qk256, 2, 40);
twin_test!(twin_qk256_code3, Format::Qk256, 3, 12);
twin_test!(twin_tq2_0, Format::Tq2_0, 2, 40);
twin_test!(twin_tq2_0_code3, Format::Tq2_0, 3, 12);
twin_test!(twin_tq1_0, Format::Tq1_0, 2, 40);

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    /// bitnet.cpp per-token int8 quantization: q, scale and Σq equal the twin's on every ISA.
    #[test]
    fn act_i8_matches_reference(cols in 1usize..=700, tokens in 1usize..=3, seed in any::<u64>()) {
        let ties = seed % 2 == 0;
        let x: Vec<f32> = (0..cols * tokens).map(|i| {
            let u = (seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 32;
            let u = u as u32;
            if ties { if i % cols == 0 { 127.0 } else { ((u % 509) as i32 - 254) as f32 / 2.0 } }
            else { (u >> 8) as f32 / (1u32 << 24) as f32 * 20.0 - 10.0 }
        }).collect();
        for isa in Isa::available() {
            let a = act::quantize_i8(&x, cols, tokens, &Exec::new(isa, 1).unwrap()).unwrap();
            for t in 0..tokens {
                let want = r::quantize_activations_i8(&x[t * cols..(t + 1) * cols]);
                prop_assert_eq!(&a.q[t * a.stride..t * a.stride + cols], &want.q[..], "q on {}", isa);
                prop_assert!(a.q[t * a.stride + cols..(t + 1) * a.stride].iter().all(|&v| v == 0), "padding");
                prop_assert_eq!(a.scale[t].to_bits(), want.scale.to_bits(), "scale on {}", isa);
                prop_assert_eq!(a.sum[t], want.sum, "sum on {}", isa);
            }
        }
    }

    /// RMSNorm fused with int8 quantization (one buffer reused across cases of every width
    /// and token count) gives the twin's normed rows and its q, scale and Σq, bit for bit,
    /// on every ISA; so does the unfused RMSNorm of many rows.
    #[test]
    fn rms_norm_quantize_matches_reference(cols in 1usize..=700, tokens in 1usize..=9, seed in any::<u64>()) {
        let mut g = bitnet_reference::testdata::SplitMix64::new(seed);
        let x = g.values(cols * tokens, -12.0, 12.0);
        let w = g.values(cols, -2.0, 2.0);
        let eps = 1e-5;
        let mut acts = act::ActsI8::empty();
        let mut normed = vec![0f32; cols * tokens];
        let mut rows = vec![0f32; cols * tokens];
        act::rms_norm_rows(&x, &w, eps, &mut rows);
        for t in 0..tokens {
            let want_h = r::block::rms_norm_ref(&x[t * cols..(t + 1) * cols], &w, eps);
            prop_assert_eq!(bits(&rows[t * cols..(t + 1) * cols]), bits(&want_h), "rms_norm_rows");
        }
        for isa in Isa::available() {
            let exec = Exec::new(isa, 1).unwrap();
            act::rms_norm_quantize_i8(&x, &w, eps, &exec, &mut normed, &mut acts).unwrap();
            prop_assert_eq!((acts.cols, acts.tokens), (cols, tokens));
            for t in 0..tokens {
                let want_h = r::block::rms_norm_ref(&x[t * cols..(t + 1) * cols], &w, eps);
                prop_assert_eq!(bits(&normed[t * cols..(t + 1) * cols]), bits(&want_h), "normed on {}", isa);
                let want = r::quantize_activations_i8(&want_h);
                prop_assert_eq!(&acts.q[t * acts.stride..t * acts.stride + cols], &want.q[..], "q on {}", isa);
                prop_assert!(acts.q[t * acts.stride + cols..(t + 1) * acts.stride].iter().all(|&v| v == 0), "padding");
                prop_assert_eq!(acts.scale[t].to_bits(), want.scale.to_bits(), "scale on {}", isa);
                prop_assert_eq!(acts.sum[t], want.sum, "sum on {}", isa);
            }
            // The unfused path, into the same (now dirty) buffers, agrees too.
            let mut again = acts.clone();
            act::quantize_i8_into(&normed, cols, tokens, &exec, &mut again).unwrap();
            prop_assert_eq!(&again, &acts, "unfused on {}", isa);
        }
    }

    /// llama.cpp Q8_K quantization equals the twin's block for block.
    #[test]
    fn act_q8k_matches_reference(blocks in 1usize..=6, x0 in proptest::collection::vec(-30.0f32..30.0, 256 * 6), zero in any::<bool>()) {
        let mut x = x0[..blocks * 256].to_vec();
        if zero { x[..256].fill(0.0); }
        let a = act::quantize_q8k(&x, blocks * 256, 1).unwrap();
        let want = r::quantize_row_q8_k(&x);
        prop_assert_eq!(a.blocks.len(), want.len());
        for (k, w) in a.blocks.iter().zip(&want) {
            prop_assert_eq!(k.d.to_bits(), w.d.to_bits());
            prop_assert_eq!(&k.qs[..], &w.qs[..]);
            prop_assert_eq!(&k.bsums[..], &w.bsums[..]);
        }
    }
}

/// ggml's RMSNorm mean: the f32 squares summed in f64 in element order, divided by `n`,
/// rounded to f32 (the twin's `rms_norm_ref`, written out).
fn in_order_mean(x: &[f32]) -> f32 {
    let mut sum = 0f64;
    for &v in x {
        sum += (v * v) as f64;
    }
    (sum / x.len() as f64) as f32
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    /// The RMSNorm mean taken in lanes with its bracket check has the in-order sum's bits,
    /// over rows whose squares span ±120 binary orders of magnitude (so their f64 sums
    /// round differently in different orders), with zeros, subnormals and rows of one
    /// element.
    #[test]
    fn rms_mean_has_the_in_order_bits(n in 1usize..=7000, spread in 0i32..=60, seed in any::<u64>()) {
        let mut g = bitnet_reference::testdata::SplitMix64::new(seed);
        let m = g.values(n, -2.0, 2.0);
        let e = g.values(n, 0.0, 1.0);
        let mut x: Vec<f32> = m
            .iter()
            .zip(&e)
            .map(|(&m, &e)| {
                let k = (e * (2 * spread + 1) as f32) as i32 - spread;
                if k == spread { 0.0 } else { m * 2f32.powi(k) }
            })
            .collect();
        if n > 2 {
            x[n / 2] = f32::from_bits(3);
        }
        prop_assert_eq!(act::rms_mean(&x).to_bits(), in_order_mean(&x).to_bits());
    }
}

/// Where the in-order mean falls exactly on a midpoint between two f32s and a sum in any
/// other order lands past it, the lane sum's bracket sees the doubt and the mean is taken
/// in order. Over `n = 2^m` elements, `16 + 2⁻²⁰` gives `2^(4−m)·(1 + 2⁻²⁴)`, which rounds to
/// even (`2^(4−m)`), while the squares of `2⁻²⁵`, each a quarter of an ulp of 16 and so
/// lost in order, add up in other orders; scaled by powers of two, with the big square
/// first or last.
#[test]
fn rms_mean_takes_the_in_order_sum_at_a_midpoint() {
    let pairwise = |x: &[f32]| -> f64 {
        let mut s: Vec<f64> = x.iter().map(|&v| (v * v) as f64).collect();
        while s.len() > 1 {
            s = s.chunks(2).map(|c| c.iter().sum()).collect();
        }
        s[0]
    };
    for m in 5..=13 {
        let n = 1usize << m as u32;
        for scale in [-30, 0, 30] {
            let k = 2f32.powi(scale);
            let mut x = vec![2f32.powi(-25) * k; n];
            x[0] = 4.0 * k;
            x[1] = 2f32.powi(-10) * k;
            let want = in_order_mean(&x);
            assert_eq!(want, 2f32.powi(4 - m + 2 * scale), "m {m}, scale {scale}");
            if m == 6 {
                // Pairwise, the small squares survive: another order rounds differently.
                assert_ne!((pairwise(&x) / n as f64) as f32, want);
            }
            assert_eq!(
                act::rms_mean(&x).to_bits(),
                want.to_bits(),
                "m {m}, scale {scale}"
            );
            x.reverse();
            assert_eq!(act::rms_mean(&x).to_bits(), in_order_mean(&x).to_bits());
        }
    }
    // Non-finite squares: the in-order sum's infinity or NaN.
    let x = vec![0.5f32; 100];
    for bad in [f32::INFINITY, f32::NAN, 3e19] {
        let mut y = x.clone();
        y[7] = bad;
        assert_eq!(
            act::rms_mean(&y).to_bits(),
            in_order_mean(&y).to_bits(),
            "{bad}"
        );
    }
    assert_eq!(act::rms_mean(&[0.0; 40]).to_bits(), 0);
}

/// A prompt long enough for the fused norm-quantizer to split its tokens across threads
/// gives, on every ISA and thread count, the twin's normed rows, q, scales and sums bit for
/// bit; a non-finite value in a later token is named, whichever thread met it.
#[test]
fn rms_norm_quantize_splits_tokens_with_the_same_bits() {
    let (cols, tokens) = (2560, 37);
    let mut g = bitnet_reference::testdata::SplitMix64::new(0x5eed);
    let x = g.values(cols * tokens, -12.0, 12.0);
    let w = g.values(cols, -2.0, 2.0);
    let eps = 1e-5;
    let want: Vec<_> = (0..tokens)
        .map(|t| {
            let h = r::block::rms_norm_ref(&x[t * cols..(t + 1) * cols], &w, eps);
            let q = r::quantize_activations_i8(&h);
            (h, q)
        })
        .collect();
    for exec in all_execs() {
        let mut acts = act::ActsI8::empty();
        let mut normed = vec![0f32; cols * tokens];
        act::rms_norm_quantize_i8(&x, &w, eps, &exec, &mut normed, &mut acts).unwrap();
        for (t, (h, q)) in want.iter().enumerate() {
            let what = format!("{exec:?} token {t}");
            assert_eq!(
                bits(&normed[t * cols..(t + 1) * cols]),
                bits(h),
                "normed, {what}"
            );
            assert_eq!(
                &acts.q[t * acts.stride..t * acts.stride + cols],
                &q.q[..],
                "q, {what}"
            );
            assert_eq!(acts.scale[t].to_bits(), q.scale.to_bits(), "scale, {what}");
            assert_eq!(acts.sum[t], q.sum, "sum, {what}");
        }
        let mut bad = x.clone();
        bad[30 * cols + 5] = f32::NAN;
        let err = act::rms_norm_quantize_i8(&bad, &w, eps, &exec, &mut normed, &mut acts);
        assert!(
            matches!(err, Err(KernelError::NonFiniteActivation { token: 30 })),
            "{exec:?}: {err:?}"
        );
    }
}

/// The fused norm-quantizer rejects what the plain one rejects: a non-finite value (naming
/// its token) and mismatched lengths; never a panic.
#[test]
fn rms_norm_quantize_rejects_bad_input() {
    let exec = Exec::best();
    let (cols, w) = (300, vec![1.0f32; 300]);
    let mut acts = act::ActsI8::empty();
    let mut normed = vec![0f32; 2 * cols];
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = vec![0.5f32; 2 * cols];
        x[cols + 7] = bad;
        let err = act::rms_norm_quantize_i8(&x, &w, 1e-5, &exec, &mut normed, &mut acts);
        assert!(
            matches!(err, Err(KernelError::NonFiniteActivation { token: 1 })),
            "{bad}: {err:?}"
        );
    }
    let x = vec![0.5f32; 2 * cols];
    assert!(
        act::rms_norm_quantize_i8(&x[..cols + 1], &w, 1e-5, &exec, &mut normed, &mut acts).is_err()
    );
    assert!(
        act::rms_norm_quantize_i8(&x, &w, 1e-5, &exec, &mut normed[..cols], &mut acts).is_err()
    );
    assert!(act::rms_norm_quantize_i8(&x, &[], 1e-5, &exec, &mut normed, &mut acts).is_err());
}

/// Shared activations: one quantization serves several matrices of the same input width.
#[test]
fn quantized_activations_are_reusable_and_checked() {
    let (rows, cols) = (8, 512);
    let codes: Vec<u8> = (0..rows * cols).map(|i| (i * 7 % 3) as u8).collect();
    let a = I2s::from_codes(&codes, rows, cols, 0.5).unwrap();
    let b = I2s::from_codes(&codes, rows, cols, 2.0).unwrap();
    let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let exec = Exec::best();
    let acts = a.quantize_activations(&x, 1, &exec).unwrap();
    let (mut ya, mut yb, mut y2) = (vec![0f32; rows], vec![0f32; rows], vec![0f32; rows]);
    a.gemm_quantized(&acts, &mut ya, &exec).unwrap();
    b.gemm_quantized(&acts, &mut yb, &exec).unwrap();
    b.gemm_i8(&x, 1, &mut y2, &exec).unwrap();
    assert_eq!(bits(&yb), bits(&y2));
    assert!(
        ya.iter()
            .zip(&yb)
            .all(|(p, q)| (p * 4.0 - q).abs() <= q.abs() * 1e-6)
    );
    let tq = Tq2_0::quantize(&vec![0.5; rows * cols], rows, cols).unwrap();
    let err = tq.gemm_quantized(&acts, &mut ya, &exec).unwrap_err();
    assert!(err.to_string().contains("Q8_K"), "{err}");
    let wrong_width = Activations::I8(act::quantize_i8(&x[..256], 256, 1, &exec).unwrap());
    assert!(a.gemm_quantized(&wrong_width, &mut ya, &exec).is_err());
}

/// Large enough that the pool really splits the rows (more than 2^20 weight·token products):
/// every format, f32 and int8, decode and prefill, gives the same bits on 1, 2 and 3
/// threads as the twin (int8) or as the single-threaded run (f32). 37 tokens: groups of the
/// prefill tile (four or eight tokens) with a remainder of five, and output-transpose blocks
/// of 16 with a tail; 23 tokens: a remainder of seven; 5 tokens: a prompt too short to split
/// by tokens; an odd row count leaves a lone last row of a row pair.
#[test]
#[cfg_attr(miri, ignore = "701 x 2560 x 37 tokens: hours under Miri")]
fn threads_split_rows_without_changing_bits() {
    use bitnet_reference::testdata::SplitMix64;
    let (rows, cols) = (701, 2560);
    let mut g = SplitMix64::new(42);
    let codes = g.codes(rows * cols, 2);
    let scales = g.values(rows * cols / 256, 0.1, 1.0);
    for format in [Format::I2s, Format::Qk256, Format::Tq2_0, Format::Tq1_0] {
        let packed = match format {
            Format::I2s => r::pack_i2s_codes(&codes, 0.7),
            Format::Qk256 => r::pack_qk256(&codes, rows, cols),
            Format::Tq2_0 => r::pack_tq2_0_codes(&codes, &scales, rows, cols),
            _ => r::pack_tq1_0_codes(&codes, &scales, rows, cols),
        };
        let c = Case {
            format,
            rows,
            cols,
            tokens: 37,
            packed,
            scale: 0.7,
            x: g.values(37 * cols, -9.0, 9.0),
        };
        let m = c.matrix();
        let want_int = c.ref_gemm_int();
        for isa in Isa::available() {
            let mut first_f32: Option<Vec<u32>> = None;
            for threads in 1..=3 {
                let exec = Exec::new(isa, threads).unwrap();
                for tokens in [1, 5, 23, 37] {
                    let x = &c.x[..tokens * cols];
                    let mut y = vec![0f32; tokens * rows];
                    m.gemm_i8(x, tokens, &mut y, &exec).unwrap();
                    let want: Vec<f32> = if tokens == 37 {
                        want_int.clone()
                    } else {
                        let few = Case {
                            tokens,
                            x: x.to_vec(),
                            ..c.clone()
                        };
                        few.ref_gemm_int()
                    };
                    assert_eq!(
                        bits(&y),
                        bits(&want),
                        "{format:?} int8 {tokens} tok on {isa} x{threads}"
                    );
                }
                let mut y = vec![0f32; 37 * rows];
                m.gemm_f32(&c.x, 37, &mut y, &exec).unwrap();
                match &first_f32 {
                    None => first_f32 = Some(bits(&y)),
                    Some(f) => assert_eq!(&bits(&y), f, "{format:?} f32 on {isa} x{threads}"),
                }
            }
        }
    }
}

/// The SIMD `exp_f32` (softmax's exponentials) gives `f32::exp`'s bits for every f32 of its
/// fast range `[-87, 88]`, all 2.2·10⁹ of them (every 61st in debug builds), and for a
/// strided sample of every other bit pattern (NaNs, infinities, zeros, subnormals, the
/// overflow and underflow ranges), on every ISA of this CPU: the kernel's claim (a result
/// kept only where it is the correctly rounded one by a margin libm's `expf` respects)
/// checked against this platform's libm, input by input.
#[test]
#[cfg_attr(miri, ignore = "2.2e9 inputs")]
fn exp_f32_has_libm_bits_for_every_input() {
    let step = if cfg!(debug_assertions) { 61 } else { 1 };
    // Bit patterns: [+0, 88] and [-0, -87], then a sample of all 2³² patterns.
    let ranges: Vec<(u32, u32, u32)> = vec![
        (0, 88f32.to_bits(), step),
        ((-0f32).to_bits(), (-87f32).to_bits(), step),
        (0, u32::MAX, 4099),
    ];
    let mut seen = Vec::new();
    for isa in Isa::available() {
        let exp = Exec::new(isa, 1).unwrap().exp_f32().unwrap();
        if isa == Isa::Scalar || seen.contains(&(exp as usize)) {
            continue;
        }
        seen.push(exp as usize);
        for &(first, last, step) in &ranges {
            let check = |from: u64, to: u64| -> Option<(u32, u32, u32)> {
                let mut buf = Vec::with_capacity(4096);
                let mut b = from;
                while b <= to {
                    buf.clear();
                    while b <= to && buf.len() < 4093 {
                        buf.push(f32::from_bits(b as u32));
                        b += step as u64;
                    }
                    let mut got = buf.clone();
                    exp(&mut got);
                    for (&x, &y) in buf.iter().zip(&got) {
                        if y.to_bits() != x.exp().to_bits() {
                            return Some((x.to_bits(), y.to_bits(), x.exp().to_bits()));
                        }
                    }
                }
                None
            };
            let (from, to) = (u64::from(first), u64::from(last));
            let mid = from + (to - from) / 2 / u64::from(step) * u64::from(step);
            let bad = std::thread::scope(|s| {
                let upper = s.spawn(|| check(mid + u64::from(step), to));
                let lower = check(from, mid);
                lower.or(upper.join().unwrap())
            });
            if let Some((x, got, want)) = bad {
                panic!(
                    "{isa}: exp({:e} = {x:#010x}) = {got:#010x}, f32::exp gives {want:#010x}",
                    f32::from_bits(x)
                );
            }
        }
    }
}

/// Under Miri the ISAs are the compile-time target features (Miri's feature detection reads
/// them). The Miri run is there to check every ISA (`.ci/miri` enables them all), so it fails
/// here rather than pass on the scalar path alone when the flags are missing.
#[test]
#[cfg(miri)]
fn miri_runs_every_isa() {
    assert_eq!(
        Isa::available(),
        Isa::ALL,
        "build for Miri with .ci/miri's target features"
    );
}
