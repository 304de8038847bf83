//! The model's tensors as borrowed kernel views over the file bytes (no copy of weight
//! data; only the small norm vectors are converted to f32), each checked for presence,
//! type and shape against the hyper-parameters.

use bitnet_kernels::dense::{Dense, DenseType};
use bitnet_kernels::{Format, I2s, TernaryMatrix, Tq1_0, Tq2_0};

use super::config::Config;
use super::error::{ModelError, Result};
use crate::gguf::{GgmlType, Gguf, TensorInfo};

/// A packed ternary projection borrowed from the file.
#[derive(Debug, Clone)]
pub enum Ternary<'a> {
    /// bitnet.cpp I2_S (type 36).
    I2s(I2s<&'a [u8]>),
    /// llama.cpp TQ2_0 (type 35).
    Tq2_0(Tq2_0<&'a [u8]>),
    /// llama.cpp TQ1_0 (type 34).
    Tq1_0(Tq1_0<&'a [u8]>),
}

impl Ternary<'_> {
    /// The kernel interface.
    pub fn matrix(&self) -> &dyn TernaryMatrix {
        match self {
            Ternary::I2s(m) => m,
            Ternary::Tq2_0(m) => m,
            Ternary::Tq1_0(m) => m,
        }
    }

    /// The tensor's bytes as stored (codes and scales).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Ternary::I2s(m) => m.bytes(),
            Ternary::Tq2_0(m) => m.bytes(),
            Ternary::Tq1_0(m) => m.bytes(),
        }
    }

    /// The packed format.
    pub fn format(&self) -> Format {
        self.matrix().format()
    }
}

/// One ternary projection `y = W x` (`rows` outputs, `cols` inputs), with the optional
/// per-tensor output scale some `bitnet` conversions store as `<name>.scale`.
#[derive(Debug, Clone)]
pub struct Projection<'a> {
    /// Tensor name (for errors).
    pub name: String,
    /// The packed weights.
    pub w: Ternary<'a>,
    /// Multiplies every output when present.
    pub out_scale: Option<f32>,
}

impl Projection<'_> {
    /// Output dimension.
    pub fn rows(&self) -> usize {
        self.w.matrix().rows()
    }
    /// Input dimension.
    pub fn cols(&self) -> usize {
        self.w.matrix().cols()
    }
}

/// The tensors of one block.
#[derive(Debug, Clone)]
pub struct LayerWeights<'a> {
    pub attn_norm: Vec<f32>,
    pub attn_sub_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub wq: Projection<'a>,
    pub wk: Projection<'a>,
    pub wv: Projection<'a>,
    pub wo: Projection<'a>,
    pub wgate: Projection<'a>,
    pub wup: Projection<'a>,
    pub wdown: Projection<'a>,
}

/// All tensors of the model.
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// `token_embd.weight`: `vocab` rows of `hidden` (F32/F16/BF16).
    pub token_embd: Dense<'a>,
    /// `output_norm.weight`.
    pub output_norm: Vec<f32>,
    /// `output.weight` when present; `None` = tied to `token_embd`.
    pub output: Option<Dense<'a>>,
    /// One entry per block.
    pub layers: Vec<LayerWeights<'a>>,
}

impl<'a> Weights<'a> {
    /// Finds, checks and wraps every tensor the graph of `cfg` needs.
    pub fn from_gguf(gguf: &'a Gguf, bytes: &'a [u8], cfg: &Config) -> Result<Weights<'a>> {
        let t = Tensors { gguf, bytes };
        let (h, v) = (cfg.hidden as u64, cfg.vocab_size as u64);
        let token_embd = t.dense(
            "token_embd.weight",
            &[h, v],
            "[embedding_length, vocab_size]",
        )?;
        let output_norm = t.norm("output_norm.weight", cfg.hidden, "embedding_length")?;
        let output = if gguf.tensor("output.weight").is_some() {
            Some(t.dense("output.weight", &[h, v], "[embedding_length, vocab_size]")?)
        } else {
            None
        };
        let sub_required = cfg.arch.requires_sub_norms();
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            let sub = |s: &str, width: usize, what: &str| -> Result<Option<Vec<f32>>> {
                let name = n(s);
                if sub_required || gguf.tensor(&name).is_some() {
                    t.norm(&name, width, what).map(Some)
                } else {
                    Ok(None)
                }
            };
            let (q, kv, f) = (cfg.q_dim(), cfg.kv_dim(), cfg.ffn);
            layers.push(LayerWeights {
                attn_norm: t.norm(&n("attn_norm"), cfg.hidden, "embedding_length")?,
                attn_sub_norm: sub("attn_sub_norm", q, "embedding_length")?,
                ffn_norm: t.norm(&n("ffn_norm"), cfg.hidden, "embedding_length")?,
                ffn_sub_norm: sub("ffn_sub_norm", f, "feed_forward_length")?,
                wq: t.proj(
                    &n("attn_q"),
                    cfg.hidden,
                    q,
                    "[embedding_length, head_count*head_dim]",
                )?,
                wk: t.proj(
                    &n("attn_k"),
                    cfg.hidden,
                    kv,
                    "[embedding_length, head_count_kv*head_dim]",
                )?,
                wv: t.proj(
                    &n("attn_v"),
                    cfg.hidden,
                    kv,
                    "[embedding_length, head_count_kv*head_dim]",
                )?,
                wo: t.proj(
                    &n("attn_output"),
                    q,
                    cfg.hidden,
                    "[head_count*head_dim, embedding_length]",
                )?,
                wgate: t.proj(
                    &n("ffn_gate"),
                    cfg.hidden,
                    f,
                    "[embedding_length, feed_forward_length]",
                )?,
                wup: t.proj(
                    &n("ffn_up"),
                    cfg.hidden,
                    f,
                    "[embedding_length, feed_forward_length]",
                )?,
                wdown: t.proj(
                    &n("ffn_down"),
                    f,
                    cfg.hidden,
                    "[feed_forward_length, embedding_length]",
                )?,
            });
        }
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            layers,
        })
    }

    /// The output head: `output.weight`, or the tied embedding.
    pub fn head(&self) -> &Dense<'a> {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

/// Tensor lookup with errors naming the tensor.
struct Tensors<'a> {
    gguf: &'a Gguf,
    bytes: &'a [u8],
}

impl<'a> Tensors<'a> {
    fn get(&self, name: &str) -> Result<(&'a TensorInfo, &'a [u8])> {
        let info = self
            .gguf
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                tensor: name.to_owned(),
            })?;
        let data = self.gguf.tensor_data(self.bytes, info)?;
        Ok((info, data))
    }

    fn shape(info: &TensorInfo, expected: &[u64], why: &str) -> Result<()> {
        if info.dims != expected {
            return Err(ModelError::TensorShape {
                tensor: info.name.clone(),
                got: info.dims.clone(),
                expected: expected.to_vec(),
                why: format!("({why})"),
            });
        }
        Ok(())
    }

    fn dense_type(info: &TensorInfo, expected: &'static str) -> Result<DenseType> {
        match info.ggml_type {
            GgmlType::F32 => Ok(DenseType::F32),
            GgmlType::F16 => Ok(DenseType::F16),
            GgmlType::BF16 => Ok(DenseType::Bf16),
            other => Err(ModelError::TensorType {
                tensor: info.name.clone(),
                got: other.to_string(),
                expected,
            }),
        }
    }

    fn dense(&self, name: &str, dims: &[u64], why: &str) -> Result<Dense<'a>> {
        let (info, data) = self.get(name)?;
        let ty = Self::dense_type(info, "F32, F16 or BF16")?;
        Self::shape(info, dims, why)?;
        Dense::new(ty, dims[1] as usize, dims[0] as usize, data).map_err(|source| {
            ModelError::TensorData {
                tensor: name.to_owned(),
                source,
            }
        })
    }

    fn norm(&self, name: &str, width: usize, why: &str) -> Result<Vec<f32>> {
        let (info, data) = self.get(name)?;
        let ty = Self::dense_type(info, "F32 (or F16/BF16)")?;
        Self::shape(info, &[width as u64], why)?;
        let d = Dense::new(ty, 1, width, data).map_err(|source| ModelError::TensorData {
            tensor: name.to_owned(),
            source,
        })?;
        let mut out = vec![0f32; width];
        d.row_to_f32(0, &mut out)
            .map_err(|source| ModelError::TensorData {
                tensor: name.to_owned(),
                source,
            })?;
        Ok(out)
    }

    /// A projection stored with `ne = [cols (in), rows (out)]`.
    fn proj(&self, name: &str, cols: usize, rows: usize, why: &str) -> Result<Projection<'a>> {
        let (info, data) = self.get(name)?;
        let expected = "a ternary type: I2_S (36), TQ2_0 (35) or TQ1_0 (34)";
        if !matches!(
            info.ggml_type,
            GgmlType::I2_S | GgmlType::TQ2_0 | GgmlType::TQ1_0
        ) {
            return Err(ModelError::TensorType {
                tensor: name.to_owned(),
                got: info.ggml_type.to_string(),
                expected,
            });
        }
        Self::shape(info, &[cols as u64, rows as u64], why)?;
        let wrap = |source| ModelError::TensorData {
            tensor: name.to_owned(),
            source,
        };
        let w = match info.ggml_type {
            GgmlType::I2_S => Ternary::I2s(I2s::new(rows, cols, data).map_err(wrap)?),
            GgmlType::TQ2_0 => Ternary::Tq2_0(Tq2_0::new(rows, cols, data).map_err(wrap)?),
            _ => Ternary::Tq1_0(Tq1_0::new(rows, cols, data).map_err(wrap)?),
        };
        // Optional llama.cpp-style output scale (`blk.N.attn_q.scale`, one F32).
        let scale_name = format!("{}.scale", name.trim_end_matches(".weight"));
        let out_scale = if self.gguf.tensor(&scale_name).is_some() {
            let (si, sd) = self.get(&scale_name)?;
            if si.ggml_type != GgmlType::F32 {
                return Err(ModelError::TensorType {
                    tensor: scale_name,
                    got: si.ggml_type.to_string(),
                    expected: "F32",
                });
            }
            Self::shape(si, &[1], "one per-tensor scale")?;
            let s = f32::from_le_bytes([sd[0], sd[1], sd[2], sd[3]]);
            if !s.is_finite() {
                return Err(ModelError::BadHyperParameter {
                    key: scale_name,
                    reason: format!("scale {s} is not finite"),
                });
            }
            Some(s)
        } else {
            None
        };
        Ok(Projection {
            name: name.to_owned(),
            w,
            out_scale,
        })
    }
}
