//! One node of a community: its process, its home, and the host (the
//! machine itself or a network namespace) it runs on.

use crate::exe::exe;
use cloudy_node::process::NodeProcess;
use cloudy_node::Home;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio::time::Instant;

/// The longest any one CLI command may run in a scenario.
const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// What a CLI command did.
#[derive(Debug)]
pub struct Out {
    /// It exited with success.
    pub ok: bool,
    /// Its exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl From<std::process::Output> for Out {
    fn from(out: std::process::Output) -> Out {
        Out {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A node process of a [`crate::Community`].
#[derive(Debug)]
pub struct Member {
    /// Its place in the community.
    pub index: usize,
    /// The running (or killed) process.
    pub process: NodeProcess,
    /// The network namespace it runs in, if any.
    pub netns: Option<String>,
}

impl Member {
    /// Starts the node in `home` (already initialised) on `netns`.
    pub(crate) async fn start(home: &Home, index: usize, netns: Option<String>) -> Member {
        let process = NodeProcess::start_command(program(netns.as_deref()), home, index, None)
            .await
            .unwrap_or_else(|e| panic!("node {index} did not start: {e}"));
        Member { index, process, netns }
    }

    /// Its home directory.
    pub fn home(&self) -> &Path {
        self.process.home.root()
    }

    /// Its peer id.
    pub fn peer_id(&self) -> &str {
        &self.process.peer_id
    }

    /// Its control API address (on its host's loopback).
    pub fn api(&self) -> &str {
        &self.process.api
    }

    /// Its listen addresses, with `/p2p/`.
    pub fn listen(&self) -> &[String] {
        &self.process.listen
    }

    /// `cloudy-p2p --home <home> args…` on the node's host, not yet run;
    /// killed if dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = program(self.netns.as_deref());
        c.arg("--home").arg(self.home()).args(args).kill_on_drop(true);
        c
    }

    /// Runs a CLI command against this node.
    pub async fn cli(&self, args: &[&str]) -> Out {
        let run = self.command(args).stdin(Stdio::null()).output();
        let out = tokio::time::timeout(CLI_TIMEOUT, run).await.unwrap_or_else(|_| {
            panic!("node {}: {args:?} did not finish within {CLI_TIMEOUT:?}", self.index)
        });
        Out::from(out.expect("run cloudy-p2p"))
    }

    /// Runs a command that must succeed and returns its trimmed output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args).await;
        assert!(out.ok, "node {}: {args:?} failed: {}", self.index, out.stderr);
        out.stdout.trim().to_string()
    }

    /// Runs a `--json` command that must succeed and parses its output.
    pub async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }

    /// Runs a command that must fail with one line of error containing `needle`.
    pub async fn fails_with(&self, args: &[&str], needle: &str) {
        let out = self.cli(args).await;
        assert!(!out.ok, "{args:?} should fail, printed {}", out.stdout);
        assert!(out.stderr.contains(needle), "{args:?}: expected {needle:?} in {:?}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "one clear line: {:?}", out.stderr);
    }

    /// Runs `args` (a `--json` command) every 100 ms until `pred` holds for
    /// its output, which it returns; panics naming `what` after `secs`.
    pub async fn wait_json(
        &self,
        args: &[&str],
        what: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.json(args).await;
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: timed out after {secs} s waiting for {what}; last: {v}",
                self.index
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process with SIGKILL: no goodbye.
    pub async fn kill9(&mut self) {
        self.process.kill9().await;
    }

    /// Stops the node gracefully with `cloudy-p2p stop` and waits for it to
    /// exit with success.
    pub async fn stop(&mut self) {
        self.ok(&["stop"]).await;
        let status = self.process.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "node {} did not exit cleanly after stop: {status:?}",
            self.index
        );
    }

    /// Starts the node again from its home (after a kill or a stop). Its
    /// ports are chosen by the OS again.
    pub async fn restart(&mut self) {
        let _ = self.process.wait_exit(Duration::from_secs(5)).await;
        let home = self.process.home.clone();
        *self = Member::start(&home, self.index, self.netns.take()).await;
    }

    /// A `GET` of `path` on the node's HTTP port with its token in the
    /// query, as a media player does (loopback communities only).
    pub async fn media(&self, path: &str, range: Option<&str>) -> reqwest::Response {
        let client =
            cloudy_node::control::client::Client::for_home(&self.process.home).expect("a client");
        let mut req = reqwest::Client::new().get(client.media_url(path));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send().await.expect("the node answers HTTP")
    }

    /// The node's `GET /metrics` text (loopback communities only).
    pub async fn metrics(&self) -> String {
        let resp = self.api_get("/metrics").send().await.expect("the node answers HTTP");
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.expect("metrics text")
    }

    /// A `GET` of `path` on the node's control API with its bearer token.
    pub fn api_get(&self, path: &str) -> reqwest::RequestBuilder {
        let token = std::fs::read_to_string(self.process.home.token_path()).expect("the API token");
        reqwest::Client::new().get(format!("http://{}{path}", self.api())).bearer_auth(token.trim())
    }
}

/// The command that runs `cloudy-p2p`, inside `netns` if given.
pub(crate) fn program(netns: Option<&str>) -> Command {
    match netns {
        None => Command::new(exe()),
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe());
            c
        }
    }
}

/// The value of the sample `name` (with its labels, as printed, e.g.
/// `cloudy_members{state="alive"}`) in Prometheus text, if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

/// The state (`alive`, `suspect`, `failed`, `left`) of member `id` in the
/// output of `peers --json`, if it is listed.
pub fn peer_state<'a>(peers: &'a Value, id: &str) -> Option<&'a str> {
    peers.as_array()?.iter().find(|p| p["peer_id"] == id)?["state"].as_str()
}
