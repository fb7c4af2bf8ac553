//! The sync service of a node: the folder list, one runner per folder, and
//! the server side of `/cloudy/sync/1.0.0` (every session checks that the
//! peer is a member of the folder it asks about; others are refused and
//! logged).

pub use crate::config::SyncConfig;
use crate::folder_state::FolderState;
use crate::folders::{parse_invite, Folder, FolderError, Folders};
use crate::index::{Index, IndexError};
use crate::protocol::{recv_request, send, Request, Response, WireFile, BATCH, PROTOCOL};
pub use crate::runner::Status;
use crate::runner::{self, Inner, Running};
use cloudy_overlay::tasks::{serve_streams, Limits, Tasks};
use cloudy_overlay::{Handle, PeerId, StreamProtocol};
use futures::AsyncReadExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

/// Errors of sync commands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The local folder cannot be used.
    #[error("folder {path}: {reason}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The directory holds, or lies inside, a directory whose files must
    /// never leave this node.
    #[error("folder {path} {how} this node's home {home}, whose keys (identity.key, api.token, convergence.secret) must never leave this machine; share a directory outside it")]
    Private {
        /// The directory asked for.
        path: String,
        /// "is", "holds" or "is inside".
        how: &'static str,
        /// The node's home.
        home: String,
    },
    /// The directory is already (or is inside, or holds) a folder here.
    #[error("{path} {how} folder {name} ({id}); `cloudy-p2p sync remove {name}` first if you mean to replace it")]
    AlreadyShared {
        /// The directory asked for.
        path: String,
        /// "is already shared as", "is inside" or "holds".
        how: &'static str,
        /// The existing folder's name.
        name: String,
        /// The first 8 characters of its id.
        id: String,
    },
    /// This node already has the folder of the invite.
    #[error("this node already has folder {name} ({id}) in {path}; `cloudy-p2p sync remove {name}` first to move it")]
    AlreadyJoined {
        /// Where it is.
        path: String,
        /// Its name.
        name: String,
        /// The first 8 characters of its id.
        id: String,
    },
    #[error("no folder {0} (see `cloudy-p2p sync list`)")]
    NoFolder(String),
    /// Only the owner admits members.
    #[error("only the folder's owner ({0}) can admit members")]
    NotOwner(String),
    /// A malformed peer id.
    #[error("{0:?} is not a peer id")]
    BadPeer(String),
    /// The folder list.
    #[error(transparent)]
    Folders(#[from] FolderError),
    /// An index.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The protocol is already served on this node.
    #[error("the sync protocol is already being served")]
    AlreadyServing,
}

/// Sync sessions served at once (index subscriptions and block requests
/// of every folder together).
pub const MAX_SESSIONS: usize = 128;
/// Block and list requests a second one peer may make here, all sessions
/// together (256 MiB in 128 KiB blocks within 2 s is about a thousand a
/// second); beyond it the peer is throttled, and cut off if it keeps at it.
pub const REQUEST_RATE: f64 = 8000.0;

/// Handle on the sync service.
#[derive(Clone)]
pub struct SyncService(pub(crate) Arc<Inner>);

/// A member's short id (in version vectors and conflict names).
pub fn member_id(peer: &str) -> u64 {
    u64::from_be_bytes(blake3::hash(peer.as_bytes()).as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Whether `path` is, holds or lies inside one of `private`: how, and
/// which.
fn private_overlap<'a>(private: &'a [PathBuf], path: &Path) -> Option<(&'static str, &'a Path)> {
    private.iter().find_map(|p| {
        let how = if p == path {
            "is"
        } else if p.starts_with(path) {
            "holds"
        } else if path.starts_with(p) {
            "is inside"
        } else {
            return None;
        };
        Some((how, p.as_path()))
    })
}

/// Checks that `path` is a writable directory.
fn usable_dir(path: &Path) -> Result<PathBuf, SyncError> {
    let bad = |reason: String| SyncError::BadPath { path: path.display().to_string(), reason };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let probe =
        path.join(format!("{}probe-{:08x}", crate::scan::TMP_PREFIX, rand::random::<u32>()));
    std::fs::write(&probe, b"").map_err(|e| bad(format!("not writable ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))
}

impl SyncService {
    /// Starts the service with its data in `dir` (folder list, indexes);
    /// everything it runs is one of `tasks`.
    pub fn start(
        overlay: Handle,
        dir: &Path,
        cfg: SyncConfig,
        tasks: &Tasks,
    ) -> Result<SyncService, SyncError> {
        std::fs::create_dir_all(dir).map_err(|e| SyncError::BadPath {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let folders = Folders::load(&dir.join("folders.json"))?;
        let me = overlay.local_peer_id().to_string();
        let incoming = overlay
            .stream_control()
            .accept(StreamProtocol::new(PROTOCOL))
            .map_err(|_| SyncError::AlreadyServing)?;
        let pace = cloudy_overlay::limits::Pace::new(REQUEST_RATE, REQUEST_RATE * 2.0)
            .reporting(overlay.clone());
        let inner = Arc::new(Inner {
            member: member_id(&me),
            me,
            overlay,
            dir: dir.to_path_buf(),
            folders,
            running: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            cfg,
            tasks: tasks.clone(),
            pace,
        });
        let sync = SyncService(inner.clone());
        for f in inner.folders.all() {
            sync.run(&f)?;
        }
        let served = inner.clone();
        // Two members sharing many folders hold an index session per folder
        // and two block sessions: half the sessions may be one peer's.
        let mut limits = Limits::new(MAX_SESSIONS).reporting(inner.overlay.clone());
        limits.per_peer = MAX_SESSIONS / 2;
        serve_streams(tasks, "sync session", incoming, limits, move |peer, stream| {
            let inner = served.clone();
            async move {
                if let Err(e) = serve(&inner, peer, stream).await {
                    debug!(%peer, "sync session ended: {e}");
                }
            }
        });
        Ok(sync)
    }

    fn run(&self, f: &Folder) -> Result<(), SyncError> {
        if let Err(e) = self.not_private(&f.path) {
            // Made before folders were checked: nothing of it is scanned,
            // served or applied, and its status says why.
            warn!("folder {} is paused: {e}", f.name);
            self.0.paused.lock().expect("paused lock").insert(f.id.clone(), e.to_string());
            return Ok(());
        }
        let index = Index::open(&self.0.dir.join(format!("{}.sqlite", f.id)))?;
        let running = runner::start(self.0.clone(), f.id.clone(), index);
        self.0.running.lock().expect("running lock").insert(f.id.clone(), running);
        Ok(())
    }

    /// Shares the directory at `path`; `members` may join without asking.
    pub fn add(
        &self,
        path: &Path,
        name: Option<String>,
        members: Vec<String>,
    ) -> Result<Folder, SyncError> {
        let path = usable_dir(path)?;
        self.not_private(&path)?;
        self.not_shared(&path)?;
        for m in &members {
            m.parse::<PeerId>().map_err(|_| SyncError::BadPeer(m.clone()))?;
        }
        let mut all = vec![self.0.me.clone()];
        all.extend(members.into_iter().filter(|m| *m != self.0.me));
        let folder = Folder {
            id: hex::encode(rand::random::<[u8; 16]>()),
            name: name.unwrap_or_else(|| {
                path.file_name().map_or("folder".into(), |n| n.to_string_lossy().into_owned())
            }),
            path,
            owner: self.0.me.clone(),
            members: all,
            pending: Vec::new(),
        };
        self.0.folders.update(&folder.id, |_| Some(folder.clone()))?;
        self.run(&folder)?;
        Ok(folder)
    }

    /// Refuses a directory that is, holds or lies inside a private one (the
    /// node's home).
    fn not_private(&self, path: &Path) -> Result<(), SyncError> {
        match private_overlap(&self.0.cfg.private, path) {
            Some((how, home)) => Err(SyncError::Private {
                path: path.display().to_string(),
                how,
                home: home.display().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a directory that is a folder here already, lies inside one,
    /// or holds one: two folders would fight over the same files.
    fn not_shared(&self, path: &Path) -> Result<(), SyncError> {
        for f in self.0.folders.all() {
            let how = if f.path == path {
                "is already shared as"
            } else if path.starts_with(&f.path) {
                "is inside"
            } else if f.path.starts_with(path) {
                "holds"
            } else {
                continue;
            };
            return Err(SyncError::AlreadyShared {
                path: path.display().to_string(),
                how,
                id: f.id[..8.min(f.id.len())].to_string(),
                name: f.name,
            });
        }
        Ok(())
    }

    /// Joins the folder of `invite` into the directory at `path`. The
    /// owner must admit this node (unless it was named at `add`).
    pub fn join(&self, invite: &str, path: &Path) -> Result<Folder, SyncError> {
        let (id, owner) = parse_invite(invite)?;
        let path = usable_dir(path)?;
        self.not_private(&path)?;
        if let Some(f) = self.0.folders.get(&id) {
            return Err(SyncError::AlreadyJoined {
                path: f.path.display().to_string(),
                id: f.id[..8.min(f.id.len())].to_string(),
                name: f.name,
            });
        }
        self.not_shared(&path)?;
        let folder = Folder {
            id: id.clone(),
            name: id[..8].to_string(),
            path,
            owner: owner.clone(),
            members: vec![owner, self.0.me.clone()],
            pending: Vec::new(),
        };
        self.0.folders.update(&id, |_| Some(folder.clone()))?;
        self.run(&folder)?;
        Ok(folder)
    }

    /// Admits `peer` to folder `id` (owner only).
    pub fn admit(&self, id: &str, peer: &str) -> Result<Folder, SyncError> {
        peer.parse::<PeerId>().map_err(|_| SyncError::BadPeer(peer.to_string()))?;
        let f = self.0.folders.get(id).ok_or_else(|| SyncError::NoFolder(id.to_string()))?;
        if f.owner != self.0.me {
            return Err(SyncError::NotOwner(f.owner));
        }
        let updated = self.0.folders.update(id, |f| {
            f.map(|mut f| {
                f.pending.retain(|p| p != peer);
                if !f.members.iter().any(|m| m == peer) {
                    f.members.push(peer.to_string());
                }
                f
            })
        })?;
        if let Some(r) = self.0.running.lock().expect("running lock").get(id) {
            r.roster_changed();
        }
        updated.ok_or_else(|| SyncError::NoFolder(id.to_string()))
    }

    /// Takes `peers` (evicted from the community) off the member and
    /// pending lists of every folder this node owns; returns how many
    /// folders changed.
    pub fn forget_members(&self, peers: &[String]) -> Result<usize, SyncError> {
        let mut changed = 0;
        for f in self.0.folders.all() {
            let affected = |f: &Folder| {
                f.owner == self.0.me
                    && f.members.iter().chain(&f.pending).any(|m| peers.contains(m))
            };
            if !affected(&f) {
                continue;
            }
            self.0.folders.update(&f.id, |f| {
                f.map(|mut f| {
                    f.members.retain(|m| !peers.contains(m));
                    f.pending.retain(|m| !peers.contains(m));
                    f
                })
            })?;
            if let Some(r) = self.0.running.lock().expect("running lock").get(&f.id) {
                r.roster_changed();
                r.forget_members(peers);
            }
            changed += 1;
        }
        Ok(changed)
    }

    /// Every folder with its status.
    pub fn list(&self) -> Vec<(Folder, Status)> {
        let running = self.0.running.lock().expect("running lock");
        let paused = self.0.paused.lock().expect("paused lock");
        self.0
            .folders
            .all()
            .into_iter()
            .map(|f| {
                let mut st = running.get(&f.id).map(|r| r.status()).unwrap_or_default();
                if let Some(why) = paused.get(&f.id) {
                    st.state = FolderState::Paused { why: why.clone() };
                }
                (f, st)
            })
            .collect()
    }

    /// Stops syncing folder `id` and forgets it; its files stay.
    pub fn remove(&self, id: &str) -> Result<Folder, SyncError> {
        let f = self.0.folders.get(id).ok_or_else(|| SyncError::NoFolder(id.to_string()))?;
        if let Some(r) = self.0.running.lock().expect("running lock").remove(id) {
            r.cancel.cancel();
        }
        self.0.paused.lock().expect("paused lock").remove(id);
        self.0.folders.update(id, |_| None)?;
        for ext in ["sqlite", "sqlite-wal", "sqlite-shm"] {
            let _ = std::fs::remove_file(self.0.dir.join(format!("{id}.{ext}")));
        }
        Ok(f)
    }
}

impl Inner {
    /// The running folder `id` if `peer` is one of its members.
    fn member_of(&self, id: &str, peer: &PeerId) -> Option<(Folder, Arc<Running>)> {
        let f = self.folders.get(id)?;
        if !f.members.iter().any(|m| *m == peer.to_string()) {
            return None;
        }
        let r = self.running.lock().expect("running lock").get(id).cloned()?;
        Some((f, r))
    }
}

async fn serve(
    inner: &Inner,
    peer: PeerId,
    mut s: cloudy_overlay::Stream,
) -> Result<(), crate::protocol::ProtocolError> {
    let Some(req) = recv_request(&mut s).await? else { return Ok(()) };
    let folder = folder_of(&req).to_string();
    if let Request::Join { .. } = req {
        return send(&mut s, &join_answer(inner, &folder, &peer)).await;
    }
    let Some((f, running)) = inner.member_of(&folder, &peer) else {
        warn!(target: "cloudy::_events::sync", %peer, folder = %folder, "refused a peer that is not a member");
        return send(&mut s, &Response::Refused { reason: "not a member of this folder".into() })
            .await;
    };
    match req {
        Request::Index { since, .. } => {
            serve_index(inner, f, running, since, &peer.to_string(), s).await
        }
        first @ (Request::Block { .. } | Request::List { .. }) => {
            let mut next = Some(first);
            while let Some(req) = next {
                inner.pace.request(peer).await?;
                let found = match req {
                    Request::Block { hash, .. } => {
                        let b = running.read_block(&f.path, &hash).await;
                        let n = b.as_ref().map_or(0, |b| b.len() as u64);
                        running.uploaded.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        b
                    }
                    Request::List { hash, .. } => {
                        running.index.find_piece(&hash).ok().flatten().map(crate::blocklist::encode)
                    }
                    _ => None,
                };
                send(&mut s, &found.map_or(Response::Missing, Response::Data)).await?;
                next = match recv_request(&mut s).await? {
                    Some(r @ (Request::Block { .. } | Request::List { .. }))
                        if folder_of(&r) == folder =>
                    {
                        Some(r)
                    }
                    Some(_) => {
                        return Err(crate::protocol::ProtocolError::Malformed(
                            "only block and list requests of one folder on a block session".into(),
                        ))
                    }
                    None => None,
                };
            }
            Ok(())
        }
        Request::Join { .. } => Ok(()),
    }
}

fn folder_of(r: &Request) -> &str {
    match r {
        Request::Join { folder }
        | Request::Index { folder, .. }
        | Request::Block { folder, .. }
        | Request::List { folder, .. } => folder,
    }
}

fn join_answer(inner: &Inner, folder: &str, peer: &PeerId) -> Response {
    let Some(f) = inner.folders.get(folder).filter(|f| f.owner == inner.me) else {
        return Response::Refused { reason: "no such folder owned here".into() };
    };
    let p = peer.to_string();
    if f.members.contains(&p) {
        return Response::Joined { name: f.name, members: f.members };
    }
    let _ = inner.folders.update(folder, |f| {
        f.map(|mut f| {
            if !f.pending.contains(&p) {
                f.pending.push(p.clone());
            }
            f
        })
    });
    warn!(target: "cloudy::_events::sync", peer = %p, folder = %folder, "join request waiting for `sync admit`");
    Response::Pending
}

/// An `Index` session: the member list, everything after `since`, then
/// every change as it happens, until the client goes away.
/// Entries taken unchanged from this peer are not sent back to it.
async fn serve_index(
    inner: &Inner,
    f: Folder,
    running: Arc<Running>,
    since: u64,
    peer: &str,
    s: cloudy_overlay::Stream,
) -> Result<(), crate::protocol::ProtocolError> {
    let (mut rd, mut wr) = s.split();
    send(&mut wr, &Response::Members { name: f.name.clone(), members: f.members.clone() }).await?;
    let mut roster = running.watch_roster();
    let mut seq = running.watch_seq();
    let mut cursor = since;
    // An empty first batch tells the client it is up to date.
    let mut told = false;
    let mut closed = Box::pin(async move {
        let mut b = [0u8; 1];
        let _ = rd.read(&mut b).await;
    });
    loop {
        let (batch, reached) =
            running.index.changes_for(cursor, BATCH as u32, peer).map_err(|e| {
                crate::protocol::ProtocolError::Io(std::io::Error::other(e.to_string()))
            })?;
        if reached > cursor {
            cursor = reached;
            let files = batch.iter().map(WireFile::from).collect();
            send(&mut wr, &Response::Files { files, seq: cursor }).await?;
            told = true;
            continue;
        }
        if !told {
            send(&mut wr, &Response::Files { files: Vec::new(), seq: cursor }).await?;
            told = true;
        }
        tokio::select! {
            _ = &mut closed => return Ok(()),
            changed = seq.changed() => if changed.is_err() { return Ok(()) },
            changed = roster.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                if let Some(f) = inner.folders.get(&f.id) {
                    send(&mut wr, &Response::Members { name: f.name, members: f.members }).await?;
                }
            }
        }
    }
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService").finish_non_exhaustive()
    }
}
