//! The run's one random generator: xoshiro256** seeded by SplitMix64, written here so that a
//! seed replays the same run forever.
//!
//! # Stability
//! A seed is a promise: `zhub sim run --seed 42` must do tomorrow what it did today, in any
//! build. So the generator is ours, not a dependency's whose stream may change in a minor
//! release, and its outputs are fixed: the state is four words from SplitMix64 over the seed
//! (Vigna's reference seeding), [`Rng::next_u64`] is xoshiro256** 1.0, and every derived draw
//! below documents how it maps those words. Changing any of them changes every recorded seed;
//! the unit tests pin the first outputs so that such a change cannot pass unnoticed.

/// A deterministic pseudo-random generator (xoshiro256**), seeded from one `u64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of SplitMix64: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        // SplitMix64 never yields four zero words from one seed, but the all-zero state is
        // xoshiro's one fixed point, so rule it out explicitly.
        debug_assert!(s != [0; 4]);
        Rng { s }
    }

    /// The next 64 random bits (xoshiro256** 1.0).
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

    /// A uniform integer in `0..n` (0 when `n` is 0), by Lemire's multiply-and-reject, so
    /// that no value is favoured.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform integer in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A uniform index into a slice of `len` elements (`len` must be above 0 to be useful).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A uniform float in `[0, 1)`: the top 53 bits of one draw.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (one draw, even when `p` is 0 or 1, so that the stream
    /// does not depend on the option's value more than it must).
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// An exponentially distributed float with the given mean, by inversion of one draw.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        // 1 - u is in (0, 1], so its logarithm is finite.
        -mean * (1.0 - self.f64()).ln()
    }

    /// A new generator for a separate purpose, seeded from this one's next draw.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_of_a_seed_is_pinned() {
        // SplitMix64 from 0 gives the reference's first output; xoshiro's first outputs for
        // seed 42 are recorded here so that any change to the stream fails this test.
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        let mut rng = Rng::new(42);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let mut again = Rng::new(42);
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_eq!(first, PINNED_42);
        assert_ne!(Rng::new(43).next_u64(), first[0]);
    }

    // Computed independently of this code, from the reference algorithms.
    const PINNED_42: [u64; 3] = [
        0x1578_0b2e_0c2e_c716,
        0x6104_d986_6d11_3a7e,
        0xae17_5332_39e4_99a1,
    ];

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            let v = rng.range(10, 15);
            assert!((10..=15).contains(&v));
            seen[(v - 10) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.range(5, 5), 5);
        for _ in 0..1000 {
            let f = rng.f64();
            assert!((0.0..1.0).contains(&f));
        }
        let mean = (0..20_000).map(|_| rng.exponential(3.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 3.0).abs() < 0.15, "mean {mean}");
    }
}
