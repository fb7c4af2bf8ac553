//! A js-libp2p peer (`js/peer.mjs`, run by Node.js) driven from a test: one
//! JSON command per line on its stdin, one JSON answer per line on its
//! stdout. `scripts/test` installs its npm packages.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long one command may take (DHT queries included).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A running js-libp2p peer.
#[derive(Debug)]
pub struct JsPeer {
    /// Its peer id.
    pub peer: String,
    /// Its listen addresses, with `/p2p/`.
    pub addrs: Vec<String>,
    /// Where its stderr goes.
    pub log: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// The directory of the js peer.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

impl JsPeer {
    /// Starts the peer, its log in `log`, and waits for its `ready` line.
    pub async fn start(log: &Path) -> JsPeer {
        let dir = js_dir();
        assert!(
            dir.join("node_modules").is_dir(),
            "{}/node_modules is missing: run scripts/test, or `npm install` there",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join("peer.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("the js peer's log"))
            .kill_on_drop(true)
            .spawn()
            .expect("Node.js (`node`) is needed for the js-libp2p interop tests");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(CALL_TIMEOUT, stdout.next_line())
            .await
            .expect("the js peer was ready in time")
            .expect("its stdout")
            .unwrap_or_else(|| {
                panic!("the js peer exited: {}", std::fs::read_to_string(log).unwrap_or_default())
            });
        let ready: Value =
            serde_json::from_str(line.strip_prefix("ready ").expect("a ready line")).expect("JSON");
        let addrs = ready["addrs"]
            .as_array()
            .expect("addrs")
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        JsPeer {
            peer: ready["peer"].as_str().unwrap().to_string(),
            addrs,
            log: log.to_path_buf(),
            child,
            stdin,
            stdout,
        }
    }

    /// Its address on `transport` (`tcp` or `quic-v1`).
    pub fn addr(&self, transport: &str) -> &str {
        self.addrs.iter().find(|a| a.contains(&format!("/{transport}/"))).expect("an address")
    }

    /// Sends a command and returns its answer, `ok` or not.
    pub async fn call(&mut self, cmd: Value) -> Value {
        let line = format!("{cmd}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write to the js peer");
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("the js peer did not answer {cmd} within {CALL_TIMEOUT:?}"))
            .expect("its stdout")
            .unwrap_or_else(|| {
                panic!(
                    "the js peer exited on {cmd}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
        serde_json::from_str(&answer).expect("a JSON answer")
    }

    /// Sends a command that must succeed.
    pub async fn ok(&mut self, cmd: Value) -> Value {
        let v = self.call(cmd.clone()).await;
        assert_eq!(v["ok"], true, "js peer: {cmd} failed: {v}");
        v
    }

    /// Sends `cmd` until its answer satisfies `pred`, for at most `secs`
    /// seconds: for what the other side did asynchronously (a Kademlia
    /// ADD_PROVIDER is sent without an answer, so the writer's query can
    /// end before the reader has stored it).
    pub async fn wait(
        &mut self,
        cmd: Value,
        what: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.ok(cmd.clone()).await;
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "js peer: timed out after {secs} s waiting for {what}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the peer.
    pub async fn stop(mut self) {
        let _ = self.call(json!({"op": "stop"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
