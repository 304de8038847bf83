//! Additions to the hand-crafted catalogue (`gguf_catalogue.rs`): exact boundaries of the
//! caps, tensor-name lengths, nesting far past the depth cap, the byte-size overflow of
//! blocked types (CVE-2025-53630 style), a huge logical tensor over a few data bytes
//! (CVE-2026-33298 style), and the file/foreign-info paths. Each gives its specific error
//! variant, never a panic.

use bitnet_runner::gguf::{
    GgmlType, GgufError, GgufFile, GgufWriter, MAX_ALIGNMENT, MAX_KEY_LEN, MAX_STRING_LEN,
    TensorInfo, parse,
};

mod common;
use common::*;

// ---- exact boundaries of the caps ---------------------------------------------------------

#[test]
fn key_one_byte_over_the_cap() {
    let len = MAX_KEY_LEN + 1;
    let bytes = Raw::header(3, 0, 1).u64(len).zeros(len as usize + 8).0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::KeyTooLong { len: l, max: MAX_KEY_LEN, .. } if l == len),
        "{e}"
    );
}

#[test]
fn key_at_the_cap_is_accepted() {
    let key = "k".repeat(MAX_KEY_LEN as usize);
    let bytes = Raw::header(3, 0, 1).str(&key).u32(U32).u32(7).0;
    let g = parse(&bytes).unwrap();
    assert_eq!(g.metadata.get_u32(&key).unwrap(), 7);
}

#[test]
fn string_one_byte_over_the_cap() {
    // The cap is checked before the remaining length: no 16 MiB file is needed.
    let bytes = Raw::header(3, 0, 1)
        .str("s")
        .u32(STRING)
        .u64(MAX_STRING_LEN + 1)
        .zeros(16)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::StringTooLong { len, max: MAX_STRING_LEN, .. } if len == MAX_STRING_LEN + 1),
        "{e}"
    );
}

#[test]
fn string_one_byte_past_the_end() {
    let bytes = Raw::header(3, 0, 1)
        .str("s")
        .u32(STRING)
        .u64(6)
        .bytes(b"12345")
        .0;
    let e = err(&bytes);
    assert!(
        matches!(
            e,
            GgufError::StringPastEnd {
                len: 6,
                remaining: 5,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn alignment_at_the_cap_is_accepted_and_twice_it_is_not() {
    let cap = u32::try_from(MAX_ALIGNMENT).unwrap();
    let bytes = Raw::header(3, 0, 1)
        .str("general.alignment")
        .u32(U32)
        .u32(cap)
        .0;
    assert_eq!(parse(&bytes).unwrap().alignment, MAX_ALIGNMENT);
    let bytes = Raw::header(3, 0, 1)
        .str("general.alignment")
        .u32(U32)
        .u32(cap * 2)
        .0;
    assert!(matches!(
        err(&bytes),
        GgufError::AlignmentTooLarge {
            max: MAX_ALIGNMENT,
            ..
        }
    ));
}

// ---- nesting ---------------------------------------------------------------------------------

#[test]
fn nesting_far_past_the_cap_stops_at_the_cap() {
    // 100 000 nested array headers: the reader must stop at depth 3, not recurse (a
    // recursion per level would overflow the stack long before the end).
    let mut r = Raw::header(3, 0, 1).str("deep").u32(ARRAY);
    for _ in 0..100_000 {
        r = r.u32(ARRAY).u64(1);
    }
    let bytes = r.u32(U8).u64(1).zeros(1).0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::ArrayTooDeep { ref key, max_depth: 2, .. } if key == "deep"),
        "{e}"
    );
}

#[test]
fn inner_array_count_past_the_end() {
    // array<array<u8>>: the outer count fits, the inner one claims 2^40 elements.
    let bytes = Raw::header(3, 0, 1)
        .str("k")
        .u32(ARRAY)
        .u32(ARRAY)
        .u64(1)
        .u32(U8)
        .u64(1 << 40)
        .zeros(16)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::ArrayPastEnd { count, elem_type: "u8", .. } if count == 1 << 40),
        "{e}"
    );
}

// ---- tensor names ------------------------------------------------------------------------------

#[test]
fn tensor_name_length_past_the_end() {
    let bytes = Raw::header(3, 1, 0).u64(200).zeros(40).0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::StringPastEnd { len: 200, remaining: 40, ref what, .. }
            if what.contains("tensor #0")),
        "{e}"
    );
}

#[test]
fn tensor_name_length_absurd() {
    let bytes = Raw::header(3, 1, 0).u64(u64::MAX).zeros(40).0;
    assert!(matches!(
        err(&bytes),
        GgufError::TensorNameTooLong {
            len: u64::MAX,
            index: 0,
            ..
        }
    ));
}

#[test]
fn tensor_name_not_utf8() {
    let bytes = Raw::header(3, 1, 0)
        .u64(2)
        .bytes(&[0xff, 0xfe])
        .u32(1)
        .u64(8)
        .u32(F32_T)
        .u64(0)
        .pad(32)
        .zeros(32)
        .0;
    assert!(matches!(err(&bytes), GgufError::InvalidUtf8 { at: 32, .. }));
}

#[test]
fn tensor_info_cut_inside_its_dimensions() {
    let bytes = Raw::header(3, 1, 0).str("t").u32(2).u64(8).zeros(14).0;
    let e = err(&bytes);
    // 14 bytes: the second dimension (8) fits, the type (4) fits, the offset (8) does not.
    assert!(
        matches!(e, GgufError::UnexpectedEof { needed: 8, .. }),
        "{e}"
    );
}

// ---- sizes -----------------------------------------------------------------------------------

#[test]
fn byte_size_overflows_u64_across_two_dims() {
    // 2^31 x 2^31 = 2^62 elements (a valid i64 count) of 4 bytes = 2^64 bytes: the size,
    // not the count, overflows (CVE-2025-53630 style).
    let e = err(&one_tensor(&[1 << 31, 1 << 31], F32_T, 0, 64));
    assert!(
        matches!(e, GgufError::TensorSizeOverflow { ref tensor, ggml_type: "F32", n_elements }
            if tensor == "t" && n_elements == 1 << 62),
        "{e}"
    );
}

#[test]
fn blocked_types_cannot_overflow_within_the_element_cap() {
    // Every blocked type stores at most ~1.1 bytes per element, so the largest element
    // count ggml allows (i64::MAX, rounded to whole blocks) still has a u64 byte size.
    let n = (i64::MAX as u64) / 256 * 256;
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
    ] {
        assert!(ty.n_bytes(&[n]).is_ok(), "{ty}");
    }
    // ... and such a tensor is rejected for its data, not allocated.
    let e = err(&one_tensor(&[n], Q4_0_T, 0, 64));
    assert!(matches!(e, GgufError::TensorDataTruncated { .. }), "{e}");
}

#[test]
fn huge_logical_tensor_over_a_few_bytes() {
    // CVE-2026-33298 style: 2^40 f32 elements (4 TiB) described over 64 data bytes.
    let e = err(&one_tensor(&[1 << 20, 1 << 20], F32_T, 0, 64));
    assert!(
        matches!(e, GgufError::TensorDataTruncated { n_bytes, data_len: 64, .. } if n_bytes == 1 << 42),
        "{e}"
    );
}

#[test]
fn i2s_scale_tail_cut_by_one_byte() {
    assert!(parse(&one_tensor(&[128, 2], I2_S_T, 0, 96)).is_ok());
    let e = err(&one_tensor(&[128, 2], I2_S_T, 0, 95));
    assert!(
        matches!(
            e,
            GgufError::TensorDataTruncated {
                n_bytes: 96,
                missing: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn second_tensor_past_the_end_of_a_valid_first() {
    let bytes = Raw::header(3, 2, 0)
        .tensor("a", &[8], F32_T, 0)
        .tensor("b", &[8], F32_T, 32)
        .pad(32)
        .zeros(48)
        .0;
    let e = err(&bytes);
    assert!(
        matches!(e, GgufError::TensorDataTruncated { ref tensor, missing: 16, .. } if tensor == "b"),
        "{e}"
    );
}

// ---- lookups, foreign infos, files -------------------------------------------------------------

fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "bitnet-b1.58").unwrap();
    w.add_tensor("a", &[8], GgmlType::F32, vec![1u8; 32])
        .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn foreign_tensor_info_is_an_error_not_a_panic() {
    let bytes = small_file();
    let g = parse(&bytes).unwrap();
    let foreign = TensorInfo {
        name: "x".into(),
        dims: vec![1 << 30],
        ggml_type: GgmlType::F32,
        offset: u64::MAX - 8,
        n_bytes: 1 << 32,
    };
    assert!(matches!(
        g.tensor_data(&bytes, &foreign),
        Err(GgufError::TensorDataTruncated { .. })
    ));
    // The right info against other (shorter) bytes.
    let a = g.tensor("a").unwrap();
    assert!(g.tensor_data(&bytes[..bytes.len() - 1], a).is_err());
    assert_eq!(g.tensor_data(&bytes, a).unwrap(), &[1u8; 32][..]);
}

#[test]
fn wrong_typed_lookups_are_errors() {
    let bytes = small_file();
    let g = parse(&bytes).unwrap();
    let md = &g.metadata;
    assert!(matches!(
        md.get_u32("general.architecture"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_str("missing"),
        Err(GgufError::MissingKey { .. })
    ));
    assert!(md.get_str_array("general.architecture").is_err());
    assert_eq!(md.opt_u32("missing").unwrap(), None);
}

#[test]
fn truncated_file_on_disk_is_an_error() {
    let bytes = small_file();
    let dir = std::env::temp_dir().join(format!("gguf-extra-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.gguf");
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let e = GgufFile::open(&path).expect_err("truncated file");
    assert!(
        matches!(e, GgufError::TensorDataTruncated { missing: 1, .. }),
        "{e}"
    );
    std::fs::write(&path, &bytes).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensor("a").unwrap().1, &[1u8; 32][..]);
    assert!(matches!(
        f.tensor("b"),
        Err(GgufError::TensorNotFound { .. })
    ));
    // An empty file and a missing one.
    std::fs::write(&path, b"").unwrap();
    assert!(GgufFile::open(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(GgufFile::open(&path), Err(GgufError::Io { .. })));
}
