//! Token sampling: greedy, temperature, top-k, top-p, min-p and repetition penalty, in
//! llama.cpp's default order (penalties → top-k → top-p → min-p → temperature → draw), with
//! a seeded xoshiro256** generator: the same seed, settings and logits give the same tokens.

/// Sampling settings (llama.cpp's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `<= 0` means greedy.
    pub temperature: f32,
    /// Keep the `k` most likely tokens; 0 = all.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `p`; 1 = all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 = none.
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens; 1 = off.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Always take the most likely token (lowest id on ties).
    pub greedy: bool,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            greedy: false,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Checks every setting's range; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |v: f32, name: &str| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number, got {v}"))
            }
        };
        finite(self.temperature, "--temp")?;
        finite(self.top_p, "--top-p")?;
        finite(self.min_p, "--min-p")?;
        finite(self.repeat_penalty, "--repeat-penalty")?;
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(format!("--top-p must be in [0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("--min-p must be in [0, 1], got {}", self.min_p));
        }
        if self.repeat_penalty <= 0.0 {
            return Err(format!(
                "--repeat-penalty must be positive, got {}",
                self.repeat_penalty
            ));
        }
        Ok(())
    }

    /// Whether this configuration always picks the argmax.
    pub fn is_greedy(&self) -> bool {
        self.greedy || self.temperature <= 0.0
    }
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A sampler with its own RNG and a candidate buffer allocated once.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// `(id, logit)` candidates.
    cand: Vec<(u32, f32)>,
    /// Probabilities of `cand`.
    probs: Vec<f64>,
}

impl Sampler {
    /// A sampler for `cfg` (seeded with `cfg.seed`).
    pub fn new(cfg: SamplerConfig) -> Sampler {
        Sampler {
            cfg,
            rng: Rng::new(cfg.seed),
            cand: Vec::new(),
            probs: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits` given the tokens so far (`history`, for the
    /// repetition penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let cfg = self.cfg;
        let (cand, probs) = (&mut self.cand, &mut self.probs);
        cand.clear();
        cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, if l.is_nan() { f32::NEG_INFINITY } else { l })),
        );
        if cand.is_empty() {
            return 0;
        }
        // Repetition penalty over the distinct recent tokens (llama.cpp rule).
        if cfg.repeat_penalty != 1.0 && cfg.repeat_last_n > 0 {
            let recent = &history[history.len().saturating_sub(cfg.repeat_last_n)..];
            for (i, &id) in recent.iter().enumerate() {
                if recent[..i].contains(&id) {
                    continue;
                }
                if let Some(c) = cand.get_mut(id as usize) {
                    c.1 = if c.1 > 0.0 {
                        c.1 / cfg.repeat_penalty
                    } else {
                        c.1 * cfg.repeat_penalty
                    };
                }
            }
        }
        // Sorted by logit, descending; lowest id first on ties.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if cfg.is_greedy() {
            return cand.iter().copied().min_by(by_logit).map_or(0, |c| c.0);
        }
        if cfg.top_k > 0 && cfg.top_k < cand.len() {
            cand.select_nth_unstable_by(cfg.top_k - 1, by_logit);
            cand.truncate(cfg.top_k);
        }
        cand.sort_unstable_by(by_logit);
        // top-p on the untempered distribution.
        if cfg.top_p < 1.0 {
            softmax_probs(cand, probs);
            let mut cum = 0.0;
            let mut keep = cand.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= f64::from(cfg.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        // min-p: logit >= max + ln(min_p).
        if cfg.min_p > 0.0 {
            let thresh = cand[0].1 + cfg.min_p.ln();
            let keep = cand.iter().take_while(|c| c.1 >= thresh).count();
            cand.truncate(keep.max(1));
        }
        for c in cand.iter_mut() {
            c.1 /= cfg.temperature;
        }
        softmax_probs(cand, probs);
        let r = self.rng.next_f64();
        let mut cum = 0.0;
        for (c, p) in cand.iter().zip(probs.iter()) {
            cum += p;
            if r < cum {
                return c.0;
            }
        }
        cand.last().map_or(0, |c| c.0)
    }
}

/// Softmax of the candidates' logits (sorted descending, so the first is the max), in f64.
fn softmax_probs(cand: &[(u32, f32)], p: &mut Vec<f64>) {
    let max = f64::from(cand[0].1);
    p.clear();
    p.extend(cand.iter().map(|c| {
        let v = (f64::from(c.1) - max).exp();
        if v.is_nan() { 0.0 } else { v }
    }));
    let sum: f64 = p.iter().sum();
    if sum > 0.0 {
        p.iter_mut().for_each(|v| *v /= sum);
    } else {
        p.iter_mut().for_each(|v| *v = 0.0);
        p[0] = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_lowest_id_on_ties() {
        let mut s = Sampler::new(SamplerConfig {
            greedy: true,
            ..Default::default()
        });
        assert_eq!(s.sample(&[1.0, 3.0, 3.0, -1.0], &[]), 1);
        assert_eq!(s.sample(&[f32::NAN, 0.5, 0.1], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerConfig {
                seed,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                temperature: 1.5,
                ..Default::default()
            });
            (0..50).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplerConfig {
            top_k: 1,
            seed: 3,
            ..Default::default()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 2.0, 1.9, 1.0], &[]), 1);
        }
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        // Token 0 has ~all the mass; min-p 0.5 and top-p 0.5 both leave only it.
        let logits = [10.0, 0.0, 0.0, 0.0];
        for cfg in [
            SamplerConfig {
                min_p: 0.5,
                top_p: 1.0,
                top_k: 0,
                temperature: 100.0,
                ..Default::default()
            },
            SamplerConfig {
                min_p: 0.0,
                top_p: 0.5,
                top_k: 0,
                temperature: 100.0,
                ..Default::default()
            },
        ] {
            let mut s = Sampler::new(cfg);
            for _ in 0..20 {
                assert_eq!(s.sample(&logits, &[]), 0);
            }
        }
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            greedy: true,
            repeat_penalty: 2.0,
            ..Default::default()
        });
        // 2.0 / 2 = 1.0 < 1.5: token 1 wins once token 0 was seen.
        assert_eq!(s.sample(&[2.0, 1.5], &[]), 0);
        assert_eq!(s.sample(&[2.0, 1.5], &[0]), 1);
        // Negative logits are multiplied.
        assert_eq!(s.sample(&[-1.0, -1.5], &[0]), 1);
    }

    #[test]
    fn validate_names_the_flag() {
        let bad = SamplerConfig {
            top_p: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("--top-p"));
        assert!(SamplerConfig::default().validate().is_ok());
    }
}
