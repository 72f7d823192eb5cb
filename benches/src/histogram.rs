//! A fixed-size log-linear latency histogram (HdrHistogram's bucketing with 11 bits of
//! sub-bucket precision: every recorded value is kept to within 0.1 %). Recording is an index
//! computation and one increment: no allocation after construction.

/// Values below this are recorded exactly.
const SUB: u64 = 1 << 11;
/// Sub-buckets per power of two above `SUB`.
const HALF: u64 = SUB / 2;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (SUB + 53 * HALF) as usize;

/// Counts of values (e.g. nanoseconds), bucketed with ≤ 0.1 % relative error.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram (allocates its ~450 KB of buckets once).
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// Mean of the recorded values (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the highest value equivalent to the bucket that
    /// holds it, clamped to the recorded range (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[inline]
fn index(v: u64) -> usize {
    if v < SUB {
        v as usize
    } else {
        // v >> shift lands in [HALF, SUB).
        let shift = u64::from(63 - v.leading_zeros()) - 10;
        (SUB + (shift - 1) * HALF + ((v >> shift) - HALF)) as usize
    }
}

fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        i
    } else {
        let j = i - SUB;
        let shift = j / HALF + 1;
        (j % HALF + HALF) << shift
    }
}

fn upper_bound(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        u64::MAX
    } else {
        lower_bound(i + 1) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(upper_bound(i) + 1, lower_bound(i + 1), "bucket {i}");
            assert_eq!(index(lower_bound(i)), i);
            assert_eq!(index(upper_bound(i)), i);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_tenth_of_a_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0), (1.0, 1e8)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.001,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.min(), 1000);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(5);
        b.record(7);
        b.record(9);
        a.merge(&b);
        assert_eq!((a.len(), a.min(), a.max()), (3, 5, 9));
        assert_eq!(a.quantile(0.5), 7);
    }
}
