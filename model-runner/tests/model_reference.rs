//! The tiny real models (`models/README.md`) reproduced end to end: tokenization, the
//! last-position logits of the numpy reference forward, and 32 greedy tokens on every ISA
//! with 1 and 2 threads, with the KV cache and with full recomputation.
//!
//! ## The logit bound
//!
//! The runner mirrors the reference numerics step by step (f32 squares summed in f64 for
//! RMSNorm, f64 RoPE angles, per-token int8 absmax activations with round-half-even, exact
//! integer dot products, `(dot / a) * w_scale`). What still differs is the order of f32
//! accumulation in the attention dot products, the softmax sum, `p · v` and the tied output
//! head (numpy uses BLAS), plus, for the TQ2_0 file, the kernels' epilogue
//! `Σ_blocks sumi_b · (d_x · d_w)` instead of `(dot / a) · w`. Each is a relative error of a
//! few units of 2⁻²⁴ on O(1)–O(10) quantities through 4 layers, so while every int8 rounding
//! decision agrees the logits (magnitude ≤ ~10) agree to ~1e-5: [`EXACT_BOUND`] = 1e-4
//! (the README's "~1e-4 when the numerics are mirrored exactly"). Measured: ≤ 1e-5.
//!
//! A perturbation of one ulp flips an int8 rounding when `x · a` sits within one ulp of a .5
//! boundary. That happens once here: in the TQ2_0 file (whose activations differ from the
//! I2_S file's through the f16-rounded scales), prompt 0, layer 0, the input of
//! `attn_output` at token 6 has `x · a = 33.499996`, one ulp below 33.5; the reference's BLAS
//! order lands on 33.5 and rounds to 34. (Verified: with an exact `(dot / a) · w` epilogue,
//! or with f64 attention accumulation, the runner still rounds to 33, so it is the
//! reference's summation order, not a runner error.) One flip moves one activation by
//! `1/a = amax/127` and the last logits by 4.1e-2; the README saw 1.8e-2 for a flip between
//! numpy and JAX. The TQ2_0 file is therefore held to [`FLIP_BOUND`] = 0.1 ("a few 1e-2",
//! room for two such flips), and, to show the flip changes nothing that matters, every
//! model must also reproduce the stored top-5 ids and all 32 greedy tokens exactly. The
//! I2_S file (the main model) must meet [`EXACT_BOUND`]. Measured differences are printed
//! (`cargo test --release -p bitnet-runner --test model_reference -- --nocapture`).

use bitnet_kernels::{Exec, Isa, TernaryMatrix, Tq1_0, Tq2_0};
use bitnet_runner::gguf::{GgmlType, GgufFile, GgufWriter, parse};
use bitnet_runner::model::{Model, load_tokenizer};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
/// Agreement when every int8 rounding decision matches (see the module docs).
const EXACT_BOUND: f32 = 1e-4;
/// Agreement allowing an int8 rounding flip caused by a one-ulp difference.
const FLIP_BOUND: f32 = 0.1;

struct Prompt {
    text: String,
    token_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    top5: Vec<u32>,
    logits: Vec<f32>,
}

fn reference(stem: &str) -> Vec<Prompt> {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/{stem}.ref.json")).unwrap())
            .unwrap();
    let bin = std::fs::read(format!("{DIR}/{stem}.ref.bin")).unwrap();
    let n_vocab = json["n_vocab"].as_u64().unwrap() as usize;
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| Prompt {
            text: p["prompt"].as_str().unwrap().to_owned(),
            token_ids: ids(&p["token_ids"]),
            greedy_ids: ids(&p["greedy_ids"]),
            top5: p["last_logits_top5"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e[0].as_u64().unwrap() as u32)
                .collect(),
            logits: bin[i * n_vocab * 4..(i + 1) * n_vocab * 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
        .collect()
}

/// `max_i |a_i - b_i|` over the common length.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn top_k(logits: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    idx.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

fn check_model(stem: &str, bound: f32) {
    let file = GgufFile::open(format!("{DIR}/{stem}.gguf")).unwrap();
    let mut model = Model::load(&file).unwrap();
    let tok = load_tokenizer(file.gguf()).unwrap();
    for p in reference(stem) {
        let ids = tok.encode(&p.text, true).unwrap();
        assert_eq!(ids, p.token_ids, "{stem}: tokens of {:?}", p.text);

        for isa in Isa::available() {
            for threads in [1, 2] {
                model.set_exec(Exec::new(isa, threads).unwrap());
                let mut state = model.new_state(ids.len()).unwrap();
                let mut logits = vec![0f32; model.config.vocab_size];
                model.forward(&mut state, &ids, Some(&mut logits)).unwrap();
                let max_diff = max_abs_diff(&logits, &p.logits);
                println!(
                    "{stem} {:?} isa={isa} threads={threads}: max |logit - ref| = {max_diff:.3e}",
                    p.text
                );
                assert!(
                    max_diff <= bound,
                    "{stem} {:?} {isa}/{threads}: max logit diff {max_diff} > {bound}",
                    p.text
                );
                assert_eq!(top_k(&logits, 5), p.top5, "{stem} {:?}: top-5", p.text);

                let cached = model.generate_greedy(&ids, 32, false).unwrap();
                assert_eq!(
                    cached, p.greedy_ids,
                    "{stem} {:?} {isa}/{threads}: greedy (KV cache)",
                    p.text
                );
            }
        }
        // Full recomputation at every step (as the reference did), once per prompt.
        model.set_exec(Exec::best());
        let full = model.generate_greedy(&ids, 32, true).unwrap();
        assert_eq!(
            full, p.greedy_ids,
            "{stem} {:?}: greedy (full recompute)",
            p.text
        );
    }
}

#[test]
fn tiny_i2s_matches_reference() {
    check_model("tiny-b158-i2s", EXACT_BOUND);
}

#[test]
fn tiny_tq2_matches_reference() {
    check_model("tiny-b158-tq2", FLIP_BOUND);
}

/// The tiny TQ2_0 model repacked as TQ1_0: the same ternary codes (a trained model never
/// uses TQ2_0's code 3) and the same f16 block scales, so in llama.cpp's Q8_K numerics it
/// computes exactly what the TQ2_0 file computes. Its logits must equal the TQ2_0 file's
/// bit for bit on every ISA with 1 and 2 threads (prompt through the prefill tiles, decode
/// through the rows kernels), so it meets the same reference: top-5 and 32 greedy tokens.
/// This runs the TQ1_0 kernels end to end on trained weights.
#[test]
fn tiny_tq2_repacked_as_tq1_gives_the_same_logits() {
    let file = GgufFile::open(format!("{DIR}/tiny-b158-tq2.gguf")).unwrap();
    let g = file.gguf();
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata.iter() {
        let v = match k {
            "general.file_type" => bitnet_runner::gguf::Value::U32(36),
            _ => v.clone(),
        };
        w.add(k, v).unwrap();
    }
    let mut repacked = 0;
    for t in &g.tensors {
        let data = file.tensor_data(t);
        if t.ggml_type != GgmlType::TQ2_0 {
            w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, data)
                .unwrap();
            continue;
        }
        let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
        let m = Tq2_0::new(rows, cols, data).unwrap();
        let mut codes = vec![0u8; rows * cols];
        m.unpack_codes(&mut codes).unwrap();
        assert!(codes.iter().all(|&c| c < 3), "{}: code 3", t.name);
        let scales: Vec<f32> = data
            .chunks_exact(66)
            .map(|b| half::f16::from_le_bytes([b[64], b[65]]).to_f32())
            .collect();
        let tq1 = Tq1_0::from_codes(&codes, &scales, rows, cols).unwrap();
        w.add_tensor(
            t.name.clone(),
            &t.dims,
            GgmlType::TQ1_0,
            tq1.bytes().to_vec(),
        )
        .unwrap();
        repacked += 1;
    }
    assert_eq!(repacked, 7 * 4, "every projection of the 4 layers");
    let bytes = w.to_bytes().unwrap();
    let gguf = parse(&bytes).unwrap();
    let mut tq1 = Model::from_gguf(&gguf, &bytes).unwrap();
    let mut tq2 = Model::load(&file).unwrap();
    let tok = load_tokenizer(g).unwrap();
    let v = tq2.config.vocab_size;
    for p in reference("tiny-b158-tq2") {
        let ids = tok.encode(&p.text, true).unwrap();
        for isa in Isa::available() {
            for threads in [1, 2] {
                let mut logits = [vec![0f32; v], vec![0f32; v]];
                for (m, l) in [&mut tq2, &mut tq1].into_iter().zip(&mut logits) {
                    m.set_exec(Exec::new(isa, threads).unwrap());
                    let mut state = m.new_state(ids.len()).unwrap();
                    m.forward(&mut state, &ids, Some(l)).unwrap();
                }
                let same = logits[0]
                    .iter()
                    .zip(&logits[1])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{:?} {isa}/{threads}: TQ1_0 logits differ", p.text);
                assert_eq!(top_k(&logits[1], 5), p.top5, "{:?}: top-5", p.text);
                let greedy = tq1.generate_greedy(&ids, 32, false).unwrap();
                assert_eq!(greedy, p.greedy_ids, "{:?} {isa}/{threads}", p.text);
            }
        }
    }
}

/// A prompt longer than one batch (chunks of `DEFAULT_UBATCH`) gives the same logits as
/// feeding the same tokens one at a time through the KV cache, and as one batch at once
/// split differently.
#[test]
fn chunked_prompt_equals_token_by_token() {
    use bitnet_runner::model::DEFAULT_UBATCH;
    let file = GgufFile::open(format!("{DIR}/tiny-b158-i2s.gguf")).unwrap();
    let mut model = Model::load(&file).unwrap();
    model.set_exec(Exec::best());
    let tok = load_tokenizer(file.gguf()).unwrap();
    let text = "The meaning of life is a fool and his money. ".repeat(20);
    let mut ids = tok.encode(&text, true).unwrap();
    ids.truncate(DEFAULT_UBATCH + 37);
    assert_eq!(
        ids.len(),
        DEFAULT_UBATCH + 37,
        "prompt long enough for two chunks"
    );
    let v = model.config.vocab_size;
    let mut batched = vec![0f32; v];
    let mut state = model.new_state(ids.len()).unwrap();
    model.forward(&mut state, &ids, Some(&mut batched)).unwrap();
    assert_eq!(state.pos(), ids.len());

    let mut single = vec![0f32; v];
    let mut state = model.new_state(ids.len()).unwrap();
    for &id in &ids {
        model.forward(&mut state, &[id], Some(&mut single)).unwrap();
    }
    let mut split = vec![0f32; v];
    let mut state = model.new_state(ids.len()).unwrap();
    model.forward(&mut state, &ids[..50], None).unwrap();
    model
        .forward(&mut state, &ids[50..], Some(&mut split))
        .unwrap();
    println!(
        "chunked vs token-by-token: {:.3e}, vs split: {:.3e}",
        max_abs_diff(&batched, &single),
        max_abs_diff(&batched, &split)
    );
    // Every (row, token) product is computed by the same code whatever the batch, and the
    // rest of the graph is per token: the results are identical.
    assert_eq!(batched, single);
    assert_eq!(batched, split);

    // This prompt's attention (~7M multiply-adds per layer) is split across threads by
    // (token, head): any thread count gives the same bits.
    for threads in [2, 3] {
        model.set_exec(Exec::new(Isa::best(), threads).unwrap());
        let mut par = vec![0f32; v];
        let mut state = model.new_state(ids.len()).unwrap();
        model.forward(&mut state, &ids, Some(&mut par)).unwrap();
        assert_eq!(batched, par, "{threads} threads");
    }
}

/// An f16 KV cache (`--kv f16`): attention reads the halves through `dot_cols_f16`, which
/// widens them as it loads (its bits against the plain loop are the kernels' unit test).
/// Here, end to end on the tiny model: on every ISA, 2 threads give the 1-thread bits over
/// a prompt of two batches (keys in several tiles, values in long slabs), and every
/// reference prompt keeps its top-5 ids and its 32 greedy tokens through the cache.
///
/// Why not the reference's logits within [`EXACT_BOUND`]: f16 keys and values carry a
/// relative rounding of up to 2⁻¹¹, which reaches the logits through the scores and the
/// value sums and may flip int8 roundings of the attention output. Nor bits across ISAs:
/// the f32 head and norms may sum in another order per ISA (see `Isa`).
#[test]
fn f16_kv_cache_keeps_the_reference_tokens_on_every_isa() {
    use bitnet_runner::model::{DEFAULT_UBATCH, KvType};
    let file = GgufFile::open(format!("{DIR}/tiny-b158-i2s.gguf")).unwrap();
    let mut model = Model::load(&file).unwrap();
    model.set_kv_type(KvType::F16);
    let tok = load_tokenizer(file.gguf()).unwrap();
    let v = model.config.vocab_size;
    let text = "The meaning of life is a fool and his money. ".repeat(20);
    let mut long = tok.encode(&text, true).unwrap();
    long.truncate(DEFAULT_UBATCH + 37);
    let run = |model: &Model, ids: &[u32]| {
        let mut logits = vec![0f32; v];
        let mut state = model.new_state(ids.len()).unwrap();
        model.forward(&mut state, ids, Some(&mut logits)).unwrap();
        logits
    };
    let prompts = reference("tiny-b158-i2s");
    for isa in Isa::available() {
        model.set_exec(Exec::new(isa, 1).unwrap());
        let one = run(&model, &long);
        model.set_exec(Exec::new(isa, 2).unwrap());
        let two = run(&model, &long);
        let bits = |l: &[f32]| l.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert!(bits(&one) == bits(&two), "{isa}: 2 threads, long prompt");
        for threads in [1, 2] {
            model.set_exec(Exec::new(isa, threads).unwrap());
            for p in &prompts {
                let ids = tok.encode(&p.text, true).unwrap();
                let logits = run(&model, &ids);
                let max_diff = max_abs_diff(&logits, &p.logits);
                println!(
                    "f16 KV {:?} {isa}/{threads}: max |logit - ref| = {max_diff:.3e}",
                    p.text
                );
                assert_eq!(
                    top_k(&logits, 5),
                    p.top5,
                    "{:?} {isa}/{threads}: top-5",
                    p.text
                );
                let got = model.generate_greedy(&ids, 32, false).unwrap();
                assert_eq!(got, p.greedy_ids, "{:?} {isa}/{threads}: greedy", p.text);
            }
        }
    }
}

/// Stage timing (`State::time_stages`) only reads the clock: the logits are the same bits
/// with it on; the stages it reports are all there and fit inside the whole passes; off,
/// it reports nothing.
#[test]
fn stage_timing_changes_nothing() {
    let file = GgufFile::open(format!("{DIR}/tiny-b158-i2s.gguf")).unwrap();
    let model = Model::load(&file).unwrap();
    let ids = [1u32, 450, 593, 310, 834, 338];
    let v = model.config.vocab_size;
    let run = |timing: bool| {
        let mut state = model.new_state(ids.len() + 1).unwrap();
        state.time_stages(timing);
        let mut logits = vec![0f32; v];
        model.forward(&mut state, &ids, Some(&mut logits)).unwrap();
        model
            .forward(&mut state, &[ids[1]], Some(&mut logits))
            .unwrap();
        let bits: Vec<u32> = logits.iter().map(|x| x.to_bits()).collect();
        (bits, state.stage_times())
    };
    let (plain, none) = run(false);
    let (timed, t) = run(true);
    assert!(plain == timed, "logits with stage timing");
    assert_eq!(none, None);
    let t = t.unwrap();
    let parts = t.projections + t.attention + t.norms + t.head;
    assert!(!t.projections.is_zero() && !t.attention.is_zero() && !t.norms.is_zero());
    assert!(!t.head.is_zero() && parts <= t.forward, "{t:?}");
    assert_eq!(t.rest(), t.forward - parts);
}
