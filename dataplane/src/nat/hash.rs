//! Hashing and randomness, both keyed per worker.
//!
//! - [`FlowHasher`]: the table hash. A folded 64×64→128 multiply (wyhash's "mum") over
//!   the two packed key words, keyed by a per-worker secret so an outsider cannot
//!   precompute colliding tuples (hash flooding). Not cryptographic: it only has to
//!   spread keys and cost a few cycles.
//! - [`PortRng`]: unpredictable numbers for port choice (RFC 6056 §3.3.1, "simple
//!   port randomization"): ChaCha12 (RustCrypto's `chacha20`, the generator behind
//!   `rand`'s `StdRng`) keyed with 256 bits derived from the per-worker secret, so
//!   observing chosen ports reveals nothing useful about the next. It produces four
//!   blocks (256 bytes) at a time, so a draw costs a few instructions where the
//!   SipHash-2-4 counter mode it replaced cost about 120.
//!
//! Both are seeded from [`NatConfig::seed`](super::config::NatConfig::seed); the daemon
//! fills it from the OS, tests fix it so runs are reproducible.

use chacha20::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// splitmix64: expands a seed into independent-looking words.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Keyed hash of two words (a packed flow key).
#[derive(Clone, Copy, Debug)]
pub struct FlowHasher {
    k0: u64,
    k1: u64,
    k2: u64,
}

impl FlowHasher {
    /// A hasher keyed by `seed` (different seeds give unrelated hash functions).
    pub fn new(seed: u64) -> Self {
        let mut s = seed;
        FlowHasher {
            k0: splitmix64(&mut s) ^ P0,
            k1: splitmix64(&mut s) ^ P1,
            // Odd and never zero: the final fold multiplies by it.
            k2: splitmix64(&mut s) | 1,
        }
    }

    /// Hash two words. Both halves of the result are well mixed; the index uses the
    /// high 32 bits as tag and home position.
    #[inline]
    pub fn hash2(&self, a: u64, b: u64) -> u64 {
        let x = fold(a ^ self.k0, b ^ self.k1);
        fold(x ^ P2, self.k2)
    }

    /// Hash a pair of words down to the 32-bit tag used by the indexes.
    #[inline]
    pub(crate) fn tag(&self, words: (u64, u64)) -> u32 {
        (self.hash2(words.0, words.1) >> 32) as u32
    }
}

/// Unpredictable numbers for port choice: a ChaCha12 stream under a per-worker key.
/// Not `Clone`: two copies would hand out the same "random" ports.
pub struct PortRng {
    rng: ChaCha12Rng,
}

impl core::fmt::Debug for PortRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PortRng { .. }") // the key stays out of logs
    }
}

impl PortRng {
    pub fn new(seed: u64) -> Self {
        // Domain-separate from the table hash keys; splitmix64 expands the secret.
        let mut s = seed ^ 0x5bd1_e995_7c4f_9a01;
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
        }
        PortRng { rng: ChaCha12Rng::from_seed(key) }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `0..n` (multiply-shift; bias below 2^-32 for n < 2^32). `n` must be > 0.
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_give_different_functions() {
        let a = FlowHasher::new(1);
        let b = FlowHasher::new(2);
        assert_ne!(a.hash2(1, 2), b.hash2(1, 2));
        assert_eq!(a.hash2(1, 2), FlowHasher::new(1).hash2(1, 2));
        let mut r1 = PortRng::new(7);
        let mut r2 = PortRng::new(8);
        assert_ne!(r1.next_u64(), r2.next_u64());
        // Reproducible from the seed (tests fix it), across ChaCha's block refills.
        let a: Vec<u64> = (0..100).map(|_| r1.next_u64()).collect();
        let mut r3 = PortRng::new(7);
        r3.next_u64();
        assert_eq!(a, (0..100).map(|_| r3.next_u64()).collect::<Vec<_>>());
    }

    #[test]
    fn tags_spread_over_buckets() {
        // Sequential keys (the typical attack-free worst case: one subscriber's ports)
        // must spread evenly over 64 buckets by their top bits.
        let h = FlowHasher::new(0x1234);
        let mut buckets = [0u32; 64];
        let n = 64 * 256;
        for i in 0..n as u64 {
            let t = h.tag((0x0a00_0001_0808_0808, i << 48 | 53 << 32 | 17 << 8));
            buckets[(t >> 26) as usize] += 1;
        }
        let expect = (n / 64) as u32;
        for &b in &buckets {
            assert!(b > expect * 3 / 4 && b < expect * 5 / 4, "uneven: {buckets:?}");
        }
    }

    /// Mean distance from home of `tags` in a full (load 0.8) Robin Hood index.
    fn mean_probe(tags: impl ExactSizeIterator<Item = u32>) -> (f64, usize) {
        use crate::nat::index::{IdxSlot, RobinHood};
        let mut t: RobinHood<IdxSlot> = RobinHood::new(tags.len());
        for (i, tag) in tags.enumerate() {
            t.insert(IdxSlot { tag, val: i as u32 }).unwrap();
        }
        t.probe_stats()
    }

    /// The session index holds keys that share most of their bits: one subscriber's
    /// flows differ only in the remote port, every outside key of one remote shares the
    /// external address. Such families must land in a full index like random tags do
    /// (linear probing at load 0.8: a mean distance of about 2 slots), or lookups and
    /// inserts walk long clusters.
    #[test]
    fn structured_key_families_spread_like_random_tags() {
        use crate::nat::key::{pack5, Endpoint, Proto, Side};
        use std::net::Ipv4Addr;
        let ext = Ipv4Addr::new(198, 18, 0, 1);
        let srv = Endpoint::new(Ipv4Addr::new(198, 19, 0, 1), 443);
        let sub = |i: u32| Ipv4Addr::from(0x6440_0001 + i);
        let families: [(&str, Vec<(u64, u64)>); 4] = [
            (
                "inside: 4000 subscribers x 16 remote ports",
                (0..4000u32)
                    .flat_map(|s| {
                        (1..=16u16).map(move |d| {
                            pack5(Endpoint::new(sub(s), 2024), Endpoint::new(srv.addr, d), Proto::Udp, Side::Inside)
                        })
                    })
                    .collect(),
            ),
            (
                "inside: 256 subscribers x 250 source ports, one remote",
                (0..256u32)
                    .flat_map(|s| {
                        (1024..1274u16).map(move |p| pack5(Endpoint::new(sub(s), p), srv, Proto::Tcp, Side::Inside))
                    })
                    .collect(),
            ),
            (
                "outside: one address, every port x 3 remote ports",
                (1024..=65535u16)
                    .flat_map(|p| {
                        [53u16, 80, 443].map(|d| {
                            pack5(Endpoint::new(ext, p), Endpoint::new(srv.addr, d), Proto::Tcp, Side::Outside)
                        })
                    })
                    .collect(),
            ),
            (
                "outside: one endpoint x 100k remote addresses",
                (0..100_000u32)
                    .map(|r| {
                        pack5(
                            Endpoint::new(ext, 4000),
                            Endpoint::new(Ipv4Addr::from(0x0a00_0000 + r), 53),
                            Proto::Udp,
                            Side::Outside,
                        )
                    })
                    .collect(),
            ),
        ];
        for seed in [1u64, 0xdead_beef] {
            let h = FlowHasher::new(seed);
            for (name, keys) in &families {
                let mut s = seed;
                let (random, _) = mean_probe((0..keys.len()).map(|_| (splitmix64(&mut s) >> 32) as u32));
                let (mean, max) = mean_probe(keys.iter().map(|&k| h.tag(k)));
                assert!(
                    mean < random * 1.15 && max < 64,
                    "{name}, seed {seed}: mean {mean:.2} (random {random:.2}), max {max}"
                );
            }
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = PortRng::new(99);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = r.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
