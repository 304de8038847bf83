//! The runner's one-block forward (`Model::forward_block`, kernels inside) against the scalar
//! reference block (`bitnet_reference::block`), on layer 0 of the tiny real models and on
//! random synthetic weights (ReLU² and SiLU, with and without sub-norms), for every ISA.
//!
//! Weights reach the reference through the reference twin's own decoders
//! (`unpack_codes_i2s`, `unpack_codes_tq2_0`), never through the kernels.
//!
//! ## What is compared, and the bounds
//!
//! Outside the ternary projections both sides run the same operations in the same order
//! (RMSNorm with f64 sums, NEOX RoPE with f64 angles, sequential f32 attention and softmax,
//! the FFN activation, residual adds). So, given the same inputs, every such stage must be
//! **bit-identical**, and the test checks each stage of the runner (recorded by
//! `Model::forward_block_probed`) against the reference stage applied to the runner's own
//! inputs of that stage:
//!
//! - **bitnet (int8) numerics**: the integer dot products are exact on both sides and the
//!   float epilogue is the same expression (`(dot / a)·s` for I2_S; llama.cpp's
//!   `Σ_b sumi_b·(d_x·d_w)` order for TQ2_0, `ProjectionNumerics::Int8Blocked`), so every
//!   projection, and therefore the whole block end to end, must be bit-identical.
//! - **f32 numerics**: the kernels' dot products (any order, FMA) against the reference's
//!   sequential sum of exact products: `|Δy| <= 2·γ_{n+1}·Σ|w x|` (+ subnormal slack) per
//!   output, Higham's bound as derived in `bounds.rs`; after RoPE the two rotated inputs'
//!   bounds add, plus `2·γ_2·(|a| + |b|)` for the rotation's own roundings on each side.
//!   Every other stage is still bit-identical. (End to end, the f32 differences pass through
//!   four projections, softmax and ReLU²; a worst-case forward propagation of these bounds
//!   is vacuous, so the end-to-end f32 difference is reported, not bounded.)

use bitnet_kernels::{Exec, Isa};
use bitnet_lab::bounds::{dot_bound, gamma};
use bitnet_reference::block::{
    BlockActivation, BlockConfig, BlockWeights, ProjectionNumerics, TernaryWeight, attention_ref,
    block_forward_ref, ffn_activation_ref, linear_rows, norm_rows, rope_rows,
};
use bitnet_reference::testdata::SplitMix64;
use bitnet_reference::{
    pack_i2s_codes, pack_tq1_0_codes, pack_tq2_0_codes, unpack_codes_i2s, unpack_codes_tq1_0,
    unpack_codes_tq2_0,
};
use bitnet_runner::gguf::{GgmlType, Gguf, GgufFile, GgufWriter, parse};
use bitnet_runner::model::{BlockProbe, FfnActivation, Model, Numerics, load_tokenizer};
use bitnet_runner::synth::{SynthSpec, SynthType, metadata};

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../model-runner/models");

// ---- reference weights from GGUF bytes (reference decoders only) -----------------------

fn ternary_from_gguf(gguf: &Gguf, bytes: &[u8], name: &str) -> TernaryWeight {
    let info = gguf.tensor(name).unwrap();
    let data = gguf.tensor_data(bytes, info).unwrap();
    let (cols, rows) = (info.dims[0] as usize, info.dims[1] as usize);
    let n = rows * cols;
    let (codes, scale) = match info.ggml_type {
        GgmlType::I2_S => (
            unpack_codes_i2s(data, n),
            bitnet_reference::i2s_scale(data, n),
        ),
        GgmlType::TQ2_0 | GgmlType::TQ1_0 => {
            let (d, codes) = match info.ggml_type {
                GgmlType::TQ2_0 => (
                    bitnet_reference::dequantize_tq2_0(data, rows, cols),
                    unpack_codes_tq2_0(data, rows, cols),
                ),
                _ => (
                    bitnet_reference::dequantize_tq1_0(data, rows, cols),
                    unpack_codes_tq1_0(data, rows, cols),
                ),
            };
            let s = d.iter().fold(0f32, |m, v| m.max(v.abs()));
            // The reference block takes one scale per tensor: every block must share it.
            assert!(
                d.iter().all(|v| *v == 0.0 || v.abs() == s),
                "{name}: per-block scales differ"
            );
            (codes, s)
        }
        t => panic!("{name}: {t:?}"),
    };
    TernaryWeight {
        rows,
        cols,
        values: codes.iter().map(|&c| c as i8 - 1).collect(),
        scale,
    }
}

fn f32_tensor(gguf: &Gguf, bytes: &[u8], name: &str) -> Option<Vec<f32>> {
    let info = gguf.tensor(name)?;
    assert_eq!(info.ggml_type, GgmlType::F32, "{name}");
    let data = gguf.tensor_data(bytes, info).unwrap();
    Some(
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn block_from_gguf(gguf: &Gguf, bytes: &[u8], layer: usize) -> BlockWeights {
    let n = |s: &str| format!("blk.{layer}.{s}.weight");
    BlockWeights {
        attn_norm: f32_tensor(gguf, bytes, &n("attn_norm")).unwrap(),
        attn_sub_norm: f32_tensor(gguf, bytes, &n("attn_sub_norm")),
        ffn_norm: f32_tensor(gguf, bytes, &n("ffn_norm")).unwrap(),
        ffn_sub_norm: f32_tensor(gguf, bytes, &n("ffn_sub_norm")),
        wq: ternary_from_gguf(gguf, bytes, &n("attn_q")),
        wk: ternary_from_gguf(gguf, bytes, &n("attn_k")),
        wv: ternary_from_gguf(gguf, bytes, &n("attn_v")),
        wo: ternary_from_gguf(gguf, bytes, &n("attn_output")),
        wgate: ternary_from_gguf(gguf, bytes, &n("ffn_gate")),
        wup: ternary_from_gguf(gguf, bytes, &n("ffn_up")),
        wdown: ternary_from_gguf(gguf, bytes, &n("ffn_down")),
    }
}

fn block_config(model: &Model<'_>) -> BlockConfig {
    let c = &model.config;
    BlockConfig {
        hidden: c.hidden,
        n_head: c.n_head,
        n_head_kv: c.n_head_kv,
        head_dim: c.head_dim,
        ffn: c.ffn,
        eps: c.rms_eps,
        rope_theta: c.rope_theta,
        activation: match c.arch.ffn_activation() {
            FfnActivation::ReluSquared => BlockActivation::ReluSquared,
            FfnActivation::Silu => BlockActivation::Silu,
        },
    }
}

// ---- stage-by-stage comparison ----------------------------------------------------------

/// Bit equality of two f32 slices.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}[{i}]: runner {g} vs reference {w} (must be bit-identical)"
        );
    }
}

/// Dequantized `[rows, cols]` f32 weights of a reference ternary weight.
fn dense(w: &TernaryWeight) -> Vec<f32> {
    w.values.iter().map(|&t| t as f32 * w.scale).collect()
}

/// Elementwise bound `2·γ_{n+1}·Σ|w x|` (+ subnormal slack) of a projection `[tokens, rows]`
/// whose runner and reference inputs are identical (`bounds::dot_bound`).
fn proj_bound(w: &TernaryWeight, x: &[f32]) -> Vec<f64> {
    let wd = dense(w);
    let mut e = Vec::with_capacity(x.len() / w.cols * w.rows);
    for xr in x.chunks(w.cols) {
        for r in 0..w.rows {
            e.push(dot_bound(&wd[r * w.cols..(r + 1) * w.cols], xr));
        }
    }
    e
}

/// After NEOX RoPE `(a, b) -> (a c − b s, b c + a s)`, `|c|, |s| <= 1`: input errors add, and
/// each side rounds two products and one sum (`γ_2` relative to `|a| + |b|`).
fn rope_bound(pre: &[f32], e_pre: &[f64], head_dim: usize) -> Vec<f64> {
    let half = head_dim / 2;
    let mut e = vec![0f64; pre.len()];
    for base in (0..pre.len()).step_by(head_dim) {
        for i in 0..half {
            let (ea, eb) = (e_pre[base + i], e_pre[base + i + half]);
            let mag = (pre[base + i] as f64).abs() + (pre[base + i + half] as f64).abs() + ea + eb;
            let v = ea + eb + 2.0 * gamma(2) * mag;
            e[base + i] = v;
            e[base + i + half] = v;
        }
    }
    e
}

/// `|runner − reference| <= bound` elementwise; returns the largest `|diff| / bound`.
fn assert_within(what: &str, got: &[f32], want: &[f32], bound: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f64;
    for (i, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        let d = (g as f64 - w as f64).abs();
        assert!(
            d <= b,
            "{what}[{i}]: runner {g} vs reference {w}: |diff| {d:e} > derived bound {b:e}"
        );
        if b > 0.0 {
            worst = worst.max(d / b);
        }
    }
    worst
}

/// Checks every stage of the runner's block on the runner's own stage inputs: the
/// non-projection stages must be bit-identical; the projections bit-identical under int8
/// numerics and within the dot-product bound under f32 numerics. Returns the worst ratio.
fn check_stages(
    what: &str,
    cfg: &BlockConfig,
    w: &BlockWeights,
    p: &BlockProbe,
    rn: ProjectionNumerics,
) -> f64 {
    let (nh, nkv, d) = (cfg.n_head, cfg.n_head_kv, cfg.head_dim);
    let exact = rn != ProjectionNumerics::F32;
    let mut worst = 0f64;
    let mut proj =
        |name: &str, m: &TernaryWeight, input: &[f32], got: &[f32], rope_heads: Option<usize>| {
            let mut want = linear_rows(m, input, rn);
            let mut bound = if exact {
                vec![0.0; want.len()]
            } else {
                proj_bound(m, input)
            };
            if let Some(heads) = rope_heads {
                if !exact {
                    bound = rope_bound(&want, &bound, d);
                }
                rope_rows(&mut want, heads, d, cfg.rope_theta);
            }
            if exact {
                assert_bits(&format!("{what}: {name}"), got, &want);
            } else {
                worst = worst.max(assert_within(
                    &format!("{what}: {name}"),
                    got,
                    &want,
                    &bound,
                ));
            }
        };
    assert_bits(
        &format!("{what}: attn_norm"),
        &p.h_attn,
        &norm_rows(&p.x, &w.attn_norm, cfg.eps),
    );
    proj("q (attn_q + RoPE)", &w.wq, &p.h_attn, &p.q, Some(nh));
    proj("k (attn_k + RoPE)", &w.wk, &p.h_attn, &p.k, Some(nkv));
    proj("v (attn_v)", &w.wv, &p.h_attn, &p.v, None);
    assert_bits(
        &format!("{what}: attention"),
        &p.attn,
        &attention_ref(cfg, &p.q, &p.k, &p.v).1,
    );
    let attn_in = match &w.attn_sub_norm {
        Some(g) => norm_rows(&p.attn, g, cfg.eps),
        None => p.attn.clone(),
    };
    assert_bits(&format!("{what}: attn_sub_norm"), &p.attn_in, &attn_in);
    proj("attn_output", &w.wo, &p.attn_in, &p.attn_out, None);
    let x_mid: Vec<f32> = p.x.iter().zip(&p.attn_out).map(|(a, b)| a + b).collect();
    assert_bits(&format!("{what}: residual 1"), &p.x_mid, &x_mid);
    assert_bits(
        &format!("{what}: ffn_norm"),
        &p.h_ffn,
        &norm_rows(&p.x_mid, &w.ffn_norm, cfg.eps),
    );
    proj("ffn_gate", &w.wgate, &p.h_ffn, &p.gate, None);
    proj("ffn_up", &w.wup, &p.h_ffn, &p.up, None);
    assert_bits(
        &format!("{what}: FFN activation"),
        &p.m,
        &ffn_activation_ref(cfg.activation, &p.gate, &p.up),
    );
    let down_in = match &w.ffn_sub_norm {
        Some(g) => norm_rows(&p.m, g, cfg.eps),
        None => p.m.clone(),
    };
    assert_bits(&format!("{what}: ffn_sub_norm"), &p.down_in, &down_in);
    proj("ffn_down", &w.wdown, &p.down_in, &p.down, None);
    let out: Vec<f32> = p.x_mid.iter().zip(&p.down).map(|(a, b)| a + b).collect();
    assert_bits(&format!("{what}: residual 2"), &p.out, &out);
    worst
}

/// Runs layer `layer` of `model` on `x` for every ISA (1 and 2 threads) and both numerics:
/// stage by stage (above) and end to end (bit-identical under int8 numerics, where the whole
/// block is a deterministic function of integer dot products; the f32 end-to-end difference
/// is printed).
fn compare(name: &str, model: &mut Model<'_>, w: &BlockWeights, layer: usize, x: &[f32]) {
    let cfg = block_config(model);
    let tokens = x.len() / cfg.hidden;
    let kv_dim = cfg.n_head_kv * cfg.head_dim;
    let int8 = match model.weights.layers[layer].wq.w.format() {
        bitnet_kernels::Format::I2s | bitnet_kernels::Format::Qk256 => ProjectionNumerics::Int8,
        _ => ProjectionNumerics::Int8Blocked,
    };
    for (numerics, rn) in [
        (Numerics::Bitnet, int8),
        (Numerics::F32, ProjectionNumerics::F32),
    ] {
        let t = block_forward_ref(&cfg, w, x, rn);
        model.set_numerics(numerics);
        for isa in Isa::available() {
            for threads in [1, 2] {
                model.set_exec(Exec::new(isa, threads).unwrap());
                let what = format!("{name} {numerics:?} {isa}/{threads}");
                let mut state = model.new_state(tokens).unwrap();
                let mut y = x.to_vec();
                let mut probe = BlockProbe::default();
                model
                    .forward_block_probed(layer, &mut state, &mut y, 0, &mut probe)
                    .unwrap();
                assert_bits(&format!("{what}: probe input"), &probe.x, x);
                assert_bits(&format!("{what}: probe output"), &probe.out, &y);
                let kv = state.kv_cache();
                let cached_k: Vec<f32> = (0..tokens).flat_map(|p| kv.key(layer, p)).collect();
                let cached_v: Vec<f32> = (0..tokens).flat_map(|p| kv.value(layer, p)).collect();
                assert_eq!(cached_k.len(), tokens * kv_dim);
                assert_bits(&format!("{what}: cached k"), &cached_k, &probe.k);
                assert_bits(&format!("{what}: cached v"), &cached_v, &probe.v);
                let worst = check_stages(&what, &cfg, w, &probe, rn);
                let max_diff = y
                    .iter()
                    .zip(&t.out)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                if numerics == Numerics::Bitnet {
                    assert_bits(&format!("{what}: block output vs reference"), &y, &t.out);
                }
                if threads == 1 {
                    println!(
                        "{what}: stages ok (worst |diff|/bound {worst:.3}); block output max |runner - reference| = {max_diff:.3e}"
                    );
                }
            }
        }
    }
}

#[test]
fn tiny_models_layer0_vs_reference() {
    for stem in ["tiny-b158-i2s", "tiny-b158-tq2"] {
        let file = GgufFile::open(format!("{MODELS}/{stem}.gguf")).unwrap();
        let mut model = Model::load(&file).unwrap();
        let tok = load_tokenizer(file.gguf()).unwrap();
        let ids = tok
            .encode(
                "The meaning of life is a fool and his money, said the wise old man.",
                true,
            )
            .unwrap();
        let mut x = vec![0f32; ids.len() * model.config.hidden];
        model.embed(&ids, &mut x).unwrap();
        let w = block_from_gguf(file.gguf(), file.bytes(), 0);
        compare(stem, &mut model, &w, 0, &x);
    }
}

/// Random ternary weights, norm weights and inputs through a one-layer GGUF.
fn synthetic(
    ty: SynthType,
    arch: &str,
    sub_norms: bool,
    seed: u64,
) -> (Vec<u8>, BlockWeights, Vec<f32>) {
    let spec = SynthSpec {
        name: "block-test".into(),
        hidden: 256,
        n_layer: 1,
        n_head: 4,
        n_head_kv: 2,
        ffn: 512,
        vocab: 300,
        context: 64,
        rope_theta: 10000.0,
        rms_eps: 1e-5,
        first_special: 298,
        bos: 298,
        eos: 299,
        eot: None,
    };
    let mut rng = SplitMix64::new(seed);
    let mut w = GgufWriter::new();
    for (k, v) in metadata(&spec, ty) {
        let k = match k.strip_prefix("bitnet-b1.58.") {
            Some(rest) => format!("{arch}.{rest}"),
            None => k,
        };
        let v = if k == "general.architecture" {
            arch.into()
        } else {
            v
        };
        w.add(k, v).unwrap();
    }
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let embd: Vec<u8> = (0..256 * 300)
        .flat_map(|_| half::f16::from_f32(rng.uniform(-0.1, 0.1)).to_le_bytes())
        .collect();
    w.add_tensor("token_embd.weight", &[256, 300], GgmlType::F16, embd)
        .unwrap();
    w.add_tensor(
        "output_norm.weight",
        &[256],
        GgmlType::F32,
        f32_bytes(&[1.0; 256]),
    )
    .unwrap();
    let norm = |name: &str, n: usize, w: &mut GgufWriter<'_>, rng: &mut SplitMix64| {
        let v = rng.values(n, 0.5, 1.5);
        w.add_tensor(
            format!("blk.0.{name}.weight"),
            &[n as u64],
            GgmlType::F32,
            f32_bytes(&v),
        )
        .unwrap();
        v
    };
    let attn_norm = norm("attn_norm", 256, &mut w, &mut rng);
    let attn_sub_norm = sub_norms.then(|| norm("attn_sub_norm", 256, &mut w, &mut rng));
    let ffn_norm = norm("ffn_norm", 256, &mut w, &mut rng);
    let ffn_sub_norm = sub_norms.then(|| norm("ffn_sub_norm", 512, &mut w, &mut rng));
    let proj =
        |name: &str, cols: usize, rows: usize, w: &mut GgufWriter<'_>, rng: &mut SplitMix64| {
            let codes = rng.codes(rows * cols, 2);
            let scale = half::f16::from_f32(rng.uniform(0.02, 0.2)).to_f32();
            let (ty_g, bytes) = match ty {
                SynthType::I2s => (GgmlType::I2_S, pack_i2s_codes(&codes, scale)),
                SynthType::Tq2_0 => (
                    GgmlType::TQ2_0,
                    pack_tq2_0_codes(&codes, &vec![scale; rows * cols / 256], rows, cols),
                ),
                SynthType::Tq1_0 => (
                    GgmlType::TQ1_0,
                    pack_tq1_0_codes(&codes, &vec![scale; rows * cols / 256], rows, cols),
                ),
            };
            w.add_tensor(
                format!("blk.0.{name}.weight"),
                &[cols as u64, rows as u64],
                ty_g,
                bytes,
            )
            .unwrap();
            TernaryWeight {
                rows,
                cols,
                values: codes.iter().map(|&c| c as i8 - 1).collect(),
                scale,
            }
        };
    let wq = proj("attn_q", 256, 256, &mut w, &mut rng);
    let wk = proj("attn_k", 256, 128, &mut w, &mut rng);
    let wv = proj("attn_v", 256, 128, &mut w, &mut rng);
    let wo = proj("attn_output", 256, 256, &mut w, &mut rng);
    let wgate = proj("ffn_gate", 256, 512, &mut w, &mut rng);
    let wup = proj("ffn_up", 256, 512, &mut w, &mut rng);
    let wdown = proj("ffn_down", 512, 256, &mut w, &mut rng);
    let bytes = w.to_bytes().unwrap();
    let block = BlockWeights {
        attn_norm,
        attn_sub_norm,
        ffn_norm,
        ffn_sub_norm,
        wq,
        wk,
        wv,
        wo,
        wgate,
        wup,
        wdown,
    };
    let x = rng.values(13 * 256, -2.0, 2.0);
    (bytes, block, x)
}

#[test]
fn synthetic_blocks_vs_reference() {
    let mut seed = 100;
    for ty in [SynthType::I2s, SynthType::Tq2_0, SynthType::Tq1_0] {
        for (arch, sub) in [("bitnet-b1.58", true), ("bitnet", true), ("bitnet", false)] {
            seed += 1;
            let (bytes, w, x) = synthetic(ty, arch, sub, seed);
            let gguf = parse(&bytes).unwrap();
            let mut model = Model::from_gguf(&gguf, &bytes).unwrap();
            let name = format!("synthetic {ty:?} {arch} sub_norms={sub}");
            // The reference's per-tensor weights are what the file holds.
            assert_eq!(
                ternary_from_gguf(&gguf, &bytes, "blk.0.ffn_down.weight"),
                w.wdown
            );
            compare(&name, &mut model, &w, 0, &x);
        }
    }
}

/// The f16 KV cache changes exactly one thing: attention sees keys and values rounded to
/// f16. So the runner's attention output with an f16 cache must equal, bit for bit, the
/// reference attention over the runner's own queries and its keys and values rounded to
/// f16, on every ISA and 1–3 threads, and the cache must hold exactly those rounded values.
#[test]
fn f16_kv_cache_is_attention_over_rounded_keys_and_values() {
    use bitnet_runner::model::KvType;
    use half::f16;
    let file = GgufFile::open(format!("{MODELS}/tiny-b158-i2s.gguf")).unwrap();
    let mut model = Model::load(&file).unwrap();
    model.set_kv_type(KvType::F16);
    let cfg = block_config(&model);
    let tok = load_tokenizer(file.gguf()).unwrap();
    let text = "The meaning of life is a fool and his money, said the wise old man. ".repeat(4);
    let ids = tok.encode(&text, true).unwrap();
    let tokens = ids.len();
    let hidden = model.config.hidden;
    let kv_dim = cfg.n_head_kv * cfg.head_dim;
    let mut x = vec![0f32; tokens * hidden];
    model.embed(&ids, &mut x).unwrap();
    let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&a| f16::from_f32(a).to_f32()).collect() };
    for isa in Isa::available() {
        for threads in 1..=3 {
            model.set_exec(Exec::new(isa, threads).unwrap());
            let mut state = model.new_state(tokens).unwrap();
            assert_eq!(state.kv_cache().kv_type(), KvType::F16);
            let mut y = x.clone();
            let mut probe = BlockProbe::default();
            model
                .forward_block_probed(0, &mut state, &mut y, 0, &mut probe)
                .unwrap();
            let (k16, v16) = (round(&probe.k), round(&probe.v));
            let kv = state.kv_cache();
            let cached_k: Vec<f32> = (0..tokens).flat_map(|p| kv.key(0, p)).collect();
            let cached_v: Vec<f32> = (0..tokens).flat_map(|p| kv.value(0, p)).collect();
            assert_eq!(cached_k.len(), tokens * kv_dim);
            assert_bits(&format!("{isa}/{threads}: cached k"), &cached_k, &k16);
            assert_bits(&format!("{isa}/{threads}: cached v"), &cached_v, &v16);
            let (_, want) = attention_ref(&cfg, &probe.q, &k16, &v16);
            assert_bits(&format!("{isa}/{threads}: attention"), &probe.attn, &want);
        }
    }
}
