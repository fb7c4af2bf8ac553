//! The streaming service of a node: publishing channels, watching them,
//! listing what the community streams, and the server side of
//! `/cloudy/stream/1.0.0`.

use crate::chunk::{Channel, ChannelId, ChunkError};
use crate::live::publish::{self, FeedSummary};
use crate::live::state::Params;
use crate::live::task::{self, ChannelStatus, Command, Running};
use crate::playout::Out;
use crate::protocol::{recv, Msg, PROTOCOL};
use cloudy_overlay::tasks::{serve_streams, Limits, Tasks};
use cloudy_overlay::{Handle, Keypair, PeerId, StreamProtocol};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// How long `watch` waits for a channel to show up in the directory (a
/// node that just started may not have heard of it yet).
pub const FIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the status of a stopped channel is kept.
pub const KEEP_STOPPED: Duration = Duration::from_secs(60);
/// How long an idle publisher channel (no input yet) is kept.
pub const INPUT_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of streaming commands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Not a channel id.
    #[error(transparent)]
    BadChannel(#[from] ChunkError),
    /// Nobody publishes it.
    #[error("unknown channel {0}: no member publishes it (see `cloudy-p2p stream list`)")]
    Unknown(String),
    /// The name matches several channels.
    #[error("channel name {0:?} is ambiguous: {1}; use the channel id")]
    Ambiguous(String, String),
    /// A bad channel name.
    #[error("bad channel name {0:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    /// This node already publishes it.
    #[error("channel {0:?} is already being published from this node")]
    Busy(String),
    /// The channel is not published from this node.
    #[error("channel {0} is not published from this node (create it with `stream publish`)")]
    NotPublishing(String),
    /// The channel is over.
    #[error("channel {0} is over")]
    Over(String),
    /// The streaming protocol is already served.
    #[error("the streaming protocol is already being served")]
    AlreadyServing,
    /// Files of the service.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// What.
        source: std::io::Error,
    },
}

/// A channel in the community's directory.
#[derive(Clone, Debug)]
pub struct ChannelRow {
    /// The channel id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The publishing node.
    pub publisher: String,
    /// Nodes watching it (as announced).
    pub viewers: usize,
    /// How this node takes part, if it does.
    pub local: Option<ChannelStatus>,
}

struct Entry {
    running: Running,
    name: String,
    key: Option<Arc<Channel>>,
    fed: bool,
}

struct Inner {
    overlay: Handle,
    dir: PathBuf,
    params: Params,
    channels: Mutex<HashMap<String, Entry>>,
    tasks: Tasks,
}

/// Handle on the streaming service.
#[derive(Clone)]
pub struct Streaming(Arc<Inner>);

/// A local player: the channel's bytes in order, then [`Out::End`].
#[derive(Debug)]
pub struct Player {
    /// The channel.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The bytes.
    pub rx: mpsc::Receiver<Out>,
    sub: u64,
    tx: mpsc::Sender<Command>,
    status: Arc<Mutex<ChannelStatus>>,
}

impl Player {
    /// The channel's state here (ended, lost, …).
    pub fn state(&self) -> crate::live::state::Phase {
        self.status.lock().expect("status").state
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.tx.try_send(Command::Unsubscribe(self.sub));
    }
}

fn check_name(name: &str) -> Result<(), StreamError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StreamError::BadName(name.chars().take(80).collect()))
    }
}

impl Streaming {
    /// Starts the service; channel keys are kept in `dir`.
    pub fn start(
        overlay: Handle,
        dir: &Path,
        params: Params,
        tasks: &Tasks,
    ) -> Result<Streaming, StreamError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StreamError::Io { path: dir.to_path_buf(), source })?;
        let incoming = overlay
            .stream_control()
            .accept(StreamProtocol::new(PROTOCOL))
            .map_err(|_| StreamError::AlreadyServing)?;
        let s = Streaming(Arc::new(Inner {
            overlay,
            dir: dir.to_path_buf(),
            params,
            channels: Mutex::new(HashMap::new()),
            tasks: tasks.clone(),
        }));
        let served = s.clone();
        serve_streams(
            tasks,
            "stream session opening",
            incoming,
            Limits::new(MAX_OPENING).reporting(s.0.overlay.clone()),
            move |peer, stream| opening(served.clone(), peer, stream),
        );
        Ok(s)
    }

    /// Loads the key of channel `name`, or makes and saves one: a channel
    /// published again under the same name keeps its id.
    fn key(&self, name: &str) -> Result<Channel, StreamError> {
        let path = self.0.dir.join(format!("{name}.key"));
        let io = |source| StreamError::Io { path: path.clone(), source };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                    io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("corrupt channel key: {e}"),
                    ))
                })?;
                Ok(Channel::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Keypair::generate_ed25519();
                let bytes = key.to_protobuf_encoding().expect("ed25519 keys encode");
                // The channel's secret: the owner's only, as the node's key.
                cloudy_overlay::fsutil::write_whole(&path, &bytes, Some(0o600)).map_err(io)?;
                Ok(Channel::from_key(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The channel table, without channels stopped more than
    /// [`KEEP_STOPPED`] ago (kept that long so players can ask how one ended).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        let mut map = self.0.channels.lock().expect("channels lock");
        let now = task::unix_ms();
        map.retain(|_, e| {
            e.running
                .status
                .lock()
                .expect("status")
                .stopped_ms
                .is_none_or(|t| now - t.min(now) < KEEP_STOPPED.as_millis() as u64)
        });
        map
    }

    /// Creates channel `name` on this node; its input comes through [`Streaming::feed`].
    pub fn create(&self, name: &str) -> Result<ChannelStatus, StreamError> {
        check_name(name)?;
        let channel = self.key(name)?;
        let id = channel.id().to_string();
        let mut map = self.lock();
        if map.get(&id).is_some_and(active) {
            return Err(StreamError::Busy(name.to_string()));
        }
        let running = task::start(
            self.0.overlay.clone(),
            channel.id().clone(),
            name.to_string(),
            true,
            self.0.params,
            &self.0.tasks,
        );
        let status = running.status.lock().expect("status").clone();
        // A channel nobody feeds does not stay announced for ever.
        let cancel = running.cancel.clone();
        let me = self.clone();
        let key = id.clone();
        self.0.tasks.spawn("stream input watch", async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(INPUT_TIMEOUT) => {
                    if me.lock().get(&key).is_some_and(|e| !e.fed) {
                        warn!(channel = %key, "no input in {INPUT_TIMEOUT:?}; dropping the channel");
                        cancel.cancel();
                    }
                }
            }
        });
        map.insert(
            id,
            Entry { running, name: name.to_string(), key: Some(Arc::new(channel)), fed: false },
        );
        Ok(status)
    }

    /// Publishes `input` on channel `id` (made by [`Streaming::create`]) to
    /// its end, then ends the channel.
    pub async fn feed<R: tokio::io::AsyncRead + Unpin>(
        &self,
        id: &str,
        input: R,
    ) -> Result<FeedSummary, StreamError> {
        let (key, tx) = {
            let mut map = self.lock();
            let e = map
                .get_mut(id)
                .filter(|e| active(e))
                .ok_or_else(|| StreamError::NotPublishing(id.to_string()))?;
            let key = e.key.clone().ok_or_else(|| StreamError::NotPublishing(id.to_string()))?;
            if e.fed {
                return Err(StreamError::Busy(e.name.clone()));
            }
            e.fed = true;
            (key, e.running.tx.clone())
        };
        Ok(publish::feed(input, &key, task::unix_ms(), &tx).await)
    }

    /// Finds a channel by id or by name in the directory: `(id, name)`.
    pub async fn find(&self, text: &str) -> Result<(ChannelId, String), StreamError> {
        let deadline = tokio::time::Instant::now() + FIND_TIMEOUT;
        let mut watch = self.0.overlay.watch();
        loop {
            let rows = self.list();
            let by_id: Vec<&ChannelRow> = rows.iter().filter(|r| r.id == text).collect();
            let by_name: Vec<&ChannelRow> = rows.iter().filter(|r| r.name == text).collect();
            if let Some(r) = by_id.first() {
                return Ok((ChannelId::parse(&r.id)?, r.name.clone()));
            }
            if by_name.len() > 1 {
                let ids: Vec<&str> = by_name.iter().map(|r| r.id.as_str()).collect();
                return Err(StreamError::Ambiguous(text.to_string(), ids.join(", ")));
            }
            if let Some(r) = by_name.first() {
                return Ok((ChannelId::parse(&r.id)?, r.name.clone()));
            }
            if text.starts_with("12D3") || text.len() > 40 {
                ChannelId::parse(text)?;
            }
            if tokio::time::timeout_at(deadline, watch.changed()).await.is_err() {
                return Err(StreamError::Unknown(text.to_string()));
            }
        }
    }

    /// Starts playing a channel (by id or name) here: the node watches it
    /// (and relays it) while any player is attached.
    pub async fn watch(&self, text: &str) -> Result<Player, StreamError> {
        let (id, name) = self.find(text).await?;
        let key = id.to_string();
        let (tx, status) = {
            let mut map = self.lock();
            if !map.get(&key).is_some_and(active) {
                let running = task::start(
                    self.0.overlay.clone(),
                    id.clone(),
                    name.clone(),
                    false,
                    self.0.params,
                    &self.0.tasks,
                );
                map.insert(
                    key.clone(),
                    Entry { running, name: name.clone(), key: None, fed: true },
                );
            }
            let e = map.get(&key).expect("just made");
            (e.running.tx.clone(), e.running.status.clone())
        };
        let (ptx, rx) = mpsc::channel(task::PLAYER_QUEUE);
        let (reply, sub) = oneshot::channel();
        tx.send(Command::Subscribe { tx: ptx, reply })
            .await
            .map_err(|_| StreamError::Over(key.clone()))?;
        let sub = sub.await.map_err(|_| StreamError::Over(key.clone()))?;
        Ok(Player { id: key, name, rx, sub, tx, status })
    }

    /// Channels in the directory, with this node's part in them.
    pub fn list(&self) -> Vec<ChannelRow> {
        let mut rows: BTreeMap<String, ChannelRow> = BTreeMap::new();
        for (service, p) in self.0.overlay.snapshot().providers(None) {
            let Some(id) = service.strip_prefix("stream/") else { continue };
            let row = rows.entry(id.to_string()).or_insert_with(|| ChannelRow {
                id: id.to_string(),
                name: String::new(),
                publisher: String::new(),
                viewers: 0,
                local: None,
            });
            if p.meta.get("role").is_some_and(|r| r == "publisher") {
                row.publisher = p.peer.to_string();
                row.name = p.meta.get("name").cloned().unwrap_or_default();
            } else {
                row.viewers += 1;
                if row.name.is_empty() {
                    row.name = p.meta.get("name").cloned().unwrap_or_default();
                }
            }
        }
        let map = self.lock();
        for (id, e) in map.iter() {
            if let Some(row) = rows.get_mut(id) {
                row.local = Some(e.running.status.lock().expect("status").clone());
            }
        }
        rows.into_values().filter(|r| !r.publisher.is_empty()).collect()
    }

    /// This node's part in channel `id`.
    pub fn status(&self, id: &str) -> Option<ChannelStatus> {
        self.lock().get(id).map(|e| e.running.status.lock().expect("status").clone())
    }

    fn route(&self, channel: &str) -> Option<mpsc::Sender<Command>> {
        self.lock().get(channel).filter(|e| active(e)).map(|e| e.running.tx.clone())
    }
}

fn active(e: &Entry) -> bool {
    !e.running.cancel.is_cancelled()
}

/// Sessions being opened at once (reading the hello); an open session
/// belongs to its channel, which bounds its neighbours.
pub const MAX_OPENING: usize = 64;

/// Serves an incoming session: reads the hello and hands the stream to the
/// channel's task, or refuses it.
async fn opening(s: Streaming, peer: PeerId, mut stream: cloudy_overlay::Stream) {
    let hello = tokio::time::timeout(crate::live::session::OPEN_TIMEOUT, recv(&mut stream)).await;
    let channel = match hello {
        Ok(Ok(Some(Msg::Hello { channel }))) => channel,
        Ok(Ok(other)) => {
            return refused(peer, stream, format!("expected a hello, got {other:?}")).await
        }
        Ok(Err(e)) => return refused(peer, stream, e.to_string()).await,
        Err(_) => return refused(peer, stream, "no hello in time".into()).await,
    };
    match s.route(&channel) {
        Some(tx) => {
            if let Err(mpsc::error::SendError(Command::Inbound { stream, .. })) =
                tx.send(Command::Inbound { peer, stream }).await
            {
                crate::live::session::refuse(stream, "the channel is over here".into()).await;
            }
        }
        None => {
            crate::live::session::refuse(stream, format!("not watching channel {channel}")).await
        }
    }
}

async fn refused(peer: PeerId, stream: cloudy_overlay::Stream, why: String) {
    debug!(%peer, "bad stream session opening: {why}");
    crate::live::session::refuse(stream, why).await;
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming").finish_non_exhaustive()
    }
}
