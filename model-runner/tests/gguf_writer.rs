//! GgufWriter: layout, alignment, validation, and typed metadata accessors on what it
//! writes.

use std::borrow::Cow;

use bitnet_runner::gguf::{Array, GgmlType, GgufError, GgufFile, GgufWriter, Value, parse};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn writer_output_parses_back_with_the_same_content() {
    let norm = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let codes = vec![0x55u8; 128 / 4 + 32];
    let mut w = GgufWriter::new();
    w.add("general.architecture", "bitnet-b1.58").unwrap();
    w.add("n", 5u32).unwrap();
    w.add("list", Array::U16(vec![1, 2, 3])).unwrap();
    w.add_tensor("norm", &[8], GgmlType::F32, &norm[..])
        .unwrap();
    w.add_tensor("proj", &[128], GgmlType::I2_S, codes.clone())
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    assert_eq!(bytes.len() as u64, w.encoded_len());

    let g = parse(&bytes).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 32);
    assert_eq!(g.metadata, *w.metadata());
    assert_eq!(
        g.metadata.keys().collect::<Vec<_>>(),
        ["general.architecture", "n", "list"]
    );
    let norm_info = g.tensor("norm").unwrap();
    assert_eq!((norm_info.offset, norm_info.n_bytes), (0, 32));
    let proj = g.tensor("proj").unwrap();
    assert_eq!(
        (proj.offset, proj.n_bytes, proj.ggml_type),
        (32, 64, GgmlType::I2_S)
    );
    assert_eq!(g.tensor_data(&bytes, norm_info).unwrap(), &norm[..]);
    assert_eq!(g.tensor_data(&bytes, proj).unwrap(), &codes[..]);
}

#[test]
fn writer_pads_header_and_every_tensor_to_the_alignment() {
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    w.add_tensor("a", &[3], GgmlType::F32, vec![1u8; 12])
        .unwrap();
    w.add_tensor("b", &[1], GgmlType::F16, vec![2u8; 2])
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    let g = parse(&bytes).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.tensor("b").unwrap().offset, 64);
    assert_eq!(bytes.len() as u64, g.data_offset + 128);
    // Padding is zeros.
    let d = g.data_offset as usize;
    assert!(bytes[d + 12..d + 64].iter().all(|&b| b == 0));
    assert!(bytes[d + 66..].iter().all(|&b| b == 0));
    // set_alignment replaces in place.
    w.set_alignment(32).unwrap();
    assert_eq!(w.metadata().len(), 1);
    assert_eq!(parse(&w.to_bytes().unwrap()).unwrap().alignment, 32);
}

#[test]
fn writer_borrows_tensor_data_and_writes_files() {
    let data = [7u8; 66];
    let mut w = GgufWriter::new();
    w.add_tensor("tq", &[256], GgmlType::TQ2_0, Cow::Borrowed(&data[..]))
        .unwrap();
    let path = std::env::temp_dir().join(format!("gguf_writer_{}.gguf", std::process::id()));
    w.write_file(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensor("tq").unwrap().1, &data[..]);
    drop(file);
    std::fs::remove_file(&path).unwrap();
    let mut sink = Vec::new();
    w.write_to(&mut sink).unwrap();
    assert_eq!(sink, w.to_bytes().unwrap());
}

#[test]
fn writer_rejects_what_the_reader_would_reject() {
    let mut w = GgufWriter::new();
    w.add("a", 1u8).unwrap();
    assert!(matches!(w.add("a", 2u8), Err(GgufError::DuplicateKey { key }) if key == "a"));
    assert!(matches!(w.add("", 2u8), Err(GgufError::Unwritable { .. })));
    assert!(matches!(
        w.set_alignment(0),
        Err(GgufError::InvalidAlignment { value: 0 })
    ));
    assert!(matches!(
        w.set_alignment(48),
        Err(GgufError::InvalidAlignment { value: 48 })
    ));
    assert!(matches!(
        w.set_alignment(1 << 21),
        Err(GgufError::AlignmentTooLarge { .. })
    ));
    assert!(matches!(
        w.add("general.alignment", 32u64),
        Err(GgufError::AlignmentWrongType { found: "u64" })
    ));
    let deep = Array::Array(vec![Array::Array(vec![Array::U8(vec![1])])]);
    assert!(matches!(
        w.add("deep", deep),
        Err(GgufError::Unwritable { .. })
    ));
    assert!(matches!(
        w.set_version(1),
        Err(GgufError::WriterVersion { version: 1 })
    ));

    w.add_tensor("t", &[8], GgmlType::F32, vec![0u8; 32])
        .unwrap();
    assert!(matches!(
        w.add_tensor("t", &[8], GgmlType::F32, vec![0u8; 32]),
        Err(GgufError::DuplicateTensorName { .. })
    ));
    assert!(matches!(
        w.add_tensor("short", &[8], GgmlType::F32, vec![0u8; 31]),
        Err(GgufError::TensorDataLength {
            expected: 32,
            got: 31,
            ..
        })
    ));
    // I2_S without its 32-byte tail.
    assert!(matches!(
        w.add_tensor("i2s", &[128], GgmlType::I2_S, vec![0u8; 32]),
        Err(GgufError::TensorDataLength {
            expected: 64,
            got: 32,
            ..
        })
    ));
    assert!(matches!(
        w.add_tensor("z", &[8, 0], GgmlType::F32, vec![]),
        Err(GgufError::ZeroDimension { .. })
    ));
    assert!(matches!(
        w.add_tensor("q", &[16], GgmlType::Q4_0, vec![0u8; 9]),
        Err(GgufError::RowNotBlockMultiple { .. })
    ));
    assert!(matches!(
        w.add_tensor("", &[8], GgmlType::F32, vec![0u8; 32]),
        Err(GgufError::Unwritable { .. })
    ));
    // The failed calls left the writer valid.
    let g = parse(&w.to_bytes().unwrap()).unwrap();
    assert_eq!((g.metadata.len(), g.tensors.len()), (1, 1));
}

#[test]
fn typed_accessors_convert_integers_that_fit_and_name_the_key() {
    let mut w = GgufWriter::new();
    w.add("as_i32", 1022i32).unwrap();
    w.add("negative", -1i32).unwrap();
    w.add("big", u64::MAX).unwrap();
    w.add("small", 3u8).unwrap();
    w.add("eps", 1e-5f32).unwrap();
    w.add("wide", 0.5f64).unwrap();
    w.add("flag", false).unwrap();
    w.add("name", "x").unwrap();
    w.add("types_u8", Array::U8(vec![1, 3])).unwrap();
    w.add("types_u32", Array::U32(vec![1, u32::MAX])).unwrap();
    w.add("types_i32", Array::I32(vec![-1, 2])).unwrap();
    w.add("empty_i64", Array::I64(vec![])).unwrap();
    w.add("floats", Array::F32(vec![0.25])).unwrap();
    let g = parse(&w.to_bytes().unwrap()).unwrap();
    let md = &g.metadata;

    assert_eq!(md.get_u32("as_i32").unwrap(), 1022);
    assert_eq!(md.get_u64("small").unwrap(), 3);
    assert_eq!(md.get_i32("small").unwrap(), 3);
    assert_eq!(md.get_i64("negative").unwrap(), -1);
    assert_eq!(md.get_u64("big").unwrap(), u64::MAX);
    let e = md.get_u32("negative").unwrap_err();
    assert!(
        matches!(&e, GgufError::ValueOutOfRange { key, target: "u32", .. } if key == "negative")
    );
    assert!(e.to_string().contains("-1"), "{e}");
    assert!(matches!(
        md.get_u32("big"),
        Err(GgufError::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        md.get_i64("big"),
        Err(GgufError::ValueOutOfRange { .. })
    ));
    let e = md.get_u32("eps").unwrap_err();
    assert!(
        matches!(&e, GgufError::WrongType { key, expected: "u32", found } if key == "eps" && found == "f32")
    );
    assert!(matches!(
        md.get_u32("flag"),
        Err(GgufError::WrongType { .. })
    ));

    assert_eq!(md.get_f32("eps").unwrap(), 1e-5);
    assert_eq!(md.get_f32("wide").unwrap(), 0.5);
    assert!(matches!(
        md.get_f32("small"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(!md.get_bool("flag").unwrap());
    assert_eq!(md.get_str("name").unwrap(), "x");
    assert!(matches!(
        md.get_str("small"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(md.get_str("nope"), Err(GgufError::MissingKey { key }) if key == "nope"));

    assert!(matches!(
        md.get_i32_array("types_i32").unwrap(),
        Cow::Borrowed(&[-1, 2])
    ));
    assert_eq!(&*md.get_i32_array("types_u8").unwrap(), [1, 3]);
    assert!(md.get_i32_array("empty_i64").unwrap().is_empty());
    assert!(matches!(
        md.get_i32_array("types_u32"),
        Err(GgufError::ValueOutOfRange { key, .. }) if key == "types_u32[1]"
    ));
    let e = md.get_i32_array("floats").unwrap_err();
    assert!(
        matches!(&e, GgufError::WrongType { found, .. } if found == "array[f32; 1]"),
        "{e}"
    );
    assert_eq!(md.get_f32_array("floats").unwrap(), [0.25]);
    assert!(matches!(
        md.get_str_array("floats"),
        Err(GgufError::WrongType { .. })
    ));
    assert_eq!(md.get_array("types_u8").unwrap().len(), 2);

    assert_eq!(md.opt_u32("as_i32").unwrap(), Some(1022));
    assert_eq!(md.opt_u32("missing").unwrap(), None);
    assert!(md.opt_u32("name").is_err());
    assert_eq!(md.opt_str("name").unwrap(), Some("x"));
    assert_eq!(md.opt_bool("missing").unwrap(), None);
    assert_eq!(md.opt_f32("eps").unwrap(), Some(1e-5));
    assert!(md.opt_str_array("missing").unwrap().is_none());
    assert!(md.opt_i32_array("types_i32").unwrap().is_some());
    assert_eq!(md.require("small").unwrap(), &Value::U8(3));
}

#[test]
fn ggml_type_ids_and_sizes() {
    for t in GgmlType::ALL {
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
    for id in [4, 5, 31, 32, 33, 37, 38, 39, 40, 1000] {
        assert_eq!(GgmlType::from_id(id), None, "{id}");
    }
    let size = |t: GgmlType, dims: &[u64]| t.n_bytes(dims).unwrap();
    assert_eq!(size(GgmlType::F32, &[3, 5]), 60);
    assert_eq!(size(GgmlType::F16, &[3, 5]), 30);
    assert_eq!(size(GgmlType::BF16, &[4]), 8);
    assert_eq!(size(GgmlType::Q4_0, &[64, 2]), 4 * 18);
    assert_eq!(size(GgmlType::Q4_1, &[32]), 20);
    assert_eq!(size(GgmlType::Q5_0, &[32]), 22);
    assert_eq!(size(GgmlType::Q5_1, &[32]), 24);
    assert_eq!(size(GgmlType::Q8_0, &[32]), 34);
    assert_eq!(size(GgmlType::Q8_1, &[32]), 36);
    let k = [
        (GgmlType::Q2_K, 84),
        (GgmlType::Q3_K, 110),
        (GgmlType::Q4_K, 144),
    ];
    let k2 = [
        (GgmlType::Q5_K, 176),
        (GgmlType::Q6_K, 210),
        (GgmlType::Q8_K, 292),
    ];
    for (t, b) in k.into_iter().chain(k2) {
        assert_eq!(size(t, &[256, 3]), 3 * b, "{t}");
    }
    assert_eq!(size(GgmlType::TQ1_0, &[512]), 2 * 54);
    assert_eq!(size(GgmlType::TQ2_0, &[512]), 2 * 66);
    // I2_S: n / 4 + 32 for the whole tensor (2B-4T shapes).
    assert_eq!(size(GgmlType::I2_S, &[2560, 6912]), 2560 * 6912 / 4 + 32);
    assert_eq!(size(GgmlType::I2_S, &[256, 256]), 16_384 + 32);
    assert_eq!(GgmlType::I2_S.to_string(), "I2_S(36)");
}
