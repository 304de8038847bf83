//! Preallocated key/value cache, sized once per state, in f32 (exact, the default) or f16
//! (half the memory; keys and values rounded to f16 when stored, and read in place by
//! `dot_cols_f16`, which widens them exactly as it loads: the faster cache over long
//! contexts, as attention then reads half the bytes).
//!
//! Both are laid out for attention's column sums (`dot_cols`: each output column summed over
//! the rows in order, a block of columns at a time), in tiles [`KV_TILE`] columns wide that
//! are each one contiguous stream:
//! - keys transposed, in tiles of [`KV_TILE`] positions:
//!   `[layer][kv_head][position / KV_TILE][head_dim][position % KV_TILE]`, so the scores of
//!   a tile's positions sum over `d = 0..head_dim` in order, reading 8 KiB (f32) in a row;
//! - values in slabs of [`KV_TILE`] dimensions:
//!   `[layer][kv_head][dim / KV_TILE][position][dim % KV_TILE]` (the last slab of a head
//!   narrower when `head_dim` is not a multiple), so a weighted sum over positions reads one
//!   slab front to back.
//!
//! Plain transposed keys `[head_dim][capacity]` had a long cache's score sums hop a page per
//! row, and position-major values read one head's 512 bytes out of every 2.5 KiB: cold, they
//! read at 5–9 GB/s on one thread. With the tiles (and the query heads of a KV head summed
//! together), decode after 1024 positions went from 15.1 to 20.6 tok/s on 2 threads (see
//! `docs/performance.md`).

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
enum Rows<'c> {
    /// f32 elements.
    F32(&'c mut [f32]),
    /// f16 elements.
    F16(&'c mut [f16]),
}

impl Rows<'_> {
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

    /// The matrix of `rows` rows of `n` elements, row `r` at `at + r * stride`, borrowed in
    /// the cache's type (empty when `rows` or `n` is 0).
    fn view(&self, (at, n, rows, stride): (usize, usize, usize, usize)) -> Elements<'_> {
        let end = match rows.checked_sub(1) {
            Some(last) if n > 0 => at + last * stride + n,
            _ => at,
        };
        match self {
            Rows::F32(v) => Elements::F32(&v[at..end]),
            Rows::F16(v) => Elements::F16(&v[at..end]),
        }
    }
}

/// Borrowed cache elements in the cache's type: what attention's column sums read, each
/// type through its own kernel (`dot_cols_f32`, or `dot_cols_f16`, which widens as it
/// reads).
#[derive(Debug, Clone, Copy)]
pub enum Elements<'s> {
    /// f32 elements.
    F32(&'s [f32]),
    /// f16 elements.
    F16(&'s [f16]),
}

impl Elements<'_> {
    /// Element `i`, widened to f32 (exact).
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Elements::F32(v) => v[i],
            Elements::F16(v) => v[i].to_f32(),
        }
    }
}

/// Columns per key tile (positions) and per value slab (dimensions); see the module docs.
/// Sixteen: two AVX2 vectors or one AVX-512 vector of columns, so that `dot_cols` sums a
/// tile for all (up to four) query heads of a KV head in one front-to-back pass, with its
/// accumulators in registers. At 64 the AVX2 kernels had to choose between four passes per
/// tile (one per head) and walking it at its row stride.
pub const KV_TILE: usize = 16;

/// Where each key and value element of one layer lives (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Layout {
    capacity: usize,
    head_dim: usize,
    kv_dim: usize,
}

impl Layout {
    /// Elements of one KV head's keys (its last tile padded to [`KV_TILE`] positions).
    fn key_head_len(&self) -> usize {
        self.capacity.div_ceil(KV_TILE) * KV_TILE * self.head_dim
    }
    /// Elements of one layer's keys.
    fn keys_len(&self) -> usize {
        self.kv_dim / self.head_dim * self.key_head_len()
    }
    /// Elements of one layer's values.
    fn values_len(&self) -> usize {
        self.capacity * self.kv_dim
    }
    /// Index of key element `d` of KV head `h` at position `p`.
    fn key(&self, h: usize, d: usize, p: usize) -> usize {
        h * self.key_head_len() + (p / KV_TILE * self.head_dim + d) * KV_TILE + p % KV_TILE
    }
    /// Width of value slab `s`.
    fn slab_width(&self, s: usize) -> usize {
        (self.head_dim - s * KV_TILE).min(KV_TILE)
    }
    /// Index of value element `d` of KV head `h` at position `p`.
    fn value(&self, h: usize, d: usize, p: usize) -> usize {
        let s = d / KV_TILE;
        h * self.capacity * self.head_dim
            + s * KV_TILE * self.capacity
            + p * self.slab_width(s)
            + d % KV_TILE
    }
}

/// Keys and values of every layer for up to `capacity` positions.
#[derive(Debug, Clone)]
pub struct KvCache {
    n_layer: usize,
    layout: Layout,
    ty: KvType,
    /// Keys of every layer in tiles (see the module docs).
    k: Store,
    /// Values of every layer in slabs (see the module docs).
    v: Store,
}

/// One layer's cache: keys in tiles, values in slabs (see the module docs).
#[derive(Debug)]
pub struct KvLayer<'c> {
    keys: Rows<'c>,
    values: Rows<'c>,
    layout: Layout,
}

impl KvLayer<'_> {
    /// Stores `k` and `v` (`[tokens][kv_dim]`) at positions `pos0..pos0 + tokens`.
    ///
    /// # Panics
    /// If the positions exceed the capacity or the slices are not whole positions (callers
    /// check both first).
    pub fn store(&mut self, pos0: usize, k: &[f32], v: &[f32]) {
        let l = self.layout;
        let hd = l.head_dim;
        for (t, (krow, vrow)) in k
            .chunks_exact(l.kv_dim)
            .zip(v.chunks_exact(l.kv_dim))
            .enumerate()
        {
            let p = pos0 + t;
            for (h, (kh, vh)) in krow.chunks_exact(hd).zip(vrow.chunks_exact(hd)).enumerate() {
                for (d, &x) in kh.iter().enumerate() {
                    self.keys.set(l.key(h, d, p), x);
                }
                for (s, slab) in vh.chunks(KV_TILE).enumerate() {
                    self.values.copy_from(l.value(h, s * KV_TILE, p), slab);
                }
            }
        }
    }

    /// Positions this cache holds.
    pub fn capacity(&self) -> usize {
        self.layout.capacity
    }

    /// Key tile `tile` of KV head `h` and its row stride ([`KV_TILE`]): row `d < head_dim`
    /// holds element `d` of the keys at positions `tile * KV_TILE + j`, `j < KV_TILE`
    /// (positions not stored yet hold stale values).
    pub fn key_tile(&self, h: usize, tile: usize) -> (Elements<'_>, usize) {
        let l = self.layout;
        let at = l.key(h, 0, tile * KV_TILE);
        (self.keys.view((at, KV_TILE, l.head_dim, KV_TILE)), KV_TILE)
    }

    /// Value slab `slab` of KV head `h` for positions `0..n` and its row stride: row `p`
    /// holds elements `slab * KV_TILE..` (up to [`KV_TILE`] of them, fewer in a head's last
    /// slab) of the value at position `p`.
    pub fn value_slab(&self, h: usize, slab: usize, n: usize) -> (Elements<'_>, usize) {
        let l = self.layout;
        let w = l.slab_width(slab);
        (
            self.values.view((l.value(h, slab * KV_TILE, 0), w, n, w)),
            w,
        )
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
        let layout = Layout {
            capacity,
            head_dim,
            kv_dim,
        };
        KvCache {
            n_layer,
            layout,
            ty,
            k: Store::new(ty, n_layer * layout.keys_len()),
            v: Store::new(ty, n_layer * layout.values_len()),
        }
    }

    /// Positions this cache holds.
    pub fn capacity(&self) -> usize {
        self.layout.capacity
    }

    /// Layers this cache holds.
    pub fn n_layer(&self) -> usize {
        self.n_layer
    }

    /// Width of one position's keys (or values).
    pub fn kv_dim(&self) -> usize {
        self.layout.kv_dim
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
        let l = self.layout;
        let (nk, nv) = (l.keys_len(), l.values_len());
        KvLayer {
            keys: self.k.slice_mut(layer * nk..(layer + 1) * nk),
            values: self.v.slice_mut(layer * nv..(layer + 1) * nv),
            layout: l,
        }
    }

    /// Key of `layer` at `pos`, `kv_dim` wide (gathered from the tiles).
    pub fn key(&self, layer: usize, pos: usize) -> Vec<f32> {
        let l = self.layout;
        let base = layer * l.keys_len();
        (0..l.kv_dim)
            .map(|i| {
                self.k
                    .get(base + l.key(i / l.head_dim, i % l.head_dim, pos))
            })
            .collect()
    }

    /// Value of `layer` at `pos`, `kv_dim` wide (gathered from the slabs).
    pub fn value(&self, layer: usize, pos: usize) -> Vec<f32> {
        let l = self.layout;
        let base = layer * l.values_len();
        (0..l.kv_dim)
            .map(|i| {
                self.v
                    .get(base + l.value(i / l.head_dim, i % l.head_dim, pos))
            })
            .collect()
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
            // Keys padded to one whole tile per head; values unpadded.
            let keys = layers * (kv_dim / hd) * KV_TILE * hd;
            assert_eq!(c.bytes(), (keys + layers * cap * kv_dim) * ty.size());
        }
    }

    /// The tiles and slabs attention reads hold exactly the stored keys and values: two
    /// heads of 4½ tiles' dimensions (full value slabs and a half-width one), 70 positions
    /// (key tiles, the last partial), both element types.
    #[test]
    fn key_tiles_and_value_slabs_hold_the_stored_elements() {
        let (cap, hd) = (70, 4 * KV_TILE + KV_TILE / 2);
        let kv_dim = 2 * hd;
        let key = |p: usize, i: usize| (p * 7 + i) as f32 % 1000.0;
        let value = |p: usize, i: usize| -((p * 13 + i) as f32 % 1000.0);
        for ty in [KvType::F32, KvType::F16] {
            let mut c = KvCache::new(1, cap, kv_dim, hd, ty);
            let mut l = c.layer_mut(0);
            // Stored in three calls: 1 position, then 40, then 29.
            for (p0, n) in [(0, 1), (1, 40), (41, 29)] {
                let k: Vec<f32> = (p0..p0 + n)
                    .flat_map(|p| (0..kv_dim).map(move |i| key(p, i)))
                    .collect();
                let v: Vec<f32> = (p0..p0 + n)
                    .flat_map(|p| (0..kv_dim).map(move |i| value(p, i)))
                    .collect();
                l.store(p0, &k, &v);
            }
            for h in 0..2 {
                for tile in 0..cap.div_ceil(KV_TILE) {
                    let (m, stride) = l.key_tile(h, tile);
                    assert_eq!(stride, KV_TILE);
                    assert!(matches!(m, Elements::F16(_)) == (ty == KvType::F16));
                    for (d, j) in (0..hd).flat_map(|d| (0..KV_TILE).map(move |j| (d, j))) {
                        let p = tile * KV_TILE + j;
                        if p < cap {
                            assert_eq!(
                                m.get(d * stride + j),
                                key(p, h * hd + d),
                                "{ty:?} k {h} {d} {p}"
                            );
                        }
                    }
                }
                let widths = [KV_TILE, KV_TILE, KV_TILE, KV_TILE, KV_TILE / 2];
                for (slab, w) in widths.into_iter().enumerate() {
                    let (m, stride) = l.value_slab(h, slab, cap);
                    assert_eq!(stride, w);
                    for (p, j) in (0..cap).flat_map(|p| (0..w).map(move |j| (p, j))) {
                        let i = h * hd + slab * KV_TILE + j;
                        assert_eq!(
                            m.get(p * stride + j),
                            value(p, i),
                            "{ty:?} v {h} {slab} {p}"
                        );
                    }
                }
            }
            for p in [0, 1, 40, 41, 63, 64, 69] {
                let want: Vec<f32> = (0..kv_dim).map(|i| key(p, i)).collect();
                assert_eq!(c.key(0, p), want);
                let want: Vec<f32> = (0..kv_dim).map(|i| value(p, i)).collect();
                assert_eq!(c.value(0, p), want);
            }
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
