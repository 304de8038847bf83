//! `synth` round trip: write the tiny preset to disk (streaming writer), open it through the
//! memory map, load, tokenize and generate a few tokens, for I2_S and TQ2_0.

use bitnet_runner::gguf::GgufFile;
use bitnet_runner::model::{Model, Numerics, load_tokenizer};
use bitnet_runner::sampler::{Sampler, SamplerConfig};
use bitnet_runner::synth::{SynthSpec, SynthType, write_model};

fn generate(model: &Model<'_>, prompt: &[u32], n: usize, cfg: SamplerConfig) -> Vec<u32> {
    let mut state = model.new_state(prompt.len() + n).unwrap();
    let mut logits = vec![0f32; model.config.vocab_size];
    model
        .forward(&mut state, prompt, Some(&mut logits))
        .unwrap();
    let mut sampler = Sampler::new(cfg);
    let mut hist = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = sampler.sample(&logits, &hist);
        hist.push(t);
        out.push(t);
        model.forward(&mut state, &[t], Some(&mut logits)).unwrap();
    }
    out
}

#[test]
fn synth_tiny_round_trip() {
    for ty in [SynthType::I2s, SynthType::Tq2_0] {
        let path = std::env::temp_dir().join(format!(
            "bitnet-model-synth-{}-{ty:?}.gguf",
            std::process::id()
        ));
        let mut calls = 0;
        let n = write_model(&SynthSpec::tiny(), ty, 9, &path, |done, total| {
            calls += 1;
            assert!(done <= total);
        })
        .unwrap();
        assert!(calls > 0);
        let file = GgufFile::open(&path).unwrap();
        assert_eq!(file.bytes().len() as u64, n);
        let mut model = Model::load(&file).unwrap();
        let tok = load_tokenizer(file.gguf()).unwrap();
        let c = &model.config;
        assert_eq!(
            (
                c.hidden,
                c.n_layer,
                c.n_head,
                c.n_head_kv,
                c.ffn,
                c.vocab_size
            ),
            (256, 4, 8, 4, 512, 1024)
        );

        let prompt = tok.encode("hello world", true).unwrap();
        assert_eq!(prompt[0], 1022, "BOS first");
        assert_eq!(tok.decode(&prompt[1..]).unwrap(), "hello world");
        for numerics in [Numerics::Bitnet, Numerics::F32] {
            model.set_numerics(numerics);
            let cached = model.generate_greedy(&prompt, 6, false).unwrap();
            let full = model.generate_greedy(&prompt, 6, true).unwrap();
            assert_eq!(cached, full, "{ty:?} {numerics:?}: KV cache vs recompute");
            assert!(cached.iter().all(|&t| (t as usize) < 1024));
        }
        // Seeded sampling is reproducible.
        let cfg = SamplerConfig {
            seed: 1234,
            ..SamplerConfig::default()
        };
        let a = generate(&model, &prompt, 8, cfg);
        assert_eq!(a, generate(&model, &prompt, 8, cfg), "{ty:?}: same seed");
        println!("{ty:?}: {:?}", tok.decode(&a).unwrap());
        drop(model);
        drop(file);
        std::fs::remove_file(&path).ok();
    }
}

/// The 2B-4T preset's shapes are right without writing 1.2 GB: plan and metadata only.
#[test]
fn synth_2b4t_plan_has_real_shapes() {
    use bitnet_runner::gguf::GgmlType;
    use bitnet_runner::synth::tensor_plan;
    let spec = SynthSpec::b2b4t();
    let plan = tensor_plan(&spec, SynthType::I2s);
    assert_eq!(plan.len(), 2 + 30 * 11);
    let i2s = plan
        .iter()
        .filter(|t| t.ggml_type == GgmlType::I2_S)
        .count();
    assert_eq!(i2s, 210);
    let find = |n: &str| plan.iter().find(|t| t.name == n).unwrap();
    assert_eq!(find("token_embd.weight").dims, vec![2560, 128256]);
    assert_eq!(find("token_embd.weight").ggml_type, GgmlType::F16);
    assert_eq!(find("blk.29.attn_k.weight").dims, vec![2560, 640]);
    assert_eq!(find("blk.0.ffn_down.weight").dims, vec![6912, 2560]);
    assert_eq!(find("blk.0.ffn_down.weight").n_bytes, 6912 * 2560 / 4 + 32);
    assert!(plan.iter().all(|t| t.name != "output.weight"), "tied head");
}
