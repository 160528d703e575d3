//! Splitting a run's targets into shards (`render --all --shard I/N`), so a
//! CI matrix of N jobs renders them on N runners.
//!
//! A target belongs to shard `1 + (h mod N)`, where `h` is the first eight
//! bytes (big-endian) of the sha256 of its directory (`env` or `env/slot`).
//! The assignment depends on the target alone, never on which other targets
//! exist: two jobs that list the slots at slightly different commits (one
//! job pushed a new slot before another checked out) still agree on every
//! target both of them see, so no target is rendered by two shards or by
//! none. A positional split (sorted, round-robin) would shift every later
//! target when one slot is added or removed. The price is balance: shards
//! differ by a few targets (about √(T/N) for T targets), not by at most one.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::nouns::Target;

/// Shard `index` of `count` (1-based): `1/1` is the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` (1-based) of `count`; refuses `count` = 0, `index` = 0
    /// and `index` > `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count N must be at least 1 (I/N, e.g. 1/4)".into());
        }
        if index == 0 {
            return Err(format!("shards are numbered from 1: use 1/{count} … {count}/{count}"));
        }
        if index > count {
            return Err(format!("shard {index} does not exist in {count} shard(s): use 1/{count} … {count}/{count}"));
        }
        Ok(Shard { index, count })
    }

    /// The shard (1-based) `target` belongs to among `count`.
    pub fn of(target: &Target, count: u32) -> u32 {
        let digest = Sha256::digest(target.dir().as_bytes());
        let h = u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"));
        (h % u64::from(count.max(1))) as u32 + 1
    }

    /// True when `target` belongs to this shard.
    pub fn contains(&self, target: &Target) -> bool {
        Shard::of(target, self.count) == self.index
    }

    /// The items whose target belongs to this shard, in their order.
    pub fn select<T>(&self, items: Vec<T>, target: impl Fn(&T) -> &Target) -> Vec<T> {
        items.into_iter().filter(|i| self.contains(target(i))).collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `I/N` (e.g. `2/4`).
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: write I/N with whole numbers, e.g. 1/4 for the first of four");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let number = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u32>().map_err(|_| format!("`{s}`: {t} is too large for a shard number"))
        };
        Shard::new(number(i)?, number(n)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<Target> {
        let mut all = vec![
            Target { env: "dev".into(), slot: None },
            Target { env: "staging".into(), slot: None },
            Target { env: "prod".into(), slot: None },
        ];
        all.extend((0..n).map(|i| Target { env: "ai".into(), slot: Some(format!("s-{i:04}")) }));
        all
    }

    #[test]
    fn parse_accepts_i_of_n_and_refuses_the_rest() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard::new(2, 4).unwrap());
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for (bad, says) in [
            ("0/2", "numbered from 1"),
            ("3/2", "does not exist in 2"),
            ("1/0", "at least 1"),
            ("0/0", "at least 1"),
            ("1", "not a shard"),
            ("1/2/3", "not a shard"),
            ("-1/2", "not a shard"),
            ("+1/2", "not a shard"),
            (" 1/2", "not a shard"),
            ("a/b", "not a shard"),
            ("/2", "not a shard"),
            ("1/99999999999", "too large"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn shards_are_disjoint_and_their_union_is_the_whole() {
        let all = targets(500);
        for n in 1..=7 {
            let mut seen = vec![0u32; all.len()];
            for i in 1..=n {
                let shard = Shard::new(i, n).unwrap();
                let picked = shard.select(all.clone(), |t| t);
                assert!(!picked.is_empty(), "shard {shard} of 503 targets is empty");
                for t in &picked {
                    seen[all.iter().position(|a| a == t).unwrap()] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "N = {n}: a target in no shard or in two");
        }
    }

    #[test]
    fn a_targets_shard_does_not_depend_on_the_other_targets() {
        let few = targets(10);
        let many = targets(1000);
        for n in [2, 3, 5] {
            for t in &few {
                let alone = Shard::new(Shard::of(t, n), n).unwrap();
                assert!(alone.select(many.clone(), |x| x).contains(t), "{t} moved with more targets");
            }
        }
    }

    #[test]
    fn shards_are_roughly_balanced() {
        let all = targets(2000);
        for n in [2u32, 4, 8] {
            for i in 1..=n {
                let size = Shard::new(i, n).unwrap().select(all.clone(), |t| t).len() as f64;
                // A hash split is binomial: sizes spread by √(T·p·(1−p)), p = 1/N.
                let p = 1.0 / f64::from(n);
                let (even, spread) = (all.len() as f64 * p, (all.len() as f64 * p * (1.0 - p)).sqrt());
                assert!((size - even).abs() < 4.0 * spread, "shard {i}/{n}: {size} of {}", all.len());
            }
        }
    }
}
