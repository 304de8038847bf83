//! Preallocated key/value cache, sized once per state.
//!
//! Keys are stored transposed, `[layer][kv_head][head_dim][capacity]`, so that scoring one
//! query against consecutive positions reads contiguous memory: for each dimension `d` the
//! scores of all positions gain `q[d] · k[pos][d]` in one vectorizable sweep, and every
//! score is still summed over `d = 0..head_dim` in order. Values stay position-major,
//! `[layer][position][kv_dim]`, the order the weighted sum reads them in.

/// Keys and values of every layer for up to `capacity` positions.
#[derive(Debug, Clone)]
pub struct KvCache {
    n_layer: usize,
    capacity: usize,
    kv_dim: usize,
    head_dim: usize,
    /// `[layer][kv_head][head_dim][capacity]`.
    k: Vec<f32>,
    /// `[layer][position][kv_dim]`.
    v: Vec<f32>,
}

/// One layer's cache: transposed keys and position-major values (see the module docs).
#[derive(Debug)]
pub struct KvLayer<'c> {
    /// `[kv_head][head_dim][capacity]`.
    pub keys_t: &'c mut [f32],
    /// `[capacity][kv_dim]`.
    pub values: &'c mut [f32],
    /// Positions per key row.
    pub capacity: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl KvLayer<'_> {
    /// Stores `k` and `v` (`[tokens][kv_dim]`) at positions `pos0..pos0 + tokens`.
    ///
    /// # Panics
    /// If the positions exceed the capacity or the slices are not whole positions (callers
    /// check both first).
    pub fn store(&mut self, pos0: usize, k: &[f32], v: &[f32]) {
        let kv_dim = self.values.len() / self.capacity;
        let tokens = k.len() / kv_dim;
        self.values[pos0 * kv_dim..(pos0 + tokens) * kv_dim].copy_from_slice(v);
        for (t, row) in k.chunks_exact(kv_dim).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                // Row i of the transposed keys is (kv_head, d) = (i / head_dim, i % head_dim).
                self.keys_t[i * self.capacity + pos0 + t] = x;
            }
        }
    }
}

impl KvCache {
    /// Allocates (zeroed) room for `capacity` positions of `n_layer` layers, `kv_dim` wide
    /// in heads of `head_dim`.
    pub fn new(n_layer: usize, capacity: usize, kv_dim: usize, head_dim: usize) -> KvCache {
        let n = n_layer * capacity * kv_dim;
        KvCache {
            n_layer,
            capacity,
            kv_dim,
            head_dim,
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

    /// The cache of `layer`, for writing and attending.
    pub fn layer_mut(&mut self, layer: usize) -> KvLayer<'_> {
        let n = self.capacity * self.kv_dim;
        let r = layer * n..(layer + 1) * n;
        KvLayer {
            keys_t: &mut self.k[r.clone()],
            values: &mut self.v[r],
            capacity: self.capacity,
            head_dim: self.head_dim,
        }
    }

    /// Key of `layer` at `pos`, `kv_dim` wide (gathered from the transposed layout).
    pub fn key(&self, layer: usize, pos: usize) -> Vec<f32> {
        let base = layer * self.capacity * self.kv_dim;
        (0..self.kv_dim)
            .map(|i| self.k[base + i * self.capacity + pos])
            .collect()
    }

    /// Value of `layer` at `pos`, `kv_dim` wide.
    pub fn value(&self, layer: usize, pos: usize) -> &[f32] {
        let base = (layer * self.capacity + pos) * self.kv_dim;
        &self.v[base..base + self.kv_dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_come_back_where_they_were_stored() {
        let (layers, cap, kv_dim, hd) = (2, 5, 6, 3);
        let mut c = KvCache::new(layers, cap, kv_dim, hd);
        let k: Vec<f32> = (0..2 * kv_dim).map(|i| i as f32).collect();
        let v: Vec<f32> = (0..2 * kv_dim).map(|i| -(i as f32)).collect();
        c.layer_mut(1).store(3, &k, &v);
        for t in 0..2 {
            assert_eq!(c.key(1, 3 + t), &k[t * kv_dim..(t + 1) * kv_dim]);
            assert_eq!(c.value(1, 3 + t), &v[t * kv_dim..(t + 1) * kv_dim]);
        }
        assert!(c.key(0, 3).iter().all(|&x| x == 0.0));
        // Transposed: key element (head 1, d 2) of position 4 sits at row 1*3+2, column 4.
        let l = c.layer_mut(1);
        assert_eq!(l.keys_t[5 * cap + 4], k[kv_dim + 5]);
    }
}
