//! The catalogue of known-bad GGUF inputs (formats.md, "known bad inputs", plus
//! llama.cpp's history): each hand-crafted file must give its specific error variant,
//! never a panic, an out-of-bounds read or a huge allocation.

use bitnet_runner::gguf::{
    Array, GgmlType, GgufError, GgufWriter, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_METADATA_BYTES,
    MAX_STRING_LEN, MAX_TENSOR_NAME_LEN, MIN_KV_BYTES, MIN_TENSOR_INFO_BYTES, Value, parse,
};

mod common;
use common::*;

/// A file with one key/value pair whose value bytes are `value` (after the type id).
fn one_kv(ty: u32, value: Raw) -> Vec<u8> {
    Raw::header(3, 0, 1).kv("k", ty).bytes(&value.0).0
}

/// A small valid file exercising every value type and three tensor types; its last
/// tensor ends exactly at the end of the file.
fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "bitnet-b1.58").unwrap();
    w.add("u8", 7u8).unwrap();
    w.add("i8", -7i8).unwrap();
    w.add("u16", 700u16).unwrap();
    w.add("i16", -700i16).unwrap();
    w.add("u32", 70_000u32).unwrap();
    w.add("i32", -70_000i32).unwrap();
    w.add("f32", 1.5f32).unwrap();
    w.add("bool", true).unwrap();
    w.add("u64", 1u64 << 40).unwrap();
    w.add("i64", -(1i64 << 40)).unwrap();
    w.add("f64", 2.25f64).unwrap();
    w.add("str", "héllo").unwrap();
    w.add(
        "strs",
        Array::String(vec!["a".into(), "".into(), "bc".into()]),
    )
    .unwrap();
    w.add("i32s", Array::I32(vec![1, -2, 3])).unwrap();
    w.add("bools", Array::Bool(vec![true, false])).unwrap();
    w.add(
        "nested",
        Array::Array(vec![Array::U8(vec![1, 2]), Array::F32(vec![])]),
    )
    .unwrap();
    w.set_alignment(32).unwrap();
    w.add_tensor("norm", &[8], GgmlType::F32, vec![1u8; 32])
        .unwrap();
    w.add_tensor("tq2", &[256, 1], GgmlType::TQ2_0, vec![2u8; 66])
        .unwrap();
    w.add_tensor("i2s", &[128, 1], GgmlType::I2_S, vec![3u8; 64])
        .unwrap();
    w.to_bytes().unwrap()
}

// ---- the valid baseline ---------------------------------------------------------------

#[test]
fn small_valid_file_parses_and_ends_at_its_last_tensor() {
    let bytes = small_valid_file();
    let g = parse(&bytes).unwrap();
    assert_eq!(g.metadata.len(), 18);
    assert_eq!(g.tensors.len(), 3);
    let last = g.tensors.last().unwrap();
    assert_eq!(g.data_offset + last.end(), bytes.len() as u64);
    assert_eq!(g.tensor("tq2").unwrap().n_bytes, 66);
    assert_eq!(g.tensor("i2s").unwrap().offset, 32 + 96);
    assert_eq!(g.tensor_data(&bytes, last).unwrap(), &[3u8; 64][..]);
}

#[test]
fn every_prefix_of_a_small_valid_file_is_an_error() {
    let bytes = small_valid_file();
    for len in 0..bytes.len() {
        assert!(
            parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
}

#[test]
fn single_byte_corruptions_never_panic() {
    let bytes = small_valid_file();
    let mut copy = bytes.clone();
    for i in 0..bytes.len() {
        for v in [
            0x00,
            0xff,
            0x7f,
            0x80,
            bytes[i] ^ 0x01,
            bytes[i].wrapping_add(1),
        ] {
            copy[i] = v;
            let _ = parse(&copy);
        }
        copy[i] = bytes[i];
    }
}

#[test]
fn random_multi_byte_corruptions_never_panic() {
    let bytes = small_valid_file();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5000 {
        let mut copy = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % copy.len() as u64) as usize;
            copy[i] = next() as u8;
        }
        let cut = copy.len() - (next() % 8) as usize;
        let _ = parse(&copy[..cut]);
    }
}

// ---- header -----------------------------------------------------------------------------

#[test]
fn bad_magic() {
    let bytes = Raw::default().bytes(b"GGML").u32(3).u64(0).u64(0).0;
    assert!(matches!(err(&bytes), GgufError::BadMagic { found } if &found == b"GGML"));
    let mut bytes = small_valid_file();
    bytes[0] = b'g';
    assert!(matches!(err(&bytes), GgufError::BadMagic { .. }));
}

#[test]
fn bad_version_0() {
    let e = err(&Raw::header(0, 0, 0).0);
    assert!(
        matches!(e, GgufError::UnsupportedVersion { version: 0 }),
        "{e}"
    );
}

#[test]
fn bad_version_1() {
    let e = err(&Raw::header(1, 0, 0).0);
    assert!(
        matches!(e, GgufError::UnsupportedVersion { version: 1 }),
        "{e}"
    );
    assert!(e.to_string().contains("version 1"), "{e}");
}

#[test]
fn bad_version_4() {
    let e = err(&Raw::header(4, 0, 0).0);
    assert!(
        matches!(e, GgufError::UnsupportedVersion { version: 4 }),
        "{e}"
    );
}

#[test]
fn big_endian_file() {
    let bytes = Raw::default()
        .bytes(b"GGUF")
        .bytes(&3u32.to_be_bytes())
        .zeros(16)
        .0;
    let e = err(&bytes);
    assert!(matches!(e, GgufError::BigEndian { swapped: 3, .. }), "{e}");
    assert!(e.to_string().contains("big-endian"));
}

#[test]
fn versions_2_and_3_are_accepted() {
    for v in [2, 3] {
        let g = parse(&Raw::header(v, 0, 0).0).unwrap();
        assert_eq!(g.version, v);
        assert!(g.tensors.is_empty() && g.metadata.is_empty());
    }
}

#[test]
fn n_tensors_u64_max() {
    let e = err(&Raw::header(3, u64::MAX, 0).zeros(64).0);
    assert!(
        matches!(
            e,
            GgufError::TooManyTensors {
                count: u64::MAX,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn n_kv_u64_max() {
    let e = err(&Raw::header(3, 0, u64::MAX).zeros(64).0);
    assert!(
        matches!(
            e,
            GgufError::TooManyKv {
                count: u64::MAX,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn n_kv_one_more_than_fits() {
    let rest = 10 * MIN_KV_BYTES as usize + 5;
    let e = err(&Raw::header(3, 0, 11).zeros(rest).0);
    assert!(
        matches!(
            e,
            GgufError::TooManyKv {
                count: 11,
                max_fit: 10,
                ..
            }
        ),
        "{e}"
    );
    // The largest count that could fit passes the count check and fails later.
    let e = err(&Raw::header(3, 0, 10).zeros(rest).0);
    assert!(matches!(e, GgufError::EmptyKey { index: 0, .. }), "{e}");
}

#[test]
fn n_tensors_one_more_than_fits() {
    let rest = 3 * MIN_TENSOR_INFO_BYTES as usize + 7;
    let e = err(&Raw::header(3, 4, 0).zeros(rest).0);
    assert!(
        matches!(
            e,
            GgufError::TooManyTensors {
                count: 4,
                max_fit: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&Raw::header(3, 3, 0).zeros(rest).0);
    assert!(
        matches!(e, GgufError::EmptyTensorName { index: 0, .. }),
        "{e}"
    );
}

#[test]
fn kv_and_tensor_counts_share_the_remaining_bytes() {
    // Room for 2 minimal kvs, or 1 kv + 0 tensors: 1 kv + 1 tensor does not fit.
    let rest = 2 * MIN_KV_BYTES as usize;
    let e = err(&Raw::header(3, 1, 1).zeros(rest).0);
    assert!(
        matches!(
            e,
            GgufError::TooManyTensors {
                count: 1,
                max_fit: 0,
                ..
            }
        ),
        "{e}"
    );
}

// ---- keys and values ----------------------------------------------------------------------

#[test]
fn key_length_past_end() {
    let bytes = Raw::header(3, 0, 1).u64(100).bytes(b"abcdefghij").0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::StringPastEnd { len: 100, remaining: 10, ref what, .. } if what == "key #0"),
        "{e}"
    );
}

#[test]
fn key_length_absurd() {
    let bytes = Raw::header(3, 0, 1).u64(u64::MAX).zeros(16).0;
    let e = err(&bytes);
    assert!(
        matches!(
            e,
            GgufError::KeyTooLong {
                index: 0,
                len: u64::MAX,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn empty_key() {
    let e = err(&Raw::header(3, 0, 1).u64(0).u32(U8).u8(0).zeros(4).0);
    assert!(matches!(e, GgufError::EmptyKey { index: 0, at: 24 }), "{e}");
}

#[test]
fn key_not_utf8() {
    let bytes = Raw::header(3, 0, 1)
        .u64(2)
        .bytes(&[0xc3, 0x28])
        .u32(U8)
        .u8(0)
        .zeros(2)
        .0;
    assert!(matches!(err(&bytes), GgufError::InvalidUtf8 { at: 32, .. }));
}

#[test]
fn string_value_length_past_end() {
    let bytes = one_kv(STRING, Raw::default().u64(50).bytes(b"short"));
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::StringPastEnd { len: 50, remaining: 5, ref what, .. } if what.contains("'k'")),
        "{e}"
    );
}

#[test]
fn string_of_2_pow_40_bytes_is_rejected_without_allocating() {
    let bytes = one_kv(STRING, Raw::default().u64(1 << 40).zeros(8));
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::StringTooLong { len, max: MAX_STRING_LEN, .. } if len == 1 << 40),
        "{e}"
    );
}

#[test]
fn string_inside_array_past_end() {
    let value = Raw::default()
        .u32(STRING)
        .u64(2)
        .str("ok")
        .u64(9)
        .bytes(b"abc");
    let e = err(&one_kv(ARRAY, value));
    assert!(
        matches!(e, GgufError::StringPastEnd { len: 9, ref what, .. } if what.contains("element 1")),
        "{e}"
    );
}

#[test]
fn unknown_value_type() {
    let e = err(&one_kv(13, Raw::default().zeros(8)));
    assert!(
        matches!(e, GgufError::UnknownValueType { ref key, type_id: 13, .. } if key == "k"),
        "{e}"
    );
}

#[test]
fn unknown_array_element_type() {
    let e = err(&one_kv(ARRAY, Raw::default().u32(99).u64(1).zeros(8)));
    assert!(
        matches!(e, GgufError::UnknownValueType { type_id: 99, .. }),
        "{e}"
    );
}

#[test]
fn nested_arrays_too_deep() {
    // array<array<array<u8>>>: depth 3 > MAX_ARRAY_DEPTH (2).
    assert_eq!(MAX_ARRAY_DEPTH, 2);
    let value = Raw::default()
        .u32(ARRAY)
        .u64(1)
        .u32(ARRAY)
        .u64(1)
        .u32(U8)
        .u64(1)
        .u8(5);
    let e = err(&one_kv(ARRAY, value));
    assert!(
        matches!(e, GgufError::ArrayTooDeep { ref key, max_depth: 2, .. } if key == "k"),
        "{e}"
    );
}

#[test]
fn nested_arrays_at_the_depth_limit_are_accepted() {
    let value = Raw::default()
        .u32(ARRAY)
        .u64(2)
        .u32(U8)
        .u64(2)
        .u8(5)
        .u8(6)
        .u32(STRING)
        .u64(0);
    let g = parse(&one_kv(ARRAY, value)).unwrap();
    let want = Array::Array(vec![Array::U8(vec![5, 6]), Array::String(vec![])]);
    assert_eq!(g.metadata.get("k"), Some(&Value::Array(want)));
}

#[test]
fn array_count_u64_max() {
    let e = err(&one_kv(
        ARRAY,
        Raw::default().u32(U8).u64(u64::MAX).zeros(16),
    ));
    assert!(
        matches!(
            e,
            GgufError::ArrayPastEnd {
                count: u64::MAX,
                elem_type: "u8",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&one_kv(
        ARRAY,
        Raw::default().u32(STRING).u64(u64::MAX).zeros(16),
    ));
    assert!(
        matches!(
            e,
            GgufError::ArrayPastEnd {
                count: u64::MAX,
                elem_type: "string",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&one_kv(
        ARRAY,
        Raw::default().u32(ARRAY).u64(u64::MAX).zeros(16),
    ));
    assert!(
        matches!(
            e,
            GgufError::ArrayPastEnd {
                count: u64::MAX,
                elem_type: "array",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn array_one_element_past_end() {
    // 3 u32 elements claimed, 11 bytes present.
    let e = err(&one_kv(ARRAY, Raw::default().u32(U32).u64(3).zeros(11)));
    assert!(
        matches!(
            e,
            GgufError::ArrayPastEnd {
                count: 3,
                min_bytes: 12,
                remaining: 11,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn scalar_value_past_end() {
    // One byte of an 8-byte value (the count check still passes: 14 bytes remain).
    let e = err(&Raw::header(3, 0, 1).kv("b", U64).u8(0).0);
    assert!(
        matches!(e, GgufError::UnexpectedEof { needed: 8, available: 1, ref what, .. } if what.contains("'b'")),
        "{e}"
    );
}

#[test]
fn bool_other_than_0_or_1() {
    let e = err(&one_kv(BOOL, Raw::default().u8(2)));
    assert!(matches!(e, GgufError::InvalidBool { value: 2, .. }), "{e}");
    let e = err(&one_kv(
        ARRAY,
        Raw::default().u32(BOOL).u64(3).u8(1).u8(0).u8(9),
    ));
    assert!(matches!(e, GgufError::InvalidBool { value: 9, .. }), "{e}");
}

#[test]
fn duplicate_key() {
    let bytes = Raw::header(3, 0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::DuplicateKey { ref key } if key == "a.b"),
        "{e}"
    );
}

#[test]
fn metadata_larger_than_the_cap() {
    let count = MAX_METADATA_BYTES + 1;
    let bytes = Raw::header(3, 0, 1)
        .kv("big", ARRAY)
        .u32(U8)
        .u64(count)
        .zeros(count as usize)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::MetadataTooLarge { ref key, .. } if key == "big"),
        "{e}"
    );
}

// ---- alignment --------------------------------------------------------------------------

fn with_alignment(value: Raw, ty: u32) -> Vec<u8> {
    Raw::header(3, 0, 1)
        .kv("general.alignment", ty)
        .bytes(&value.0)
        .0
}

#[test]
fn alignment_zero() {
    let e = err(&with_alignment(Raw::default().u32(0), U32));
    assert!(matches!(e, GgufError::InvalidAlignment { value: 0 }), "{e}");
}

#[test]
fn alignment_13() {
    let e = err(&with_alignment(Raw::default().u32(13), U32));
    assert!(
        matches!(e, GgufError::InvalidAlignment { value: 13 }),
        "{e}"
    );
}

#[test]
fn alignment_huge() {
    let e = err(&with_alignment(Raw::default().u32(1 << 30), U32));
    assert!(
        matches!(e, GgufError::AlignmentTooLarge { value, max: MAX_ALIGNMENT } if value == 1 << 30),
        "{e}"
    );
}

#[test]
fn alignment_wrong_type() {
    let e = err(&with_alignment(Raw::default().u64(32), U64));
    assert!(
        matches!(e, GgufError::AlignmentWrongType { found: "u64" }),
        "{e}"
    );
}

#[test]
fn custom_alignment_moves_the_data_section_and_offsets() {
    let bytes = Raw::header(3, 2, 1)
        .kv_u32("general.alignment", 64)
        .tensor("a", &[8], F32_T, 0)
        .tensor("b", &[8], F32_T, 64)
        .pad(64)
        .zeros(96)
        .0;
    let g = parse(&bytes).unwrap();
    assert_eq!((g.alignment, g.data_offset % 64), (64, 0));
    // 32 would be aligned by default but not at 64.
    let bytes = Raw::header(3, 1, 1)
        .kv_u32("general.alignment", 64)
        .tensor("a", &[8], F32_T, 32)
        .pad(64)
        .zeros(64)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(
            e,
            GgufError::MisalignedOffset {
                offset: 32,
                alignment: 64,
                ..
            }
        ),
        "{e}"
    );
}

// ---- tensor infos -------------------------------------------------------------------------

#[test]
fn duplicate_tensor_name() {
    let bytes = Raw::header(3, 2, 0)
        .tensor("w", &[8], F32_T, 0)
        .tensor("w", &[8], F32_T, 32)
        .pad(32)
        .zeros(64)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::DuplicateTensorName { ref name } if name == "w"),
        "{e}"
    );
}

#[test]
fn empty_tensor_name() {
    let bytes = Raw::header(3, 1, 0)
        .tensor("", &[8], F32_T, 0)
        .pad(32)
        .zeros(32)
        .0;
    assert!(matches!(
        err(&bytes),
        GgufError::EmptyTensorName { index: 0, .. }
    ));
}

#[test]
fn tensor_name_too_long() {
    let name = "x".repeat(MAX_TENSOR_NAME_LEN as usize + 1);
    let bytes = Raw::header(3, 1, 0)
        .tensor(&name, &[8], F32_T, 0)
        .pad(32)
        .zeros(32)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::TensorNameTooLong { len: 257, .. }),
        "{e}"
    );
}

#[test]
fn n_dims_0() {
    let e = err(&one_tensor(&[], F32_T, 0, 64));
    assert!(
        matches!(e, GgufError::NoDimensions { ref tensor } if tensor == "t"),
        "{e}"
    );
}

#[test]
fn n_dims_5() {
    let e = err(&one_tensor(&[1, 1, 1, 1, 8], F32_T, 0, 64));
    assert!(
        matches!(
            e,
            GgufError::TooManyDimensions {
                n_dims: 5,
                max: 4,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn n_dims_absurd_is_rejected_before_reading_dims() {
    let bytes = Raw::header(3, 1, 0).str("t").u32(u32::MAX).zeros(64).0;
    let e = err(&bytes);
    assert!(
        matches!(
            e,
            GgufError::TooManyDimensions {
                n_dims: u32::MAX,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn zero_dimension() {
    let e = err(&one_tensor(&[8, 0], F32_T, 0, 64));
    assert!(
        matches!(e, GgufError::ZeroDimension { dim: 1, ref tensor, .. } if tensor == "t"),
        "{e}"
    );
}

#[test]
fn negative_looking_dimension() {
    let e = err(&one_tensor(&[8, 1 << 63], F32_T, 0, 64));
    assert!(
        matches!(e, GgufError::DimensionTooLarge { dim: 1, value, .. } if value == 1 << 63),
        "{e}"
    );
}

#[test]
fn dimension_product_overflows_u64() {
    let d = (1u64 << 42) + 1;
    let e = err(&one_tensor(&[d, d], F32_T, 0, 64));
    assert!(
        matches!(e, GgufError::ElementCountOverflow { ref dims, .. } if dims == &[d, d]),
        "{e}"
    );
}

#[test]
fn dimension_product_above_i64_max() {
    let e = err(&one_tensor(&[1 << 31, 1 << 32], F32_T, 0, 64));
    assert!(matches!(e, GgufError::ElementCountOverflow { .. }), "{e}");
}

#[test]
fn byte_size_overflows_u64() {
    // 2^62 F64 elements = 2^65 bytes.
    let e = err(&one_tensor(&[1 << 62], 28, 0, 64));
    assert!(
        matches!(
            e,
            GgufError::TensorSizeOverflow {
                ggml_type: "F64",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_tensor_type() {
    for id in [4, 5, 31, 37, 39, u32::MAX] {
        let e = err(&one_tensor(&[256], id, 0, 1024));
        assert!(
            matches!(e, GgufError::UnknownTensorType { ref tensor, type_id } if tensor == "t" && type_id == id),
            "{e}"
        );
    }
}

#[test]
fn blocked_type_needs_whole_blocks_along_ne0() {
    // Q4_0 packs 32 elements per block: ne0 = 16 is not allowed even with 2 rows.
    let e = err(&one_tensor(&[16, 2], 2, 0, 64));
    assert!(
        matches!(
            e,
            GgufError::RowNotBlockMultiple {
                ne0: 16,
                block_size: 32,
                ggml_type: "Q4_0",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&one_tensor(&[128, 2], 35, 0, 1024));
    assert!(
        matches!(
            e,
            GgufError::RowNotBlockMultiple {
                block_size: 256,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn i2s_needs_a_multiple_of_128_elements() {
    let e = err(&one_tensor(&[64, 3], I2_S_T, 0, 1024));
    assert!(
        matches!(
            e,
            GgufError::I2sNotBlockMultiple {
                n_elements: 192,
                ..
            }
        ),
        "{e}"
    );
    // ne0 = 64 with 2 rows is 128 elements: whole-tensor blocks are fine.
    let g = parse(&one_tensor(&[64, 2], I2_S_T, 0, 64)).unwrap();
    assert_eq!(g.tensors[0].n_bytes, 128 / 4 + 32);
}

// ---- data layout ------------------------------------------------------------------------

#[test]
fn misaligned_offset() {
    let e = err(&one_tensor(&[8], F32_T, 4, 64));
    assert!(
        matches!(
            e,
            GgufError::MisalignedOffset {
                offset: 4,
                alignment: 32,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn overlapping_tensors() {
    let bytes = Raw::header(3, 2, 0)
        .tensor("a", &[16], F32_T, 0) // [0, 64)
        .tensor("b", &[8], F32_T, 32) // [32, 64)
        .pad(32)
        .zeros(64)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::TensorsOverlap { ref first, ref second, first_end: 64, second_offset: 32, .. }
            if first == "a" && second == "b"),
        "{e}"
    );
}

#[test]
fn same_offset_tensors_overlap() {
    let bytes = Raw::header(3, 2, 0)
        .tensor("a", &[8], F32_T, 0)
        .tensor("b", &[8], F32_T, 0)
        .pad(32)
        .zeros(32)
        .0;
    assert!(matches!(err(&bytes), GgufError::TensorsOverlap { .. }));
}

#[test]
fn offset_past_end() {
    let e = err(&one_tensor(&[8], F32_T, 64, 32));
    assert!(
        matches!(
            e,
            GgufError::TensorOffsetPastEnd {
                offset: 64,
                data_len: 32,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&one_tensor(&[8], F32_T, 1 << 40, 32));
    assert!(matches!(e, GgufError::TensorOffsetPastEnd { .. }), "{e}");
}

#[test]
fn offset_plus_size_overflows() {
    let offset = !31u64; // the largest aligned offset
    let e = err(&one_tensor(&[16], F32_T, offset, 64));
    assert!(
        matches!(e, GgufError::OffsetOverflow { n_bytes: 64, .. }),
        "{e}"
    );
}

#[test]
fn data_section_truncated_by_one_byte() {
    assert!(parse(&one_tensor(&[8], F32_T, 0, 32)).is_ok());
    let e = err(&one_tensor(&[8], F32_T, 0, 31));
    assert!(
        matches!(
            e,
            GgufError::TensorDataTruncated {
                missing: 1,
                n_bytes: 32,
                data_len: 31,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn i2s_tensor_missing_its_scale_tail() {
    // 256 elements: 64 code bytes + 32-byte tail. A file ending after the codes would
    // "fit" a reader that takes n/4 bytes; it must be rejected.
    assert!(parse(&one_tensor(&[128, 2], I2_S_T, 0, 96)).is_ok());
    let e = err(&one_tensor(&[128, 2], I2_S_T, 0, 64));
    assert!(
        matches!(e, GgufError::TensorDataTruncated { n_bytes: 96, missing: 32, ref tensor, .. } if tensor == "t"),
        "{e}"
    );
}

#[test]
fn header_without_data_padding_and_tensors() {
    // Zero tensors: a file may end right after its header.
    let g = parse(&Raw::header(3, 0, 1).kv_u32("a", 1).0).unwrap();
    assert_eq!(g.metadata.get_u32("a").unwrap(), 1);
    // One tensor whose data section starts past the end of the file.
    let bytes = Raw::header(3, 1, 0).tensor("t", &[8], F32_T, 0).0;
    assert!(matches!(
        err(&bytes),
        GgufError::TensorOffsetPastEnd { data_len: 0, .. }
    ));
}

#[test]
fn error_messages_name_the_culprit_and_numbers() {
    let e = err(&one_tensor(&[128, 2], I2_S_T, 0, 64)).to_string();
    assert!(
        e.contains("'t'") && e.contains("96") && e.contains("32 bytes past"),
        "{e}"
    );
    let e = err(&one_tensor(&[8], 37, 0, 64)).to_string();
    assert!(e.contains("'t'") && e.contains("37"), "{e}");
    let e = err(&Raw::header(3, 0, 2).kv_u32("x.y", 1).kv_u32("x.y", 2).0).to_string();
    assert!(e.contains("x.y"), "{e}");
}
