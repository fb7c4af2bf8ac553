//! Directories on the grid: reading every writer's log, merging them, and
//! appending this node's operations to its own log.
//!
//! - A node writes a directory under its own writer id (a hash of its peer
//!   id), one slot per writer, so writers on different nodes never
//!   overwrite each other. Updates of one directory on one node are
//!   serialised by a lock.
//! - A log keeps its newest operations inline and moves older ones into
//!   immutable chunks (cached here by capability) once the inline part
//!   passes [`INLINE_MAX`], so one update rewrites a small slot, not the
//!   whole directory.

use super::merge;
use super::ops::{decode_ops, Entry, Kind, Log, Op, OpId};
use crate::capability::{Access, Cap, MutCap, MutKind};
use crate::client::{
    slot_happy, Client, GetError, MutableError, PutError, PutOptions, SlotWriteError,
};
use crate::mutable::{keys, ReadKey, Slot, WriteKey};
use crate::placement::DEFAULT_PARAMS;
use crate::store::StorageIndex;
use cloudy_overlay::PeerId;
use data_encoding::BASE64;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Inline operations past this many bytes move into a chunk.
pub const INLINE_MAX: usize = 40 << 10;
const CHUNK_CACHE: usize = 4096;
/// How long a directory listing serves path walks.
pub const WALK_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// Reading or writing its slots failed.
    #[error(transparent)]
    Mutable(#[from] MutableError),
    /// Writing a chunk failed.
    #[error(transparent)]
    Put(#[from] PutError),
    /// Reading a chunk failed.
    #[error("reading part of the directory: {0}")]
    Get(#[from] GetError),
    /// Not a directory capability.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// The capability can only read.
    #[error("this is a read-only directory capability; changing it needs its write capability")]
    ReadOnly,
    /// A verify capability cannot list.
    #[error("a verify capability can check a directory but not list it")]
    VerifyOnly,
    /// No such name.
    #[error("no entry {0:?}")]
    NoEntry(String),
    /// The name is taken (and replacing was not asked for).
    #[error("{0:?} already exists")]
    Exists(String),
    /// The name is unusable.
    #[error("{0:?} cannot name an entry (empty, \".\", \"..\", or holds \"/\")")]
    BadName(String),
    /// A failure shared by the updates written together in one batch.
    #[error("{0}")]
    Batch(String),
    /// Part of the directory could not be read just now (a chunk of a
    /// log on servers that did not answer), so what is missing may be in
    /// it: nothing is concluded from, or written over, a partial listing.
    #[error(
        "part of the directory could not be read just now ({0}); nothing was changed, try again"
    )]
    Unread(String),
}

impl From<SlotWriteError> for DirError {
    fn from(e: SlotWriteError) -> Self {
        DirError::Mutable(MutableError::Write(e))
    }
}

/// An entry as listed.
#[derive(Clone, Debug)]
pub struct Child {
    /// Its id.
    pub id: OpId,
    /// Ids of identical entries listed as this one (see [`super::merge`]).
    pub also: Vec<OpId>,
    /// The name shown (a conflict name if two entries share one).
    pub name: String,
    /// File or directory.
    pub kind: Kind,
    /// The best capability this reader may have: the write capability of
    /// a mutable child through a writable directory, otherwise read.
    pub cap: Cap,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: u64,
    /// Whether the name shown is a conflict name.
    pub conflict: bool,
}

/// A directory's entries.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Entries, by name.
    pub entries: Vec<Child>,
    /// Entries or logs that did not decode, named.
    pub bad: Vec<String>,
    /// How many writers have written it.
    pub writers: usize,
    /// The highest Lamport time of its operations.
    pub lamport: u64,
    /// Read capabilities of the immutable chunks its logs keep older
    /// entries in (checked and repaired with it).
    pub chunks: Vec<String>,
    /// Chunks that could not be read just now, and why (also in `bad`):
    /// entries may be missing from this listing.
    pub unread: Vec<String>,
}

impl Listing {
    /// The entry shown as `name`.
    pub fn get(&self, name: &str) -> Option<&Child> {
        self.entries.iter().find(|c| c.name == name)
    }

    /// The entry shown as `name`; not there is [`DirError::NoEntry`] of
    /// `path`, unless part of the listing could not be read (then it may
    /// be in that part: [`DirError::Unread`]).
    pub fn entry(&self, name: &str, path: impl FnOnce() -> String) -> Result<&Child, DirError> {
        self.get(name)
            .ok_or_else(|| unread_error(&self.unread).unwrap_or_else(|| DirError::NoEntry(path())))
    }
}

/// [`DirError::Unread`] naming the parts in `unread`, if there are any.
pub(super) fn unread_error(unread: &[String]) -> Option<DirError> {
    (!unread.is_empty()).then(|| DirError::Unread(unread.join("; ")))
}

impl Child {
    /// Every id this entry stands for.
    pub fn ids(&self) -> impl Iterator<Item = OpId> + '_ {
        std::iter::once(self.id).chain(self.also.iter().copied())
    }
}

/// A change to make.
#[derive(Clone, Debug)]
pub enum Change {
    /// Add an entry.
    Add {
        /// Name.
        name: String,
        /// The child.
        cap: Cap,
        /// Size (files).
        size: u64,
        /// Modification time.
        mtime: u64,
    },
    /// Remove an entry.
    Remove(OpId),
    /// Rename an entry.
    Rename {
        /// The entry.
        target: OpId,
        /// Its new name.
        name: String,
    },
}

/// Everything read of one directory.
pub(super) struct State {
    pub(super) ops: Vec<Op>,
    pub(super) chunks: Vec<String>,
    pub(super) peers: HashMap<[u8; 16], String>,
    pub(super) bad: Vec<String>,
    /// Chunks that could not be read (see [`Listing::unread`]).
    pub(super) unread: Vec<String>,
    pub(super) mine: Log,
    pub(super) my_seq: u64,
    pub(super) my_counter: u64,
    pub(super) lamport: u64,
}

/// Directories as one node reads and writes them.
#[derive(Clone)]
pub struct Dirs {
    client: Client,
    pub(super) writer: [u8; 16],
    pub(super) peer: String,
    pub(super) queues: Arc<Mutex<HashMap<StorageIndex, Arc<super::update::Queue>>>>,
    chunks: Arc<Mutex<HashMap<String, Arc<Vec<Value>>>>>,
    walked: Arc<Mutex<HashMap<String, (std::time::Instant, Listing)>>>,
}

impl std::fmt::Debug for Dirs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dirs").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// The writer id of node `peer`.
pub fn writer_id(peer: &PeerId) -> [u8; 16] {
    let h = blake3::derive_key("cloudy-p2p directory writer v1", &peer.to_bytes());
    h[..16].try_into().expect("16 bytes")
}

pub(super) fn dir_cap(cap: &Cap) -> Result<&MutCap, DirError> {
    match cap {
        Cap::Mutable(m) if m.kind == MutKind::Dir => Ok(m),
        other => Err(DirError::NotADirectory(short(other))),
    }
}

fn short(cap: &Cap) -> String {
    let s = cap.to_string();
    if s.len() > 40 {
        format!("{}…", &s[..40])
    } else {
        s
    }
}

pub(super) fn now() -> u64 {
    crate::store::now_secs()
}

impl Dirs {
    /// Directories of the node `peer`, over `client`.
    pub fn new(client: Client, peer: PeerId) -> Self {
        Dirs {
            client,
            writer: writer_id(&peer),
            peer: peer.to_string(),
            queues: Arc::default(),
            chunks: Arc::default(),
            walked: Arc::default(),
        }
    }

    /// The grid client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes a new, empty directory; returns its write capability.
    pub async fn create(&self) -> Result<Cap, DirError> {
        self.create_with(WriteKey::generate()).await
    }

    /// Makes the directory of `key` exist (an empty log of this writer).
    pub(super) async fn create_with(&self, key: WriteKey) -> Result<Cap, DirError> {
        let log = Log { v: 1, peer: self.peer.clone(), ..Log::default() };
        self.write_log(&key, &log, 1).await?;
        Ok(Cap::Mutable(MutCap { kind: MutKind::Dir, access: Access::Write(key) }))
    }

    /// Makes the subdirectory of `key` exist, as [`Dirs::create_with`];
    /// but a version of this writer's log already there is the directory,
    /// not a conflict. Uploads into one new folder at once each make it
    /// with the same key (see `mkdir_p`), and an attempt cut short leaves
    /// a log that no later attempt could write over: taking either as
    /// "changed by someone else" made the folder impossible to make.
    pub(super) async fn create_sub(&self, key: WriteKey) -> Result<Cap, DirError> {
        match self.create_with(key.clone()).await {
            Err(stale @ DirError::Mutable(MutableError::Write(SlotWriteError::Stale { .. }))) => {
                let si = key.read().verify().storage_index();
                // Only a validly signed log of this writer counts: a server
                // that merely claims a version proves nothing.
                if self.client.slots_of(&si).await.newest().contains_key(&self.writer) {
                    Ok(Cap::Mutable(MutCap { kind: MutKind::Dir, access: Access::Write(key) }))
                } else {
                    Err(stale)
                }
            }
            other => other,
        }
    }

    /// Writes this writer's log as version `seqnum`. If a server holds a
    /// newer version of it (this node's state was behind: its newest
    /// version sat on servers it did not reach), the log is written again
    /// above that, once.
    pub(super) async fn write_log(
        &self,
        key: &WriteKey,
        log: &Log,
        seqnum: u64,
    ) -> Result<(), DirError> {
        let json = serde_json::to_vec(log).expect("a log serialises");
        let happy = slot_happy(self.client.servers().len());
        let slot = Slot::sign(key, self.writer, seqnum, key.read().seal(&json));
        let wrote = self.client.write_slot(&slot, DEFAULT_PARAMS.n as usize, happy, &[]).await?;
        if let Some(held) = wrote.stale.filter(|h| *h >= seqnum) {
            let again = Slot::sign(key, self.writer, held + 1, key.read().seal(&json));
            self.client.write_slot(&again, DEFAULT_PARAMS.n as usize, happy, &[]).await?;
        }
        Ok(())
    }

    async fn chunk(&self, text: &str) -> Result<Arc<Vec<Value>>, String> {
        if let Some(v) = self.chunks.lock().unwrap_or_else(|e| e.into_inner()).get(text) {
            return Ok(v.clone());
        }
        let bytes = match text.parse::<Cap>().map_err(|e| e.to_string())? {
            Cap::Literal(d) => d,
            Cap::Read(r) => {
                let mut out = Vec::with_capacity(r.size as usize);
                self.client.get(&r, &mut out).await.map_err(|e| e.to_string())?;
                out
            }
            _ => return Err("a chunk names something other than a file".into()),
        };
        let ops: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let ops = Arc::new(ops);
        let mut cache = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CHUNK_CACHE {
            cache.clear();
        }
        cache.insert(text.to_string(), ops.clone());
        Ok(ops)
    }

    pub(super) async fn state(&self, rk: &ReadKey) -> Result<State, DirError> {
        let read = self.client.slots_of(&rk.verify().storage_index()).await;
        let newest = read.newest();
        if newest.is_empty() {
            return Err(MutableError::NotFound {
                answered: read.answered(),
                asked: read.servers.len(),
            }
            .into());
        }
        let mut st = State {
            ops: Vec::new(),
            chunks: Vec::new(),
            peers: HashMap::new(),
            bad: Vec::new(),
            unread: Vec::new(),
            mine: Log { v: 1, peer: self.peer.clone(), ..Log::default() },
            my_seq: 0,
            my_counter: 0,
            lamport: 0,
        };
        for (writer, slot) in &newest {
            let log: Log = match rk
                .open(&slot.payload)
                .map_err(|e| e.to_string())
                .and_then(|p| serde_json::from_slice(&p).map_err(|e| e.to_string()))
            {
                Ok(l) => l,
                Err(e) => {
                    st.bad.push(format!(
                        "the log of writer {} does not decode: {e}",
                        hex::encode(&writer[..4])
                    ));
                    continue;
                }
            };
            let mut values: Vec<Value> = Vec::new();
            st.chunks.extend(log.chunks.iter().cloned());
            // Chunks not cached yet are fetched eight at a time, in order.
            let mut fetched = Vec::with_capacity(log.chunks.len());
            for group in log.chunks.chunks(8) {
                let mut asks = Vec::with_capacity(group.len());
                for c in group {
                    asks.push(self.chunk(c));
                }
                fetched.extend(futures::future::join_all(asks).await);
            }
            for (got, c) in fetched.into_iter().zip(&log.chunks) {
                // A chunk that failed is asked for once more: a server
                // busy a moment ago usually answers now.
                let got = match got {
                    Ok(v) => Ok(v),
                    Err(_) => self.chunk(c).await,
                };
                match got {
                    Ok(v) => values.extend(v.iter().cloned()),
                    Err(e) => {
                        let why = format!(
                            "part of the log of {} cannot be read ({e}); its older entries are missing",
                            log.peer
                        );
                        st.unread.push(why.clone());
                        st.bad.push(why);
                    }
                }
            }
            values.extend(log.ops.iter().cloned());
            let (ops, bad) = decode_ops(&values);
            st.bad.extend(bad);
            for op in &ops {
                st.lamport = st.lamport.max(op.lamport);
                if op.id.writer == self.writer {
                    st.my_counter = st.my_counter.max(op.id.counter);
                }
            }
            st.ops.extend(ops.into_iter().filter(|op| op.id.writer == *writer));
            st.peers.insert(*writer, log.peer.clone());
            if *writer == self.writer {
                st.my_seq = slot.seqnum;
                st.mine = log;
            }
        }
        st.ops.sort_by_key(|o| o.id);
        st.ops.dedup_by_key(|o| o.id);
        Ok(st)
    }

    pub(super) fn listing(&self, st: &State, write: Option<&WriteKey>) -> Listing {
        let child_key = write.map(|w| w.child_key());
        let mut bad = st.bad.clone();
        let mut entries = Vec::new();
        for l in merge(&st.ops, &st.peers) {
            let ro = match l.entry.ro.parse::<Cap>() {
                Ok(c) => c,
                Err(e) => {
                    bad.push(format!("entry {:?} has an unusable capability: {e}", l.name));
                    continue;
                }
            };
            let rw = match (&child_key, &l.entry.rw) {
                (Some(k), Some(sealed)) => BASE64
                    .decode(sealed.as_bytes())
                    .ok()
                    .and_then(|b| keys::open(k, &b).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<Cap>().ok()),
                _ => None,
            };
            entries.push(Child {
                id: l.id,
                also: l.also,
                name: l.name,
                kind: l.entry.kind,
                cap: rw.unwrap_or(ro),
                size: l.entry.size,
                mtime: l.entry.mtime,
                conflict: l.conflict,
            });
        }
        Listing {
            entries,
            bad,
            writers: st.peers.len(),
            lamport: st.lamport,
            chunks: st.chunks.clone(),
            unread: st.unread.clone(),
        }
    }

    /// Lists the directory of `cap`.
    pub async fn list(&self, cap: &Cap) -> Result<Listing, DirError> {
        let m = dir_cap(cap)?;
        let rk = m.read_key().ok_or(DirError::VerifyOnly)?;
        let st = self.state(&rk).await?;
        let listing = self.listing(&st, m.write_key());
        self.remember(cap, &listing);
        Ok(listing)
    }

    /// The listing of `cap` as read less than [`WALK_TTL`] ago, if any.
    /// Used for the directories a path walks through, not for the one
    /// whose entries are asked for: another node's change to a directory
    /// in the middle of a path shows within the TTL (a name it added at
    /// once: a name missing from the kept listing is read again); this
    /// node's own changes at once.
    pub(super) fn walked_recently(&self, cap: &Cap) -> Option<Listing> {
        let walked = self.walked.lock().unwrap_or_else(|e| e.into_inner());
        walked
            .get(&cap.to_string())
            .filter(|(at, _)| at.elapsed() < WALK_TTL)
            .map(|(_, l)| l.clone())
    }

    /// Keeps `listing` of `cap` for path walks.
    pub(super) fn remember(&self, cap: &Cap, listing: &Listing) {
        let mut walked = self.walked.lock().unwrap_or_else(|e| e.into_inner());
        if walked.len() >= CHUNK_CACHE {
            walked.clear();
        }
        walked.insert(cap.to_string(), (std::time::Instant::now(), listing.clone()));
    }

    /// Moves the inline operations into a chunk once they pass
    /// [`INLINE_MAX`].
    pub(super) async fn seal_chunk(&self, log: &mut Log) -> Result<(), DirError> {
        let inline = serde_json::to_vec(&log.ops).expect("ops serialise");
        if inline.len() <= INLINE_MAX {
            return Ok(());
        }
        let size = inline.len() as u64;
        let opts = PutOptions::default();
        let happy =
            crate::client::slot_happy(self.client.servers().len()).max(opts.params.k as usize);
        let opts = PutOptions { happy, ..opts };
        let cap = self
            .client
            .put_source(
                Box::new(std::io::Cursor::new(inline)),
                "a directory chunk",
                size,
                None,
                opts,
            )
            .await?;
        let text = cap.to_string();
        let values = std::mem::take(&mut log.ops);
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(text.clone(), Arc::new(values));
        log.chunks.push(text);
        Ok(())
    }
}

/// The entry for `cap` under `name`: its read capability in the clear,
/// its write capability (if any) sealed with the directory's child key.
pub(super) fn entry(name: String, cap: &Cap, size: u64, mtime: u64, child_key: &[u8; 32]) -> Entry {
    let (kind, ro, rw) = match cap {
        Cap::Mutable(m) => {
            let kind = if m.kind == MutKind::Dir { Kind::Dir } else { Kind::File };
            let rw = m
                .write_key()
                .map(|_| BASE64.encode(&keys::seal(child_key, cap.to_string().as_bytes())));
            (kind, Cap::Mutable(m.to_read()).to_string(), rw)
        }
        other => (Kind::File, other.to_string(), None),
    };
    Entry { name, kind, ro, rw, size, mtime }
}
