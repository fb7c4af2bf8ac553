//! [`PipedWriter`]: a [`ShareWriter`] driven from async code. Blocks go
//! through a short bounded queue to one blocking-pool task that writes them
//! in order, so the network side keeps receiving while the disk writes
//! (rather than one thread hop per block, in lock-step).

use super::{ShareWriter, StoreError};
use crate::root::Hash;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Blocks queued ahead of the disk per share.
const DEPTH: usize = 2;

type Outcome = Result<Box<dyn ShareWriter>, StoreError>;

/// Writes a share on a blocking-pool task.
pub struct PipedWriter {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    task: JoinHandle<Outcome>,
}

fn lost(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: "share writer".into(), reason: e.to_string() }
}

impl PipedWriter {
    /// Starts the writing task. Must be called inside a tokio runtime.
    pub fn new(mut writer: Box<dyn ShareWriter>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(block) = rx.blocking_recv() {
                writer.write_block(&block)?;
            }
            Ok(writer)
        });
        PipedWriter { tx: Some(tx), task }
    }

    /// Queues the next block. An error is the writer's own (full disk, a
    /// block too many); the share is then abandoned.
    pub async fn write(&mut self, block: Vec<u8>) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().ok_or_else(|| lost("writer already failed"))?;
        if tx.send(block).await.is_ok() {
            return Ok(());
        }
        // The task stopped: it failed on an earlier block. Report why.
        self.tx = None;
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(lost("writer stopped early")),
            Err(e) => Err(lost(e)),
        }
    }

    /// Waits for the queued blocks, then appends hashes and root record and
    /// makes the share visible.
    pub async fn finish(mut self, root: Vec<u8>, hashes: Vec<Hash>) -> Result<(), StoreError> {
        if self.tx.take().is_none() {
            return Err(lost("writer already failed"));
        }
        let writer = self.task.await.map_err(lost)??;
        tokio::task::spawn_blocking(move || writer.finish(&root, &hashes)).await.map_err(lost)?
    }
}

impl std::fmt::Debug for PipedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedWriter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, ShareStore};

    #[tokio::test]
    async fn writes_in_order_and_reports_a_writer_error() {
        let store = MemStore::new(u64::MAX);
        let si = [7u8; 16];
        let p = crate::coding::Params { k: 2, n: 3, segment_size: 64 };
        let (record, hashes, all) = crate::coding::encode_all([1; 32], p, &[9u8; 300]);
        let blocks: Vec<Vec<u8>> = all.iter().map(|seg| seg[0].clone()).collect();
        let hashes = hashes[0].clone();
        let len = crate::store::share_len(&record);
        let mut w = PipedWriter::new(store.create(&si, 0, len).unwrap());
        for b in &blocks {
            w.write(b.clone()).await.unwrap();
        }
        w.finish(record.encode(), hashes.clone()).await.unwrap();
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(&store.read_block(&si, 0, i as u64).unwrap(), b);
        }

        // One block too many: the writer refuses, and the error says so
        // (on that write or the next one, as the queue lets it through).
        let mut w = PipedWriter::new(store.create(&si, 1, len).unwrap());
        let mut result = Ok(());
        for b in blocks.iter().chain(blocks.iter()).chain(blocks.iter()) {
            result = w.write(b.clone()).await;
            if result.is_err() {
                break;
            }
        }
        let err = match result {
            Err(e) => e,
            Ok(()) => w.finish(record.encode(), hashes).await.unwrap_err(),
        };
        assert!(matches!(err, StoreError::BadUpload { .. }), "{err}");
        assert!(store.list(&si).unwrap() == vec![0], "the failed share must not be visible");
    }
}
