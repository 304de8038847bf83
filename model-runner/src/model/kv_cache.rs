//! Preallocated key/value cache, sized once per state, in f32 (exact, the default) or f16
//! (half the memory; keys and values rounded to f16 when stored, read back exactly).
//!
//! Keys are stored transposed, `[layer][kv_head][head_dim][capacity]`, so that scoring one
//! query against consecutive positions reads contiguous memory: for each dimension `d` the
//! scores of all positions gain `q[d] · k[pos][d]` in one vectorizable sweep, and every
//! score is still summed over `d = 0..head_dim` in order. Values stay position-major,
//! `[layer][position][kv_dim]`, the order the weighted sum reads them in.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// f32: exact (the reference's numerics).
    #[default]
    F32,
    /// f16: half the bytes; the attention then sees keys and values rounded to f16.
    F16,
}

impl KvType {
    /// Parses `f32` or `f16`.
    pub fn parse(name: &str) -> Option<KvType> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Some(KvType::F32),
            "f16" | "fp16" => Some(KvType::F16),
            _ => None,
        }
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

#[derive(Debug, Clone)]
enum Store {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Store {
    fn new(ty: KvType, n: usize) -> Store {
        match ty {
            KvType::F32 => Store::F32(vec![0.0; n]),
            KvType::F16 => Store::F16(vec![f16::ZERO; n]),
        }
    }

    fn len(&self) -> usize {
        match self {
            Store::F32(v) => v.len(),
            Store::F16(v) => v.len(),
        }
    }

    fn slice_mut(&mut self, r: std::ops::Range<usize>) -> Rows<'_> {
        match self {
            Store::F32(v) => Rows::F32(&mut v[r]),
            Store::F16(v) => Rows::F16(&mut v[r]),
        }
    }

    fn get(&self, i: usize) -> f32 {
        match self {
            Store::F32(v) => v[i],
            Store::F16(v) => v[i].to_f32(),
        }
    }
}

/// A mutable run of cache elements in the cache's type.
#[derive(Debug)]
pub enum Rows<'c> {
    /// f32 elements.
    F32(&'c mut [f32]),
    /// f16 elements.
    F16(&'c mut [f16]),
}

impl Rows<'_> {
    /// The element type.
    pub fn ty(&self) -> KvType {
        match self {
            Rows::F32(_) => KvType::F32,
            Rows::F16(_) => KvType::F16,
        }
    }

    fn set(&mut self, i: usize, x: f32) {
        match self {
            Rows::F32(v) => v[i] = x,
            Rows::F16(v) => v[i] = f16::from_f32(x),
        }
    }

    fn copy_from(&mut self, at: usize, src: &[f32]) {
        match self {
            Rows::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            Rows::F16(v) => v[at..at + src.len()].convert_from_f32_slice(src),
        }
    }

    /// A matrix of `rows` rows of `n` elements, row `r` at `at + r * stride`, as f32 with its
    /// row stride: borrowed (stride `stride`) when stored as f32, else converted into `buf`
    /// (at least `rows * n` long) with stride `n`. The conversion is exact.
    pub fn read_rows<'s>(
        &'s self,
        (at, n, rows, stride): (usize, usize, usize, usize),
        buf: &'s mut [f32],
    ) -> (&'s [f32], usize) {
        if rows == 0 || n == 0 {
            return (&[], stride);
        }
        match self {
            Rows::F32(v) => (&v[at..at + (rows - 1) * stride + n], stride),
            Rows::F16(v) => {
                for (r, out) in buf[..rows * n].chunks_exact_mut(n).enumerate() {
                    v[at + r * stride..][..n].convert_to_f32_slice(out);
                }
                (&buf[..rows * n], n)
            }
        }
    }
}

/// Keys and values of every layer for up to `capacity` positions.
#[derive(Debug, Clone)]
pub struct KvCache {
    n_layer: usize,
    capacity: usize,
    kv_dim: usize,
    head_dim: usize,
    ty: KvType,
    /// `[layer][kv_head][head_dim][capacity]`.
    k: Store,
    /// `[layer][position][kv_dim]`.
    v: Store,
}

/// One layer's cache: transposed keys and position-major values (see the module docs).
#[derive(Debug)]
pub struct KvLayer<'c> {
    /// `[kv_head][head_dim][capacity]`.
    pub keys_t: Rows<'c>,
    /// `[capacity][kv_dim]`.
    pub values: Rows<'c>,
    /// Positions per key row.
    pub capacity: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Width of one position's values.
    pub kv_dim: usize,
}

impl KvLayer<'_> {
    /// Stores `k` and `v` (`[tokens][kv_dim]`) at positions `pos0..pos0 + tokens`.
    ///
    /// # Panics
    /// If the positions exceed the capacity or the slices are not whole positions (callers
    /// check both first).
    pub fn store(&mut self, pos0: usize, k: &[f32], v: &[f32]) {
        self.values.copy_from(pos0 * self.kv_dim, v);
        for (t, row) in k.chunks_exact(self.kv_dim).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                // Row i of the transposed keys is (kv_head, d) = (i / head_dim, i % head_dim).
                self.keys_t.set(i * self.capacity + pos0 + t, x);
            }
        }
    }
}

impl KvCache {
    /// Allocates (zeroed) room for `capacity` positions of `n_layer` layers, `kv_dim` wide
    /// in heads of `head_dim`, in `ty`.
    pub fn new(
        n_layer: usize,
        capacity: usize,
        kv_dim: usize,
        head_dim: usize,
        ty: KvType,
    ) -> KvCache {
        let n = n_layer * capacity * kv_dim;
        KvCache {
            n_layer,
            capacity,
            kv_dim,
            head_dim,
            ty,
            k: Store::new(ty, n),
            v: Store::new(ty, n),
        }
    }

    /// Positions this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Layers this cache holds.
    pub fn n_layer(&self) -> usize {
        self.n_layer
    }

    /// Width of one position's keys (or values).
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Element type.
    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * self.ty.size()
    }

    /// The cache of `layer`, for writing and attending.
    pub fn layer_mut(&mut self, layer: usize) -> KvLayer<'_> {
        let n = self.capacity * self.kv_dim;
        let r = layer * n..(layer + 1) * n;
        KvLayer {
            keys_t: self.k.slice_mut(r.clone()),
            values: self.v.slice_mut(r),
            capacity: self.capacity,
            head_dim: self.head_dim,
            kv_dim: self.kv_dim,
        }
    }

    /// Key of `layer` at `pos`, `kv_dim` wide (gathered from the transposed layout).
    pub fn key(&self, layer: usize, pos: usize) -> Vec<f32> {
        let base = layer * self.capacity * self.kv_dim;
        (0..self.kv_dim)
            .map(|i| self.k.get(base + i * self.capacity + pos))
            .collect()
    }

    /// Value of `layer` at `pos`, `kv_dim` wide.
    pub fn value(&self, layer: usize, pos: usize) -> Vec<f32> {
        let base = (layer * self.capacity + pos) * self.kv_dim;
        (0..self.kv_dim).map(|i| self.v.get(base + i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_come_back_where_they_were_stored() {
        let (layers, cap, kv_dim, hd) = (2, 5, 6, 3);
        for ty in [KvType::F32, KvType::F16] {
            let mut c = KvCache::new(layers, cap, kv_dim, hd, ty);
            // Small integers: exact in f16 too.
            let k: Vec<f32> = (0..2 * kv_dim).map(|i| i as f32).collect();
            let v: Vec<f32> = (0..2 * kv_dim).map(|i| -(i as f32)).collect();
            c.layer_mut(1).store(3, &k, &v);
            for t in 0..2 {
                assert_eq!(c.key(1, 3 + t), &k[t * kv_dim..(t + 1) * kv_dim]);
                assert_eq!(c.value(1, 3 + t), &v[t * kv_dim..(t + 1) * kv_dim]);
            }
            assert!(c.key(0, 3).iter().all(|&x| x == 0.0));
            // Transposed: key element (head 1, d 2) of position 4 sits at row 5, column 4.
            let l = c.layer_mut(1);
            let mut buf = vec![0f32; 2 * cap];
            let (m, stride) = l.keys_t.read_rows((5 * cap, cap, 1, cap), &mut buf);
            assert_eq!(m[4], k[kv_dim + 5]);
            assert_eq!(stride, cap);
            // Values of head 1 (elements 3..6) at positions 3 and 4, as a two-row matrix.
            let (m, stride) = l
                .values
                .read_rows((3 * kv_dim + 3, hd, 2, kv_dim), &mut buf);
            for (r, j) in (0..2).flat_map(|r| (0..hd).map(move |j| (r, j))) {
                assert_eq!(m[r * stride + j], v[r * kv_dim + 3 + j], "{ty:?} {r} {j}");
            }
            assert_eq!(c.bytes(), 2 * layers * cap * kv_dim * ty.size());
        }
    }

    #[test]
    fn f16_cache_rounds_to_nearest_f16() {
        let mut c = KvCache::new(1, 1, 2, 2, KvType::F16);
        c.layer_mut(0).store(0, &[0.1, 1e6], &[-0.1, 3.0e-8]);
        let r = |x: f32| f16::from_f32(x).to_f32();
        assert_eq!(c.key(0, 0), [r(0.1), r(1e6)]);
        assert_eq!(c.value(0, 0), [r(-0.1), r(3.0e-8)]);
    }
}
