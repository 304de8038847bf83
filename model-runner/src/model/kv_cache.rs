//! Preallocated key/value cache: `[layer][position][kv_dim]` f32, sized once per state.

/// Keys and values of every layer for up to `capacity` positions.
#[derive(Debug, Clone)]
pub struct KvCache {
    n_layer: usize,
    capacity: usize,
    kv_dim: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// Allocates (zeroed) room for `capacity` positions of `n_layer` layers.
    pub fn new(n_layer: usize, capacity: usize, kv_dim: usize) -> KvCache {
        let n = n_layer * capacity * kv_dim;
        KvCache {
            n_layer,
            capacity,
            kv_dim,
            k: vec![0.0; n],
            v: vec![0.0; n],
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

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 4
    }

    /// `(keys, values)` of `layer`, each `[capacity][kv_dim]`.
    pub fn layer_mut(&mut self, layer: usize) -> (&mut [f32], &mut [f32]) {
        let n = self.capacity * self.kv_dim;
        let r = layer * n..(layer + 1) * n;
        (&mut self.k[r.clone()], &mut self.v[r])
    }

    /// `(keys, values)` of `layer`, each `[capacity][kv_dim]`.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        let n = self.capacity * self.kv_dim;
        let r = layer * n..(layer + 1) * n;
        (&self.k[r.clone()], &self.v[r])
    }
}
