//! Buffer maps and the choice of what to ask whom (pure).
//!
//! Each peer tells its neighbours which recent chunks it holds: a
//! [`BufferMap`], the newest sequence it has and a bitmap of the
//! [`WINDOW`] before it. A viewer then asks for what it lacks:
//!
//! 1. chunks due soon for playout (the next [`URGENT`] from its playout
//!    position), earliest first: missing one means a glitch;
//! 2. then the newest chunks it lacks near the live edge, newest first, so
//!    that fresh chunks spread fast through the mesh (each viewer relays
//!    what it holds).
//!
//! Each chunk goes to a neighbour that holds it, the one with the fewest
//! requests in flight (ties to the better score, i.e. the earlier in the
//! list), and no neighbour gets more than [`PER_PEER`] at once. The
//! publisher is spared: it is asked only for chunks no other neighbour
//! holds, so its upload stays near one copy of the stream.

use std::collections::BTreeSet;

/// Chunks a buffer map covers (about 16 s at 4 chunks a second).
pub const WINDOW: u64 = 64;
/// Chunks ahead of the playout position that are urgent.
pub const URGENT: u64 = 8;
/// Requests in flight per neighbour.
pub const PER_PEER: usize = 4;

/// Which chunks of the last [`WINDOW`] a peer holds, and which of them
/// are key chunks (where playback can start).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BufferMap {
    /// The newest sequence held (meaningless when `bits` is all zero).
    pub newest: u64,
    /// Bit `i` set: holds `newest - i`.
    pub bits: u64,
    /// Bit `i` set: `newest - i` is a key chunk.
    pub keys: u64,
    /// How busy the sender is: chunk bytes it uploaded lately, KB/s.
    /// Requesters prefer less busy holders, which spreads the relaying.
    pub load: u32,
}

fn bits_of(set: &BTreeSet<u64>, newest: u64) -> u64 {
    set.range(newest.saturating_sub(WINDOW - 1)..=newest).fold(0u64, |b, s| b | 1 << (newest - s))
}

impl BufferMap {
    /// The map of `held` sequences, `keys` among them (only the last
    /// [`WINDOW`] count).
    pub fn of(held: &BTreeSet<u64>, keys: &BTreeSet<u64>) -> BufferMap {
        let Some(&newest) = held.last() else { return BufferMap::default() };
        BufferMap {
            newest,
            bits: bits_of(held, newest),
            keys: bits_of(keys, newest) & bits_of(held, newest),
            load: 0,
        }
    }

    fn bit(&self, seq: u64) -> Option<u64> {
        (seq <= self.newest && self.newest - seq < WINDOW).then(|| 1 << (self.newest - seq))
    }

    /// Its bits in the frame of a map whose newest is `newest`: bit `i`
    /// set when it holds `newest - i`.
    pub fn bits_at(&self, newest: u64) -> u64 {
        if self.bits == 0 {
            0
        } else if newest >= self.newest {
            self.bits
                .checked_shl((newest - self.newest).try_into().unwrap_or(u32::MAX))
                .unwrap_or(0)
        } else {
            self.bits
                .checked_shr((self.newest - newest).try_into().unwrap_or(u32::MAX))
                .unwrap_or(0)
        }
    }

    /// Whether it holds `seq`.
    pub fn has(&self, seq: u64) -> bool {
        self.bit(seq).is_some_and(|b| self.bits & b != 0)
    }

    /// Whether it holds `seq` and `seq` is a key chunk.
    pub fn has_key(&self, seq: u64) -> bool {
        self.bit(seq).is_some_and(|b| self.keys & self.bits & b != 0)
    }

    /// The newest key chunk it holds.
    pub fn newest_key(&self) -> Option<u64> {
        let k = self.keys & self.bits;
        (k != 0).then(|| self.newest - u64::from(k.trailing_zeros()))
    }

    /// Forgets `seq` (the peer said it no longer has it).
    pub fn clear(&mut self, seq: u64) {
        if let Some(b) = self.bit(seq) {
            self.bits &= !b;
            self.keys &= !b;
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

/// A neighbour as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct Neighbour {
    /// What it holds (or what we may ask it for).
    pub map: BufferMap,
    /// Our requests to it not yet answered.
    pub in_flight: usize,
    /// A neighbour to spare (the publisher): asked only for chunks no
    /// other neighbour holds.
    pub spare: bool,
}

/// Which chunk to ask which neighbour (by index in `neighbours`, which is
/// ordered best score first). `held` is what we have or have asked for,
/// `next` our playout position (`None` before playout starts: then only
/// the live edge matters).
pub fn pick(
    held: &BTreeSet<u64>,
    next: Option<u64>,
    neighbours: &[Neighbour],
) -> Vec<(u64, usize)> {
    let edge = neighbours.iter().filter(|n| n.map.bits != 0).map(|n| n.map.newest).max();
    let Some(edge) = edge else { return Vec::new() };
    let low = edge.saturating_sub(WINDOW - 1).max(next.unwrap_or(0));
    let urgent: Vec<u64> = next
        .map(|n| (n..n.saturating_add(URGENT)).filter(|s| *s <= edge).collect())
        .unwrap_or_default();
    let order = urgent.iter().copied().chain((low..=edge).rev().filter(|s| !urgent.contains(s)));
    let mut load: Vec<usize> = neighbours.iter().map(|n| n.in_flight).collect();
    let mut out = Vec::new();
    for seq in order.filter(|s| !held.contains(s)) {
        let holds = |i: &usize| neighbours[*i].map.has(seq);
        let others = (0..neighbours.len()).any(|i| !neighbours[i].spare && holds(&i));
        let best = (0..neighbours.len())
            .filter(|i| holds(i) && load[*i] < PER_PEER && !(others && neighbours[*i].spare))
            .min_by_key(|i| (load[*i], *i));
        if let Some(i) = best {
            load[i] += 1;
            out.push((seq, i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
        v.into_iter().collect()
    }

    #[test]
    fn bits_in_another_frame() {
        let m = BufferMap::of(&set([98, 100]), &set([]));
        assert_eq!(m.bits_at(100), 0b101);
        assert_eq!(m.bits_at(102), 0b10100);
        assert_eq!(m.bits_at(99), 0b10);
        assert_eq!(m.bits_at(100 + 64), 0);
        assert_eq!(m.bits_at(30), 0);
        assert_eq!(BufferMap::default().bits_at(5), 0);
    }

    #[test]
    fn maps_cover_the_window() {
        let mut m = BufferMap::of(&set([3, 100, 101, 103]), &set([3, 100, 102]));
        assert_eq!(m.newest, 103);
        assert!(m.has(103) && m.has(101) && m.has(100) && !m.has(102) && !m.has(104));
        assert!(!m.has(3), "older than the window");
        assert!(m.has_key(100) && !m.has_key(101) && !m.has_key(102), "only held keys count");
        assert_eq!(m.newest_key(), Some(100));
        m.clear(100);
        assert!(!m.has(100) && m.newest_key().is_none());
        assert!(!BufferMap::of(&set([]), &set([])).has(0));
        assert!(BufferMap::default().is_empty());
        let wire = postcard::to_stdvec(&m).unwrap();
        assert!(wire.len() <= 20, "a map costs a few bytes: {}", wire.len());
    }

    #[test]
    fn urgent_chunks_first_then_newest_first_spread_over_holders() {
        let all = BufferMap::of(&set(10..=40), &set([]));
        let fresh = BufferMap::of(&set(30..=42), &set([]));
        let n = vec![
            Neighbour { map: all, in_flight: 0, spare: false },
            Neighbour { map: fresh, in_flight: 0, spare: false },
        ];
        // We play from 20 and hold 20..=21 and 35..=40.
        let held = set((20..=21).chain(35..=40));
        let picks = pick(&held, Some(20), &n);
        let seqs: Vec<u64> = picks.iter().map(|p| p.0).collect();
        // 22.. are due first, but only neighbour 0 has them, and it takes
        // 4 at most; neighbour 1 gets the newest it can give.
        assert_eq!(
            seqs,
            vec![22, 23, 24, 25, 42, 41, 34, 33],
            "due soonest first, then newest first"
        );
        assert_eq!(
            picks.iter().filter(|p| p.1 == 0).count(),
            PER_PEER,
            "no neighbour gets more than its share"
        );
        assert!(picks.iter().all(|(s, i)| n[*i].map.has(*s)), "only from a holder");
        // Before playout starts: newest first only.
        let picks = pick(&set([]), None, &n);
        assert_eq!(picks[0], (42, 1), "the live edge, from the only holder");
        assert_eq!(pick(&set([]), None, &[]), vec![]);
        // A busy neighbour is left alone.
        let busy = vec![Neighbour {
            map: BufferMap::of(&set(10..=40), &set([])),
            in_flight: PER_PEER,
            spare: false,
        }];
        assert!(pick(&set([]), Some(10), &busy).is_empty());
        // A costly neighbour is asked only for what nobody else can give.
        let spare = vec![
            Neighbour { map: BufferMap::of(&set(10..=40), &set([])), in_flight: 0, spare: true },
            Neighbour { map: BufferMap::of(&set(10..=38), &set([])), in_flight: 0, spare: false },
        ];
        let picks = pick(&set(10..=30), Some(31), &spare);
        assert!(picks.iter().filter(|p| p.1 == 0).all(|p| p.0 > 38), "{picks:?}");
        assert!(picks.contains(&(39, 0)) && picks.contains(&(40, 0)));
    }
}
