//! One folder at work: scanning (a filesystem watcher with a short
//! debounce, plus a periodic full rescan) and one subscription per other
//! member, which applies that member's index changes as they arrive.
//!
//! Scans and applied batches take the folder's lock in turn, so a scan
//! never sees a file the puller is halfway through installing.

use crate::apply::{self, ApplyError, FETCH_AHEAD};
use crate::blocklist::Entry;
use crate::chunk::Hash;
use crate::config::SyncConfig;
use crate::decide::{decide, Action};
use crate::errors::{About, Errors};
use crate::folder_state::FolderState;
use crate::folders::Folders;
use crate::index::{FileInfo, Index};
use crate::path::RelPath;
use crate::protocol::{recv, send, Request, Response, WireFile, PROTOCOL};
use crate::scan::{ignores, is_ignored, scan, Hold};
use crate::source::{MemberBlocks, TIMEOUT};
use crate::vv::VersionVector;
use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::Handle;
use cloudy_overlay::{PeerId, StreamProtocol};
use futures::future::BoxFuture;
use futures::StreamExt;
use notify::Watcher;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The sync service's shared state: the folder list and the folders at work.
pub(crate) struct Inner {
    pub overlay: Handle,
    pub me: String,
    pub member: u64,
    pub dir: PathBuf,
    pub folders: Folders,
    pub running: Mutex<HashMap<String, Arc<Running>>>,
    /// Folders not run, with why (they hold the node's home).
    pub paused: Mutex<HashMap<String, String>>,
    pub cfg: SyncConfig,
    pub tasks: Tasks,
    /// Each peer's requests per second in its block sessions here.
    pub pace: cloudy_overlay::limits::Pace,
}

/// How a folder is doing.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// What it is doing (written as text in JSON: `"in sync"`, …).
    pub state: FolderState,
    /// Files in the local index (not deleted).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files still to fetch in the batch being applied.
    pub need_files: u64,
    /// Their bytes.
    pub need_bytes: u64,
    /// Block bytes downloaded from members since the node started (blocks
    /// found in local files are copied, not downloaded).
    pub downloaded: u64,
    /// Block bytes served to members since the node started.
    pub uploaded: u64,
    /// The local index's sequence (it grows with every change here).
    pub sequence: u64,
    /// Per member, how far its index (its `sequence`) is applied here.
    pub applied: std::collections::BTreeMap<String, u64>,
    /// Recent per-file errors.
    pub errors: Vec<String>,
}

/// A running folder.
pub(crate) struct Running {
    pub index: Index,
    seq: watch::Sender<u64>,
    lock: tokio::sync::Mutex<()>,
    status: Mutex<Status>,
    /// Outstanding errors, each cleared once it no longer applies.
    errors: Errors,
    /// Block bytes downloaded from members.
    downloaded: Arc<std::sync::atomic::AtomicU64>,
    /// Block bytes served to members.
    pub uploaded: std::sync::atomic::AtomicU64,
    /// The version of each path each member last announced, so a file's
    /// blocks can be asked of every member that has that very version.
    announced: Mutex<HashMap<RelPath, HashMap<PeerId, VersionVector>>>,
    /// Woken when the member list changed (subscriptions start at once).
    members_changed: tokio::sync::Notify,
    /// Bumped when the owner changed the member list: sessions it serves
    /// send the new list at once, so members learn of an admitted peer
    /// without waiting for their session to start over.
    roster: watch::Sender<u64>,
    /// Bumped to make every subscription start over from what the index
    /// says (after the ignore patterns changed).
    resubscribe: watch::Sender<u64>,
    pub cancel: CancellationToken,
}

impl Running {
    /// Its status, with fresh totals.
    pub(crate) fn status(&self) -> Status {
        let mut st = self.status.lock().expect("status lock").clone();
        st.downloaded = self.downloaded.load(std::sync::atomic::Ordering::Relaxed);
        st.uploaded = self.uploaded.load(std::sync::atomic::Ordering::Relaxed);
        st.errors = self.errors.messages();
        // Out of sync is never stored: a settled folder with outstanding
        // errors is out of sync, one whose errors cleared is in sync.
        if st.state == FolderState::InSync && !st.errors.is_empty() {
            st.state = FolderState::OutOfSync { errors: st.errors.len() };
        }
        st.sequence = self.index.max_sequence().unwrap_or(0);
        st.applied = self.index.peers_seen().unwrap_or_default();
        if let Ok(all) = self.index.all() {
            let live: Vec<&FileInfo> = all.iter().filter(|f| !f.deleted).collect();
            st.files = live.len() as u64;
            st.bytes = live.iter().map(|f| f.size).sum();
        }
        st
    }

    fn set_state(&self, state: FolderState) {
        self.status.lock().expect("status lock").state = state;
    }

    fn error(&self, about: About, e: String) {
        self.errors.set(about, e);
    }

    /// Records what `peer` announced.
    fn note_announced(&self, peer: PeerId, files: &[FileInfo]) {
        let mut a = self.announced.lock().expect("announced lock");
        for f in files {
            let by = a.entry(f.path.clone()).or_default();
            if f.deleted {
                by.remove(&peer);
            } else {
                by.insert(peer, f.version.clone());
            }
        }
    }

    /// The members that announced exactly `f`'s version.
    fn holders(&self, f: &FileInfo) -> Vec<PeerId> {
        let a = self.announced.lock().expect("announced lock");
        a.get(&f.path)
            .map(|by| by.iter().filter(|(_, v)| **v == f.version).map(|(p, _)| *p).collect())
            .unwrap_or_default()
    }

    /// Notified when the local index changes.
    pub(crate) fn watch_seq(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }

    /// Changes of the member list made here (by the owner).
    pub(crate) fn watch_roster(&self) -> watch::Receiver<u64> {
        self.roster.subscribe()
    }

    /// The owner changed the member list.
    pub(crate) fn roster_changed(&self) {
        self.roster.send_modify(|g| *g += 1);
    }

    /// Forgets the errors about sessions with `peers` (no longer members).
    pub(crate) fn forget_members(&self, peers: &[String]) {
        self.errors.clear(|a| matches!(a, About::Member(p) if peers.contains(p)));
        self.members_changed.notify_one();
    }

    fn changed(&self) {
        if let Ok(s) = self.index.max_sequence() {
            self.seq.send_replace(s);
        }
    }

    /// The bytes of a block found in the folder, checked against its hash.
    pub(crate) async fn read_block(&self, root: &Path, hash: &[u8; 32]) -> Option<Vec<u8>> {
        let (path, offset, size) = self.index.find_block(hash).ok()??;
        let file = path.under(root);
        let hash = *hash;
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::open(file).ok()?;
            let mut buf = vec![0u8; size as usize];
            f.read_exact_at(&mut buf, offset).ok()?;
            (*blake3::hash(&buf).as_bytes() == hash).then_some(buf)
        })
        .await
        .ok()?
    }
}

/// Starts folder `id` with its index.
pub(crate) fn start(inner: Arc<Inner>, id: String, index: Index) -> Arc<Running> {
    let seq = index.max_sequence().unwrap_or(0);
    let running = Arc::new(Running {
        index,
        seq: watch::channel(seq).0,
        lock: tokio::sync::Mutex::new(()),
        status: Mutex::new(Status::default()),
        errors: Errors::default(),
        downloaded: Default::default(),
        uploaded: Default::default(),
        announced: Default::default(),
        members_changed: Default::default(),
        roster: watch::Sender::new(0),
        resubscribe: watch::channel(0).0,
        cancel: inner.tasks.cancel().child_token(),
    });
    inner.tasks.spawn("sync scanner", scanner::scanner(inner.clone(), id.clone(), running.clone()));
    let tasks = inner.tasks.clone();
    tasks.spawn("sync subscriptions", subscriptions::members(inner, id, running.clone()));
    running
}

fn root_of(inner: &Inner, id: &str) -> Option<PathBuf> {
    inner.folders.get(id).map(|f| f.path)
}

mod batch;
mod scanner;
mod subscriptions;
