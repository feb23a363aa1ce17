//! A small seeded generator for choosing fault points, so that a run replays from its seed.

/// splitmix64: small, seedable, good enough to pick kill points, cut points and torn pages. Not
/// for anything that needs to be unpredictable.
///
/// ```
/// use store_testkit::random::SplitMix64;
///
/// let mut first = SplitMix64::new(7);
/// let mut again = SplitMix64::new(7);
/// assert_eq!(first.next_u64(), again.next_u64());
/// assert!(first.below(10) < 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}
