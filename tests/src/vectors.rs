//! Readers for the golden vectors in `tests/data/vectors/` (see its README and manifests).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Folder holding `i2s/` and `tq/`.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("vectors")
}

/// One I2_S case made by bitnet.cpp: `weights` [rows, cols] ternary·scale, `packed` the GGUF
/// tensor bytes (`n/4 + 32`), `x` [tokens, cols], `y` [tokens, rows] = bitnet.cpp's mul_mat.
#[derive(Debug, Clone)]
pub struct I2sCase {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub tokens: usize,
    pub weight_scale: f32,
    pub weights: Vec<f32>,
    pub packed: Vec<u8>,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

/// Which llama.cpp ternary format a [`TqCase`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TqFormat {
    Tq1_0,
    Tq2_0,
}

/// One TQ1_0/TQ2_0 case made by gguf-py: `input` [rows, cols] f32, `packed` the GGUF tensor
/// bytes, `dequant` [rows, cols] what gguf-py's dequantize returns.
#[derive(Debug, Clone)]
pub struct TqCase {
    pub name: String,
    pub format: TqFormat,
    pub rows: usize,
    pub cols: usize,
    pub input: Vec<f32>,
    pub packed: Vec<u8>,
    pub dequant: Vec<f32>,
}

#[derive(Deserialize)]
struct I2sManifest {
    cases: Vec<I2sEntry>,
}

#[derive(Deserialize)]
struct I2sEntry {
    name: String,
    rows: usize,
    cols: usize,
    tokens: usize,
    weight_scale: f32,
    packed_bytes: usize,
    weights: String,
    packed: String,
    x: String,
    y: String,
}

#[derive(Deserialize)]
struct TqManifest {
    cases: Vec<TqEntry>,
}

#[derive(Deserialize)]
struct TqEntry {
    name: String,
    format: String,
    rows: usize,
    cols: usize,
    input: String,
    packed: String,
    dequant: String,
    packed_bytes: usize,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("golden vector {}: {e}", path.display()))
}

/// Reads a little-endian f32 file and checks its element count.
pub fn read_f32(path: &Path, expected_len: usize) -> Vec<f32> {
    let bytes = read(path);
    assert_eq!(bytes.len(), expected_len * 4, "{}: size", path.display());
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// All I2_S cases of `i2s/manifest.json`, files loaded and sizes checked.
pub fn i2s_cases() -> Vec<I2sCase> {
    let dir = vectors_dir().join("i2s");
    let manifest: I2sManifest =
        serde_json::from_slice(&read(&dir.join("manifest.json"))).expect("i2s manifest");
    manifest
        .cases
        .into_iter()
        .map(|e| {
            let n = e.rows * e.cols;
            let packed = read(&dir.join(&e.packed));
            assert_eq!(packed.len(), e.packed_bytes, "{}: packed size", e.name);
            I2sCase {
                weights: read_f32(&dir.join(&e.weights), n),
                x: read_f32(&dir.join(&e.x), e.tokens * e.cols),
                y: read_f32(&dir.join(&e.y), e.tokens * e.rows),
                packed,
                name: e.name,
                rows: e.rows,
                cols: e.cols,
                tokens: e.tokens,
                weight_scale: e.weight_scale,
            }
        })
        .collect()
}

/// All TQ1_0/TQ2_0 cases of `tq/manifest.json`, files loaded and sizes checked.
pub fn tq_cases() -> Vec<TqCase> {
    let dir = vectors_dir().join("tq");
    let manifest: TqManifest =
        serde_json::from_slice(&read(&dir.join("manifest.json"))).expect("tq manifest");
    manifest
        .cases
        .into_iter()
        .map(|e| {
            let n = e.rows * e.cols;
            let format = match e.format.as_str() {
                "TQ1_0" => TqFormat::Tq1_0,
                "TQ2_0" => TqFormat::Tq2_0,
                other => panic!("{}: unknown format {other}", e.name),
            };
            let packed = read(&dir.join(&e.packed));
            assert_eq!(packed.len(), e.packed_bytes, "{}: packed size", e.name);
            TqCase {
                input: read_f32(&dir.join(&e.input), n),
                dequant: read_f32(&dir.join(&e.dequant), n),
                packed,
                name: e.name,
                format,
                rows: e.rows,
                cols: e.cols,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_load() {
        assert_eq!(i2s_cases().len(), 6);
        let tq = tq_cases();
        assert_eq!(tq.iter().filter(|c| c.format == TqFormat::Tq1_0).count(), 6);
        assert_eq!(tq.iter().filter(|c| c.format == TqFormat::Tq2_0).count(), 6);
    }
}
