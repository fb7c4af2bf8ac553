//! A share reader: one task per share being downloaded, with its own
//! session. It keeps up to [`WINDOW`] block requests outstanding (the
//! server answers in order), checks every block against the share's hash
//! list, and queues the good ones for the decoder in segment order. So the
//! network never waits for the decoder, nor the decoder for a round trip,
//! and memory stays at a few blocks per share.

use super::Conn;
use crate::protocol::{Request, Response};
use crate::root::{block_hash, Hash};
use crate::store::StorageIndex;
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::collections::VecDeque;
use std::ops::Range;
use tokio::sync::mpsc;

/// Requests in flight per share.
pub(super) const WINDOW: u64 = 6;
/// Checked blocks waiting for the decoder, per share.
const QUEUE: usize = 4;

/// The receiving end of a share reader. Dropping it stops the task.
pub(super) struct ShareReader {
    pub share: u8,
    pub peer: PeerId,
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ShareReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ShareReader {
    /// Starts reading `segments` of `share` from `peer` over `conn`.
    pub(super) fn spawn(
        conn: Conn,
        si: StorageIndex,
        share: u8,
        peer: PeerId,
        hashes: Vec<Hash>,
        segments: Range<u64>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(async move {
            if let Err(e) = run(conn, si, share, &hashes, segments, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        ShareReader { share, peer, rx, task }
    }

    /// The next checked block, or why there is none.
    pub(super) async fn next(&mut self) -> Result<Vec<u8>, String> {
        self.rx.recv().await.unwrap_or_else(|| Err("reader stopped".into()))
    }
}

async fn run(
    mut conn: Conn,
    si: StorageIndex,
    share: u8,
    hashes: &[Hash],
    segments: Range<u64>,
    tx: &mpsc::Sender<Result<Vec<u8>, String>>,
) -> Result<(), String> {
    let mut queued = VecDeque::new();
    let mut asked = segments.start;
    for segment in segments.clone() {
        while asked < segments.end && asked < segment + WINDOW {
            conn.send(Request::Get { si, share, segment: asked }, &mut queued)
                .await
                .map_err(|e| e.to_string())?;
            asked += 1;
        }
        let block = match conn.recv(&mut queued).await.map_err(|e| e.to_string())? {
            Response::Block(b) => b,
            Response::Error { message, .. } => return Err(message),
            other => return Err(format!("unexpected answer {other:?}")),
        };
        if hashes.get(segment as usize) != Some(&block_hash(&block)) {
            return Err(CodingError::CorruptBlock { share: share as usize, segment }.to_string());
        }
        if tx.send(Ok(block)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
