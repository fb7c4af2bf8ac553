//! Where the shares of one upload go (pure logic).
//!
//! 1. Servers are ordered per file on Tahoe's permuted ring —
//!    `blake3(storage index ‖ peer id)` — so that files spread evenly, and
//!    the ring is cut into windows of [`window`]`(n)` = 2n servers. Within
//!    a window, servers go by placement tier (alive, up at least half the
//!    time and no failure in the last hour first; see
//!    `cloudy_overlay::scoring::placement_tier`), then by ring position.
//! 2. Servers without room for a share are dropped (after ordering, so
//!    the windows are the same at every node).
//! 3. Shares go one per server, first to servers in zones not yet used
//!    (where zones are known), then to the remaining servers; if there are
//!    more shares than servers, the extra ones go round again.
//! 4. The upload is *happy* when its shares sit on at least `happy`
//!    distinct servers (servers-of-happiness); otherwise it fails, saying
//!    how many servers were found and how many are needed.
//!
//! Why windows: scores are each node's own view (round-trip times,
//! availability it saw), so a downloader cannot know which servers the
//! uploader preferred. Ordered by score first, a download in a community
//! of 100 asked 48 to 100 servers to find the 6 shares of a file. With
//! windows, the shares sit in the file's first window of the ring as long
//! as its servers have room, and a download asks those 2n servers first,
//! whatever the scores.
//!
//! Why tiers, not scores, within a window: with score tenths, which take
//! in the round trip each node measures for itself, the uploader's best
//! half of a window held about half of the downloader's best half, and a
//! download asked 7 to 11 servers for 3 shares. Tiers leave out what is
//! each node's own view, so both ends order the window alike and a
//! download finds its k shares on the first k servers it asks. Nearness
//! still counts when reading: of the window's first n, a download asks
//! the k it scores best.
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
    /// Its locality score (overlay) in [0, 1], this node's own view:
    /// which holders a download asks first.
    pub score: f64,
    /// Its placement tier (overlay), 0 best: the order within a window.
    pub tier: u8,
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
    // The peer id's bytes, as `to_bytes` gives them, without allocating.
    let _ = peer.as_ref().write(&mut h);
    *h.finalize().as_bytes()
}

/// Servers a file's placement chooses among at a time for `n` shares: 2n
/// (see the module docs).
pub fn window(n: u8) -> usize {
    (2 * usize::from(n)).max(1)
}

/// Servers in upload preference order for `si`: the permuted ring in
/// windows of `window` servers, each window best tier first (see the
/// module docs).
pub fn order<'a>(si: &StorageIndex, servers: &'a [Server], window: usize) -> Vec<&'a Server> {
    let mut ring: Vec<([u8; 32], &Server)> =
        servers.iter().map(|s| (ring_position(si, &s.peer), s)).collect();
    ring.sort_by_key(|(pos, _)| *pos);
    ring.chunks_mut(window.max(1))
        .flat_map(|w| {
            w.sort_by_key(|(pos, s)| (s.tier, *pos));
            w.iter().map(|(_, s)| *s).collect::<Vec<_>>()
        })
        .collect()
}

/// Plans `n` shares of `share_len` bytes each over `servers`.
pub fn plan(
    si: &StorageIndex,
    servers: &[Server],
    n: u8,
    share_len: u64,
    happy: usize,
) -> Result<Plan, PlacementError> {
    plan_in_window(si, servers, n, window(n), share_len, happy)
}

/// [`plan`] in windows of `window` servers: a repair that regenerates a
/// few shares of a file of n places them in windows of 2n, like its upload.
pub fn plan_in_window(
    si: &StorageIndex,
    servers: &[Server],
    n: u8,
    window: usize,
    share_len: u64,
    happy: usize,
) -> Result<Plan, PlacementError> {
    let ordered: Vec<&Server> =
        order(si, servers, window).into_iter().filter(|s| s.free >= share_len).collect();
    let without_room = servers.len() - ordered.len();
    // One share per server, distinct zones first.
    let mut picked: Vec<&Server> = Vec::new();
    let mut zones: HashSet<&str> = HashSet::new();
    for &s in &ordered {
        if picked.len() < n as usize && (s.zone.is_empty() || zones.insert(s.zone.as_str())) {
            picked.push(s);
        }
    }
    for &s in &ordered {
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
                tier: 0,
                zone: String::new(),
                free: 1 << 30,
            })
            .collect()
    }

    fn holders(p: &Plan) -> HashSet<PeerId> {
        p.shares.iter().map(|(_, peer)| *peer).collect()
    }

    #[test]
    fn a_ring_position_hashes_the_storage_index_and_the_peer_ids_bytes() {
        // Where every stored file's shares were placed: the position must
        // not change with how it is computed.
        for s in servers(20) {
            let mut bytes = [9u8; 16].to_vec();
            bytes.extend(s.peer.to_bytes());
            assert_eq!(ring_position(&[9; 16], &s.peer), *blake3::hash(&bytes).as_bytes());
        }
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
    fn better_tiers_come_first_and_ring_spreads_files() {
        let mut s = servers(6);
        for srv in &mut s[..5] {
            srv.tier = 1;
        }
        for si in 0..20u8 {
            assert_eq!(
                order(&[si; 16], &s, 6)[0].peer,
                s[5].peer,
                "the reliable server leads for every file"
            );
        }
        // Within a tier, different files start at different servers.
        let firsts: HashSet<PeerId> =
            (0..40u8).map(|si| order(&[si; 16], &s[..5], 6)[0].peer).collect();
        assert!(firsts.len() >= 3, "permuted ring spreads load: {}", firsts.len());
        assert_eq!(order(&[7; 16], &s, 6), order(&[7; 16], &s, 6), "deterministic");
    }

    #[test]
    fn a_downloader_with_other_tiers_finds_every_share_in_the_first_window() {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let mut up = servers(99);
        for (i, s) in up.iter_mut().enumerate() {
            s.tier = rng.gen_range(0..3);
            // Some servers are full: they must not shift the windows.
            if i % 11 == 0 {
                s.free = 10;
            }
        }
        let mut down = up.clone();
        for s in &mut down {
            s.tier = rng.gen_range(0..3);
        }
        for si in 0..50u8 {
            let p = plan(&[si; 16], &up, 6, 100, 4).unwrap();
            let first: HashSet<PeerId> =
                order(&[si; 16], &down, window(6)).iter().take(window(6)).map(|s| s.peer).collect();
            let held = holders(&p);
            assert!(
                held.is_subset(&first),
                "file {si}: {} of 6 holders outside the downloader's first window",
                held.difference(&first).count()
            );
            // The uploader took the best tiers with room in it.
            let bucket = |s: &Server| -i64::from(s.tier);
            let window_of_up: Vec<&Server> = order(&[si; 16], &up, window(6))
                .iter()
                .take(window(6))
                .map(|w| up.iter().find(|s| s.peer == w.peer).unwrap())
                .collect();
            let worst_held =
                window_of_up.iter().filter(|s| held.contains(&s.peer)).map(|s| bucket(s)).min();
            let best_left = window_of_up
                .iter()
                .filter(|s| !held.contains(&s.peer) && s.free >= 100)
                .map(|s| bucket(s))
                .max();
            assert!(best_left <= worst_held, "file {si}: a better server was left out");
        }
    }

    #[test]
    fn with_the_same_tiers_a_download_finds_k_shares_on_the_first_k_servers() {
        // What the tiers are for: scores differ between the two ends (each
        // measures its own round trips), tiers do not, so the downloader's
        // first k servers of a window hold k of the shares.
        let mut up = servers(99);
        up[3].tier = 1;
        up[40].tier = 2;
        for si in 0..50u8 {
            let p = plan(&[si; 16], &up, 6, 100, 4).unwrap();
            let first: Vec<PeerId> =
                order(&[si; 16], &up, window(6)).iter().take(3).map(|s| s.peer).collect();
            let held = holders(&p);
            assert!(first.iter().all(|s| held.contains(s)), "file {si}");
        }
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
