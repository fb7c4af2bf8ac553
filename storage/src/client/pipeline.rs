//! The upload pipeline behind [`Client::put_source`].
//!
//! ```text
//! source ─▶ encoder (blocking thread) ─┬─ queue ─▶ sender task ─▶ server A
//!            read, encrypt, encode      ├─ queue ─▶ sender task ─▶ server B
//!                                       └─ …        (one per share)
//! ```
//!
//! - The encoder reads one segment at a time and hands block *i* to share
//!   *i*'s queue, so memory is bounded by segment size × queue depth × n
//!   whatever the file size, and encoding overlaps the network.
//! - Each share has its own sender, so servers are not held in lock-step:
//!   a fast server runs up to [`DEPTH`] blocks ahead of a slow one. The
//!   slowest server still paces the upload (its queue fills).
//! - A sender whose server fails, or takes longer than [`CALL_TIMEOUT`] to
//!   accept one block, drops its queue; the encoder sees that and stops as
//!   soon as fewer than `happy` distinct servers are left.

use super::put::{PutError, PutOptions, Upload};
use super::share_error::ShareError;
use super::{Client, CALL_TIMEOUT};
use crate::capability::{Cap, ReadCap, LITERAL_MAX};
use crate::coding::Encoder;
use crate::crypt::storage_index;
use crate::placement::plan;
use crate::root::{Hash, RootRecord};
use crate::store::share_len;
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::collections::HashSet;
use std::io::Read;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Blocks queued per share ahead of its server.
pub(super) const DEPTH: usize = 3;

/// Where an upload's plaintext comes from.
pub type Source = Box<dyn Read + Send>;

/// One share's queue, as the encoder sees it.
struct Lane {
    share: u8,
    peer: PeerId,
    tx: Option<mpsc::Sender<Vec<u8>>>,
}

/// Why the encoder stopped early.
enum Stop {
    Read(std::io::Error),
    Coding(CodingError),
    Unhappy,
}

impl Client {
    /// Uploads `size` bytes read from `source` (named `what` in errors),
    /// encrypted with `key`, or a fresh random key when `None`.
    pub async fn put_source(
        &self,
        source: Source,
        what: &str,
        size: u64,
        key: Option<[u8; 32]>,
        opts: PutOptions,
    ) -> Result<Cap, PutError> {
        let p = opts.params;
        p.validate()?;
        let read_err = |source| PutError::Read { path: what.to_string(), source };
        if size as usize <= LITERAL_MAX {
            // The source may block (a file, or a bridge from an async body).
            let read = tokio::task::spawn_blocking(move || {
                let mut data = Vec::new();
                source.take(size).read_to_end(&mut data).map(|_| data)
            });
            let data =
                read.await.map_err(|e| read_err(std::io::Error::other(e)))?.map_err(read_err)?;
            return match data.len() as u64 == size {
                true => Ok(Cap::Literal(data)),
                false => Err(read_err(short_read(data.len() as u64, size))),
            };
        }
        let key = key.unwrap_or_else(rand::random);
        let si = storage_index(&key);
        let len = share_len(&p.unsealed(size));
        let placed = plan(&si, &self.servers(), p.n, len, opts.happy)?;
        let mut failures = Vec::new();
        let uploads = self.open_uploads(&si, len, &placed, &mut failures).await;

        let mut senders = JoinSet::new();
        let mut lanes = Vec::new();
        for u in uploads {
            let (tx, rx) = mpsc::channel(DEPTH);
            lanes.push(Lane { share: u.share, peer: u.peer, tx: Some(tx) });
            senders.spawn(drain(u, rx));
        }
        let enc = Encoder::new(key, p, size)?;
        let happy = opts.happy;
        let encoded = tokio::task::spawn_blocking(move || encode(source, size, enc, lanes, happy))
            .await
            .map_err(|e| read_err(std::io::Error::other(e)))?;
        // The lanes are gone with the encoder, so every sender ends once
        // its queue is empty.
        let mut done = Vec::new();
        while let Some(joined) = senders.join_next().await {
            match joined {
                Ok(Ok(u)) => done.push(u),
                Ok(Err((peer, share, e))) => failures.push(format!("{peer} (share {share}): {e}")),
                Err(e) => failures.push(format!("sender task: {e}")),
            }
        }
        let unhappy = |stored: usize, failures: &[String]| PutError::Unhappy {
            stored,
            happy,
            failures: failures.join("; "),
        };
        let (record, hashes) = match encoded {
            Ok(v) => v,
            Err(Stop::Read(e)) => return Err(read_err(e)),
            Err(Stop::Coding(e)) => return Err(e.into()),
            Err(Stop::Unhappy) => {
                return Err(unhappy(distinct(done.iter().map(|u| u.peer)), &failures))
            }
        };
        let stored = self.finish_all(done, &record, &hashes, &mut failures).await;
        if stored < happy {
            return Err(unhappy(stored, &failures));
        }
        Ok(Cap::Read(ReadCap { key, root: record.hash(), k: p.k, n: p.n, size }))
    }

    /// Sends every upload its hashes and the root record; returns how many
    /// distinct servers stored a share.
    async fn finish_all(
        &self,
        done: Vec<Upload>,
        record: &RootRecord,
        hashes: &[Vec<Hash>],
        failures: &mut Vec<String>,
    ) -> usize {
        let root = record.encode();
        let finishes =
            done.into_iter().map(|u| {
                let (root, h, share, peer) =
                    (root.clone(), hashes[u.share as usize].clone(), u.share, u.peer);
                async move {
                    u.finish(root, h).await.map_err(|e| format!("{peer} (share {share}): {e}"))
                }
            });
        let mut stored = Vec::new();
        for r in futures::future::join_all(finishes).await {
            match r {
                Ok(peer) => stored.push(peer),
                Err(e) => failures.push(e),
            }
        }
        distinct(stored)
    }
}

fn distinct(peers: impl IntoIterator<Item = PeerId>) -> usize {
    peers.into_iter().collect::<HashSet<_>>().len()
}

fn short_read(got: u64, size: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("ended after {got} of {size} bytes"),
    )
}

/// Sends one share's blocks as they arrive.
async fn drain(
    mut u: Upload,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> Result<Upload, (PeerId, u8, ShareError)> {
    while let Some(block) = rx.recv().await {
        let sent = tokio::time::timeout(CALL_TIMEOUT, u.send(block))
            .await
            .unwrap_or(Err(ShareError::Stalled(CALL_TIMEOUT)));
        if let Err(e) = sent {
            return Err((u.peer, u.share, e));
        }
    }
    Ok(u)
}

/// Reads, encrypts and encodes the source segment by segment and queues
/// each block for its share (runs on a blocking thread).
fn encode(
    mut source: Source,
    size: u64,
    mut enc: Encoder,
    mut lanes: Vec<Lane>,
    happy: usize,
) -> Result<(RootRecord, Vec<Vec<Hash>>), Stop> {
    let mut buf = vec![0u8; enc.next_segment_len().unwrap_or(0)];
    let mut read = 0u64;
    while let Some(n) = enc.next_segment_len() {
        source.read_exact(&mut buf[..n]).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Stop::Read(short_read(read, size)),
            _ => Stop::Read(e),
        })?;
        read += n as u64;
        let mut blocks = enc.push(&buf[..n]).map_err(Stop::Coding)?;
        for lane in &mut lanes {
            let block = std::mem::take(&mut blocks[lane.share as usize]);
            if lane.tx.as_ref().is_some_and(|tx| tx.blocking_send(block).is_err()) {
                lane.tx = None;
            }
        }
        if distinct(lanes.iter().filter(|l| l.tx.is_some()).map(|l| l.peer)) < happy {
            return Err(Stop::Unhappy);
        }
    }
    enc.finish().map_err(Stop::Coding)
}
