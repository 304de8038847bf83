//! The opt-in int8 output head on the tiny model, teacher-forced over 1000 tokens of text
//! (four windows of 250 tokens of `models/README.md`, each from a fresh state):
//!
//! - every logit of the int8 head lies within a bound derived from the roundings it makes
//!   (below) of the F16 head's logit;
//! - wherever the two heads pick different top-1 tokens, the F16 margin between the two
//!   picks is within the sum of their bounds (so the disagreement is explained by the
//!   rounding, not by a defect);
//! - `Model::forward` with `HeadMode::Int8` produces exactly the int8 logits checked here.
//!
//! It prints the largest logit difference and the top-1 agreement (the closing figures).
//!
//! Bound for one logit (`u = 2⁻²⁴`; `w` the exact F16 weights of the row, `x` the final
//! normed hidden state; `s` the row scale, `a` the activation scale): the repack gives
//! `q = round(w/s)` with `w/s` rounded in f32 first, so `|q·s − w| ≤ s·(½ + 127u)`; the
//! activation gives `p = round(x·a)`, `|p/a − x| ≤ (½ + |x·a|·u)/a`; the integer sum is exact
//! and its conversion, `s/a` and the product add three roundings, `3.01u · Σ|q·s·p/a|`; the
//! F16 path itself is within `γ_n · Σ|w·x|` of the exact sum. So
//! `|y8 − y16| ≤ Σ(|Δw||x| + |w||Δx| + |Δw||Δx|) + 3.01u·Σ|ŵ x̂| + γ_n·Σ|w x|`.

use bitnet_kernels::dense_i8::DenseI8;
use bitnet_kernels::{Exec, Isa};
use bitnet_runner::gguf::GgufFile;
use bitnet_runner::model::{HeadMode, Model, load_tokenizer, rms_norm};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Per-row bounds of `|y8 − y16|` for input `x` (see the module docs).
fn bounds(w: &[f32], rows: usize, cols: usize, h: &DenseI8, x: &[f32]) -> Vec<f64> {
    let amax = x.iter().fold(1e-5f64, |m, &v| m.max(f64::from(v).abs()));
    let a = f64::from((127.0 / amax) as f32);
    (0..rows)
        .map(|r| {
            let s = f64::from(h.scales()[r]);
            let dw = s * (0.5 + 127.0 * U);
            let (mut err, mut mag, mut exact) = (0f64, 0f64, 0f64);
            for c in 0..cols {
                let (wc, xc) = (f64::from(w[r * cols + c]), f64::from(x[c]));
                let dx = (0.5 + (xc * a).abs() * U) / a;
                err += dw * xc.abs() + wc.abs() * dx + dw * dx;
                mag += (wc.abs() + dw) * (xc.abs() + dx);
                exact += (wc * xc).abs();
            }
            err + 3.01 * U * mag + gamma(cols) * exact
        })
        .collect()
}

fn top1(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[test]
fn int8_head_within_derived_bound_over_1000_tokens() {
    let file = GgufFile::open(format!("{DIR}/tiny-b158-i2s.gguf")).unwrap();
    let mut model = Model::load(&file).unwrap();
    let exec = Exec::new(Isa::best(), 1).unwrap();
    model.set_exec(exec);
    let tok = load_tokenizer(file.gguf()).unwrap();
    let text = std::fs::read_to_string(format!("{DIR}/README.md")).unwrap();
    let ids = tok.encode(&text, false).unwrap();
    assert!(ids.len() >= 1000, "README too short: {} tokens", ids.len());

    let c = model.config.clone();
    let head = *model.weights.head();
    let (rows, cols) = (head.rows(), head.cols());
    let mut w = vec![0f32; rows * cols];
    for (r, row) in w.chunks_exact_mut(cols).enumerate() {
        head.row_to_f32(r, row).unwrap();
    }
    let h8 = DenseI8::from_dense(&head, &exec).unwrap();
    let (mut agree, mut n, mut max_diff, mut worst_ratio) = (0usize, 0usize, 0f32, 0f64);
    let (mut y16, mut y8) = (vec![0f32; rows], vec![0f32; rows]);
    for window in ids[..1000].chunks(250) {
        let mut state = model.new_state(window.len()).unwrap();
        for (pos, &id) in window.iter().enumerate() {
            let mut xs = vec![0f32; c.hidden];
            model.embed(&[id], &mut xs).unwrap();
            for layer in 0..c.n_layer {
                model
                    .forward_block(layer, &mut state, &mut xs, pos)
                    .unwrap();
            }
            let mut x = vec![0f32; c.hidden];
            rms_norm(&xs, &model.weights.output_norm, c.rms_eps, &mut x);
            head.gemm(&x, 1, &mut y16, &exec).unwrap();
            h8.gemv(&x, &mut y8, &exec).unwrap();
            let b = bounds(&w, rows, cols, &h8, &x);
            for r in 0..rows {
                let d = f64::from((y8[r] - y16[r]).abs());
                assert!(
                    d <= b[r],
                    "pos {pos} row {r}: |{} - {}| = {d:e} > bound {:e}",
                    y8[r],
                    y16[r],
                    b[r]
                );
                worst_ratio = worst_ratio.max(d / b[r]);
                max_diff = max_diff.max(d as f32);
            }
            let (t16, t8) = (top1(&y16), top1(&y8));
            if t16 == t8 {
                agree += 1;
            } else {
                let margin = f64::from(y16[t16] - y16[t8]);
                assert!(
                    margin <= b[t16] + b[t8],
                    "pos {pos}: top-1 {t16} vs {t8} with F16 margin {margin:e} beyond the bounds {:e}",
                    b[t16] + b[t8]
                );
            }
            n += 1;
        }
    }
    println!(
        "int8 head vs F16 head, tiny model, {n} teacher-forced tokens: top-1 agreement {agree}/{n} = {:.1}%, max |logit diff| {max_diff:.4}, worst diff/bound {worst_ratio:.3}",
        100.0 * agree as f64 / n as f64
    );
    assert_eq!(n, 1000);

    // The model path uses the same int8 head.
    model.set_head_mode(HeadMode::Int8).unwrap();
    assert_eq!(model.head_mode(), HeadMode::Int8);
    assert_eq!(model.head_bytes(), rows * cols + 4 * rows);
    let mut state = model.new_state(8).unwrap();
    let mut logits = vec![0f32; rows];
    model
        .forward(&mut state, &ids[..8], Some(&mut logits))
        .unwrap();
    let mut state = model.new_state(8).unwrap();
    let mut xs = vec![0f32; 8 * c.hidden];
    model.embed(&ids[..8], &mut xs).unwrap();
    for layer in 0..c.n_layer {
        model.forward_block(layer, &mut state, &mut xs, 0).unwrap();
    }
    let mut x = vec![0f32; c.hidden];
    rms_norm(
        &xs[7 * c.hidden..],
        &model.weights.output_norm,
        c.rms_eps,
        &mut x,
    );
    h8.gemv(&x, &mut y8, &exec).unwrap();
    assert_eq!(logits, y8);
    model.set_head_mode(HeadMode::Stored).unwrap();
    assert_eq!(model.head_mode(), HeadMode::Stored);
}
