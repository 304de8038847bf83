//! llama.cpp's Q8_K activation blocks (`quantize_row_q8_K_ref`) and the integer-activation
//! products of TQ1_0/TQ2_0 (`ggml_vec_dot_tq{1,2}_0_q8_K`, scalar order).

/// Elements per Q8_K block.
pub(crate) const QK_K: usize = 256;

/// One Q8_K block: 256 int8 values, their f32 scale and 16 partial sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8K {
    /// Scale: value `≈ d * qs[i]`. `d = 1 / iscale` (f32), 0 for an all-zero block.
    pub d: f32,
    /// Quantized values, in `-127..=127` for finite input.
    pub qs: [i8; 256],
    /// `bsums[j] = Σ qs[16 j .. 16 j + 16]`.
    pub bsums: [i16; 16],
}

/// llama.cpp's `quantize_row_q8_K_ref`: per 256-element block,
/// - `max` = the first element of largest `|x|` (strict `>` scan from index 0), `amax = |max|`;
/// - `amax == 0`: `d = 0`, all `qs = 0`, all `bsums = 0`;
/// - otherwise `iscale = -127 / max` (f32 division), `qs = min(127, nearest_int(iscale * x))`
///   with the product in f32 and ties to even, `d = 1 / iscale` (f32).
///
/// Note the sign: `iscale` has the opposite sign of `max`, so `d` is negative when the
/// largest-magnitude element is positive; `d * qs` still approximates `x`.
///
/// # Panics
/// If `x.len() % 256 != 0`.
pub fn quantize_row_q8_k(x: &[f32]) -> Vec<BlockQ8K> {
    assert!(
        x.len().is_multiple_of(QK_K),
        "Q8_K: length {} is not a multiple of {QK_K}",
        x.len()
    );
    let mut out = Vec::with_capacity(x.len() / QK_K);
    for blk in x.chunks_exact(QK_K) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in blk {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut b = BlockQ8K {
            d: 0.0,
            qs: [0; 256],
            bsums: [0; 16],
        };
        if amax == 0.0 {
            out.push(b);
            continue;
        }
        let iscale = -127.0f32 / max;
        for (j, &v) in blk.iter().enumerate() {
            let q = (iscale * v).round_ties_even() as i32;
            b.qs[j] = q.min(127) as i8;
        }
        for j in 0..16 {
            let mut sum = 0i32;
            for i in 0..16 {
                sum += i32::from(b.qs[16 * j + i]);
            }
            b.bsums[j] = sum as i16;
        }
        b.d = 1.0 / iscale;
        out.push(b);
    }
    out
}

/// The Q8_K GEMV shared by TQ1_0 and TQ2_0 once their codes are unpacked:
/// `codes [rows, cols]`, `d_w [rows * cols / 256]` the per-block weight scales (f16 → f32),
/// `x [tokens, cols]`. Per token, [`quantize_row_q8_k`] the row; per weight row,
/// `sumf = 0.0f32; for each block b in order: sumf += (sumi_b as f32) * (d_x[b] * d_w[b])`
/// where `sumi_b = Σ (c - 1) * q` exact in i32.
pub(crate) fn gemv_q8k_codes(
    codes: &[u8],
    d_w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    assert!(
        cols.is_multiple_of(QK_K),
        "cols {cols} is not a multiple of {QK_K}"
    );
    assert_eq!(codes.len(), rows * cols);
    assert_eq!(d_w.len(), rows * cols / QK_K);
    assert_eq!(
        x.len(),
        tokens * cols,
        "x: len {} != tokens * cols = {tokens} * {cols}",
        x.len()
    );
    let nb = cols / QK_K;
    let mut y = Vec::with_capacity(tokens * rows);
    for t in 0..tokens {
        let act = quantize_row_q8_k(&x[t * cols..(t + 1) * cols]);
        for r in 0..rows {
            let mut sumf = 0.0f32;
            for (b, blk) in act.iter().enumerate() {
                let base = r * cols + b * QK_K;
                let mut sumi = 0i32;
                for j in 0..QK_K {
                    sumi += (i32::from(codes[base + j]) - 1) * i32::from(blk.qs[j]);
                }
                sumf += sumi as f32 * (blk.d * d_w[r * nb + b]);
            }
            y.push(sumf);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_block() {
        let mut x = [0.0f32; 256];
        x[0] = 1.0;
        x[1] = -127.0 / 64.0; // largest magnitude first: max = -127/64 → iscale = 64, d = 1/64
        x[2] = 127.0 / 64.0; // same magnitude, later: not chosen
        x[17] = 0.5 / 64.0; // 0.5 → 0 (ties to even)
        x[18] = 1.5 / 64.0; // 1.5 → 2
        x[19] = -2.5 / 64.0; // -2.5 → -2
        let b = &quantize_row_q8_k(&x)[0];
        assert_eq!(b.d, 1.0 / 64.0);
        assert_eq!(&b.qs[..3], &[64, -127, 127]);
        assert_eq!(&b.qs[17..20], &[0, 2, -2]);
        assert_eq!(b.bsums[0], 64);
        assert_eq!(b.bsums[1], 0);
    }

    #[test]
    fn zero_block() {
        let b = quantize_row_q8_k(&[0.0; 512]);
        assert_eq!(b.len(), 2);
        assert!(
            b.iter()
                .all(|b| b.d == 0.0 && b.qs == [0; 256] && b.bsums == [0; 16])
        );
    }
}
