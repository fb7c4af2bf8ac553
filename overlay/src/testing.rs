//! Test helpers (feature `test-utils`): start several overlays on QUIC at
//! 127.0.0.1 port 0 in one runtime, and wait for conditions with timeouts.

use crate::membership::Timing;
use crate::{spawn, Config, Error, Handle, Keypair, Multiaddr, PeerScores};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default wait for test conditions.
pub const WAIT: Duration = Duration::from_secs(15);

/// Faster timers for tests: coordinate check and anti-entropy every 1 s,
/// probe every 500 ms with a 1 s timeout by 3 monitors, suspicion 1 to
/// 2 s, ping 1 s.
pub fn fast_config() -> Config {
    Config {
        heartbeat_interval: Duration::from_secs(1),
        sync_interval: Duration::from_secs(1),
        probe_interval: Duration::from_millis(500),
        probe_timeout: Duration::from_secs(1),
        monitors: 3,
        timing: Timing {
            suspicion_timeout: Duration::from_secs(1),
            suspicion_max_factor: 2,
            expected_accusers: 3,
            reap_after: Duration::from_secs(3600),
        },
        ping_interval: Duration::from_secs(1),
        ..Config::for_test()
    }
}

/// One overlay of a [`TestNet`].
#[derive(Debug)]
pub struct TestNode {
    /// Its handle.
    pub handle: Handle,
    /// Cancels it (a clean leave).
    pub cancel: CancellationToken,
    /// Its event-loop task.
    pub task: JoinHandle<()>,
}

impl TestNode {
    /// Starts one overlay and waits for its first listen address.
    pub async fn start(cfg: Config) -> Result<TestNode, Error> {
        TestNode::start_with_key(cfg, Keypair::generate_ed25519()).await
    }

    /// [`TestNode::start`] with a given identity (a restart of a node).
    pub async fn start_with_key(cfg: Config, key: Keypair) -> Result<TestNode, Error> {
        let cancel = CancellationToken::new();
        let tasks = crate::tasks::Tasks::new("test overlay", cancel.clone());
        let (handle, task) = spawn(cfg, key, &tasks)?;
        let node = TestNode { handle, cancel, task };
        wait_until(&node.handle, "a listen address", |s| !s.local.listen_addrs.is_empty()).await?;
        Ok(node)
    }

    /// Its first listen address with `/p2p/<peer id>`, to bootstrap others.
    pub fn addr(&self) -> Multiaddr {
        let s = self.handle.snapshot();
        s.local.listen_addrs[0].clone().with_p2p(self.handle.local_peer_id()).expect("no /p2p yet")
    }

    /// Ends the node abruptly: the task is aborted, nothing is said to
    /// anyone. The handle is dropped only once the task is gone; dropped
    /// earlier, a loop still mid-poll would see its command channel close
    /// and leave cleanly instead of crashing.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
        drop(self.handle);
    }
}

/// Several overlays that bootstrap from the first.
#[derive(Debug)]
pub struct TestNet {
    /// The nodes, in start order.
    pub nodes: Vec<TestNode>,
}

impl TestNet {
    /// Starts `n` overlays with `cfg` (listen and bootstrap are filled in).
    pub async fn start(n: usize, cfg: Config) -> Result<TestNet, Error> {
        let first = TestNode::start(cfg.clone()).await?;
        let boot = first.addr();
        let mut nodes = vec![first];
        for _ in 1..n {
            let cfg = Config { bootstrap: vec![boot.clone()], ..cfg.clone() };
            nodes.push(TestNode::start(cfg).await?);
        }
        Ok(TestNet { nodes })
    }

    /// Waits until every node sees every other as alive.
    pub async fn wait_all_alive(&self) -> Result<(), Error> {
        let n = self.nodes.len();
        for node in &self.nodes {
            wait_until(&node.handle, "all members alive", |s| {
                s.count(crate::MemberState::Alive) == n - 1
            })
            .await?;
        }
        Ok(())
    }
}

/// Waits until `pred` holds for `handle`'s snapshot, at most [`WAIT`].
pub async fn wait_until(
    handle: &Handle,
    what: &str,
    mut pred: impl FnMut(&PeerScores) -> bool,
) -> Result<Arc<PeerScores>, Error> {
    let mut rx = handle.watch();
    let fut = async {
        loop {
            let snap = rx.borrow_and_update().clone();
            if pred(&snap) {
                return Ok(snap);
            }
            rx.changed().await.map_err(|_| Error::Closed)?;
        }
    };
    match tokio::time::timeout(WAIT, fut).await {
        Ok(r) => r,
        Err(_) => {
            let s = handle.snapshot();
            let mut states: Vec<String> =
                s.peers.values().map(|p| format!("{}={}", short(&p.peer), p.state)).collect();
            states.sort();
            Err(Error::Config(format!(
                "{} timed out after {WAIT:?} waiting for {what}; it sees [{}]",
                short(&handle.local_peer_id()),
                states.join(", ")
            )))
        }
    }
}

fn short(p: &crate::PeerId) -> String {
    let s = p.to_string();
    s[s.len() - 6..].to_string()
}
