//! A community of node processes, the first one everyone's bootstrap.

use crate::member::Member;
use crate::netns::Host;
use cloudy_node::process::{local_options, log_tail};
use cloudy_node::Home;
use std::ops::{Index, IndexMut};
use std::path::Path;
use std::sync::Arc;

/// Edits a node's `config.toml` (given its index and text) before it first starts.
pub type ConfigEdit = Arc<dyn Fn(usize, &str) -> String + Send + Sync>;

/// How to start a community.
#[derive(Clone, Default)]
pub struct Options {
    /// Applied to every node's configuration before its first start.
    pub config: Option<ConfigEdit>,
    /// The hosts (network namespaces) node `i` runs on: `hosts[i % len]`.
    /// Empty: every node on this machine's 127.0.0.1.
    pub hosts: Vec<Host>,
    /// Make node 0's community private under this name (`community
    /// create`) before it starts; the others are then strangers unless
    /// they join with an invite.
    pub private: Option<String>,
}

/// N node processes with their homes in one temporary directory.
///
/// On drop the processes are killed. If the test is failing (panicking),
/// the directory is kept and the end of every node's log is printed, with
/// where the whole logs are; with `CLOUDY_KEEP_COMMUNITY` set it is always
/// kept.
#[derive(Debug)]
pub struct Community {
    dir: Option<tempfile::TempDir>,
    members: Vec<Member>,
    options: Options,
}

impl Community {
    /// `n` nodes on 127.0.0.1.
    pub async fn start(n: usize) -> Community {
        Community::start_with(n, Options::default()).await
    }

    /// `n` nodes started one after the other, each once ready.
    pub async fn start_with(n: usize, options: Options) -> Community {
        let dir = tempfile::Builder::new()
            .prefix("cloudy-community-")
            .tempdir()
            .expect("a temporary directory");
        let mut c = Community { dir: Some(dir), members: Vec::new(), options };
        for _ in 0..n {
            c.add().await;
        }
        c
    }

    /// Starts one more node, bootstrapping from the first; returns its index.
    pub async fn add(&mut self) -> usize {
        let i = self.members.len();
        let host = (!self.options.hosts.is_empty())
            .then(|| self.options.hosts[i % self.options.hosts.len()].clone());
        let home = Home::new(self.dir().join(format!("node{i}")));
        let bootstrap = match (self.members.first(), &host) {
            (None, _) => vec![],
            (Some(first), None) => first.listen().to_vec(),
            (Some(first), Some(_)) => {
                let ip = self.options.hosts[0].ip;
                first
                    .listen()
                    .iter()
                    .filter(|a| a.starts_with(&format!("/ip4/{ip}/")))
                    .cloned()
                    .collect()
            }
        };
        home.init(&local_options(bootstrap, host.is_none()))
            .unwrap_or_else(|e| panic!("init node {i}: {e}"));
        if let (0, Some(name)) = (i, &self.options.private) {
            cloudy_node::community::create(&home, name)
                .unwrap_or_else(|e| panic!("community create: {e}"));
        }
        if let Some(edit) = &self.options.config {
            let text = std::fs::read_to_string(home.config_path()).expect("config.toml");
            std::fs::write(home.config_path(), edit(i, &text)).expect("write config.toml");
        }
        self.members.push(Member::start(&home, i, host.map(|h| h.netns)).await);
        i
    }

    /// Starts a node from a home initialised by the test (by `cloudy-p2p
    /// join`, say) on this machine; returns its index.
    pub async fn start_home(&mut self, home: &Home) -> usize {
        let i = self.members.len();
        self.members.push(Member::start(home, i, None).await);
        i
    }

    /// The directory holding the homes; tests put their files here too.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the community's directory").path()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No nodes.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The nodes.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Waits until every node in `which` sees `alive` members alive.
    pub async fn wait_alive_on(&self, which: &[usize], alive: usize, secs: u64) {
        for &i in which {
            let what = format!("{alive} alive members");
            self[i]
                .wait_json(&["peers", "--json"], &what, secs, |v| {
                    v.as_array().is_some_and(|p| {
                        p.iter().filter(|p| p["state"] == "alive").count() == alive
                    })
                })
                .await;
        }
    }

    /// Waits until every node sees `alive` members alive.
    pub async fn wait_alive(&self, alive: usize, secs: u64) {
        let all: Vec<usize> = (0..self.len()).collect();
        self.wait_alive_on(&all, alive, secs).await;
    }
}

impl Index<usize> for Community {
    type Output = Member;
    fn index(&self, i: usize) -> &Member {
        &self.members[i]
    }
}

impl IndexMut<usize> for Community {
    fn index_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
    }
}

impl Drop for Community {
    fn drop(&mut self) {
        let keep = std::env::var_os("CLOUDY_KEEP_COMMUNITY").is_some();
        if !std::thread::panicking() && !keep {
            return;
        }
        let Some(dir) = self.dir.take() else { return };
        let kept = dir.keep();
        if !std::thread::panicking() {
            eprintln!(
                "---- kept the community's homes and logs in {} (CLOUDY_KEEP_COMMUNITY)",
                kept.display()
            );
            return;
        }
        for m in &self.members {
            let ns = m.netns.as_deref().map(|n| format!(" in {n}")).unwrap_or_default();
            eprintln!(
                "---- node {} ({}){ns}: end of {}",
                m.index,
                m.peer_id(),
                m.process.log.display()
            );
            eprintln!("{}", log_tail(&m.process.log));
        }
        eprintln!("---- the failed community's homes and logs are kept in {}", kept.display());
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options").finish_non_exhaustive()
    }
}
