//! Download: find holders, check everything against the capability, fetch
//! k blocks per segment from the best holders, switch holder on failure.

use super::reader::ShareReader;
use super::share_error::ShareError;
use super::{session_ended, Client, Conn};
use crate::capability::ReadCap;
use crate::coding::Decoder;
use crate::crypt::storage_index;
use crate::protocol::{FoundMeta, ProtocolError, Request, Response};
use crate::root::Hash;
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
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
    /// Shares are stored under the capability's key, but their root record
    /// does not match its hash, k, n or size: the capability was changed.
    #[error("the capability does not match the stored file: {shares} shares are stored under its key, but with another root hash, k, n or size (was the capability changed when copied?)")]
    CapMismatch {
        /// Shares that answered with a root record that did not match.
        shares: usize,
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
    /// The byte range asked for is not inside the file.
    #[error("range {start}..{end} is not inside the file of {size} bytes")]
    Range {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// File size.
        size: u64,
    },
}

/// Who holds which shares of a file, with open sessions to them.
#[derive(Default)]
pub(crate) struct Holders {
    /// Share number → servers holding it, in the order they answered.
    pub map: BTreeMap<u8, Vec<PeerId>>,
    /// Sessions with every server that answered.
    pub conns: HashMap<PeerId, Conn>,
    /// What each server said or why it did not answer.
    pub notes: Vec<String>,
    /// Root record and hash list of a share (and its block, if small),
    /// where its server sent them with its answer (`Find`): no `Meta`
    /// round trip for it.
    pub metas: HashMap<(PeerId, u8), FoundMeta>,
}

/// Shares chosen for a download, before their readers start.
struct Chosen {
    share: u8,
    peer: PeerId,
    hashes: Vec<Hash>,
    /// The share's one block, if it came with the server's answer.
    block: Option<Vec<u8>>,
}

/// What is left to try when a share fails mid-download.
struct Spares<'a> {
    cap: &'a ReadCap,
    candidates: Vec<(u8, PeerId)>,
    conns: HashMap<PeerId, Conn>,
    notes: Vec<String>,
    /// Shares whose root record did not match the capability.
    mismatched: usize,
    /// Servers not asked yet.
    search: Search,
    /// Root records and hash lists that came with the servers' answers.
    metas: HashMap<(PeerId, u8), FoundMeta>,
}

impl Client {
    /// Downloads the file of `cap` into `out`; returns the bytes written.
    /// Nothing is written for a segment until it is fully verified.
    pub async fn get<W: AsyncWrite + Unpin>(
        &self,
        cap: &ReadCap,
        out: &mut W,
    ) -> Result<u64, GetError> {
        self.get_range(cap, 0..cap.size, out).await
    }

    /// Downloads bytes `range` of the file of `cap` into `out`, reading only
    /// the segments that hold them; returns the bytes written.
    pub async fn get_range<W: AsyncWrite + Unpin>(
        &self,
        cap: &ReadCap,
        range: Range<u64>,
        out: &mut W,
    ) -> Result<u64, GetError> {
        if range.start > range.end || range.end > cap.size {
            return Err(GetError::Range { start: range.start, end: range.end, size: cap.size });
        }
        let si = storage_index(&cap.key);
        let started = std::time::Instant::now();
        // Ask where the upload put the shares, a window at a time, until
        // k distinct shares are known. A wave stops at the first k shares
        // to answer (the nearest holders; no wait for the slowest of the
        // window), and further windows are asked only if those fail
        // (`Spares::next_share`).
        let window = crate::placement::window(cap.n);
        let mut search = Search::new(si, &self.servers(), window, Some(cap.k as usize));
        let planned_at = started.elapsed();
        let mut found = Holders::default();
        while found.map.len() < cap.k as usize && self.ask_wave(&mut search, &mut found).await {}
        let mut spares = Spares {
            cap,
            candidates: Vec::new(),
            conns: HashMap::new(),
            notes: Vec::new(),
            mismatched: 0,
            search,
            metas: HashMap::new(),
        };
        spares.take(found);
        // Pick k distinct shares whose hash lists check out.
        let mut decoder: Option<Decoder> = None;
        let mut chosen: Vec<Chosen> = Vec::new();
        while chosen.len() < cap.k as usize {
            let taken: Vec<u8> = chosen.iter().map(|c| c.share).collect();
            let Some(c) = spares.next_share(self, &mut decoder, &taken).await else { break };
            chosen.push(c);
        }
        let chosen_at = started.elapsed();
        if decoder.is_none() && spares.mismatched > 0 {
            return Err(GetError::CapMismatch { shares: spares.mismatched });
        }
        let Some(mut dec) = decoder.filter(|_| chosen.len() >= cap.k as usize) else {
            let found = chosen.len();
            return Err(GetError::NotEnoughShares {
                k: cap.k as usize,
                found,
                holders: spares.notes.join("; "),
            });
        };
        if range.is_empty() {
            return Ok(0);
        }
        let seg_size = dec.record().segment_size as u64;
        let segments = range.start / seg_size..(range.end - 1) / seg_size + 1;
        let mut readers = Vec::new();
        // A share whose session dropped mid-read is read once more over a
        // new session if no other share is left: its holder may have just
        // restarted (the churn benchmark lost a read when three of five
        // holders restarted at once and the third's old connection died
        // under the read).
        let mut again: HashMap<u8, (PeerId, Vec<Hash>)> =
            chosen.iter().map(|c| (c.share, (c.peer, c.hashes.clone()))).collect();
        for mut c in chosen {
            if let Some(block) = c.block.take().filter(|_| segments == (0..1)) {
                readers.push(ShareReader::ready(c.share, c.peer, &c.hashes, block));
                continue;
            }
            match self.conn_for(&mut spares.conns, c.peer).await {
                Ok(conn) => readers.push(self.reader(conn, si, c, segments.clone())),
                Err(e) => spares.notes.push(format!("{} share {}: {e}", c.peer, c.share)),
            }
        }
        let mut written = 0u64;
        for segment in segments.clone() {
            let mut blocks: Vec<(usize, Vec<u8>)> = Vec::new();
            while blocks.len() < cap.k as usize {
                let waiting: Vec<&mut ShareReader> = readers
                    .iter_mut()
                    .filter(|r| !blocks.iter().any(|(sh, _)| *sh == r.share as usize))
                    .collect();
                if waiting.is_empty() {
                    let found = blocks.len();
                    return Err(GetError::NotEnoughShares {
                        k: cap.k as usize,
                        found,
                        holders: spares.notes.join("; "),
                    });
                }
                let got = futures::future::join_all(
                    waiting.into_iter().map(|r| async { (r.share, r.peer, r.next().await) }),
                )
                .await;
                for (share, peer, result) in got {
                    match result {
                        Ok(b) => blocks.push((share as usize, b)),
                        Err(e) => {
                            spares
                                .notes
                                .push(format!("{peer} share {share} segment {segment}: {e}"));
                            readers.retain(|r| r.share != share);
                            let again_ok = self.worth_reading_again(&e);
                            // Bring in another share, if any holder has one.
                            let taken: Vec<u8> = readers.iter().map(|r| r.share).collect();
                            let mut d = Some(dec);
                            let next = spares.next_share(self, &mut d, &taken).await;
                            dec = d.expect("decoder stays");
                            let next = next.or_else(|| {
                                let (peer, hashes) = again.remove(&share).filter(|_| again_ok)?;
                                Some(Chosen { share, peer, hashes, block: None })
                            });
                            if let Some(c) = next {
                                if let Ok(conn) = self.conn_for(&mut spares.conns, c.peer).await {
                                    readers.push(self.reader(conn, si, c, segment..segments.end));
                                }
                            }
                        }
                    }
                }
            }
            let (d, plain) = tokio::task::spawn_blocking(move || {
                let plain = dec.plaintext(segment, blocks);
                (dec, plain)
            })
            .await
            .map_err(|e| GetError::Write(std::io::Error::other(e)))?;
            dec = d;
            let plain = plain?;
            let from =
                range.start.saturating_sub(segment * seg_size).min(plain.len() as u64) as usize;
            let to = (range.end - segment * seg_size).min(plain.len() as u64) as usize;
            out.write_all(&plain[from..to]).await.map_err(GetError::Write)?;
            written += (to - from) as u64;
        }
        if range == (0..cap.size) {
            dec.finish()?;
        }
        out.flush().await.map_err(GetError::Write)?;
        tracing::debug!(bytes = written, ?planned_at, ?chosen_at, took = ?started.elapsed(), "read a file");
        Ok(written)
    }

    /// Whether a share that failed with `e` may be read once more over a
    /// new session: its session ended under the read, or its holder, which
    /// the overlay had failed, is up again (it may have just restarted).
    fn worth_reading_again(&self, e: &ShareError) -> bool {
        match e {
            ShareError::Protocol(p) => session_ended(p),
            ShareError::HolderGone(p) => {
                self.overlay().snapshot().peers.get(p).is_some_and(|v| v.state.is_up())
            }
            _ => false,
        }
    }

    /// Starts reading `segments` of the chosen share over `conn`.
    fn reader(
        &self,
        conn: Conn,
        si: crate::store::StorageIndex,
        c: Chosen,
        segments: Range<u64>,
    ) -> ShareReader {
        ShareReader::spawn(conn, self.overlay().watch(), si, c.share, c.peer, c.hashes, segments)
    }

    /// The open session with `peer` if nobody uses it yet, else a new one.
    async fn conn_for(
        &self,
        conns: &mut HashMap<PeerId, Conn>,
        peer: PeerId,
    ) -> Result<Conn, ProtocolError> {
        match conns.remove(&peer) {
            Some(c) => Ok(c),
            None => self.connect(peer).await,
        }
    }

    /// Asks the next wave of `search`'s servers which shares they hold,
    /// adding what they said to `h`; `false` once every server was asked.
    /// With `search.enough`, the wave ends as soon as `h` knows that many
    /// shares; servers that had not answered (or not been asked) go back
    /// to the front. A wave with `enough` = k asks k servers first: the
    /// upload put the shares on the first n of the window of 2n (both
    /// ends order it by placement tier, which they agree on), and of
    /// those the k this node scores best (nearest). Each answer without a
    /// new share is replaced at once by the next server, first of that
    /// half, then of the other; whatever is left is asked after
    /// [`HEDGE`] if answers are still out.
    pub(crate) async fn ask_wave(&self, search: &mut Search, h: &mut Holders) -> bool {
        use futures::stream::StreamExt;
        let take = search.wave.min(search.rest.len());
        let wave: Vec<PeerId> = search.rest.drain(..take).collect();
        if wave.is_empty() {
            return false;
        }
        let si = search.si;
        let started = std::time::Instant::now();
        // A download asks with `Find` (the shares' records come with the
        // answer); a server that does not know `Find` (an older version
        // closes the session) is asked again with `List`.
        let find = search.enough.is_some();
        let ask = |peer: PeerId| async move {
            if find {
                match self.open_and_call(peer, Request::Find { si }).await {
                    Err(e) if session_ended(&e) || matches!(e, ProtocolError::Malformed(_)) => {}
                    done => return (peer, done),
                }
            }
            (peer, self.open_and_call(peer, Request::List { si }).await)
        };
        // A download asks the k servers it scores best among the first
        // half of the window, where the upload put the shares; a check
        // asks the whole window at once.
        let mut order = wave.clone();
        let first = match search.enough {
            Some(k) => {
                let half = wave.len().div_ceil(2);
                let score = |p: &PeerId| search.scores.get(p).copied().unwrap_or(0.0);
                order[..half].sort_by(|a, b| score(b).total_cmp(&score(a)));
                k.min(half)
            }
            None => wave.len(),
        };
        let mut asks: futures::stream::FuturesUnordered<_> =
            order[..first].iter().map(|p| ask(*p)).collect();
        let mut later: Vec<PeerId> = order[first..].to_vec();
        let mut asked = first;
        let hedge = tokio::time::sleep(HEDGE);
        tokio::pin!(hedge);
        let mut answered = Vec::new();
        loop {
            let next = tokio::select! {
                next = asks.next() => next,
                _ = &mut hedge, if !later.is_empty() => None,
            };
            let Some((peer, listed)) = next else {
                // Every answer is in, or the hedge ran out: the rest, if any.
                if later.is_empty() {
                    break;
                }
                asked += later.len();
                asks.extend(later.drain(..).map(ask));
                continue;
            };
            answered.push(peer);
            let known = h.map.len();
            let held = match listed {
                Ok((conn, Response::Shares(v))) => Some((conn, v)),
                Ok((conn, Response::Found { shares, metas })) => {
                    for m in metas.into_iter().filter(|m| shares.contains(&m.share)) {
                        h.metas.insert((peer, m.share), m);
                    }
                    Some((conn, shares))
                }
                Ok((_, other)) => {
                    h.notes.push(format!("{peer}: {other:?}"));
                    None
                }
                Err(e) => {
                    h.notes.push(format!("{peer}: {e}"));
                    None
                }
            };
            if let Some((conn, shares)) = held {
                h.notes.push(format!("{peer} has {shares:?}"));
                for sh in shares {
                    h.map.entry(sh).or_default().push(peer);
                }
                h.conns.insert(peer, conn);
            }
            match search.enough {
                Some(k) if h.map.len() >= k => break,
                // An answer that brought no new share is replaced at once
                // by a server of the other half, rather than after every
                // answer is in or the hedge ran out: with the two ends
                // ranking the window differently, the first half holds
                // about half the shares.
                Some(_) if h.map.len() == known && !later.is_empty() => {
                    asked += 1;
                    asks.push(ask(later.remove(0)));
                }
                _ => {}
            }
        }
        drop(asks);
        for peer in wave.iter().rev().filter(|p| !answered.contains(p)) {
            search.rest.push_front(*peer);
        }
        tracing::debug!(
            asked,
            answered = answered.len(),
            shares = h.map.len(),
            took = ?started.elapsed(),
            "asked a wave of servers for a file's shares"
        );
        true
    }
}

/// How long a wave waits for the answers of the first half of its servers
/// before it asks the other half too (a server that is down may take
/// seconds to fail; one that answers does so within a few round trips).
const HEDGE: std::time::Duration = std::time::Duration::from_millis(250);

/// The servers not yet asked where a file's shares are, in the order its
/// upload placed them ([`crate::placement::order`]).
pub(crate) struct Search {
    si: crate::store::StorageIndex,
    rest: std::collections::VecDeque<PeerId>,
    wave: usize,
    /// Shares after which a wave stops waiting for the rest of its answers.
    enough: Option<usize>,
    /// This node's score of each server: which to ask first.
    scores: HashMap<PeerId, f64>,
}

impl Search {
    /// A search for `si` among `servers`, `wave` at a time, each wave
    /// ending once `enough` shares are known (`None`: when all answered).
    pub(crate) fn new(
        si: crate::store::StorageIndex,
        servers: &[crate::placement::Server],
        wave: usize,
        enough: Option<usize>,
    ) -> Self {
        let scores = servers.iter().map(|s| (s.peer, s.score)).collect();
        let rest =
            crate::placement::order(&si, servers, wave).into_iter().map(|s| s.peer).collect();
        Search { si, rest, wave, enough, scores }
    }
}

fn si_of(cap: &ReadCap) -> crate::store::StorageIndex {
    storage_index(&cap.key)
}

impl Spares<'_> {
    /// The next untried share, not among `taken`, whose hash list checks
    /// out (the first good root record sets up `decoder`).
    async fn next_share(
        &mut self,
        client: &Client,
        decoder: &mut Option<Decoder>,
        taken: &[u8],
    ) -> Option<Chosen> {
        let si = si_of(self.cap);
        loop {
            let Some((share, peer)) = self.candidates.pop() else {
                // Every holder found so far was tried: ask the next window.
                let mut more = Holders::default();
                if !client.ask_wave(&mut self.search, &mut more).await {
                    return None;
                }
                self.take(more);
                continue;
            };
            if taken.contains(&share) {
                continue;
            }
            let mut block = None;
            let answer = match self.metas.remove(&(peer, share)) {
                Some(m) => {
                    block = m.block;
                    Ok(Response::Meta { root: m.root, hashes: m.hashes })
                }
                None => {
                    let mut conn = match client.conn_for(&mut self.conns, peer).await {
                        Ok(c) => c,
                        Err(e) => {
                            self.notes.push(format!("{peer}: {e}"));
                            continue;
                        }
                    };
                    let answer = conn.call(Request::Meta { si, share }).await;
                    self.conns.insert(peer, conn);
                    answer
                }
            };
            let (root, hashes) = match answer {
                Ok(Response::Meta { root, hashes }) => (root, hashes),
                Ok(other) => {
                    self.notes.push(format!("{peer} share {share}: {other:?}"));
                    continue;
                }
                Err(e) => {
                    self.notes.push(format!("{peer} share {share}: {e}"));
                    continue;
                }
            };
            if decoder.is_none() {
                match Decoder::for_read(self.cap, &root) {
                    Ok(d) => *decoder = Some(d),
                    Err(e) => {
                        if matches!(e, CodingError::RootMismatch) {
                            self.mismatched += 1;
                        }
                        self.notes.push(format!("{peer} share {share}: {e}"));
                        continue;
                    }
                }
            }
            let dec = decoder.as_mut().expect("set above");
            match dec.accept_hashes(share as usize, hashes.clone()) {
                Ok(()) => return Some(Chosen { share, peer, hashes, block }),
                Err(e) => self.notes.push(format!("{peer}: {e}")),
            }
        }
    }

    /// Adds newly found holders as candidates, share by share, tried
    /// after any left from earlier.
    fn take(&mut self, found: Holders) {
        let mut fresh: Vec<(u8, PeerId)> =
            found.map.iter().flat_map(|(sh, peers)| peers.iter().map(move |p| (*sh, *p))).collect();
        fresh.reverse();
        self.candidates.splice(0..0, fresh);
        self.conns.extend(found.conns);
        self.notes.extend(found.notes);
        self.metas.extend(found.metas);
    }
}
