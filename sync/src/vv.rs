//! Version vectors: one counter per member that changed a file. Two
//! versions are ordered when one vector dominates the other; otherwise the
//! changes were concurrent, which is a conflict.

use std::collections::BTreeMap;

/// How two versions relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Same version.
    Equal,
    /// This one includes every change of the other, and more.
    Newer,
    /// The other includes every change of this one, and more.
    Older,
    /// Each has a change the other lacks.
    Concurrent,
}

/// Counters keyed by a member's short id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(BTreeMap<u64, u64>);

impl VersionVector {
    /// The empty vector (never changed).
    pub fn new() -> Self {
        Self::default()
    }

    /// From `(member, counter)` pairs (as stored in the index).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, u64)>) -> Self {
        VersionVector(pairs.into_iter().filter(|(_, c)| *c > 0).collect())
    }

    /// The `(member, counter)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(m, c)| (*m, *c))
    }

    /// The vector after `member` changes the file: its counter goes past
    /// every counter in the vector, so the new version also orders after
    /// versions it has merged.
    pub fn bumped(&self, member: u64) -> Self {
        let top = self.0.values().copied().max().unwrap_or(0);
        let mut v = self.clone();
        v.0.insert(member, top + 1);
        v
    }

    /// The smallest vector that includes both (used after resolving a conflict).
    pub fn merged(&self, other: &Self) -> Self {
        let mut v = self.clone();
        for (m, c) in &other.0 {
            let e = v.0.entry(*m).or_insert(0);
            *e = (*e).max(*c);
        }
        v
    }

    /// How this version relates to `other`.
    pub fn compare(&self, other: &Self) -> Order {
        let mut ahead = false;
        let mut behind = false;
        for m in self.0.keys().chain(other.0.keys()) {
            let (a, b) =
                (self.0.get(m).copied().unwrap_or(0), other.0.get(m).copied().unwrap_or(0));
            ahead |= a > b;
            behind |= a < b;
        }
        match (ahead, behind) {
            (false, false) => Order::Equal,
            (true, false) => Order::Newer,
            (false, true) => Order::Older,
            (true, true) => Order::Concurrent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordering() {
        let base = VersionVector::new().bumped(1);
        let a = base.bumped(1);
        let b = base.bumped(2);
        assert_eq!(a.compare(&base), Order::Newer);
        assert_eq!(base.compare(&a), Order::Older);
        assert_eq!(a.compare(&a.clone()), Order::Equal);
        assert_eq!(a.compare(&b), Order::Concurrent);
        let resolved = a.merged(&b).bumped(3);
        assert_eq!(resolved.compare(&a), Order::Newer);
        assert_eq!(resolved.compare(&b), Order::Newer);
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric_and_bump_moves_forward(
            x in proptest::collection::btree_map(0u64..5, 1u64..9, 0..5),
            y in proptest::collection::btree_map(0u64..5, 1u64..9, 0..5),
            who in 0u64..5,
        ) {
            let (a, b) = (VersionVector::from_pairs(x), VersionVector::from_pairs(y));
            let flipped = match a.compare(&b) {
                Order::Newer => Order::Older,
                Order::Older => Order::Newer,
                o => o,
            };
            prop_assert_eq!(b.compare(&a), flipped);
            prop_assert_eq!(a.bumped(who).compare(&a), Order::Newer);
            prop_assert_eq!(a.merged(&b).bumped(who).compare(&b), Order::Newer);
        }
    }
}
