//! Fuzz target bodies, as plain functions of the input bytes.
//!
//! `fuzz/fuzz_targets/<name>.rs` (cargo-fuzz, libFuzzer) calls `<name>(data)`; the stable
//! replay test `tests/fuzz_replay.rs` runs every committed corpus file through the same
//! function, so a corpus entry that once found a bug keeps guarding against it on stable.
//!
//! Every target derives a structured input from the raw bytes by hand (see [`Src`]): a small
//! header (mode, dimensions, flags) then payload bytes, cycled or cut to the length the
//! header asks for. A target panics (= the fuzzer reports a crash) only when a property is
//! violated:
//!
//! | target | property |
//! | --- | --- |
//! | `unpack_{i2s,qk256,tq2_0,tq1_0}` | the constructor accepts exactly the shapes/lengths of the format (a typed error otherwise); accepted matrices unpack/dequantize exactly like the reference twin; every wrong output length is an error |
//! | `gemm_int8` | every available ISA × 1..=2 threads equals the reference twin bit for bit (activation quantization too); non-finite activations and wrong lengths give errors |
//! | `gguf_parse` | parse never panics; on success every tensor's data slice is in bounds, aligned, non-overlapping, sized by its type, and the kernels accept it; the writer reproduces what was parsed |
//! | `tokenizer` | `decode(encode(s)) == s` for any (lossy UTF-8) text; arbitrary ids decode or fail cleanly; streaming decode equals whole decode |
//!
//! The reference twin `assert!`s on invalid shapes by design, so it is only called after a
//! kernel constructor accepted the shape (the two agree on what is valid: checked here).

use std::borrow::Cow;
use std::sync::OnceLock;

use bitnet_kernels::act::{quantize_i8, quantize_q8k};
use bitnet_kernels::{
    Activations, Exec, Format, I2SQk256NoScale, I2s, Isa, KernelError, TernaryMatrix, Tq1_0, Tq2_0,
};
use bitnet_reference as twin;
use bitnet_runner::gguf::{
    self, GgmlType, Gguf, GgufError, GgufWriter, MAX_ALIGNMENT, MAX_N_DIMS, Metadata, parse,
};
use bitnet_runner::tokenizer::{StreamDecoder, Tokenizer, TokenizerSpec};

/// Names of all targets, in the order the corpus folders and `fuzz/fuzz_targets/` use.
pub const TARGETS: [&str; 7] = [
    "unpack_i2s",
    "unpack_qk256",
    "unpack_tq2_0",
    "unpack_tq1_0",
    "gemm_int8",
    "gguf_parse",
    "tokenizer",
];

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "unpack_i2s" => unpack_i2s(data),
        "unpack_qk256" => unpack_qk256(data),
        "unpack_tq2_0" => unpack_tq2_0(data),
        "unpack_tq1_0" => unpack_tq1_0(data),
        "gemm_int8" => gemm_int8(data),
        "gguf_parse" => gguf_parse(data),
        "tokenizer" => tokenizer(data),
        _ => return false,
    }
    true
}

// ---- input decoding ---------------------------------------------------------------------

/// Reads a fuzz input from the front; reads past the end give zeros (so every input,
/// even the empty one, decodes to something).
#[derive(Debug, Clone, Copy)]
pub struct Src<'a> {
    data: &'a [u8],
}

impl<'a> Src<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Src { data }
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
    pub fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.array())
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// `src` repeated (or cut) to exactly `n` bytes; zeros if `src` is empty.
fn cycle(src: &[u8], n: usize) -> Vec<u8> {
    if src.is_empty() {
        return vec![0; n];
    }
    src.iter().copied().cycle().take(n).collect()
}

/// Equal bit patterns, or both NaN (NaN payloads are not part of any contract).
fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[track_caller]
fn assert_same_f32(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| !same_f32(got[i], want[i])) {
        panic!(
            "{what}: element {i} differs: got {} ({:#010x}), want {} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

// ---- unpack_<format> ---------------------------------------------------------------------

/// The byte length a `rows x cols` matrix of `format` must have, computed independently of
/// the kernels (`None`: the shape itself is invalid).
fn expected_len(format: Format, rows: usize, cols: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    rows.checked_mul(cols)?;
    let (multiple, stride, tail) = match format {
        Format::I2s => (128, cols / 4, 32),
        Format::Qk256 => (1, cols.div_ceil(256) * 64, 0),
        Format::Tq2_0 => (256, cols / 256 * 66, 0),
        Format::Tq1_0 => (256, cols / 256 * 54, 0),
    };
    if !cols.is_multiple_of(multiple) {
        return None;
    }
    rows.checked_mul(stride)?.checked_add(tail)
}

/// Header of every unpack input: `mode`, then (raw modes) rows/cols as u16 or u64 and the
/// packed bytes as given, or (shaped modes) a small valid shape with the payload cycled to
/// the exact packed length, off by a mode-chosen delta.
fn unpack_input<'a>(format: Format, src: &mut Src<'a>) -> (usize, usize, Cow<'a, [u8]>) {
    let mode = src.u8();
    match mode % 4 {
        0 => {
            let rows = src.u16() as usize;
            let cols = src.u16() as usize;
            (rows, cols, Cow::Borrowed(src.rest()))
        }
        1 => {
            let rows = src.u64() as usize;
            let cols = src.u64() as usize;
            (rows, cols, Cow::Borrowed(src.rest()))
        }
        _ => {
            let rows = 1 + (src.u8() % 6) as usize;
            let k = src.u16() as usize;
            let mut cols = match format {
                Format::I2s => 128 * (1 + k % 16),
                Format::Qk256 => 1 + k % 1100,
                Format::Tq2_0 | Format::Tq1_0 => 256 * (1 + k % 8),
            };
            // Rarely, a shape one column off the block multiple.
            if (mode >> 2) & 7 == 7 {
                cols += 1;
            }
            let exact = expected_len(format, rows, cols).unwrap_or(0);
            let len = match (mode >> 5) & 7 {
                0 => exact.saturating_sub(1),
                1 => exact + 1,
                2 => exact.saturating_sub(32),
                _ => exact,
            };
            (rows, cols, Cow::Owned(cycle(src.rest(), len)))
        }
    }
}

/// Checks a constructor's verdict against [`expected_len`]: accepted exactly when the shape
/// is valid and the length right (`extra_ok`: any further condition, e.g. a finite scale).
#[track_caller]
fn check_verdict<T>(
    format: Format,
    rows: usize,
    cols: usize,
    len: usize,
    extra_ok: bool,
    result: &Result<T, KernelError>,
) {
    let valid = expected_len(format, rows, cols);
    let should_accept = valid == Some(len) && extra_ok;
    match result {
        Ok(_) => assert!(
            should_accept,
            "{format}: accepted rows={rows} cols={cols} len={len} (expected length {valid:?})"
        ),
        Err(e) => {
            assert!(
                !should_accept,
                "{format}: rejected valid rows={rows} cols={cols} len={len}: {e}"
            );
            if rows == 0 || cols == 0 {
                assert!(matches!(e, KernelError::ZeroDimension { .. }), "{e}");
            }
            if let Some(expected) = valid
                && expected != len
            {
                assert!(
                    matches!(e, KernelError::ByteLength { got, expected: x, .. }
                        if *got == len && *x == expected),
                    "{e}"
                );
            }
            // The message must render (it names the numbers involved).
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Compares an accepted matrix with the reference twin's codes and values, and checks that
/// every entry point rejects wrong output lengths and row indices.
fn check_matrix<M: TernaryMatrix>(m: &M, want_codes: &[u8], want_values: &[f32]) {
    let (rows, cols) = (m.rows(), m.cols());
    let n = rows * cols;
    assert_eq!(want_codes.len(), n);

    let mut codes = vec![0u8; n];
    m.unpack_codes(&mut codes).expect("unpack_codes");
    if codes != want_codes {
        let i = (0..n).find(|&i| codes[i] != want_codes[i]).unwrap_or(0);
        panic!(
            "{}: code {i} = {} but the twin says {}",
            m.format(),
            codes[i],
            want_codes[i]
        );
    }
    let mut ternary = vec![0i8; n];
    m.unpack_i8(&mut ternary).expect("unpack_i8");
    assert!(
        ternary.iter().zip(&codes).all(|(&t, &c)| t == c as i8 - 1),
        "unpack_i8 is not code - 1"
    );
    let mut values = vec![0f32; n];
    m.dequantize(&mut values).expect("dequantize");
    assert_same_f32(&values, want_values, "dequantize");
    assert_eq!(
        m.check_codes_strict().is_ok(),
        !codes.contains(&3),
        "check_codes_strict disagrees with the codes"
    );

    // Row entry points, last row (the one nearest the end of the bytes).
    let last = rows - 1;
    let mut row_codes = vec![0u8; cols];
    m.unpack_codes_row(last, &mut row_codes).expect("row");
    assert_eq!(row_codes, &codes[last * cols..]);
    let mut row_values = vec![0f32; cols];
    m.dequantize_row(last, &mut row_values).expect("row");
    assert_same_f32(&row_values, &values[last * cols..], "dequantize_row");

    // Wrong lengths and indices: typed errors.
    assert!(m.unpack_codes_row(rows, &mut row_codes).is_err());
    assert!(m.unpack_codes_row(usize::MAX, &mut row_codes).is_err());
    assert!(m.dequantize_row(rows, &mut row_values).is_err());
    assert!(m.unpack_codes_row(0, &mut row_codes[..cols - 1]).is_err());
    assert!(m.dequantize_row(0, &mut row_values[..cols - 1]).is_err());
    let mut long = vec![0u8; cols + 1];
    assert!(m.unpack_codes_row(0, &mut long).is_err());
    assert!(m.unpack_codes(&mut codes[..n - 1]).is_err());
    assert!(m.dequantize(&mut values[..n - 1]).is_err());
    assert!(m.unpack_i8(&mut ternary[..n - 1]).is_err());
    let mut long = vec![0f32; n + 1];
    assert!(m.dequantize(&mut long).is_err());
}

/// Reference-twin cost cap: larger accepted matrices are only checked by the kernels.
const TWIN_MAX_ELEMS: usize = 1 << 20;

/// I2_S: `I2s::new(rows, cols, bytes)` over arbitrary rows/cols/bytes.
pub fn unpack_i2s(data: &[u8]) {
    let mut src = Src::new(data);
    let (rows, cols, bytes) = unpack_input(Format::I2s, &mut src);
    let len = bytes.len();
    let scale_ok = expected_len(Format::I2s, rows, cols)
        .filter(|&l| l == len)
        .map(|l| {
            let at = l - 32;
            f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]).is_finite()
        })
        .unwrap_or(true);
    let r = I2s::new(rows, cols, &bytes[..]);
    check_verdict(Format::I2s, rows, cols, len, scale_ok, &r);
    if let Err(e) = &r
        && !scale_ok
    {
        assert!(matches!(e, KernelError::NonFiniteScale { .. }), "{e}");
    }
    let Ok(m) = r else { return };
    let n = rows * cols;
    assert_eq!(m.codes(), &bytes[..n / 4]);
    if n > TWIN_MAX_ELEMS {
        return;
    }
    assert_eq!(
        m.scale().to_bits(),
        twin::i2s_scale(&bytes, n).to_bits(),
        "scale"
    );
    let want_codes = twin::unpack_codes_i2s(&bytes, n);
    let want_values = twin::dequantize_i2s(&bytes, rows, cols);
    check_matrix(&m, &want_codes, &want_values);
    // The zero-copy QK256 view: exactly when cols % 256 == 0, same codes and scale.
    match m.as_qk256() {
        Ok(q) => {
            assert!(cols.is_multiple_of(256));
            assert_eq!(q.scale().to_bits(), m.scale().to_bits());
            check_matrix(&q, &want_codes, &want_values);
        }
        Err(e) => {
            assert!(!cols.is_multiple_of(256), "as_qk256: {e}");
            assert!(matches!(e, KernelError::ColsNotMultiple { .. }), "{e}");
        }
    }
}

/// QK256: `I2SQk256NoScale::new(rows, cols, bytes)` with an arbitrary f32 scale (the first
/// four bytes) beside it.
pub fn unpack_qk256(data: &[u8]) {
    let mut src = Src::new(data);
    let scale = src.f32();
    let (rows, cols, bytes) = unpack_input(Format::Qk256, &mut src);
    let r = I2SQk256NoScale::new(rows, cols, &bytes[..]);
    check_verdict(Format::Qk256, rows, cols, bytes.len(), true, &r);
    let Ok(m) = r else { return };
    assert_eq!(m.scale(), 1.0, "default scale");
    assert_eq!(m.blocks_per_row(), cols.div_ceil(256));
    assert_eq!(
        m.clone().try_with_scale(scale).is_ok(),
        scale.is_finite(),
        "try_with_scale({scale})"
    );
    let m = m.with_scale(scale);
    if rows * cols > TWIN_MAX_ELEMS {
        return;
    }
    let want_codes = twin::unpack_codes_qk256(&bytes, rows, cols);
    let want_values = twin::dequantize_qk256(&bytes, rows, cols, scale);
    check_matrix(&m, &want_codes, &want_values);
}

/// TQ2_0: `Tq2_0::new(rows, cols, bytes)`.
pub fn unpack_tq2_0(data: &[u8]) {
    let mut src = Src::new(data);
    let (rows, cols, bytes) = unpack_input(Format::Tq2_0, &mut src);
    let r = Tq2_0::new(rows, cols, &bytes[..]);
    check_verdict(Format::Tq2_0, rows, cols, bytes.len(), true, &r);
    let Ok(m) = r else { return };
    if rows * cols > TWIN_MAX_ELEMS {
        return;
    }
    let want_codes = twin::unpack_codes_tq2_0(&bytes, rows, cols);
    let want_values = twin::dequantize_tq2_0(&bytes, rows, cols);
    check_matrix(&m, &want_codes, &want_values);
}

/// TQ1_0: `Tq1_0::new(rows, cols, bytes)` (every byte decodes to base-3 digits 0..=2).
pub fn unpack_tq1_0(data: &[u8]) {
    let mut src = Src::new(data);
    let (rows, cols, bytes) = unpack_input(Format::Tq1_0, &mut src);
    let r = Tq1_0::new(rows, cols, &bytes[..]);
    check_verdict(Format::Tq1_0, rows, cols, bytes.len(), true, &r);
    let Ok(m) = r else { return };
    if rows * cols > TWIN_MAX_ELEMS {
        return;
    }
    let want_codes = twin::unpack_codes_tq1_0(&bytes, rows, cols);
    assert!(want_codes.iter().all(|&c| c <= 2), "TQ1_0 digit above 2");
    let want_values = twin::dequantize_tq1_0(&bytes, rows, cols);
    check_matrix(&m, &want_codes, &want_values);
}

// ---- gemm_int8 ----------------------------------------------------------------------------

/// Activation values: raw f32 bits (NaN, infinities, subnormals, huge), or small integers
/// times a per-input scale, with rare special values spliced in.
fn activations(mode: u8, scale: f32, bytes: &[u8], n: usize) -> Vec<f32> {
    match mode % 4 {
        0 => cycle(bytes, n * 4)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        1 => cycle(bytes, n)
            .iter()
            .map(|&b| f32::from(b as i8) * scale)
            .collect(),
        2 => {
            const SPECIAL: [f32; 8] = [
                0.0,
                -0.0,
                f32::MIN_POSITIVE,
                1e-45,
                f32::MAX,
                -f32::MAX,
                1e-5,
                127.5,
            ];
            cycle(bytes, n)
                .iter()
                .map(|&b| match b {
                    0xF8..=0xFF => SPECIAL[(b - 0xF8) as usize],
                    _ => f32::from(b as i8) * 0.25,
                })
                .collect()
        }
        _ => {
            // Mostly finite, with a NaN or an infinity where the byte says so.
            cycle(bytes, n)
                .iter()
                .map(|&b| match b {
                    0xFF => f32::NAN,
                    0xFE => f32::INFINITY,
                    0xFD => f32::NEG_INFINITY,
                    _ => f32::from(b as i8) / 16.0,
                })
                .collect()
        }
    }
}

/// The twin's int8-activation product for the matrix bytes.
fn twin_gemm(
    format: Format,
    bytes: &[u8],
    qk_scale: f32,
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    match format {
        Format::I2s => twin::gemv_i8_i2s(bytes, rows, cols, x, tokens),
        Format::Qk256 => twin::gemv_i8_qk256(bytes, rows, cols, qk_scale, x, tokens),
        Format::Tq2_0 => twin::gemv_q8k_tq2_0(bytes, rows, cols, x, tokens),
        Format::Tq1_0 => twin::gemv_q8k_tq1_0(bytes, rows, cols, x, tokens),
    }
}

/// Checks kernel-quantized activations against the twin's quantizers, bit for bit.
fn check_activations(acts: &Activations, x: &[f32], cols: usize, tokens: usize) {
    match acts {
        Activations::I8(a) => {
            assert_eq!((a.cols, a.tokens), (cols, tokens));
            for t in 0..tokens {
                let want = twin::quantize_activations_i8(&x[t * cols..(t + 1) * cols]);
                let q = &a.q[t * a.stride..(t + 1) * a.stride];
                assert_eq!(&q[..cols], &want.q[..], "int8 activations, token {t}");
                assert!(q[cols..].iter().all(|&v| v == 0), "padding not zero");
                assert_eq!(a.scale[t].to_bits(), want.scale.to_bits(), "scale {t}");
                assert_eq!(a.sum[t], want.sum, "sum {t}");
            }
        }
        Activations::Q8K(a) => {
            assert_eq!((a.cols, a.tokens), (cols, tokens));
            let want = twin::quantize_row_q8_k(x);
            assert_eq!(a.blocks.len(), want.len());
            for (i, (g, w)) in a.blocks.iter().zip(&want).enumerate() {
                assert_eq!(g.d.to_bits(), w.d.to_bits(), "Q8_K block {i}: d");
                assert_eq!(g.qs, w.qs, "Q8_K block {i}: qs");
                assert_eq!(g.bsums, w.bsums, "Q8_K block {i}: bsums");
            }
        }
    }
}

/// The matrix under test, any format.
enum AnyMatrix<'a> {
    I2s(I2s<&'a [u8]>),
    Qk256(I2SQk256NoScale<&'a [u8]>),
    Tq2(Tq2_0<&'a [u8]>),
    Tq1(Tq1_0<&'a [u8]>),
}

impl AnyMatrix<'_> {
    fn get(&self) -> &dyn TernaryMatrix {
        match self {
            AnyMatrix::I2s(m) => m,
            AnyMatrix::Qk256(m) => m,
            AnyMatrix::Tq2(m) => m,
            AnyMatrix::Tq1(m) => m,
        }
    }
}

/// Int8-activation GEMM (`gemm_i8`, `quantize_activations` + `gemm_quantized`) of an
/// arbitrary matrix of any format with arbitrary activations, on every available ISA with 1
/// and 2 threads, against the reference twin.
///
/// Input: format, rows (1..=64), a width selector, tokens (1..=4 or 16..=40), activation mode, an f32
/// weight scale, an f32 activation scale; then the packed weights (cycled to the exact
/// length) and the activations (cycled).
pub fn gemm_int8(data: &[u8]) {
    let mut src = Src::new(data);
    let format = Format::ALL[(src.u8() % 4) as usize];
    // Mostly small shapes (fast); a quarter of the rows bytes give up to 64 rows, enough
    // to cross the 32-row chunks and, with wide inputs and several tokens, the threshold
    // above which 2 threads really split the rows.
    let r = src.u8();
    let rows = 1 + (r % if r >= 0xC0 { 64 } else { 9 }) as usize;
    let k = src.u16() as usize;
    let cols = match format {
        Format::I2s => 128 * (1 + k % 8),
        Format::Qk256 => 1 + k % 1100,
        Format::Tq2_0 | Format::Tq1_0 => 256 * (1 + k % 4),
    };
    // Mostly 1-4 tokens; an eighth of the bytes give a prompt of 16-40, which the I2 formats
    // split by tokens (their prefill tiles of four or eight tokens, and a remainder).
    let t = src.u8();
    let tokens = if t >= 0xE0 {
        16 + (t % 25) as usize
    } else {
        1 + (t % 4) as usize
    };
    let act_mode = src.u8();
    let w_scale_raw = src.f32();
    let act_scale = src.f32();
    let w_len = format.packed_len(rows, cols).expect("valid shape");
    let w_src = src.take(w_len);
    let x_src = src.rest();
    let mut bytes = cycle(w_src, w_len);
    let x = activations(
        act_mode,
        act_scale,
        if x_src.is_empty() { w_src } else { x_src },
        tokens * cols,
    );

    // Per-tensor scales: I2_S keeps it in the bytes (non-finite is rejected), QK256 beside.
    let w_scale = if w_scale_raw.is_finite() {
        w_scale_raw
    } else {
        0.5
    };
    if format == Format::I2s {
        let at = w_len - 32;
        bytes[at..at + 4].copy_from_slice(&w_scale_raw.to_le_bytes());
        let r = I2s::new(rows, cols, &bytes[..]);
        assert_eq!(r.is_ok(), w_scale_raw.is_finite(), "I2_S scale check");
        bytes[at..at + 4].copy_from_slice(&w_scale.to_le_bytes());
    }
    let m = match format {
        Format::I2s => AnyMatrix::I2s(I2s::new(rows, cols, &bytes[..]).expect("valid")),
        Format::Qk256 => AnyMatrix::Qk256(
            I2SQk256NoScale::new(rows, cols, &bytes[..])
                .expect("valid")
                .try_with_scale(w_scale)
                .expect("finite"),
        ),
        Format::Tq2_0 => AnyMatrix::Tq2(Tq2_0::new(rows, cols, &bytes[..]).expect("valid")),
        Format::Tq1_0 => AnyMatrix::Tq1(Tq1_0::new(rows, cols, &bytes[..]).expect("valid")),
    };
    let m = m.get();

    let finite = x.iter().all(|v| v.is_finite());
    let want = finite.then(|| twin_gemm(format, &bytes, w_scale, rows, cols, &x, tokens));
    let i8_family = matches!(format, Format::I2s | Format::Qk256);
    let mut y = vec![0f32; tokens * rows];
    for isa in Isa::available() {
        for threads in 1..=2 {
            let exec = Exec::new(isa, threads).expect("available ISA");
            y.fill(f32::NAN);
            let r = m.gemm_i8(&x, tokens, &mut y, &exec);
            match &want {
                Some(want) => {
                    r.unwrap_or_else(|e| panic!("{format} {isa} x{threads}: {e}"));
                    assert_same_f32(&y, want, &format!("{format} gemm_i8 on {isa} x{threads}"));
                }
                None => assert!(
                    matches!(r, Err(KernelError::NonFiniteActivation { .. })),
                    "{format} {isa}: non-finite activations gave {r:?}"
                ),
            }
            if threads == 2 {
                continue;
            }
            // Per ISA: the quantizer twin, shared activations, wrong lengths.
            let acts = m.quantize_activations(&x, tokens, &exec);
            match (&acts, finite) {
                (Ok(acts), true) => {
                    check_activations(acts, &x, cols, tokens);
                    let mut y2 = vec![f32::NAN; tokens * rows];
                    m.gemm_quantized(acts, &mut y2, &exec)
                        .expect("gemm_quantized");
                    assert_same_f32(&y2, &y, "gemm_quantized vs gemm_i8");
                    assert!(m.gemm_quantized(acts, &mut y2[1..], &exec).is_err());
                }
                (Err(KernelError::NonFiniteActivation { .. }), false) => {}
                (other, _) => panic!("{format} {isa}: quantize_activations gave {other:?}"),
            }
            assert!(m.gemm_i8(&x[1..], tokens, &mut y, &exec).is_err());
            assert!(m.gemm_i8(&x, tokens, &mut y[1..], &exec).is_err());
            assert!(m.gemm_i8(&x, tokens + 1, &mut y, &exec).is_err());
            assert!(m.gemm_i8(&[], 0, &mut [], &exec).is_err());
            assert!(m.gemm_f32(&x, tokens, &mut y[1..], &exec).is_err());
            if finite {
                // Activations of the other family, or of another width: a typed error.
                let other = if i8_family {
                    cols.is_multiple_of(256)
                        .then(|| quantize_q8k(&x, cols, tokens).map(Activations::Q8K))
                } else {
                    Some(quantize_i8(&x, cols, tokens, &exec).map(Activations::I8))
                };
                if let Some(other) = other {
                    let other = other.expect("quantize");
                    assert!(matches!(
                        m.gemm_quantized(&other, &mut y, &exec),
                        Err(KernelError::WrongActivations { .. })
                    ));
                }
                if i8_family && tokens > 1 {
                    // One token one column wider than the matrix.
                    let wide = quantize_i8(&x[..cols + 1], cols + 1, 1, &exec).expect("quantize");
                    let mut y1 = vec![0f32; rows];
                    assert!(matches!(
                        m.gemm_quantized(&Activations::I8(wide), &mut y1, &exec),
                        Err(KernelError::WrongActivations { .. })
                    ));
                }
            }
        }
    }
}

// ---- gguf_parse ----------------------------------------------------------------------------

/// GGUF metadata → tokenizer spec (`tokenizer.ggml.*`), as a model loader reads it.
/// `add_bos_token` defaults to true for the llama3 `pre` family when a BOS id is present.
pub fn tokenizer_spec(md: &Metadata) -> Result<TokenizerSpec, GgufError> {
    let pre = md.opt_str("tokenizer.ggml.pre")?.map(str::to_owned);
    let bos = md.opt_u32("tokenizer.ggml.bos_token_id")?;
    let llama3 = matches!(pre.as_deref(), Some("llama-bpe" | "llama3"));
    Ok(TokenizerSpec {
        model: md.get_str("tokenizer.ggml.model")?.to_owned(),
        tokens: md.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
        merges: md
            .opt_str_array("tokenizer.ggml.merges")?
            .unwrap_or_default()
            .to_vec(),
        token_types: md
            .opt_i32_array("tokenizer.ggml.token_type")?
            .map(Cow::into_owned),
        bos,
        eos: md.opt_u32("tokenizer.ggml.eos_token_id")?,
        eot: md.opt_u32("tokenizer.ggml.eot_token_id")?,
        add_bos: md
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(llama3 && bos.is_some()),
        add_eos: md
            .opt_bool("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false),
        pre,
    })
}

/// The kernels must accept what the parser accepted, for the ternary types (a loader hands
/// them these slices).
fn check_ternary_tensor(t: &gguf::TensorInfo, data: &[u8]) {
    let Ok(cols) = usize::try_from(t.dims[0]) else {
        return;
    };
    let Ok(n) = usize::try_from(t.n_elements()) else {
        return;
    };
    let rows = n / cols;
    // Unpack one row: cheap even for a huge (validated, in-file) tensor.
    let one_row = |m: &dyn TernaryMatrix| {
        let mut out = vec![0u8; m.cols()];
        m.unpack_codes_row(m.rows() - 1, &mut out)
            .expect("last row");
    };
    match t.ggml_type {
        GgmlType::TQ2_0 => {
            let m = Tq2_0::new(rows, cols, data)
                .unwrap_or_else(|e| panic!("parser accepted TQ2_0 '{}', kernels: {e}", t.name));
            one_row(&m);
        }
        GgmlType::TQ1_0 => {
            let m = Tq1_0::new(rows, cols, data)
                .unwrap_or_else(|e| panic!("parser accepted TQ1_0 '{}', kernels: {e}", t.name));
            one_row(&m);
        }
        GgmlType::I2_S => {
            let scale_at = data.len() - 32;
            let scale = f32::from_le_bytes(data[scale_at..scale_at + 4].try_into().expect("4"));
            match I2s::new(rows, cols, data) {
                Ok(m) => one_row(&m),
                Err(e) => assert!(
                    !cols.is_multiple_of(128) || !scale.is_finite(),
                    "parser accepted I2_S '{}', kernels: {e}",
                    t.name
                ),
            }
            // Whatever the row split, the whole-tensor view (one row of n) is valid when
            // n % 128 == 0, which the parser checked.
            if scale.is_finite() {
                let m = I2s::new(1, n, data).expect("I2_S as one row");
                one_row(&m);
            }
        }
        _ => {}
    }
}

/// Invariants of a successfully parsed file (see [`Gguf`]).
fn check_parsed(g: &Gguf, data: &[u8]) {
    assert!(g.version == 2 || g.version == 3);
    assert!(g.alignment.is_power_of_two() && g.alignment <= MAX_ALIGNMENT);
    assert_eq!(g.data_offset % g.alignment, 0);
    assert!(g.data_offset >= gguf::HEADER_BYTES);
    if !g.tensors.is_empty() {
        assert!(g.data_offset <= data.len() as u64);
    }
    let mut spans = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        assert!(
            !t.dims.is_empty() && t.dims.len() <= MAX_N_DIMS as usize && !t.dims.contains(&0),
            "'{}': dims {:?}",
            t.name,
            t.dims
        );
        assert_eq!(t.ggml_type.n_bytes(&t.dims), Ok(t.n_bytes), "'{}'", t.name);
        assert_eq!(t.offset % g.alignment, 0, "'{}' misaligned", t.name);
        assert!(
            g.tensor(&t.name).is_some_and(|u| u == t),
            "lookup of '{}'",
            t.name
        );
        let d = g
            .tensor_data(data, t)
            .unwrap_or_else(|e| panic!("parsed tensor '{}' out of bounds: {e}", t.name));
        assert_eq!(d.len() as u64, t.n_bytes);
        let start = d.as_ptr() as usize - data.as_ptr() as usize;
        assert_eq!(start as u64, g.data_offset + t.offset);
        spans.push((t.offset, t.end()));
        check_ternary_tensor(t, d);
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping tensors {w:?}");
    }
    // Typed lookups never panic, whatever the stored types.
    let md = &g.metadata;
    let _ = g.architecture();
    for key in md.keys() {
        let _ = (md.get_u32(key), md.get_i64(key), md.get_f32(key));
        let _ = (md.get_bool(key), md.get_str(key), md.get_str_array(key));
        let _ = (md.get_i32_array(key), md.get_f32_array(key));
    }
    let _ = md.get_u64("no.such.key");
}

/// The parsed file through the writer: it must write, the output must parse to the same
/// header and data, and writing that again must give the same bytes.
fn check_rewrite(g: &Gguf, data: &[u8]) {
    let w = GgufWriter::from_gguf(g, data).expect("writer refuses what the parser accepted");
    let out = w.to_bytes().expect("to_bytes");
    assert_eq!(out.len() as u64, w.encoded_len());
    let g2 = parse(&out).unwrap_or_else(|e| panic!("writer output does not parse: {e}"));
    assert_eq!(g2.version, g.version);
    assert_eq!(g2.alignment, g.alignment);
    assert!(g2.metadata.keys().eq(g.metadata.keys()), "metadata keys");
    assert_eq!(g2.tensors.len(), g.tensors.len());
    for (a, b) in g.tensors.iter().zip(&g2.tensors) {
        assert_eq!(
            (&a.name, &a.dims, a.ggml_type, a.n_bytes),
            (&b.name, &b.dims, b.ggml_type, b.n_bytes)
        );
        assert_eq!(g.tensor_data(data, a).ok(), g2.tensor_data(&out, b).ok());
    }
    let again = GgufWriter::from_gguf(&g2, &out)
        .and_then(|w| w.to_bytes())
        .expect("rewrite");
    assert!(again == out, "writer output is not a fixed point");
}

/// Largest vocabulary / merge list the parse target builds a tokenizer for (cost cap).
const FUZZ_TOKENIZER_MAX: usize = 4096;

/// Arbitrary bytes → `gguf::parse`. On success: the invariants of [`Gguf`], every tensor's
/// data in bounds (checked via `Gguf::tensor_data`), the kernels accepting the ternary
/// tensors, a writer round trip, and (if present) the tokenizer metadata building a
/// tokenizer or failing with an error.
pub fn gguf_parse(data: &[u8]) {
    let g = match parse(data) {
        Ok(g) => g,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    check_parsed(&g, data);
    check_rewrite(&g, data);
    if let Ok(spec) = tokenizer_spec(&g.metadata)
        && spec.tokens.len() <= FUZZ_TOKENIZER_MAX
        && spec.merges.len() <= FUZZ_TOKENIZER_MAX
        && let Ok(t) = Tokenizer::from_spec(spec)
    {
        let text = "Hello, world! 123 <|end_of_text|> é中😀";
        if let Ok(ids) = t.encode_with_special(text, true, true) {
            let _ = t.decode(&ids);
        }
        let _ = t.decode(&[0, 1, 2, u32::MAX]);
    }
}

// ---- tokenizer ------------------------------------------------------------------------------

/// The tiny model's tokenizer, built once from the GGUF's metadata.
pub fn tiny_tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../model-runner/models/tiny-b158-i2s.gguf"
        );
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let g = parse(&bytes).expect("tiny model parses");
        let spec = tokenizer_spec(&g.metadata).expect("tokenizer metadata");
        Tokenizer::from_spec(spec).expect("tiny tokenizer")
    })
}

/// Streams `ids` through a [`StreamDecoder`]; the concatenation must equal `decode`.
fn check_stream(t: &Tokenizer, ids: &[u32], whole: &str) {
    let mut dec = StreamDecoder::new(t);
    let mut out = String::new();
    for &id in ids {
        out.push_str(&dec.push(id).expect("in-range id"));
    }
    out.push_str(&dec.finish());
    assert_eq!(out, whole, "streamed decode differs from decode");
}

/// First byte even: text mode, the rest as lossy UTF-8 (bit 1: `add_special`, bit 2:
/// `parse_special`): `decode(encode(s)) == s` (plus the BOS text when added), ids in
/// range, streaming equal. Odd: ids mode, little-endian u16s (bit 1: raw u32s) decoded;
/// fails exactly when an id is out of range.
pub fn tokenizer(data: &[u8]) {
    let t = tiny_tokenizer();
    let vocab = t.vocab_size();
    let mut src = Src::new(data);
    let mode = src.u8();
    if mode & 1 == 0 {
        let add_special = mode & 2 != 0;
        let parse_special = mode & 4 != 0;
        let text = String::from_utf8_lossy(src.rest());
        let ids = t
            .encode_with_special(&text, add_special, parse_special)
            .unwrap_or_else(|e| panic!("encode {text:?}: {e}"));
        assert!(ids.iter().all(|&id| (id as usize) < vocab));
        let decoded = t.decode(&ids).expect("decode own ids");
        let mut want = String::new();
        if add_special && t.add_bos() {
            let bos = t.bos().expect("add_bos has a BOS id");
            assert_eq!(ids.first(), Some(&bos));
            want.push_str(&String::from_utf8_lossy(&t.token_bytes(bos).expect("bos")));
        }
        want.push_str(&text);
        assert!(
            decoded == want,
            "round trip: {text:?} -> {ids:?} -> {decoded:?}"
        );
        check_stream(t, &ids, &decoded);
        if add_special || parse_special {
            let plain = t.encode(&text, false).expect("encode");
            assert_eq!(t.decode(&plain).expect("decode"), text.as_ref());
        }
    } else {
        let raw = mode & 2 != 0;
        let rest = src.rest();
        let ids: Vec<u32> = if raw {
            rest.chunks(4)
                .map(|c| Src::new(c).u32())
                .collect::<Vec<_>>()
        } else {
            rest.chunks(2)
                .map(|c| u32::from(Src::new(c).u16()) % (vocab as u32 + 64))
                .collect()
        };
        let in_range = ids.iter().all(|&id| (id as usize) < vocab);
        match t.decode(&ids) {
            Ok(s) => {
                assert!(in_range);
                check_stream(t, &ids, &s);
                let bytes: Vec<u8> = ids
                    .iter()
                    .flat_map(|&id| t.token_bytes(id).expect("in range"))
                    .collect();
                assert_eq!(String::from_utf8_lossy(&bytes), s);
            }
            Err(e) => {
                assert!(!in_range, "in-range ids failed to decode: {e}");
                let mut dec = StreamDecoder::new(t);
                let bad = ids.iter().position(|&id| id as usize >= vocab).unwrap_or(0);
                for &id in &ids[..bad] {
                    dec.push(id).expect("in range");
                }
                assert!(dec.push(ids[bad]).is_err());
            }
        }
        for &id in ids.iter().take(16) {
            let _ = t.is_end_of_generation(id);
        }
    }
}

// ---- seed corpus ----------------------------------------------------------------------------

/// Hand-made seed inputs for every target: `(target, file name, bytes)`. Written to
/// `fuzz/corpus/<target>/seed-<name>` by the ignored test `write_seed_corpus` in
/// `tests/fuzz_replay.rs`, then grown by fuzzing and minimized with `cargo fuzz cmin`.
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    seeds_unpack(&mut out);
    seeds_gemm(&mut out);
    seeds_gguf(&mut out);
    seeds_tokenizer(&mut out);
    out
}

type Seeds = Vec<(&'static str, String, Vec<u8>)>;

fn raw_u16_input(prefix: &[u8], rows: usize, cols: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.push(0); // mode 0: u16 dims, bytes as given
    v.extend((rows as u16).to_le_bytes());
    v.extend((cols as u16).to_le_bytes());
    v.extend_from_slice(bytes);
    v
}

fn seeds_unpack(out: &mut Seeds) {
    use crate::vectors::{TqFormat, i2s_cases, tq_cases};
    let one = 1f32.to_le_bytes();
    for c in i2s_cases().into_iter().filter(|c| c.packed.len() <= 8192) {
        let v = raw_u16_input(&[], c.rows, c.cols, &c.packed);
        out.push(("unpack_i2s", format!("golden-{}", c.name), v));
        // The codes of an I2_S tensor with cols % 256 == 0 are a QK256 matrix.
        if c.cols.is_multiple_of(256) {
            let codes = &c.packed[..c.rows * c.cols / 4];
            let v = raw_u16_input(&one, c.rows, c.cols, codes);
            out.push(("unpack_qk256", format!("golden-{}", c.name), v));
        }
    }
    for c in tq_cases().into_iter().filter(|c| c.packed.len() <= 8192) {
        let target = match c.format {
            TqFormat::Tq1_0 => "unpack_tq1_0",
            TqFormat::Tq2_0 => "unpack_tq2_0",
        };
        let v = raw_u16_input(&[], c.rows, c.cols, &c.packed);
        out.push((target, format!("golden-{}", c.name), v));
    }
    // Shaped, off-by-one, huge and overflowing shapes for each format.
    for (target, prefix) in [
        ("unpack_i2s", &[][..]),
        ("unpack_qk256", &one[..]),
        ("unpack_tq2_0", &[][..]),
        ("unpack_tq1_0", &[][..]),
    ] {
        for (name, mode) in [
            ("shaped-exact", 0x62u8),
            ("shaped-short", 0x02),
            ("shaped-long", 0x22),
            ("shaped-badcols", 0x7e),
        ] {
            let mut v = prefix.to_vec();
            v.extend([mode, 3, 5, 0]);
            v.extend((0..=255u8).map(|b| b.wrapping_mul(37)));
            out.push((target, name.to_string(), v));
        }
        for (name, rows, cols) in [
            ("overflow", u64::MAX, u64::MAX),
            ("overflow-rows", 1 << 62, 256),
            ("zero", 0, 256),
        ] {
            let mut v = prefix.to_vec();
            v.push(1);
            v.extend(rows.to_le_bytes());
            v.extend(cols.to_le_bytes());
            v.extend([0u8; 64]);
            out.push((target, name.to_string(), v));
        }
    }
    // A QK256 matrix with a ragged last block (cols = 300) and a stray code 3.
    let mut v = raw_u16_input(&0.75f32.to_le_bytes(), 2, 300, &[0xff; 256]);
    v[9] = 0x5a;
    out.push(("unpack_qk256", "ragged-300".into(), v));
}

fn gemm_seed(format: u8, rows: u8, k: u16, tokens: u8, act_mode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![format, rows, 0, 0, tokens, act_mode];
    v[2..4].copy_from_slice(&k.to_le_bytes());
    v.extend(0.5f32.to_le_bytes());
    v.extend(0.125f32.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn seeds_gemm(out: &mut Seeds) {
    use crate::vectors::i2s_cases;
    // The golden bitnet.cpp case with 3 tokens: packed weights, then raw f32 activations.
    if let Some(c) = i2s_cases()
        .into_iter()
        .find(|c| c.name.starts_with("i2s_8x256"))
    {
        let mut payload = c.packed[..c.packed.len() - 32].to_vec();
        payload.extend([0u8; 32]);
        payload.extend(c.x.iter().flat_map(|v| v.to_le_bytes()));
        // rows 8 -> byte 7, cols 256 -> k 1, tokens 3 -> byte 2, raw activations.
        let mut v = gemm_seed(0, 7, 1, 2, 0, &payload);
        v[6..10].copy_from_slice(&c.weight_scale.to_le_bytes());
        out.push(("gemm_int8", format!("golden-{}", c.name), v));
    }
    let pattern: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(73) ^ 0x15).collect();
    for format in 0..4u8 {
        for (name, rows, k, tokens, mode) in [
            ("small", 3u8, 0u16, 0u8, 1u8),
            ("rows33", 0xE0, 1, 1, 2),
            ("threads", 0xFF, 3, 3, 1),
            ("nonfinite", 4, 0, 1, 3),
            ("raw", 1, 2, 0, 0),
        ] {
            let v = gemm_seed(format, rows, k, tokens, mode, &pattern);
            out.push((
                "gemm_int8",
                format!("{}-{name}", Format::ALL[format as usize]),
                v,
            ));
        }
    }
    // QK256 ragged widths.
    for k in [0u16, 127, 255, 256, 299, 511] {
        let v = gemm_seed(1, 5, k, 1, 2, &pattern);
        out.push(("gemm_int8", format!("qk256-k{k}"), v));
    }
}

/// Small valid GGUF files made with the runner's writer, plus truncated and corrupted
/// variants and the tiny model's header with its real tokenizer metadata.
fn seeds_gguf(out: &mut Seeds) {
    use bitnet_runner::gguf::{Array, Value};
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();

    // Every value type and the three ternary tensor types.
    let mut w = GgufWriter::new();
    w.add("general.architecture", "bitnet-b1.58").expect("kv");
    w.add("u8", 7u8).expect("kv");
    w.add("i16", -700i16).expect("kv");
    w.add("u32", 70_000u32).expect("kv");
    w.add("f32", 1.5f32).expect("kv");
    w.add("bool", true).expect("kv");
    w.add("u64", 1u64 << 40).expect("kv");
    w.add("f64", 2.25f64).expect("kv");
    w.add("str", "héllo").expect("kv");
    w.add("strs", Array::String(vec!["a".into(), "".into()]))
        .expect("kv");
    w.add("i32s", Array::I32(vec![1, -2, 3])).expect("kv");
    w.add(
        "nested",
        Array::Array(vec![Array::U8(vec![1, 2]), Array::F32(vec![])]),
    )
    .expect("kv");
    w.add_tensor("norm", &[8], GgmlType::F32, vec![0u8; 32])
        .expect("t");
    let tq2: Vec<u8> = (0..132u8).map(|b| b.wrapping_mul(29)).collect();
    w.add_tensor("tq2", &[256, 2], GgmlType::TQ2_0, tq2)
        .expect("t");
    let tq1: Vec<u8> = (0..54u8).map(|b| b.wrapping_mul(31)).collect();
    w.add_tensor("tq1", &[256, 1], GgmlType::TQ1_0, tq1)
        .expect("t");
    let mut i2s = vec![0x5au8; 96];
    i2s[64..68].copy_from_slice(&0.25f32.to_le_bytes());
    w.add_tensor("i2s", &[128, 2], GgmlType::I2_S, i2s)
        .expect("t");
    w.add_tensor("f16", &[4, 2], GgmlType::F16, vec![0u8; 16])
        .expect("t");
    let all_types = w.to_bytes().expect("write");
    files.push(("all-types".into(), all_types.clone()));

    // Version 2, custom alignment, I2_S whose ne0 is not a multiple of 128.
    let mut w = GgufWriter::new();
    w.set_version(2).expect("v2");
    w.set_alignment(64).expect("align");
    let mut i2s = vec![0x11u8; 64];
    i2s[32..36].copy_from_slice(&1f32.to_le_bytes());
    w.add_tensor("odd_i2s", &[64, 2], GgmlType::I2_S, i2s)
        .expect("t");
    w.add_tensor("q8", &[32, 1], GgmlType::Q8_0, vec![0u8; 34])
        .expect("t");
    files.push(("v2-align64".into(), w.to_bytes().expect("write")));

    // No tensors, only metadata; and an empty file.
    let mut w = GgufWriter::new();
    w.add("general.name", "empty").expect("kv");
    files.push(("metadata-only".into(), w.to_bytes().expect("write")));
    files.push((
        "header-only".into(),
        GgufWriter::new().to_bytes().expect("write"),
    ));

    // A small tokenizer in metadata (bytes + a few merges), so the parse target builds one.
    let mut tokens: Vec<String> = Vec::new();
    for b in 0..=255u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        if printable {
            tokens.push(char::from_u32(b).expect("char").to_string());
        }
    }
    let mut n = 0;
    for b in 0..=255u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        if !printable {
            n += 1;
            tokens.push(char::from_u32(0xFF + n).expect("char").to_string());
        }
    }
    tokens.extend(["Ġt".into(), "he".into(), "Ġthe".into()]);
    tokens.extend(["<|begin_of_text|>".into(), "<|end_of_text|>".into()]);
    let nt = tokens.len();
    let mut types = vec![1i32; nt];
    types[nt - 2] = 3;
    types[nt - 1] = 3;
    let mut w = GgufWriter::new();
    w.add("tokenizer.ggml.model", "gpt2").expect("kv");
    w.add("tokenizer.ggml.pre", "llama-bpe").expect("kv");
    w.add("tokenizer.ggml.tokens", Array::String(tokens))
        .expect("kv");
    w.add(
        "tokenizer.ggml.merges",
        Array::String(vec!["Ġ t".into(), "h e".into(), "Ġt he".into()]),
    )
    .expect("kv");
    w.add("tokenizer.ggml.token_type", Array::I32(types))
        .expect("kv");
    w.add("tokenizer.ggml.bos_token_id", Value::U32(nt as u32 - 2))
        .expect("kv");
    w.add("tokenizer.ggml.eos_token_id", Value::U32(nt as u32 - 1))
        .expect("kv");
    files.push(("small-tokenizer".into(), w.to_bytes().expect("write")));

    // The tiny model's header (all its metadata) with its tensors replaced by small ones.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model-runner/models/tiny-b158-i2s.gguf"
    );
    if let Ok(model) = std::fs::read(path)
        && let Ok(g) = parse(&model)
    {
        let mut w = GgufWriter::new();
        for (k, v) in g.metadata.iter() {
            w.add(k, v.clone()).expect("kv");
        }
        for t in g.tensors.iter().take(4) {
            let data = g.tensor_data(&model, t).expect("data");
            if t.n_bytes <= 4096 {
                w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, data)
                    .expect("t");
            }
        }
        files.push(("tiny-model-header".into(), w.to_bytes().expect("write")));
        // A prefix of the real file: header then the start of the data (fails: truncated).
        let cut = usize::try_from(g.data_offset).unwrap_or(0) + 4096;
        files.push((
            "tiny-model-prefix".into(),
            model[..cut.min(model.len())].to_vec(),
        ));
    }

    // Truncated and corrupted variants of the all-types file.
    let b = &all_types;
    for cut in [0, 3, 8, 16, 24, 40, b.len() / 2, b.len() - 33, b.len() - 1] {
        files.push((format!("all-types-cut{cut}"), b[..cut].to_vec()));
    }
    let mut flip = b.clone();
    flip[17] ^= 0x80; // n_kv high byte
    files.push(("all-types-nkv-huge".into(), flip));
    let mut flip = b.clone();
    flip[4] = 1; // version 1
    files.push(("all-types-v1".into(), flip));
    let mut flip = b.clone();
    flip[0] = b'g';
    files.push(("all-types-magic".into(), flip));
    for (name, bytes) in files {
        out.push(("gguf_parse", name, bytes));
    }
}

fn seeds_tokenizer(out: &mut Seeds) {
    let texts = [
        "The meaning of life is",
        "A fool and his money",
        "hello   world   \n\n\tI'm sure you'll see they've done it; it's JOHN'S, DON'T!",
        "Numbers: 1 12 123 1234 12345 3.14159 -42",
        "Ünïcödé: café naïve Straße Ωμέγα привет 中文字符 日本語 😀👍🏽 👨‍👩‍👧‍👦 e\u{301}",
        "Hi<|end_of_text|> there<|begin_of_text|>x",
        "  \n  \n\t \r\n 'ſ K \u{200b}\u{a0}\u{3000}",
    ];
    for (i, s) in texts.iter().enumerate() {
        for mode in [0u8, 6] {
            let mut v = vec![mode];
            v.extend_from_slice(s.as_bytes());
            out.push(("tokenizer", format!("text{i}-m{mode}"), v));
        }
    }
    // Invalid UTF-8 (lossy-decoded to U+FFFD).
    out.push((
        "tokenizer",
        "text-invalid-utf8".into(),
        vec![0, b'a', 0xff, 0xc3, 0x28, b'b', 0xe2, 0x82],
    ));
    // Ids: in range, out of range, raw u32 ids.
    let ids: Vec<u8> = [1022u16, 316, 422, 269, 278, 289, 688, 299, 1023]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    out.push((
        "tokenizer",
        "ids-sentence".into(),
        [&[1u8][..], &ids].concat(),
    ));
    let ids: Vec<u8> = [5u16, 1050, 7]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    out.push((
        "tokenizer",
        "ids-out-of-range".into(),
        [&[1u8][..], &ids].concat(),
    ));
    let ids: Vec<u8> = [0u32, 255, 1023, 1024, u32::MAX]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    out.push(("tokenizer", "ids-raw".into(), [&[3u8][..], &ids].concat()));
    // Byte tokens that split a multi-byte character.
    let ids: Vec<u8> = [160u16, 99, 100, 101]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    out.push(("tokenizer", "ids-bytes".into(), [&[1u8][..], &ids].concat()));
}
