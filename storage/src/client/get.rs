//! Download: find holders, check everything against the capability, fetch
//! k blocks per segment from the best holders, switch holder on failure.

use super::{Client, Conn};
use crate::capability::ReadCap;
use crate::coding::Decoder;
use crate::crypt::storage_index;
use crate::protocol::{ProtocolError, Request, Response};
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::collections::{BTreeMap, HashMap};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Too few shares reachable.
    #[error("not enough shares: need {k}, found {found} ({holders})")]
    NotEnoughShares {
        /// Needed.
        k: usize,
        /// Distinct good shares found.
        found: usize,
        /// Which server holds which share, and what failed.
        holders: String,
    },
    /// No server returned a root record matching the capability.
    #[error("no server holds a root record matching the capability ({0})")]
    NoRoot(String),
    /// Writing the output failed.
    #[error("writing the file: {0}")]
    Write(#[source] std::io::Error),
    /// Decoding failed.
    #[error(transparent)]
    Coding(#[from] CodingError),
}

/// Who holds which shares of a file, with open sessions to them.
pub(crate) struct Holders {
    /// Share number → servers holding it, best-scored first.
    pub map: BTreeMap<u8, Vec<PeerId>>,
    /// Sessions with every server that answered.
    pub conns: HashMap<PeerId, Conn>,
    /// What each server said or why it did not answer.
    pub notes: Vec<String>,
}

/// One share we read from, and where.
struct Source {
    share: u8,
    peer: PeerId,
}

impl Client {
    /// Downloads the file of `cap` into `out`; returns the bytes written.
    /// Nothing is written for a segment until it is fully verified.
    pub async fn get<W: AsyncWrite + Unpin>(&self, cap: &ReadCap, out: &mut W) -> Result<u64, GetError> {
        let si = storage_index(&cap.key);
        let Holders { map: holders, mut conns, mut notes } = self.find_holders(si).await;
        let mut decoder: Option<Decoder> = None;
        let mut sources: Vec<Source> = Vec::new();
        let mut candidates: Vec<(u8, PeerId)> =
            holders.iter().flat_map(|(sh, peers)| peers.iter().map(move |p| (*sh, *p))).collect();
        candidates.reverse();
        // Pick k distinct shares whose hash lists check out.
        while sources.len() < cap.k as usize {
            let Some((share, peer)) = candidates.pop() else { break };
            if sources.iter().any(|s| s.share == share) {
                continue;
            }
            let Some(conn) = conns.get_mut(&peer) else { continue };
            match conn.call(Request::Meta { si, share }).await {
                Ok(Response::Meta { root, hashes }) => {
                    if decoder.is_none() {
                        match Decoder::for_read(cap, &root) {
                            Ok(d) => decoder = Some(d),
                            Err(e) => {
                                notes.push(format!("{peer} share {share}: {e}"));
                                continue;
                            }
                        }
                    }
                    let dec = decoder.as_mut().expect("set above");
                    match dec.accept_hashes(share as usize, hashes) {
                        Ok(()) => sources.push(Source { share, peer }),
                        Err(e) => notes.push(format!("{peer}: {e}")),
                    }
                }
                Ok(other) => notes.push(format!("{peer} share {share}: {other:?}")),
                Err(e) => notes.push(format!("{peer} share {share}: {e}")),
            }
        }
        let Some(mut dec) = decoder.filter(|_| sources.len() >= cap.k as usize) else {
            let found = sources.len();
            return Err(GetError::NotEnoughShares { k: cap.k as usize, found, holders: notes.join("; ") });
        };
        let mut written = 0u64;
        for segment in 0..dec.record().segments() {
            let mut blocks: Vec<(usize, Vec<u8>)> = Vec::new();
            loop {
                // Blocks still wanted, fetched from all their servers at once.
                let pending: Vec<(u8, PeerId)> = sources
                    .iter()
                    .filter(|s| !blocks.iter().any(|(sh, _)| *sh == s.share as usize))
                    .map(|s| (s.share, s.peer))
                    .collect();
                if pending.is_empty() {
                    break;
                }
                for (share, peer, got) in fetch_many(&mut conns, si_of(cap), segment, &pending).await {
                    let checked = got.and_then(|b| {
                        dec.check_block(share as usize, segment, &b).map(|()| b).map_err(|e| e.to_string())
                    });
                    match checked {
                        Ok(b) => blocks.push((share as usize, b)),
                        Err(e) => {
                            notes.push(format!("{peer} share {share} segment {segment}: {e}"));
                            sources.retain(|s| s.share != share);
                            // Bring in another share, if any holder has one.
                            self.replace_source(cap, &mut dec, &mut conns, &mut candidates, &mut sources, &mut notes).await;
                        }
                    }
                }
            }
            if blocks.len() < cap.k as usize {
                let found = blocks.len();
                return Err(GetError::NotEnoughShares { k: cap.k as usize, found, holders: notes.join("; ") });
            }
            blocks.truncate(cap.k as usize);
            let plain = dec.plaintext(segment, blocks)?;
            out.write_all(&plain).await.map_err(GetError::Write)?;
            written += plain.len() as u64;
        }
        dec.finish()?;
        out.flush().await.map_err(GetError::Write)?;
        Ok(written)
    }

    /// Asks every storage server at once which shares of `si` it holds.
    pub(crate) async fn find_holders(&self, si: crate::store::StorageIndex) -> Holders {
        let mut servers = self.servers();
        servers.sort_by(|a, b| b.score.total_cmp(&a.score));
        let asks = servers.iter().map(|s| async move {
            let listed = match self.connect(s.peer).await {
                Ok(mut c) => c.call(Request::List { si }).await.map(|r| (c, r)),
                Err(e) => Err(e),
            };
            (s.peer, listed)
        });
        let mut h = Holders { map: BTreeMap::new(), conns: HashMap::new(), notes: Vec::new() };
        for (peer, listed) in futures::future::join_all(asks).await {
            match listed {
                Ok((conn, Response::Shares(v))) => {
                    h.notes.push(format!("{peer} has {v:?}"));
                    for sh in v {
                        h.map.entry(sh).or_default().push(peer);
                    }
                    h.conns.insert(peer, conn);
                }
                Ok((_, other)) => h.notes.push(format!("{peer}: {other:?}")),
                Err(e) => h.notes.push(format!("{peer}: {e}")),
            }
        }
        h
    }

    /// Adds the next share (not yet used) whose hash list checks out.
    async fn replace_source(
        &self,
        cap: &ReadCap,
        dec: &mut Decoder,
        conns: &mut HashMap<PeerId, Conn>,
        candidates: &mut Vec<(u8, PeerId)>,
        sources: &mut Vec<Source>,
        notes: &mut Vec<String>,
    ) {
        while let Some((share, peer)) = candidates.pop() {
            if sources.iter().any(|s| s.share == share) {
                continue;
            }
            let Some(conn) = conns.get_mut(&peer) else { continue };
            if let Ok(Response::Meta { hashes, .. }) = conn.call(Request::Meta { si: si_of(cap), share }).await {
                if dec.accept_hashes(share as usize, hashes).is_ok() {
                    sources.push(Source { share, peer });
                    return;
                }
            }
            notes.push(format!("{peer} share {share}: unusable"));
        }
    }
}

fn si_of(cap: &ReadCap) -> crate::store::StorageIndex {
    storage_index(&cap.key)
}

/// Fetches block `segment` of each wanted `(share, server)`: servers in
/// parallel, one request after another on each server's session.
async fn fetch_many(
    conns: &mut HashMap<PeerId, Conn>,
    si: crate::store::StorageIndex,
    segment: u64,
    wanted: &[(u8, PeerId)],
) -> Vec<(u8, PeerId, Result<Vec<u8>, String>)> {
    let mut by_peer: HashMap<PeerId, Vec<u8>> = HashMap::new();
    for (share, peer) in wanted {
        by_peer.entry(*peer).or_default().push(*share);
    }
    let jobs = conns.iter_mut().filter_map(|(peer, conn)| {
        let shares = by_peer.get(peer)?.clone();
        let peer = *peer;
        Some(async move {
            let mut out = Vec::new();
            for share in shares {
                out.push((share, peer, fetch(conn, si, share, segment).await.map_err(|e| e.to_string())));
            }
            out
        })
    });
    let mut results: Vec<_> = futures::future::join_all(jobs).await.into_iter().flatten().collect();
    for (share, peer) in wanted {
        if !conns.contains_key(peer) {
            results.push((*share, *peer, Err("no session with this server".into())));
        }
    }
    results
}

async fn fetch(c: &mut Conn, si: crate::store::StorageIndex, share: u8, segment: u64) -> Result<Vec<u8>, ProtocolError> {
    match c.call(Request::Get { si, share, segment }).await? {
        Response::Block(b) => Ok(b),
        Response::Error { message, .. } => Err(ProtocolError::Malformed(message)),
        other => Err(ProtocolError::Malformed(format!("unexpected answer {other:?}"))),
    }
}
