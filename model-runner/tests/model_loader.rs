//! Model loader edge cases on GgufWriter-made files: every rejection names the tensor or
//! metadata key at fault; valid variants (the `bitnet` architecture without sub-norms, an
//! untied `output.weight`) load and run.

use bitnet_runner::gguf::{GgmlType, Gguf, GgufFile, GgufWriter, Value, parse};
use bitnet_runner::model::{Arch, Model, ModelError, Numerics, load_tokenizer};
use bitnet_runner::synth::{SynthSpec, SynthType, metadata, tensor_bytes, tensor_plan};

type Tensor = (String, Vec<u64>, GgmlType, Vec<u8>);

/// The synthetic tiny model's metadata and tensors, to be edited by each case.
fn parts(ty: SynthType) -> (Vec<(String, Value)>, Vec<Tensor>) {
    let spec = SynthSpec::tiny();
    let plan = tensor_plan(&spec, ty);
    let tensors = plan
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.name.clone(),
                t.dims.clone(),
                t.ggml_type,
                tensor_bytes(&plan, i, 11),
            )
        })
        .collect();
    (metadata(&spec, ty), tensors)
}

fn build(meta: &[(String, Value)], tensors: &[Tensor]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in meta {
        w.add(k.clone(), v.clone()).unwrap();
    }
    for (name, dims, ty, data) in tensors {
        w.add_tensor(name.clone(), dims, *ty, data.as_slice())
            .unwrap();
    }
    w.to_bytes().unwrap()
}

fn load_err(bytes: &[u8]) -> ModelError {
    let gguf: Gguf = parse(bytes).expect("the writer's output parses");
    match Model::from_gguf(&gguf, bytes) {
        Ok(_) => panic!("model loaded, expected an error"),
        Err(e) => e,
    }
}

fn set_meta(meta: &mut [(String, Value)], key: &str, v: Value) {
    meta.iter_mut().find(|(k, _)| k == key).expect(key).1 = v;
}

fn replace_tensor(tensors: &mut [Tensor], name: &str, dims: &[u64], ty: GgmlType) {
    let t = tensors.iter_mut().find(|t| t.0 == name).expect(name);
    let n = ty.n_bytes(dims).unwrap() as usize;
    // Valid-looking bytes for the type: I2_S needs a finite scale after the codes.
    let mut data = vec![0x55u8; n];
    if ty == GgmlType::I2_S {
        data[n - 32..].fill(0);
        data[n - 32..n - 28].copy_from_slice(&0.5f32.to_le_bytes());
    }
    if ty == GgmlType::F16 || ty == GgmlType::F32 {
        data.fill(0);
    }
    *t = (name.to_owned(), dims.to_vec(), ty, data);
}

fn assert_names(e: &ModelError, what: &str) {
    let msg = e.to_string();
    assert!(msg.contains(what), "error does not name '{what}': {msg}");
    println!("{what}: {msg}");
}

#[test]
fn valid_synthetic_models_load() {
    for ty in [SynthType::I2s, SynthType::Tq2_0] {
        let (m, t) = parts(ty);
        let bytes = build(&m, &t);
        let gguf = parse(&bytes).unwrap();
        let model = Model::from_gguf(&gguf, &bytes).unwrap();
        assert_eq!(model.config.arch, Arch::BitnetB158);
        assert_eq!(model.config.n_layer, 4);
        assert!(model.weights.output.is_none(), "tied head");
    }
}

#[test]
fn missing_tensor_is_named() {
    let (m, mut t) = parts(SynthType::I2s);
    t.retain(|t| t.0 != "blk.2.ffn_up.weight");
    let e = load_err(&build(&m, &t));
    assert!(matches!(e, ModelError::MissingTensor { .. }), "{e}");
    assert_names(&e, "blk.2.ffn_up.weight");

    let (m, mut t) = parts(SynthType::I2s);
    t.retain(|t| t.0 != "token_embd.weight");
    assert_names(&load_err(&build(&m, &t)), "token_embd.weight");

    // bitnet-b1.58 requires the sub-norms.
    let (m, mut t) = parts(SynthType::Tq2_0);
    t.retain(|t| t.0 != "blk.3.ffn_sub_norm.weight");
    assert_names(&load_err(&build(&m, &t)), "blk.3.ffn_sub_norm.weight");
}

#[test]
fn wrong_shape_is_named() {
    let (m, mut t) = parts(SynthType::I2s);
    replace_tensor(&mut t, "blk.1.attn_k.weight", &[256, 256], GgmlType::I2_S);
    let e = load_err(&build(&m, &t));
    assert!(matches!(e, ModelError::TensorShape { .. }), "{e}");
    assert_names(&e, "blk.1.attn_k.weight");
    assert_names(&e, "[256, 128]");

    // Transposed projection.
    let (m, mut t) = parts(SynthType::Tq2_0);
    replace_tensor(
        &mut t,
        "blk.0.ffn_down.weight",
        &[256, 512],
        GgmlType::TQ2_0,
    );
    assert_names(&load_err(&build(&m, &t)), "blk.0.ffn_down.weight");

    // Norm of the wrong width.
    let (m, mut t) = parts(SynthType::I2s);
    replace_tensor(&mut t, "blk.2.ffn_sub_norm.weight", &[256], GgmlType::F32);
    assert_names(&load_err(&build(&m, &t)), "blk.2.ffn_sub_norm.weight");

    // Embedding with the wrong vocabulary.
    let (m, mut t) = parts(SynthType::I2s);
    replace_tensor(&mut t, "token_embd.weight", &[256, 1000], GgmlType::F16);
    assert_names(&load_err(&build(&m, &t)), "token_embd.weight");
}

#[test]
fn wrong_type_is_named() {
    let (m, mut t) = parts(SynthType::I2s);
    replace_tensor(&mut t, "blk.0.attn_q.weight", &[256, 256], GgmlType::F16);
    let e = load_err(&build(&m, &t));
    assert!(matches!(e, ModelError::TensorType { .. }), "{e}");
    assert_names(&e, "blk.0.attn_q.weight");
    assert_names(&e, "F16");

    let (m, mut t) = parts(SynthType::I2s);
    replace_tensor(&mut t, "output_norm.weight", &[256], GgmlType::Q8_0);
    assert_names(&load_err(&build(&m, &t)), "output_norm.weight");

    let (m, mut t) = parts(SynthType::I2s);
    replace_tensor(&mut t, "token_embd.weight", &[256, 1024], GgmlType::Q4_0);
    assert_names(&load_err(&build(&m, &t)), "token_embd.weight");
}

#[test]
fn bad_i2s_scale_is_named() {
    let (m, mut t) = parts(SynthType::I2s);
    let w = t.iter_mut().find(|t| t.0 == "blk.1.attn_v.weight").unwrap();
    let n = w.3.len();
    w.3[n - 32..n - 28].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = load_err(&build(&m, &t));
    assert!(matches!(e, ModelError::TensorData { .. }), "{e}");
    assert_names(&e, "blk.1.attn_v.weight");
}

#[test]
fn unsupported_arch_is_named() {
    let (mut m, t) = parts(SynthType::I2s);
    set_meta(&mut m, "general.architecture", "llama".into());
    let e = load_err(&build(&m, &t));
    assert!(matches!(e, ModelError::UnsupportedArch { .. }), "{e}");
    assert_names(&e, "llama");
    assert_names(&e, "general.architecture");

    let (mut m, t) = parts(SynthType::I2s);
    m.retain(|(k, _)| k != "general.architecture");
    assert_names(&load_err(&build(&m, &t)), "general.architecture");
}

#[test]
fn missing_or_bad_key_is_named() {
    for key in [
        "bitnet-b1.58.block_count",
        "bitnet-b1.58.embedding_length",
        "bitnet-b1.58.feed_forward_length",
        "bitnet-b1.58.attention.head_count",
        "bitnet-b1.58.attention.layer_norm_rms_epsilon",
        "bitnet-b1.58.context_length",
    ] {
        let (mut m, t) = parts(SynthType::I2s);
        m.retain(|(k, _)| k != key);
        assert_names(&load_err(&build(&m, &t)), key);
    }
    let cases: [(&str, Value); 6] = [
        ("bitnet-b1.58.attention.head_count", 7u32.into()),
        ("bitnet-b1.58.attention.head_count_kv", 3u32.into()),
        ("bitnet-b1.58.rope.dimension_count", 16u32.into()),
        (
            "bitnet-b1.58.attention.layer_norm_rms_epsilon",
            (-1.0f32).into(),
        ),
        ("bitnet-b1.58.block_count", "four".into()),
        ("bitnet-b1.58.vocab_size", 1000u32.into()),
    ];
    for (key, v) in cases {
        let (mut m, t) = parts(SynthType::I2s);
        set_meta(&mut m, key, v);
        let e = load_err(&build(&m, &t));
        // vocab_size 1000 disagrees with the 1024 tokenizer tokens (named instead).
        let named = if key.ends_with("vocab_size") {
            "tokenizer.ggml.tokens"
        } else {
            key
        };
        assert_names(&e, named);
    }
    // A block count larger than the file's blocks: the first missing tensor is named.
    let (mut m, t) = parts(SynthType::I2s);
    set_meta(&mut m, "bitnet-b1.58.block_count", 5u32.into());
    assert_names(&load_err(&build(&m, &t)), "blk.4.attn_norm.weight");
}

#[test]
fn tokenizer_key_errors_are_named() {
    let (mut m, t) = parts(SynthType::I2s);
    m.retain(|(k, _)| k != "tokenizer.ggml.model");
    let bytes = build(&m, &t);
    let gguf = parse(&bytes).unwrap();
    Model::from_gguf(&gguf, &bytes).expect("weights do not need the tokenizer");
    let e = load_tokenizer(&gguf).unwrap_err();
    assert_names(&e, "tokenizer.ggml.model");
}

/// The `bitnet` architecture: SiLU FFN, sub-norms optional, and an untied `output.weight`.
#[test]
fn bitnet_arch_without_sub_norms_and_untied_head() {
    let (mut m, mut t) = parts(SynthType::I2s);
    for (k, _) in m.iter_mut() {
        if let Some(rest) = k.strip_prefix("bitnet-b1.58.") {
            *k = format!("bitnet.{rest}");
        }
    }
    set_meta(&mut m, "general.architecture", "bitnet".into());
    t.retain(|t| !t.0.contains("sub_norm"));
    let mut head = vec![0u8; 256 * 1024 * 4];
    for (i, c) in head.chunks_exact_mut(4).enumerate() {
        c.copy_from_slice(&(((i % 7) as f32 - 3.0) * 0.01).to_le_bytes());
    }
    t.push(("output.weight".into(), vec![256, 1024], GgmlType::F32, head));
    let bytes = build(&m, &t);
    let gguf = parse(&bytes).unwrap();
    let mut model = Model::from_gguf(&gguf, &bytes).unwrap();
    assert_eq!(model.config.arch, Arch::Bitnet);
    assert!(model.weights.output.is_some());
    assert!(
        model
            .weights
            .layers
            .iter()
            .all(|l| l.attn_sub_norm.is_none())
    );
    for numerics in [Numerics::Bitnet, Numerics::F32] {
        model.set_numerics(numerics);
        let ids = model.generate_greedy(&[1022, 40, 41], 4, false).unwrap();
        assert_eq!(
            ids,
            model.generate_greedy(&[1022, 40, 41], 4, true).unwrap()
        );
    }
}

#[test]
fn run_time_errors_are_clear() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny-b158-i2s.gguf");
    let file = GgufFile::open(path).unwrap();
    let model = Model::load(&file).unwrap();
    let mut state = model.new_state(4).unwrap();
    let e = model
        .forward(&mut state, &[1, 2, 3, 4, 5], None)
        .unwrap_err();
    assert!(matches!(e, ModelError::ContextOverflow { .. }), "{e}");
    let e = model.forward(&mut state, &[1, 5000], None).unwrap_err();
    assert_names(&e, "5000");
    assert!(model.new_state(257).is_err(), "beyond context_length");
    let e = model.forward(&mut state, &[], None).unwrap_err();
    assert!(matches!(e, ModelError::NoTokens));
    // A wrong-length logits buffer is an error, not a panic.
    assert!(
        model
            .forward(&mut state, &[1], Some(&mut [0f32; 3]))
            .is_err()
    );
}

#[test]
fn file_level_errors() {
    let dir = std::env::temp_dir();
    let e = GgufFile::open(dir.join("bitnet-no-such-model.gguf")).unwrap_err();
    assert!(e.to_string().contains("bitnet-no-such-model.gguf"), "{e}");
    let junk = dir.join(format!("bitnet-loader-junk-{}.gguf", std::process::id()));
    std::fs::write(&junk, b"this is not a gguf file at all").unwrap();
    let e = GgufFile::open(&junk).unwrap_err();
    std::fs::remove_file(&junk).ok();
    assert!(e.to_string().contains("not a GGUF file"), "{e}");
}
