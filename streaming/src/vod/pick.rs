//! Whom to ask for a piece (pure): holders of the piece first; among
//! them the near ones (round trip within twice the nearest holder's, or
//! 20 ms more: `cloudy_overlay::scoring::is_near`); among those, viewers
//! before the publisher's own copy (its map says 2 for "held as
//! published"), and viewers still fetching before complete ones; ties at
//! random, so the load spreads. Then the providers whose maps do not show
//! the piece (maps may be a second old).
//!
//! The publisher goes last among near holders, not at random among
//! complete copies: at random, the j-th viewer took 1/j of its pieces from
//! the publisher, so the publisher sent H(N) ≈ 2.9 copies for N = 10
//! viewers (measured 2.96–3.29×).
//!
//! Near is judged by round trip alone: the overlay's score also weighs
//! availability, and a seeder that has been up for hours outscores
//! viewers that joined a minute ago however near they are. Ranking by
//! score kept about half of the viewers' pieces on the seeder.

use cloudy_overlay::scoring::is_near;
use std::time::Duration;

/// A provider of the video, as seen now.
#[derive(Clone, Debug)]
pub struct Candidate<P> {
    /// Who.
    pub peer: P,
    /// Its round trip, measured or estimated, if known.
    pub rtt: Option<Duration>,
    /// Its piece map (one byte per piece: 0 not held, 1 held, 2 held as
    /// published there), if it answered.
    pub have: Option<Vec<u8>>,
}

/// The order in which to ask `candidates` for piece `i`; `random` gives
/// each a tie-breaker.
pub fn order<P: Clone>(
    candidates: &[Candidate<P>],
    i: u64,
    mut random: impl FnMut() -> u32,
) -> Vec<P> {
    let holds = |c: &Candidate<P>| {
        c.have.as_ref().is_some_and(|h| h.get(i as usize).is_some_and(|b| *b > 0))
    };
    let nearest = candidates.iter().filter(|c| holds(c)).filter_map(|c| c.rtt).min();
    let mut ranked: Vec<&Candidate<P>> = candidates.iter().collect();
    ranked.sort_by_cached_key(|c| {
        let h = c.have.as_deref().unwrap_or_default();
        let source = h.contains(&2);
        let complete = !h.is_empty() && h.iter().all(|b| *b > 0);
        (!holds(c), !is_near(nearest, c.rtt), source, complete, random())
    });
    ranked.into_iter().map(|c| c.peer.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(peer: &'static str, rtt_ms: Option<u64>, have: Option<&[u8]>) -> Candidate<&'static str> {
        Candidate { peer, rtt: rtt_ms.map(Duration::from_millis), have: have.map(<[u8]>::to_vec) }
    }

    #[test]
    fn the_publisher_is_asked_after_every_near_viewer_holding_the_piece() {
        let publisher = c("publisher", Some(1), Some(&[2, 2, 2]));
        let done = c("done", Some(1), Some(&[1, 1, 1]));
        let watching = c("watching", Some(1), Some(&[1, 1, 0]));
        let all = [publisher, done, watching];
        for seed in 0..10u32 {
            let mut x = seed;
            let mut rng = || {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                x
            };
            assert_eq!(order(&all, 0, &mut rng), vec!["watching", "done", "publisher"]);
            assert_eq!(order(&all, 2, &mut rng), vec!["done", "publisher", "watching"]);
        }
    }

    #[test]
    fn near_viewers_holding_the_piece_come_before_the_seeder() {
        let seeder = c("seeder", Some(1), Some(&[1, 1, 1, 1]));
        let viewer = c("viewer", Some(2), Some(&[1, 1, 0, 0]));
        let behind = c("behind", Some(1), Some(&[1, 0, 0, 0]));
        let far = c("far", Some(90), Some(&[1, 1, 0, 0]));
        let all = [seeder, viewer, behind, far];
        let mut n = 0;
        let mut rng = || {
            n += 1;
            n
        };
        assert_eq!(order(&all, 1, &mut rng), vec!["viewer", "seeder", "far", "behind"]);
        // Piece 3: only the seeder has it.
        assert_eq!(order(&all, 3, &mut rng)[0], "seeder");
    }

    #[test]
    fn ties_are_broken_at_random_and_unknowns_wait() {
        let all = [
            c("a", Some(1), Some(&[1])),
            c("b", Some(1), Some(&[1])),
            c("silent", None, None),
            c("unmeasured", None, Some(&[1])),
        ];
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..20u32 {
            let mut x = seed.wrapping_mul(2_654_435_761);
            let got = order(&all, 0, || {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                x
            });
            firsts.insert(got[0]);
            assert_eq!(
                &got[2..],
                &["unmeasured", "silent"],
                "a holder with no round trip after near ones; no map last"
            );
        }
        assert_eq!(firsts.len(), 2, "both near holders get turns");
    }
}
