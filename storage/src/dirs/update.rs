//! Changing a directory: this node's operations appended to its own log.
//!
//! Updates of one directory on one node are written together: while one
//! batch is being written, updates that arrive wait, and the next writer
//! takes all of them at once — each sees the listing with the ones before
//! it applied, and the batch is one write of the log (group commit). Many
//! files copied into one directory at once (a WebDAV client, `cp -r`)
//! then cost a few directory writes, not one each.

use super::grid::{dir_cap, entry, now, unread_error, Change, DirError, Dirs, Listing, State};
use super::ops::{Action, Log, Op, OpId};
use super::valid_name;
use crate::capability::Cap;
use crate::mutable::WriteKey;
use std::sync::Mutex;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&Listing) -> Result<Vec<Change>, DirError> + Send>;

struct Waiting {
    job: Job,
    done: oneshot::Sender<Result<Listing, DirError>>,
}

/// The updates of one directory waiting to be written.
#[derive(Default)]
pub(super) struct Queue {
    waiting: Mutex<Vec<Waiting>>,
    writer: tokio::sync::Mutex<()>,
}

impl Dirs {
    /// Applies the changes `f` decides, given the directory as it is then,
    /// in a write of this node's log; returns the listing after them.
    pub async fn update<F>(&self, cap: &Cap, f: F) -> Result<Listing, DirError>
    where
        F: FnOnce(&Listing) -> Result<Vec<Change>, DirError> + Send + 'static,
    {
        let m = dir_cap(cap)?;
        let key = m.write_key().ok_or(DirError::ReadOnly)?.clone();
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.entry(key.read().verify().storage_index()).or_default().clone()
        };
        let (done, result) = oneshot::channel();
        queue
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Waiting { job: Box::new(f), done });
        {
            let _writing = queue.writer.lock().await;
            let batch =
                std::mem::take(&mut *queue.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            if !batch.is_empty() {
                self.commit(cap, &key, batch).await;
            }
        }
        result
            .await
            .unwrap_or_else(|_| Err(DirError::Batch("the directory update was dropped".into())))
    }

    /// Writes `batch` in one write of this node's log.
    async fn commit(&self, cap: &Cap, key: &WriteKey, batch: Vec<Waiting>) {
        let mut st = match self.state(&key.read()).await {
            Ok(st) => st,
            Err(e) => return fail(batch, &e),
        };
        // Changes decided on a partial listing could miss an entry that
        // exists (a name taken, an entry to remove): none are made.
        if let Some(e) = unread_error(&st.unread) {
            return fail(batch, &e);
        }
        let mut log = st.mine.clone();
        log.peer = self.peer.clone();
        let mut applied = Vec::new();
        for w in batch {
            let before = self.listing(&st, Some(key));
            let changes = match (w.job)(&before) {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.done.send(Err(e));
                    continue;
                }
            };
            match self.append(&mut st, &mut log, changes, key) {
                Ok(()) => applied.push(w.done),
                Err(e) => {
                    let _ = w.done.send(Err(e));
                }
            }
        }
        if applied.is_empty() {
            return;
        }
        let written = async {
            let sealed = log.chunks.len();
            self.seal_chunk(&mut log).await?;
            st.chunks.extend(log.chunks[sealed..].iter().cloned());
            self.write_log(key, &log, st.my_seq + 1).await
        };
        match written.await {
            Ok(()) => {
                st.ops.sort_by_key(|o| o.id);
                let after = self.listing(&st, Some(key));
                self.remember(cap, &after);
                for done in applied {
                    let _ = done.send(Ok(after.clone()));
                }
            }
            Err(e) => {
                let text = e.to_string();
                for done in applied {
                    let _ = done.send(Err(DirError::Batch(text.clone())));
                }
            }
        }
    }

    /// Turns `changes` into operations of this writer, in `st` and `log`;
    /// nothing is added if one of them is invalid.
    fn append(
        &self,
        st: &mut State,
        log: &mut Log,
        changes: Vec<Change>,
        key: &WriteKey,
    ) -> Result<(), DirError> {
        let child_key = key.child_key();
        let (lamport, at) = (st.lamport + 1, now());
        let mut ops = Vec::with_capacity(changes.len());
        let mut counter = st.my_counter;
        for change in changes {
            counter += 1;
            let id = OpId { writer: self.writer, counter };
            let action = match change {
                Change::Add { name, cap, size, mtime } => {
                    if !valid_name(&name) {
                        return Err(DirError::BadName(name));
                    }
                    Action::Add(entry(name, &cap, size, mtime, &child_key))
                }
                Change::Remove(target) => Action::Remove(target),
                Change::Rename { target, name } => {
                    if !valid_name(&name) {
                        return Err(DirError::BadName(name));
                    }
                    Action::Rename { target, name }
                }
            };
            ops.push(Op { id, lamport, at, action });
        }
        st.my_counter = counter;
        st.lamport = lamport;
        for op in ops {
            log.ops.push(serde_json::to_value(&op).expect("an op serialises"));
            st.ops.push(op);
        }
        Ok(())
    }
}

fn fail(batch: Vec<Waiting>, e: &DirError) {
    for w in batch {
        let _ = w.done.send(Err(DirError::Batch(e.to_string())));
    }
}
