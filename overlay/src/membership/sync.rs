//! Anti-entropy (pure logic): two members compare their tables and send
//! each other only what differs.
//!
//! Gossip carries every change once; a member that missed one (it was
//! starting, partitioned, or a message was lost) catches up here. The
//! exchange ([`crate::sync_msg`]) is incremental:
//! 1. A sends the [`MemberTable::summary`] of its table (a 32-byte hash);
//! 2. B answers `Equal` when its own summary is the same (the common case:
//!    a converged community spends two small messages), or its
//!    [`MemberTable::digest`]: one `(peer, version, state)` per up member;
//! 3. A compares ([`MemberTable::compare`]) and sends B the entries where
//!    A knows better, asking for those where B does;
//! 4. B answers with those entries, and with its own where what A sent is
//!    older than what B holds (B's digest lists only up members, so A can
//!    send B a member B holds failed). Both [`MemberTable::merge`] them.
//!
//! Order: a member's entries are ordered by `(incarnation, seq, rank)`
//! ([`MemberState::rank`]): a failure outranks the heartbeat of the same
//! version, a newer heartbeat outranks it (a refutation). Suspicions are
//! not exchanged: a suspect member is listed as alive (see [`listed`]).
//! A failure learned this way is not gossiped again, and fails the member
//! here only on this node's own timer: a member held up here becomes
//! suspect for the shortest suspicion ([`MemberTable::confirmed`]), a
//! suspicion nobody else hears of. A member wrongly held failed learns it
//! in its own next exchange with a member that holds it so (the failed
//! entry outranks its own), and refutes with a newer heartbeat, which
//! everybody takes. That is also how the two
//! sides of a healed partition find each other alive again. A first
//! version suspected the member instead and gossiped the suspicion, as
//! memberlist's push-pull does; at N = 200 on a saturated machine every
//! exchange with a stale table then set off a community-wide suspicion
//! and refutation, 25,000 of them in a few minutes
//! (DESIGN/failure-detection.md). Failed and left members we never knew
//! are not taken in, so that reaped members do not come back from the
//! tables of others.

use super::{diff, Change, Member, MemberState, MemberTable};
use crate::membership::wire::Alive;
use crate::sync_msg::{SyncRequest, SyncResponse};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One member's version and state, as listed in a digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The member.
    pub peer: PeerId,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its message counter.
    pub seq: u64,
    /// Its state as the sender sees it.
    pub state: MemberState,
}

/// One member's full entry: its latest heartbeat and its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncEntry {
    /// The latest heartbeat, with `incarnation` and `seq` set to the
    /// member's version (a leave's, for a member that left).
    pub info: Alive,
    /// Its state as the sender sees it.
    pub state: MemberState,
}

/// What merging one entry asks of the caller.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    /// Changes to report.
    pub changes: Vec<Change>,
    /// Our entry outranks the one received: the sender should have ours.
    pub ours_newer: bool,
}

type Key = (u64, u64, u8);

/// Suspicions do not travel here: they are gossiped, and last seconds.
/// A suspect member is listed as alive, so that a suspicion in flight
/// neither makes two tables differ nor reaches a member that missed it
/// (where it would run out unrefuted and fail a live member).
fn listed(state: MemberState) -> MemberState {
    match state {
        MemberState::Suspect => MemberState::Alive,
        s => s,
    }
}

/// Buckets the members are cut into (by [`bucket`]) when two large tables
/// differ: they compare the sums of each bucket's entries first, and send
/// each other the digest of the differing buckets only.
pub const BUCKETS: usize = 256;

/// Up to this many members a table that differs sends its whole digest
/// at once; beyond, its bucket sums first. A digest entry is about 80
/// bytes: at 10,000 members a whole digest is 800 KB, where one change
/// in flight costs 2 KB of sums and the digest of one bucket (3 KB).
pub const WHOLE_DIGEST: usize = 256;

/// The bucket of a member: the last byte of its peer id (key material).
pub fn bucket(peer: &PeerId) -> u8 {
    peer.to_bytes().last().copied().unwrap_or(0)
}

/// One digest entry's share of the summary: the entry's hash, as four
/// numbers to add.
pub(super) fn share(peer: &PeerId, incarnation: u64, seq: u64, state: MemberState) -> [u64; 4] {
    let mut h = blake3::Hasher::new();
    h.update(&peer.to_bytes());
    h.update(&incarnation.to_be_bytes());
    h.update(&seq.to_be_bytes());
    h.update(&[listed(state).rank()]);
    let bytes = h.finalize();
    let mut out = [0u64; 4];
    for (lane, chunk) in out.iter_mut().zip(bytes.as_bytes().chunks_exact(8)) {
        *lane = u64::from_be_bytes(chunk.try_into().unwrap_or_default());
    }
    out
}

/// The share of a member's entry, if the digest lists it (up members).
pub(super) fn share_of(m: &Member) -> Option<[u64; 4]> {
    m.state.is_up().then(|| share(&m.info.peer, m.version.0, m.version.1, m.state))
}

/// Lane-wise sum (and, with `sub`, difference) of two shares.
pub(super) fn add(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    std::array::from_fn(|i| a[i].wrapping_add(b[i]))
}

pub(super) fn sub(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    std::array::from_fn(|i| a[i].wrapping_sub(b[i]))
}

/// A sum of shares as the 32 bytes of a summary.
fn summary_bytes(sum: [u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, lane) in out.chunks_exact_mut(8).zip(sum) {
        chunk.copy_from_slice(&lane.to_be_bytes());
    }
    out
}

/// Step 3 of an exchange, unless the tables agreed after all.
fn exchange((push, want): (Vec<SyncEntry>, Vec<PeerId>)) -> Option<SyncRequest> {
    (!push.is_empty() || !want.is_empty()).then_some(SyncRequest::Exchange { push, want })
}

/// Which of the [`BUCKETS`] are named.
fn mask(buckets: &[u8]) -> [bool; BUCKETS] {
    let mut out = [false; BUCKETS];
    for b in buckets {
        out[usize::from(*b)] = true;
    }
    out
}

/// A member's line in a digest.
fn listing(m: &Member) -> DigestEntry {
    DigestEntry {
        peer: m.info.peer,
        incarnation: m.version.0,
        seq: m.version.1,
        state: listed(m.state),
    }
}

/// Our own line in a digest.
fn own_listing(me: &Alive) -> DigestEntry {
    DigestEntry {
        peer: me.peer,
        incarnation: me.incarnation,
        seq: me.seq,
        state: MemberState::Alive,
    }
}

fn key(version: (u64, u64), state: MemberState) -> Key {
    (version.0, version.1, listed(state).rank())
}

impl MemberTable {
    fn key_of(&self, peer: &PeerId, me: &Alive) -> Option<Key> {
        if *peer == me.peer {
            return Some(key((me.incarnation, me.seq), MemberState::Alive));
        }
        self.members.get(peer).map(|m| key(m.version, m.state))
    }

    /// Up members and ourselves (`me`, our current heartbeat), sorted by peer.
    pub fn digest(&self, me: &Alive) -> Vec<DigestEntry> {
        let mut out: Vec<DigestEntry> =
            self.members.values().filter(|m| m.state.is_up()).map(listing).collect();
        out.push(own_listing(me));
        out.sort_by_key(|e| e.peer);
        out
    }

    /// [`MemberTable::digest`] restricted to the members in `buckets`.
    pub fn digest_of(&self, me: &Alive, buckets: &[u8]) -> Vec<DigestEntry> {
        let mask = mask(buckets);
        let mut out: Vec<DigestEntry> = (0..BUCKETS)
            .filter(|b| mask[*b])
            .flat_map(|b| &self.idx.up_in[b])
            .filter_map(|p| self.members.get(p))
            .map(listing)
            .collect();
        if mask[usize::from(bucket(&me.peer))] {
            out.push(own_listing(me));
        }
        out.sort_by_key(|e| e.peer);
        out
    }

    /// The first lane of each bucket's share of the summary, ours included:
    /// what two large tables compare before their digests.
    pub fn bucket_sums(&self, me: &Alive) -> Vec<u64> {
        let mut out: Vec<u64> = self.idx.buckets.iter().map(|s| s[0]).collect();
        let own = share(&me.peer, me.incarnation, me.seq, MemberState::Alive);
        let b = usize::from(bucket(&me.peer));
        out[b] = out[b].wrapping_add(own[0]);
        out
    }

    /// A hash of [`MemberTable::digest`]: equal on two members exactly
    /// when their digests are (but for hash collisions). It is the sum of
    /// one hash per entry ([`share`]), kept up to date as entries change,
    /// so it costs the same whatever N is; a hash of the sorted digest
    /// cost every member a sort of N entries after every change
    /// (DESIGN/simulation.md).
    pub fn summary(&self, me: &Alive) -> [u8; 32] {
        let own = share(&me.peer, me.incarnation, me.seq, MemberState::Alive);
        summary_bytes(add(self.idx.sum, own))
    }

    /// Compares the other side's digest with our table: the entries we
    /// know better (to send), and the members it knows better (to ask for).
    pub fn compare(&self, me: &Alive, theirs: &[DigestEntry]) -> (Vec<SyncEntry>, Vec<PeerId>) {
        self.compare_in(me, theirs, None)
    }

    /// [`MemberTable::compare`] with the digest of some buckets only.
    fn compare_in(
        &self,
        me: &Alive,
        theirs: &[DigestEntry],
        buckets: Option<&[u8]>,
    ) -> (Vec<SyncEntry>, Vec<PeerId>) {
        let mut push = Vec::new();
        let mut want = Vec::new();
        for e in theirs {
            let remote = key((e.incarnation, e.seq), e.state);
            match self.key_of(&e.peer, me) {
                Some(local) if local > remote => push.extend(self.entry(&e.peer, me)),
                Some(local) if local == remote => {}
                _ => want.push(e.peer),
            }
        }
        let listed: std::collections::HashSet<&PeerId> = theirs.iter().map(|e| &e.peer).collect();
        let ours = match buckets {
            Some(b) => self.digest_of(me, b),
            None => self.digest(me),
        };
        for d in ours {
            if !listed.contains(&d.peer) {
                push.extend(self.entry(&d.peer, me));
            }
        }
        (push, want)
    }

    /// The full entry of `peer` (or ours), if known.
    pub fn entry(&self, peer: &PeerId, me: &Alive) -> Option<SyncEntry> {
        if *peer == me.peer {
            return Some(SyncEntry { info: me.clone(), state: MemberState::Alive });
        }
        let m = self.members.get(peer)?;
        let mut info = m.info.clone();
        (info.incarnation, info.seq) = m.version;
        Some(SyncEntry { info, state: listed(m.state) })
    }

    /// Takes in one entry from another member's table, heard at `now`.
    pub fn merge(&mut self, e: SyncEntry, now: Instant) -> Merged {
        let peer = e.info.peer;
        let version = (e.info.incarnation, e.info.seq);
        if peer == self.local {
            // Our own entry: refute an accusation of our current version.
            let accused = e.state != MemberState::Alive;
            let changes = if accused { vec![Change::Refute] } else { Vec::new() };
            return Merged { changes, ..Merged::default() };
        }
        let e = SyncEntry { state: listed(e.state), ..e };
        let remote = key(version, e.state);
        let old = self.members.get(&peer).cloned();
        let local = old.as_ref().map(|m| key(m.version, m.state));
        if let Some(l) = local.filter(|l| *l >= remote) {
            return Merged { ours_newer: l > remote, ..Merged::default() };
        }
        if old.is_none() && !e.state.is_up() {
            return Merged::default();
        }
        if e.state == MemberState::Failed && old.as_ref().is_some_and(|m| m.state.is_up()) {
            // Failed there, up here: suspected here, and failed on this
            // node's own timer unless the member refutes first.
            let changes = self.confirmed(&peer, None, Some((e.info, version)), now);
            return Merged { changes, ours_newer: false };
        }
        let state = e.state;
        // `state` is never suspect here (see `listed`): a newer entry ends
        // any suspicion we held.
        let same_state = old.as_ref().is_some_and(|m| m.state == state);
        let member = Member {
            info: e.info,
            version,
            accusers: Vec::new(),
            state,
            last_heard: old.as_ref().map_or(now, |m| m.last_heard.max(now)),
            state_since: old.as_ref().filter(|_| same_state).map_or(now, |m| m.state_since),
            suspected_at: None,
            confirmed: false,
            crowd: 0,
        };
        let changes = diff(peer, old.as_ref(), &member);
        self.note_refutation(old.as_ref(), &member, now);
        self.idx.note(old.as_ref(), &member, self.timing.reap_after);
        self.members.insert(peer, member);
        Merged { changes, ours_newer: false }
    }
}

/// The exchange itself, as both sides run it ([`crate::anti_entropy`] on
/// the network, the community simulator in memory).
impl MemberTable {
    /// Step 1: the opening request, our summary.
    pub fn hello(&self, me: &Alive) -> SyncRequest {
        SyncRequest::Hello { hash: self.summary(me).to_vec() }
    }

    /// Steps 2 and 4, the side asked: the answer to `req`, and the changes
    /// the entries it pushed made (learned from another member's table).
    pub fn answer(
        &mut self,
        me: &Alive,
        req: SyncRequest,
        now: Instant,
    ) -> (SyncResponse, Vec<Change>) {
        match req {
            SyncRequest::Hello { hash } if hash[..] == self.summary(me) => {
                (SyncResponse::Equal, Vec::new())
            }
            SyncRequest::Hello { .. } if self.members.len() < WHOLE_DIGEST => {
                (SyncResponse::Digest(self.digest(me)), Vec::new())
            }
            SyncRequest::Hello { .. } => (SyncResponse::Buckets(self.bucket_sums(me)), Vec::new()),
            SyncRequest::Digest { buckets } => {
                let digest = self.digest_of(me, &buckets);
                (SyncResponse::Part { buckets, digest }, Vec::new())
            }
            SyncRequest::Exchange { push, mut want } => {
                let (changes, ours_newer) = self.merge_all(push, now);
                want.extend(ours_newer);
                let entries = want.iter().filter_map(|p| self.entry(p, me)).collect();
                (SyncResponse::Entries(entries), changes)
            }
        }
    }

    /// Step 3 and the end, the side that asked: takes the answer; the next
    /// request to send, if any, and the changes.
    pub fn take(
        &mut self,
        me: &Alive,
        resp: SyncResponse,
        now: Instant,
    ) -> (Option<SyncRequest>, Vec<Change>) {
        match resp {
            SyncResponse::Equal => (None, Vec::new()),
            SyncResponse::Digest(theirs) => (exchange(self.compare(me, &theirs)), Vec::new()),
            SyncResponse::Buckets(theirs) if theirs.len() == BUCKETS => {
                let ours = self.bucket_sums(me);
                let buckets: Vec<u8> = (0..=u8::MAX)
                    .filter(|b| ours[usize::from(*b)] != theirs[usize::from(*b)])
                    .collect();
                let next = (!buckets.is_empty()).then_some(SyncRequest::Digest { buckets });
                (next, Vec::new())
            }
            SyncResponse::Buckets(_) => (None, Vec::new()),
            SyncResponse::Part { buckets, digest } => {
                (exchange(self.compare_in(me, &digest, Some(&buckets))), Vec::new())
            }
            SyncResponse::Entries(entries) => (None, self.merge_all(entries, now).0),
        }
    }

    /// Merges entries from another member's table (an entry with an
    /// invalid coordinate is dropped): the changes, and the members of
    /// which we hold a newer entry than the sender.
    pub fn merge_all(
        &mut self,
        entries: Vec<SyncEntry>,
        now: Instant,
    ) -> (Vec<Change>, Vec<PeerId>) {
        let mut changes = Vec::new();
        let mut ours_newer = Vec::new();
        for e in entries {
            if e.info.coord.as_ref().is_some_and(|c| !c.is_valid()) {
                continue;
            }
            let peer = e.info.peer;
            let merged = self.merge(e, now);
            if merged.ours_newer {
                ours_newer.push(peer);
            }
            changes.extend(merged.changes);
        }
        (changes, ours_newer)
    }
}

#[cfg(test)]
mod tests;
