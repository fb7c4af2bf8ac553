//! Check, verify and repair a stored file with its verify capability.
//!
//! - `check` asks servers which shares they hold (cheap), a placement
//!   window at a time, until every share has a good copy.
//! - `check` with `verify` also fetches every copy of every share and
//!   checks its hash list and each block against the root record.
//! - `repair` rebuilds the ciphertext of each segment from k good shares
//!   (it cannot decrypt), regenerates every share number that has no good
//!   copy, checks the regenerated hash lists against the root record, and
//!   uploads them through placement like a `put` does.

use super::get::{Holders, Search};
use super::put::Upload;
use super::share_error::ShareError;
use super::{Client, Conn};
use crate::capability::VerifyCap;
use crate::coding::Decoder;
use crate::placement::{plan_in_window, window, DEFAULT_HAPPY};
use crate::protocol::{Request, Response};
use crate::root::{block_hash, hashes_root};
use crate::store::share_len;
use cloudy_overlay::PeerId;
use std::collections::{BTreeMap, BTreeSet};

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Share number → servers holding a copy (verified good, if verified).
    pub good: BTreeMap<u8, Vec<PeerId>>,
    /// Copies that failed verification: (share, server, why).
    pub corrupt: Vec<(u8, PeerId, String)>,
    /// Whether blocks were fetched and verified.
    pub verified: bool,
    /// What each server answered.
    pub notes: Vec<String>,
}

impl Report {
    /// Distinct share numbers with a good copy.
    pub fn good_shares(&self) -> usize {
        self.good.len()
    }
    /// All n share numbers have a good copy.
    pub fn healthy(&self) -> bool {
        self.good_shares() == self.n as usize
    }
    /// At least k share numbers have a good copy.
    pub fn recoverable(&self) -> bool {
        self.good_shares() >= self.k as usize
    }
}

/// What a repair did.
#[derive(Clone, Debug)]
pub struct RepairReport {
    /// Health before.
    pub before: Report,
    /// Share numbers regenerated, and where each went.
    pub placed: Vec<(u8, PeerId)>,
    /// Shares that could not be placed, and why.
    pub failures: Vec<String>,
}

/// Why a check or repair could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// Fewer than k good shares: the file cannot be rebuilt.
    #[error("cannot repair: {good} good shares found, {k} needed ({notes})")]
    Unrecoverable {
        /// Good shares.
        good: usize,
        /// Needed.
        k: u8,
        /// What servers said.
        notes: String,
    },
    /// No server has the root record, so nothing can be checked.
    #[error("no server holds a root record matching the capability ({0})")]
    NoRoot(String),
}

impl Client {
    /// Checks a file; with `verify`, fetches and verifies every block.
    pub async fn check(&self, cap: &VerifyCap, verify: bool) -> Result<Report, RepairError> {
        self.check_impl(cap, verify).await.map(|(r, _, _)| r)
    }

    async fn check_impl(
        &self,
        cap: &VerifyCap,
        verify: bool,
    ) -> Result<(Report, Holders, Option<Decoder>), RepairError> {
        // Ask where the upload put the shares, a placement window at a
        // time, until every share has a good copy: a healthy file costs 2n
        // questions, not one per server in the community. A file with a
        // share missing is looked for everywhere before it is repaired.
        let mut search = Search::new(cap.storage_index, &self.servers(), window(cap.n), None);
        let mut h = Holders::default();
        let mut judged: BTreeSet<(u8, PeerId)> = BTreeSet::new();
        let mut report = Report { k: cap.k, n: cap.n, verified: verify, ..Report::default() };
        let mut decoder: Option<Decoder> = None;
        while !report.healthy() && self.ask_wave(&mut search, &mut h).await {
            for (share, peers) in h.map.clone() {
                for peer in peers {
                    if !judged.insert((share, peer)) {
                        continue;
                    }
                    let Some(conn) = h.conns.get_mut(&peer) else { continue };
                    let verdict = if verify || decoder.is_none() {
                        verify_copy(conn, cap, share, &mut decoder, verify).await
                    } else {
                        Ok(())
                    };
                    match verdict {
                        Ok(()) => report.good.entry(share).or_default().push(peer),
                        Err(why) => report.corrupt.push((share, peer, why.to_string())),
                    }
                }
            }
        }
        report.notes = h.notes.clone();
        h.notes.clear();
        Ok((report, h, decoder))
    }

    /// Renews this node's lease on the file's shares held by `holders`;
    /// returns the servers that renewed.
    pub async fn renew(&self, cap: &VerifyCap, holders: &[PeerId]) -> Vec<PeerId> {
        self.renew_index(cap.storage_index, holders).await
    }

    /// Renews this node's lease on what `holders` keep under `si` (shares
    /// and slots); returns the servers that renewed.
    pub async fn renew_index(
        &self,
        si: crate::store::StorageIndex,
        holders: &[PeerId],
    ) -> Vec<PeerId> {
        let asks = holders.iter().map(|peer| async move {
            let mut conn = self.connect(*peer).await.ok()?;
            match conn.call(Request::Renew { si }).await {
                Ok(Response::Renewed { .. }) => Some(*peer),
                _ => None,
            }
        });
        futures::future::join_all(asks).await.into_iter().flatten().collect()
    }

    /// Regenerates shares that have no good copy and places them.
    pub async fn repair(&self, cap: &VerifyCap) -> Result<RepairReport, RepairError> {
        let (before, mut holders, decoder) = self.check_impl(cap, true).await?;
        let notes = || before.notes.join("; ");
        if !before.recoverable() {
            return Err(RepairError::Unrecoverable {
                good: before.good_shares(),
                k: cap.k,
                notes: notes(),
            });
        }
        let mut dec = decoder.ok_or_else(|| RepairError::NoRoot(notes()))?;
        let missing: Vec<u8> = (0..cap.n).filter(|s| !before.good.contains_key(s)).collect();
        if missing.is_empty() {
            return Ok(RepairReport { before, placed: Vec::new(), failures: Vec::new() });
        }
        // Sources: k good shares, each from its first good holder.
        let sources: Vec<(u8, PeerId)> =
            before.good.iter().take(cap.k as usize).map(|(s, p)| (*s, p[0])).collect();
        for (share, peer) in &sources {
            if let Some(Ok(Response::Meta { hashes, .. })) =
                call(&mut holders, *peer, Request::Meta { si: cap.storage_index, share: *share })
                    .await
            {
                let _ = dec.accept_hashes(*share as usize, hashes);
            }
        }
        // New homes: prefer servers that hold no good share of this file.
        let len = share_len(dec.record());
        let busy: BTreeSet<PeerId> = before.good.values().flatten().copied().collect();
        let all = self.servers();
        let fresh: Vec<_> =
            all.iter().filter(|s| !busy.contains(&s.peer) && s.free >= len).cloned().collect();
        let servers = if fresh.is_empty() { all.to_vec() } else { fresh };
        let happy = missing.len().min(servers.len()).clamp(1, DEFAULT_HAPPY);
        // Windows of the file's 2n, so the new shares land near the start
        // of its ring, where a download looks first.
        let placed_plan = plan_in_window(
            &cap.storage_index,
            &servers,
            missing.len() as u8,
            window(cap.n),
            len,
            happy,
        )
        .map_err(|e| RepairError::Unrecoverable {
            good: before.good_shares(),
            k: cap.k,
            notes: e.to_string(),
        })?;
        let mut failures = Vec::new();
        let mut uploads: Vec<Upload> = Vec::new();
        for (i, (_, peer)) in placed_plan.shares.iter().enumerate() {
            let share = missing[i];
            match self.start_upload(*peer, &cap.storage_index, share, len).await {
                Ok(sink) => uploads.push(Upload { share, peer: *peer, sink }),
                Err(e) => failures.push(format!("{peer} (share {share}): {e}")),
            }
        }
        let mut new_hashes: BTreeMap<u8, Vec<[u8; 32]>> = BTreeMap::new();
        for segment in 0..dec.record().segments() {
            let mut blocks = Vec::new();
            for (share, peer) in &sources {
                let req = Request::Get { si: cap.storage_index, share: *share, segment };
                if let Some(Ok(Response::Block(b))) = call(&mut holders, *peer, req).await {
                    blocks.push((*share as usize, b));
                }
            }
            let ciphertext =
                dec.ciphertext(segment, blocks).map_err(|e| RepairError::Unrecoverable {
                    good: before.good_shares(),
                    k: cap.k,
                    notes: e.to_string(),
                })?;
            let regenerated = dec.blocks_of(&ciphertext);
            for u in &mut uploads {
                let block = regenerated[u.share as usize].clone();
                new_hashes.entry(u.share).or_default().push(block_hash(&block));
                if let Err(e) = u.send(block).await {
                    failures.push(format!("{} (share {}): {e}", u.peer, u.share));
                }
            }
        }
        let root = dec.record().encode();
        let mut placed = Vec::new();
        for u in uploads {
            let hashes = new_hashes.remove(&u.share).unwrap_or_default();
            if hashes_root(&hashes) != dec.record().share_roots[u.share as usize] {
                failures.push(format!(
                    "share {}: regenerated blocks do not match the root record",
                    u.share
                ));
                continue;
            }
            let (share, peer) = (u.share, u.peer);
            match u.finish(root.clone(), hashes).await {
                Ok(_) => placed.push((share, peer)),
                Err(e) => failures.push(format!("{peer} (share {share}): {e}")),
            }
        }
        Ok(RepairReport { before, placed, failures })
    }
}

async fn call(
    h: &mut Holders,
    peer: PeerId,
    req: Request,
) -> Option<Result<Response, crate::protocol::ProtocolError>> {
    let conn = h.conns.get_mut(&peer)?;
    Some(conn.call(req).await)
}

/// Checks one copy of a share: its root record and hash list, and with
/// `blocks`, every block.
async fn verify_copy(
    conn: &mut Conn,
    cap: &VerifyCap,
    share: u8,
    decoder: &mut Option<Decoder>,
    blocks: bool,
) -> Result<(), ShareError> {
    let si = cap.storage_index;
    let (root, hashes) = match conn.call(Request::Meta { si, share }).await? {
        Response::Meta { root, hashes } => (root, hashes),
        other => return Err(ShareError::answer(other)),
    };
    if decoder.is_none() {
        *decoder = Some(Decoder::for_verify(cap, &root)?);
    }
    let dec = decoder.as_mut().expect("set above");
    if root != dec.record().encode() {
        return Err(ShareError::RootDiffers);
    }
    dec.accept_hashes(share as usize, hashes)?;
    if blocks {
        for segment in 0..dec.record().segments() {
            match conn.call(Request::Get { si, share, segment }).await? {
                Response::Block(b) => dec.check_block(share as usize, segment, &b)?,
                other => return Err(ShareError::answer(other)),
            }
        }
    }
    Ok(())
}
