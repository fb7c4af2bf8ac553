//! What upkeep does with a file, from what a check found (pure logic; the
//! node's upkeep and the durability simulator both call it).

/// The decision for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every share is there.
    Healthy,
    /// Some are missing, within the tolerance: leave it.
    Degraded,
    /// Enough are missing to repair, and enough are left to do it.
    Repair,
    /// Fewer than `k` are left: nothing can be done.
    Unrecoverable,
}

/// The decision for a `k`-of-`n` file of which `good` distinct shares were
/// found, when `tolerance` missing shares are left alone.
pub fn decide(good: u8, k: u8, n: u8, tolerance: u8) -> Decision {
    if good >= n {
        Decision::Healthy
    } else if good.saturating_add(tolerance) >= n {
        Decision::Degraded
    } else if good < k {
        Decision::Unrecoverable
    } else {
        Decision::Repair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_follows_the_shares_found() {
        assert_eq!(decide(5, 3, 5, 0), Decision::Healthy);
        assert_eq!(decide(4, 3, 5, 0), Decision::Repair);
        assert_eq!(decide(4, 3, 5, 1), Decision::Degraded);
        assert_eq!(decide(3, 3, 5, 1), Decision::Repair);
        assert_eq!(decide(2, 3, 5, 0), Decision::Unrecoverable);
        assert_eq!(decide(2, 3, 5, 3), Decision::Degraded, "within the tolerance");
    }
}
