//! Slots of mutable files and directories on the grid: written to the
//! first `n` servers of the storage index's ring that take them, read from
//! the first `2n` (every reader sees the same ring, whatever its scores).

use super::Client;
use crate::mutable::Slot;
use crate::placement::ring_position;
use crate::protocol::{Request, Response};
use crate::store::StorageIndex;
use cloudy_overlay::PeerId;
use futures::future::join_all;
use std::collections::BTreeMap;

/// Why a slot could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotWriteError {
    /// A server holds a newer version: someone else changed it meanwhile.
    #[error("changed by someone else meanwhile (a server holds version {held}, this was version {tried}); read it again and retry")]
    Stale {
        /// Version held.
        held: u64,
        /// Version tried.
        tried: u64,
    },
    /// Too few servers took it.
    #[error("stored on {stored} servers, {happy} needed; failures: {failures}")]
    Unhappy {
        /// Servers that took it.
        stored: usize,
        /// Needed.
        happy: usize,
        /// What went wrong, per server.
        failures: String,
    },
}

/// What a slot write did.
#[derive(Debug, Default)]
pub struct SlotWrite {
    /// Servers that stored it now.
    pub stored: Vec<PeerId>,
    /// The highest version servers said they hold instead (a newer
    /// version, or a claim the caller should check by reading).
    pub stale: Option<u64>,
}

/// What the servers of a storage index hold.
#[derive(Debug, Default)]
pub struct SlotsRead {
    /// Per server asked: the valid slots it holds, or why it did not answer.
    pub servers: Vec<(PeerId, Result<Vec<Slot>, String>)>,
    /// Slots held that were not validly signed (ignored), with the server.
    pub invalid: Vec<(PeerId, String)>,
}

impl SlotsRead {
    /// The newest valid slot of each writer.
    pub fn newest(&self) -> BTreeMap<[u8; 16], Slot> {
        let mut out: BTreeMap<[u8; 16], Slot> = BTreeMap::new();
        for slot in self.servers.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten() {
            // Two versions with one number (writers racing): the one with
            // the higher payload hash, so every reader picks the same.
            let rank = |s: &Slot| (s.seqnum, *blake3::hash(&s.payload).as_bytes());
            match out.get(&slot.writer) {
                Some(held) if rank(held) >= rank(slot) => {}
                _ => {
                    out.insert(slot.writer, slot.clone());
                }
            }
        }
        out
    }

    /// Servers that hold `writer`'s slot at exactly `seqnum`.
    pub fn holders(&self, writer: &[u8; 16], seqnum: u64) -> Vec<PeerId> {
        self.servers
            .iter()
            .filter(|(_, r)| {
                r.as_ref()
                    .is_ok_and(|v| v.iter().any(|s| s.writer == *writer && s.seqnum == seqnum))
            })
            .map(|(p, _)| *p)
            .collect()
    }

    /// How many servers answered.
    pub fn answered(&self) -> usize {
        self.servers.iter().filter(|(_, r)| r.is_ok()).count()
    }
}

impl Client {
    /// Storage servers in ring order for `si`.
    pub fn slot_servers(&self, si: &StorageIndex) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self.servers().iter().map(|s| s.peer).collect();
        v.sort_by_key(|p| ring_position(si, p));
        v
    }

    async fn slot_call(&self, peer: PeerId, req: Request) -> Result<Response, String> {
        self.open_and_call(peer, req).await.map(|(_, r)| r).map_err(|e| e.to_string())
    }

    /// Reads every slot of `si` from the first `span` servers of its ring.
    pub async fn read_slots(&self, si: &StorageIndex, span: usize) -> SlotsRead {
        let peers: Vec<PeerId> = self.slot_servers(si).into_iter().take(span).collect();
        let answers =
            join_all(peers.iter().map(|p| self.slot_call(*p, Request::Slots { si: *si }))).await;
        let mut read = SlotsRead::default();
        for (peer, answer) in peers.into_iter().zip(answers) {
            let held = match answer {
                Ok(Response::Slots(v)) => v,
                Ok(Response::Error { message, .. }) => {
                    read.servers.push((peer, Err(message)));
                    continue;
                }
                Ok(other) => {
                    read.servers.push((peer, Err(format!("unexpected answer {other:?}"))));
                    continue;
                }
                Err(e) => {
                    read.servers.push((peer, Err(e)));
                    continue;
                }
            };
            let mut good = Vec::new();
            for bytes in held {
                match Slot::decode(&bytes).and_then(|s| s.verify().map(|()| s)) {
                    Ok(s) if s.si == *si => good.push(s),
                    Ok(_) => read.invalid.push((peer, "a slot of another file".into())),
                    Err(e) => read.invalid.push((peer, e.to_string())),
                }
            }
            read.servers.push((peer, Ok(good)));
        }
        read
    }

    /// Writes `slot` to the first `n` servers of its ring that take it
    /// (skipping `have`, which already hold it); succeeds once `happy`
    /// servers hold it. A server that holds a newer version is passed by
    /// (it may be lying): what it claimed is in [`SlotWrite::stale`].
    pub async fn write_slot(
        &self,
        slot: &Slot,
        n: usize,
        happy: usize,
        have: &[PeerId],
    ) -> Result<SlotWrite, SlotWriteError> {
        let bytes = slot.encode();
        let mut ring = self.slot_servers(&slot.si).into_iter().filter(|p| !have.contains(p));
        let want = n.saturating_sub(have.len());
        let mut stored = Vec::new();
        let mut failures = Vec::new();
        let mut stale: Option<u64> = None;
        let mut batch: Vec<PeerId> = ring.by_ref().take(want).collect();
        while !batch.is_empty() {
            let answers =
                join_all(batch.iter().map(|p| self.slot_call(*p, Request::SlotPut(bytes.clone()))))
                    .await;
            for (peer, answer) in batch.iter().zip(answers) {
                match answer {
                    Ok(Response::SlotStored) => stored.push(*peer),
                    Ok(Response::SlotStale { held }) => {
                        stale = Some(stale.map_or(held, |s| s.max(held)));
                        failures.push(format!("{peer}: holds version {held}"));
                    }
                    Ok(Response::Error { message, .. }) => {
                        failures.push(format!("{peer}: {message}"))
                    }
                    Ok(other) => failures.push(format!("{peer}: unexpected answer {other:?}")),
                    Err(e) => failures.push(format!("{peer}: {e}")),
                }
            }
            let missing = want.saturating_sub(stored.len());
            batch = ring.by_ref().take(missing).collect();
        }
        if stored.len() + have.len() < happy {
            if let Some(held) = stale.filter(|h| *h >= slot.seqnum) {
                return Err(SlotWriteError::Stale { held, tried: slot.seqnum });
            }
            return Err(SlotWriteError::Unhappy {
                stored: stored.len() + have.len(),
                happy,
                failures: failures.join("; "),
            });
        }
        Ok(SlotWrite { stored, stale })
    }
}
