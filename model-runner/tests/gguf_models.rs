//! The two real tiny BitNet b1.58 GGUF files (see models/README.md): parse, check
//! metadata and tensor layout, borrow data from the map, and rewrite byte-identically.

use std::path::PathBuf;

use bitnet_runner::gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value, parse};

const ARCH: &str = "bitnet-b1.58";

fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

fn open(name: &str) -> GgufFile {
    GgufFile::open(model(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (name, ne, is_projection) in file order, per the README table.
fn expected_tensors() -> Vec<(String, Vec<u64>, bool)> {
    let mut v = vec![
        ("token_embd.weight".to_owned(), vec![256, 1024], false),
        ("output_norm.weight".to_owned(), vec![256], false),
    ];
    for b in 0..4 {
        let n = |s: &str| format!("blk.{b}.{s}.weight");
        v.push((n("attn_norm"), vec![256], false));
        v.push((n("attn_sub_norm"), vec![256], false));
        v.push((n("ffn_norm"), vec![256], false));
        v.push((n("ffn_sub_norm"), vec![512], false));
        v.push((n("attn_q"), vec![256, 256], true));
        v.push((n("attn_k"), vec![256, 128], true));
        v.push((n("attn_v"), vec![256, 128], true));
        v.push((n("attn_output"), vec![256, 256], true));
        v.push((n("ffn_gate"), vec![256, 512], true));
        v.push((n("ffn_up"), vec![256, 512], true));
        v.push((n("ffn_down"), vec![512, 256], true));
    }
    v
}

fn check_model(name: &str, file_len: usize, file_type: u32, proj: GgmlType) {
    let file = open(name);
    let g = file.gguf();
    assert_eq!(file.bytes().len(), file_len);
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 32);
    assert_eq!(g.data_offset % 32, 0);
    assert_eq!(g.metadata.len(), 24);
    assert_eq!(g.tensors.len(), 46);

    let md = &g.metadata;
    let stem = name.trim_end_matches(".gguf");
    assert_eq!(g.architecture().unwrap(), ARCH);
    assert_eq!(md.get_str("general.name").unwrap(), stem);
    assert_eq!(md.get_u32("general.file_type").unwrap(), file_type);
    assert_eq!(md.get_u32("general.quantization_version").unwrap(), 2);
    assert_eq!(md.get("general.alignment"), Some(&Value::U32(32)));
    for (key, want) in [
        ("vocab_size", 1024),
        ("context_length", 256),
        ("embedding_length", 256),
        ("block_count", 4),
        ("feed_forward_length", 512),
        ("rope.dimension_count", 32),
        ("attention.head_count", 8),
        ("attention.head_count_kv", 4),
    ] {
        assert_eq!(md.get_u32(&format!("{ARCH}.{key}")).unwrap(), want, "{key}");
    }
    let eps = md
        .get_f32(&format!("{ARCH}.attention.layer_norm_rms_epsilon"))
        .unwrap();
    assert_eq!(eps, 1e-5_f32);
    assert_eq!(
        md.get_f32(&format!("{ARCH}.rope.freq_base")).unwrap(),
        10000.0
    );
    assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), "llama-bpe");
    let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 1024);
    assert_eq!(&tokens[..3], ["!", "\"", "#"]);
    assert_eq!(tokens[1022], "<|begin_of_text|>");
    assert_eq!(tokens[1023], "<|end_of_text|>");
    let types = md.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(types.len(), 1024);
    assert!(types[..1022].iter().all(|&t| t == 1));
    assert_eq!(&types[1022..], [3, 3]);
    let merges = md.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len(), 766);
    assert_eq!(merges[0], "Ġ t");
    assert_eq!(md.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 1022);
    assert_eq!(md.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 1023);
    assert!(md.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!md.get_bool("tokenizer.ggml.add_eos_token").unwrap());

    let map = file.bytes().as_ptr_range();
    let mut prev_end = 0;
    for (info, (want_name, want_dims, is_proj)) in g.tensors.iter().zip(expected_tensors()) {
        assert_eq!(info.name, want_name);
        assert_eq!(info.dims, want_dims, "{want_name}");
        let n = info.n_elements();
        let (ty, n_bytes) = match (is_proj, info.dims.len()) {
            (true, _) if proj == GgmlType::I2_S => (proj, n / 4 + 32),
            (true, _) => (proj, n / 256 * 66),
            (false, 2) => (GgmlType::F16, n * 2),
            (false, _) => (GgmlType::F32, n * 4),
        };
        assert_eq!(info.ggml_type, ty, "{want_name}");
        assert_eq!(info.n_bytes, n_bytes, "{want_name}");
        assert_eq!(info.offset % 32, 0);
        assert!(
            info.offset >= prev_end,
            "{want_name} overlaps its predecessor"
        );
        prev_end = info.end();

        let (same, data) = file.tensor(&info.name).unwrap();
        assert_eq!(same, info);
        assert_eq!(data.len() as u64, n_bytes);
        // Borrowed from the map, at data_offset + offset: no copy.
        let start = unsafe_free_offset(file.bytes(), data);
        assert_eq!(start, g.data_offset + info.offset);
        assert!(map.start <= data.as_ptr() && data.as_ptr_range().end <= map.end);
        assert!(std::ptr::eq(data, file.tensor_data(info)));

        if ty == GgmlType::I2_S {
            // Scale tail: f32 at n/4 then 28 zero bytes.
            let q = (n / 4) as usize;
            let scale = f32::from_le_bytes(data[q..q + 4].try_into().unwrap());
            assert!(
                scale.is_finite() && scale > 0.0,
                "{want_name} scale {scale}"
            );
            assert!(data[q + 4..].iter().all(|&b| b == 0));
        }
    }
    // The last tensor ends exactly at the end of the file.
    assert_eq!(g.data_offset + prev_end, file_len as u64);
    assert!(matches!(
        file.tensor("output.weight"),
        Err(GgufError::TensorNotFound { name }) if name == "output.weight"
    ));
    assert_eq!(file.tensors().len(), 46);
}

/// Byte offset of `inner` within `outer` (both slices of the same map).
fn unsafe_free_offset(outer: &[u8], inner: &[u8]) -> u64 {
    (inner.as_ptr() as usize - outer.as_ptr() as usize) as u64
}

#[test]
fn i2s_model_parses_with_readme_metadata_and_layout() {
    check_model("tiny-b158-i2s.gguf", 1_165_824, 40, GgmlType::I2_S);
}

#[test]
fn tq2_model_parses_with_readme_metadata_and_layout() {
    check_model("tiny-b158-tq2.gguf", 1_183_360, 37, GgmlType::TQ2_0);
}

#[test]
fn both_models_have_identical_headers_except_types_and_names() {
    let a = open("tiny-b158-i2s.gguf");
    let b = open("tiny-b158-tq2.gguf");
    assert_eq!(a.gguf().data_offset, 29_312);
    assert_eq!(a.gguf().data_offset, b.gguf().data_offset);
    for (ta, tb) in a.gguf().tensors.iter().zip(&b.gguf().tensors) {
        assert_eq!((&ta.name, &ta.dims), (&tb.name, &tb.dims));
    }
    // Non-projection tensors hold the same bytes in both files.
    for name in [
        "token_embd.weight",
        "output_norm.weight",
        "blk.3.ffn_sub_norm.weight",
    ] {
        assert_eq!(
            a.tensor(name).unwrap().1,
            b.tensor(name).unwrap().1,
            "{name}"
        );
    }
}

fn assert_rewrite_identical(name: &str) {
    let file = open(name);
    let original = std::fs::read(model(name)).unwrap();
    let writer = GgufWriter::from_gguf(file.gguf(), file.bytes()).unwrap();
    assert_eq!(writer.alignment(), 32);
    assert_eq!(writer.encoded_len(), original.len() as u64);
    let rebuilt = writer.to_bytes().unwrap();
    assert_eq!(rebuilt.len(), original.len());
    if let Some(i) = rebuilt.iter().zip(&original).position(|(a, b)| a != b) {
        panic!("{name}: rewrite differs first at byte {i}");
    }
    // And through a file.
    let dir = std::env::temp_dir().join(format!("gguf_models_{}_{name}", std::process::id()));
    writer.write_file(&dir).unwrap();
    let from_disk = std::fs::read(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert!(from_disk == original, "{name}: write_file output differs");
    assert_eq!(&parse(&rebuilt).unwrap(), file.gguf());
}

#[test]
fn i2s_model_rewrites_byte_identically() {
    assert_rewrite_identical("tiny-b158-i2s.gguf");
}

#[test]
fn tq2_model_rewrites_byte_identically() {
    assert_rewrite_identical("tiny-b158-tq2.gguf");
}

#[test]
fn pure_parse_of_file_bytes_equals_mapped_parse() {
    let bytes = std::fs::read(model("tiny-b158-i2s.gguf")).unwrap();
    let g = parse(&bytes).unwrap();
    let file = open("tiny-b158-i2s.gguf");
    assert_eq!(&g, file.gguf());
    let info = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(g.tensor_data(&bytes, info).unwrap(), file.tensor_data(info));
}

#[test]
fn truncations_of_a_real_file_fail_cleanly() {
    let bytes = std::fs::read(model("tiny-b158-tq2.gguf")).unwrap();
    let data_offset = parse(&bytes).unwrap().data_offset as usize;
    // A sample of cuts inside the header and the data section (every cut of a small
    // file is tested in gguf_catalogue.rs).
    let cuts = (0..=data_offset)
        .step_by(61)
        .chain((data_offset..bytes.len()).step_by(997));
    for len in cuts {
        assert!(
            parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    assert!(parse(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn open_reports_missing_file_and_empty_file() {
    let missing = model("no-such-model.gguf");
    assert!(matches!(
        GgufFile::open(&missing),
        Err(GgufError::Io { op: "open", path, .. }) if path == missing
    ));
    let empty = std::env::temp_dir().join(format!("gguf_models_empty_{}", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    let result = GgufFile::open(&empty);
    std::fs::remove_file(&empty).unwrap();
    assert!(
        matches!(
            result,
            Err(GgufError::UnexpectedEof {
                at: 0,
                available: 0,
                ..
            })
        ),
        "{result:?}"
    );
}
