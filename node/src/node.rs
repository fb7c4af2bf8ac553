//! `Node`: the composition root. Loads the home, binds the control API,
//! spawns the overlay and the services under a [`Supervisor`], and shuts
//! everything down in order (see `supervisor.rs`).

use crate::announcements::Announcements;
use crate::control::server::{router, ApiState};
use crate::error::NodeError;
use crate::home::Home;
use crate::supervisor::Supervisor;
use cloudy_overlay::tasks::Lingering;
use cloudy_overlay::Multiaddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A running node.
#[derive(Debug)]
pub struct Node {
    /// The overlay handle services use.
    pub overlay: cloudy_overlay::Handle,
    /// Where the control API listens.
    pub api_addr: SocketAddr,
    home: Home,
    /// The transports the node was told to listen on (`quic`, `tcp`).
    transports: Vec<&'static str>,
    /// Cancelled when someone asks the node to stop (`POST /v1/shutdown`).
    stop_requested: CancellationToken,
    supervisor: Supervisor,
}

impl Node {
    /// Starts the node of `home`. Fails with a clear error when the home is
    /// not initialised, the config is wrong, or a port is taken.
    pub async fn start(home: &Home) -> Result<Node, NodeError> {
        let cfg = home.load_config()?;
        if cfg.membership.silence_timeout.is_some() {
            tracing::warn!(
                "config.toml: [membership] silence_timeout is no longer used (state is gossiped when it changes, \
                 and members are failed only by their monitors' probes); remove the line"
            );
        }
        let key = home.load_identity()?;
        let token = home.load_token()?;
        for line in home.tighten_secrets() {
            tracing::warn!("{line}");
        }
        let data = home.data_dir(&cfg);
        std::fs::create_dir_all(&data).map_err(|e| NodeError::io(&data, e))?;
        let announcements = Announcements::load(home.announcements_path())?;
        let listener = tokio::net::TcpListener::bind(cfg.api)
            .await
            .map_err(|source| NodeError::ApiBind { addr: cfg.api, source })?;
        let api_addr =
            listener.local_addr().map_err(|source| NodeError::ApiBind { addr: cfg.api, source })?;
        let supervisor = Supervisor::default();
        let stop_requested = CancellationToken::new();
        let mut overlay_cfg = cfg.overlay(Some(data.join("history.sqlite")));
        let gate =
            cloudy_overlay::community::Gate::open(key.clone(), home.community())?.map(Arc::new);
        overlay_cfg.community = gate.clone();
        let (overlay, _) = cloudy_overlay::spawn(overlay_cfg, key, &supervisor.overlay)?;
        let services = &supervisor.services;
        let (storage, upkeep) = start_storage(home, &cfg, &data, &overlay, services).await?;
        let sync_cfg = cloudy_sync::service::SyncConfig {
            rescan: cfg.sync.rescan_interval,
            keep_versions: cfg.sync.keep_versions,
            private: vec![std::fs::canonicalize(home.root()).unwrap_or(home.root().to_path_buf())],
            ..Default::default()
        };
        let sync = cloudy_sync::service::SyncService::start(
            overlay.clone(),
            &data.join("sync"),
            sync_cfg,
            services,
        )?;
        let streams = cloudy_streaming::service::Streaming::start(
            overlay.clone(),
            &data.join("streams"),
            Default::default(),
            services,
        )?;
        let vod = cloudy_streaming::vod::service::Vod::start(
            overlay.clone(),
            &data.join("vod"),
            cfg.vod.cache_mib << 20,
            services,
        )
        .await?;
        for (name, meta) in announcements.all().await {
            overlay.announce(&name, meta).await?;
        }
        let (gate_for_services, sync_for_gate) = (gate.clone(), sync.clone());
        let dirs = cloudy_storage::dirs::Dirs::new(storage.clone(), overlay.local_peer_id());
        let trees = crate::trees::Trees::open(data.join("maintained-trees.json"));
        let up = cfg.storage.upkeep();
        trees.start(dirs.clone(), up.interval, up.after_failure, &supervisor.services);
        let state = Arc::new(ApiState {
            overlay: overlay.clone(),
            token,
            started: Instant::now(),
            shutdown: stop_requested.clone(),
            tasks: supervisor.api.clone(),
            announcements,
            dirs,
            trees,
            aliases: home.root().join("aliases.json"),
            storage,
            upkeep,
            sync,
            streams,
            vod,
            maintain_uploads: cfg.storage.maintain_uploads,
            member_quota: cfg.storage.member_quota(),
            spool: data.join("spool"),
            requests: Default::default(),
            conflicts: Default::default(),
            community: gate.clone(),
            open_name: crate::community::open_name(home)?,
        });
        if let Some(gate) = &gate_for_services {
            let me = overlay.local_peer_id();
            forget_evicted(gate.clone(), sync_for_gate.clone(), me, &supervisor.services);
        }
        let api_cancel = supervisor.api.cancel().clone();
        supervisor.api.spawn_loop("control API", async move {
            let serve = axum::serve(listener, router(state))
                .with_graceful_shutdown(api_cancel.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!("control API stopped: {e}");
            }
        });
        let path = home.api_addr_path();
        std::fs::write(&path, api_addr.to_string()).map_err(|e| NodeError::io(&path, e))?;
        let transports = transports_of(&cfg.listen);
        Ok(Node { overlay, api_addr, home: home.clone(), transports, stop_requested, supervisor })
    }

    /// Waits until the overlay listens on every transport it was told to
    /// (QUIC and TCP come up one after the other), and returns its
    /// addresses with `/p2p/`.
    pub async fn listen_addrs(&self, timeout: Duration) -> Vec<Multiaddr> {
        let mut rx = self.overlay.watch();
        let me = self.overlay.local_peer_id();
        let all_up = |s: &cloudy_overlay::PeerScores| {
            let up = transports_of(&s.local.listen_addrs);
            !up.is_empty() && self.transports.iter().all(|t| up.contains(t))
        };
        let _ = tokio::time::timeout(timeout, rx.wait_for(|s| all_up(s))).await;
        let snap = self.overlay.snapshot();
        snap.local.listen_addrs.iter().filter_map(|a| a.clone().with_p2p(me).ok()).collect()
    }

    /// Cancelled when the node is asked to stop (API `shutdown`).
    pub fn stopping(&self) -> CancellationToken {
        self.stop_requested.clone()
    }

    /// Tasks running in each phase (for tests and diagnostics).
    pub fn running(&self) -> [(&'static str, usize); 3] {
        self.supervisor.running()
    }

    /// Stops everything in order: the services, then the overlay (which
    /// says goodbye), then the API, each phase awaited with a deadline.
    /// Returns the phases that still had tasks when their deadline passed.
    pub async fn shutdown(self) -> Vec<Lingering> {
        self.stop_requested.cancel();
        let left = self.supervisor.stop().await;
        let _ = std::fs::remove_file(self.home.api_addr_path());
        left
    }
}

/// Opens the share store and serves it if storage is enabled; starts the
/// upkeep of maintained files; returns the grid client this node's API uses.
async fn start_storage(
    home: &Home,
    cfg: &crate::NodeConfig,
    data: &std::path::Path,
    overlay: &cloudy_overlay::Handle,
    tasks: &cloudy_overlay::tasks::Tasks,
) -> Result<(cloudy_storage::client::Client, cloudy_storage::upkeep::Upkeep), NodeError> {
    use cloudy_storage::client::Client;
    use cloudy_storage::server::SharedStore;
    use cloudy_storage::upkeep::{self, Maintained};
    let secret = home.convergence_secret()?;
    let spool = data.join("spool");
    std::fs::create_dir_all(&spool).map_err(|e| NodeError::io(&spool, e))?;
    let list = Maintained::open(&data.join("maintained.sqlite"))?;
    let with_upkeep = |client: Client| {
        let up = upkeep::start(client.clone(), Arc::new(list), cfg.storage.upkeep(), tasks);
        (client, up)
    };
    if !cfg.storage.enabled {
        return Ok(with_upkeep(Client::new(overlay.clone(), None, secret)));
    }
    let capacity = cfg.storage.capacity_mib << 20;
    let dir = data.join("shares");
    let store = cloudy_storage::store::FsStore::open(&dir, capacity)?;
    let store: SharedStore = std::sync::Arc::new(store);
    let policy = cloudy_storage::service::Policy {
        expire_leases: cfg.storage.expire_leases,
        member_quota: Some(cfg.storage.member_quota()),
    };
    cloudy_storage::service::start(overlay.clone(), store.clone(), policy, tasks).await?;
    Ok(with_upkeep(Client::new(overlay.clone(), Some(store), secret)))
}

/// Takes members evicted from the community off the folders this node
/// owns, at start and after every eviction.
fn forget_evicted(
    gate: Arc<cloudy_overlay::community::Gate>,
    sync: cloudy_sync::service::SyncService,
    me: cloudy_overlay::PeerId,
    tasks: &cloudy_overlay::tasks::Tasks,
) {
    let mut evictions = gate.evictions();
    let cancel = tasks.cancel().clone();
    tasks.spawn_loop("forget evicted members", async move {
        loop {
            // This node's own eviction (learnt from a refusal) leaves its
            // folders as they are.
            let peers: Vec<String> = gate
                .revocations()
                .iter()
                .filter(|r| r.peer != me)
                .map(|r| r.peer.to_string())
                .collect();
            if !peers.is_empty() {
                match sync.forget_members(&peers) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(folders = n, "evicted members taken off folders"),
                    Err(e) => tracing::warn!("cannot take evicted members off folders: {e}"),
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                r = evictions.changed() => if r.is_err() { break },
            }
        }
    });
}

/// The transports of `addrs`: `quic` and or `tcp`.
fn transports_of(addrs: &[Multiaddr]) -> Vec<&'static str> {
    use cloudy_overlay::multiaddr::Protocol;
    let mut out = Vec::new();
    for a in addrs {
        let t = if a.iter().any(|p| matches!(p, Protocol::QuicV1)) {
            "quic"
        } else if a.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
            "tcp"
        } else {
            continue;
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}
