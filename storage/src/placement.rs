//! Where the shares of one upload go (pure logic).
//!
//! 1. Servers without room for a share are dropped.
//! 2. The rest are ordered per file: first by locality score, in buckets of
//!    0.1 (so a clearly nearer or more available server comes first), then,
//!    within a bucket, by Tahoe's permuted ring — `blake3(storage index ‖
//!    peer id)` — so that files spread evenly over similar servers.
//! 3. Shares go one per server, first to servers in zones not yet used
//!    (where zones are known), then to the remaining servers; if there are
//!    more shares than servers, the extra ones go round again.
//! 4. The upload is *happy* when its shares sit on at least `happy`
//!    distinct servers (servers-of-happiness); otherwise it fails, saying
//!    how many servers were found and how many are needed.
//!
//! Defaults ([`DEFAULT_PARAMS`], [`DEFAULT_HAPPY`]): 3-of-5, happy 4,
//! 1 MiB segments. A community of 5 storage nodes then holds one share per
//! node (1.67× expansion), survives any 2 nodes failing, and can still
//! upload with one node down.

use crate::coding::Params;
use crate::store::StorageIndex;
use cloudy_overlay::PeerId;
use std::collections::HashSet;

/// Default encoding: 3-of-5 with 1 MiB segments.
pub const DEFAULT_PARAMS: Params = Params { k: 3, n: 5, segment_size: 1 << 20 };
/// Default servers-of-happiness.
pub const DEFAULT_HAPPY: usize = 4;

/// A storage server as the uploader sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// Its peer id.
    pub peer: PeerId,
    /// Its locality score (overlay), in [0, 1].
    pub score: f64,
    /// Its zone label; empty if unknown.
    pub zone: String,
    /// Bytes it says it has free.
    pub free: u64,
}

/// Where each share goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `(share number, server)` for every share.
    pub shares: Vec<(u8, PeerId)>,
    /// Usable servers given no share, best first: fallbacks when one refuses.
    pub spares: Vec<PeerId>,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlacementError {
    /// Too few servers with room.
    #[error("not enough storage servers: shares would sit on {found} distinct servers, {happy} needed (happy); {without_room} more servers lack room")]
    NotHappy {
        /// Distinct servers that would hold shares.
        found: usize,
        /// Required.
        happy: usize,
        /// Servers skipped for lack of space.
        without_room: usize,
    },
}

/// Position of `peer` on the permuted ring of `si`.
pub fn ring_position(si: &StorageIndex, peer: &PeerId) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(si);
    h.update(&peer.to_bytes());
    *h.finalize().as_bytes()
}

/// Servers in upload preference order for `si` (see the module docs).
pub fn order(si: &StorageIndex, servers: &[Server]) -> Vec<Server> {
    let mut v: Vec<(i64, [u8; 32], Server)> = servers
        .iter()
        .map(|s| {
            (
                -((s.score.clamp(0.0, 1.0) * 10.0).floor() as i64),
                ring_position(si, &s.peer),
                s.clone(),
            )
        })
        .collect();
    v.sort_by_key(|x| (x.0, x.1));
    v.into_iter().map(|(_, _, s)| s).collect()
}

/// Plans `n` shares of `share_len` bytes each over `servers`.
pub fn plan(
    si: &StorageIndex,
    servers: &[Server],
    n: u8,
    share_len: u64,
    happy: usize,
) -> Result<Plan, PlacementError> {
    let with_room: Vec<Server> = servers.iter().filter(|s| s.free >= share_len).cloned().collect();
    let without_room = servers.len() - with_room.len();
    let ordered = order(si, &with_room);
    // One share per server, distinct zones first.
    let mut picked: Vec<&Server> = Vec::new();
    let mut zones: HashSet<&str> = HashSet::new();
    for s in &ordered {
        if picked.len() < n as usize && (s.zone.is_empty() || zones.insert(s.zone.as_str())) {
            picked.push(s);
        }
    }
    for s in &ordered {
        if picked.len() < n as usize && !picked.iter().any(|p| p.peer == s.peer) {
            picked.push(s);
        }
    }
    let distinct = picked.len();
    if distinct < happy.max(1) {
        return Err(PlacementError::NotHappy { found: distinct, happy, without_room });
    }
    let shares = (0..n).map(|i| (i, picked[i as usize % distinct].peer)).collect();
    let spares = ordered
        .iter()
        .filter(|s| !picked.iter().any(|p| p.peer == s.peer))
        .map(|s| s.peer)
        .collect();
    Ok(Plan { shares, spares })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<Server> {
        (0..n)
            .map(|_| Server {
                peer: PeerId::random(),
                score: 0.5,
                zone: String::new(),
                free: 1 << 30,
            })
            .collect()
    }

    fn holders(p: &Plan) -> HashSet<PeerId> {
        p.shares.iter().map(|(_, peer)| *peer).collect()
    }

    #[test]
    fn one_share_per_server_when_possible_and_spares_kept() {
        let s = servers(7);
        let p = plan(&[1; 16], &s, 5, 100, 4).unwrap();
        assert_eq!(p.shares.len(), 5);
        assert_eq!(holders(&p).len(), 5);
        assert_eq!(p.spares.len(), 2);
        assert_eq!(p.shares.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn more_shares_than_servers_wrap_and_happiness_counts_servers() {
        let s = servers(4);
        let p = plan(&[1; 16], &s, 6, 100, 4).unwrap();
        assert_eq!(p.shares.len(), 6);
        assert_eq!(holders(&p).len(), 4);
        let err = plan(&[1; 16], &s, 6, 100, 5).unwrap_err();
        assert_eq!(err, PlacementError::NotHappy { found: 4, happy: 5, without_room: 0 });
        assert!(err.to_string().contains("4 distinct servers, 5 needed"));
    }

    #[test]
    fn full_servers_are_skipped_and_counted() {
        let mut s = servers(5);
        s[0].free = 10;
        s[1].free = 10;
        let p = plan(&[1; 16], &s, 5, 100, 3).unwrap();
        assert!(!holders(&p).contains(&s[0].peer) && !holders(&p).contains(&s[1].peer));
        let err = plan(&[1; 16], &s, 5, 100, 4).unwrap_err();
        assert_eq!(err, PlacementError::NotHappy { found: 3, happy: 4, without_room: 2 });
    }

    #[test]
    fn better_scored_servers_come_first_and_ring_spreads_files() {
        let mut s = servers(6);
        s[5].score = 0.95;
        for si in 0..20u8 {
            assert_eq!(
                order(&[si; 16], &s)[0].peer,
                s[5].peer,
                "the near server leads for every file"
            );
        }
        // Among equal scores, different files start at different servers.
        let firsts: HashSet<PeerId> =
            (0..40u8).map(|si| order(&[si; 16], &s[..5])[0].peer).collect();
        assert!(firsts.len() >= 3, "permuted ring spreads load: {}", firsts.len());
        assert_eq!(order(&[7; 16], &s), order(&[7; 16], &s), "deterministic");
    }

    #[test]
    fn zones_are_spread_before_reusing_one() {
        let mut s = servers(6);
        for (i, srv) in s.iter_mut().enumerate() {
            srv.zone = ["a", "a", "a", "b", "c", "a"][i].to_string();
        }
        let p = plan(&[2; 16], &s, 3, 100, 3).unwrap();
        let zones: HashSet<String> = holders(&p)
            .iter()
            .map(|peer| s.iter().find(|x| x.peer == *peer).unwrap().zone.clone())
            .collect();
        assert_eq!(zones.len(), 3, "one share in each of a, b, c");
    }
}
