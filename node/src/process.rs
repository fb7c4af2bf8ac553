//! Running `cloudy-p2p up` as a child process: used by `cloudy-p2p demo`,
//! the CLI's process tests and the membership benchmark.
//!
//! A [`NodeProcess`] is started with [`NodeProcess::start`], which waits for
//! the node's readiness line (`ready peer=… api=… listen=…`) rather than
//! sleeping. Its stderr (the log) is copied line by line to a log file and,
//! if asked, to a channel with the time each line arrived.

use crate::home::{Home, InitOptions};
use crate::NodeError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a node may take to print its readiness line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A log line of node `index`, with the time it was read.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Which node.
    pub index: usize,
    /// When the line was read.
    pub at: Instant,
    /// The line.
    pub text: String,
}

/// Errors starting a node process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// Spawning failed.
    #[error("cannot run {}: {source}", exe.display())]
    Spawn {
        /// The program.
        exe: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process ended or stayed silent before it was ready.
    #[error("node {} did not become ready ({reason}); its log {}:\n{tail}", home.display(), log.display())]
    NotReady {
        /// The node's home.
        home: PathBuf,
        /// Its log file.
        log: PathBuf,
        /// What happened.
        reason: String,
        /// The end of its log.
        tail: String,
    },
    /// Creating the home failed.
    #[error(transparent)]
    Home(#[from] NodeError),
}

/// A node running as a child process.
#[derive(Debug)]
pub struct NodeProcess {
    /// Its home.
    pub home: Home,
    /// Its peer id.
    pub peer_id: String,
    /// Its API address.
    pub api: String,
    /// Its listen addresses with `/p2p/`.
    pub listen: Vec<String>,
    /// Its log file.
    pub log: PathBuf,
    /// The child process.
    pub child: Child,
}

/// Options for a test or demo node: OS-chosen ports, the API on
/// 127.0.0.1, no mDNS; listening on 127.0.0.1 only if `loopback`.
pub fn local_options(bootstrap: Vec<String>, loopback: bool) -> InitOptions {
    InitOptions {
        port: Some(0),
        api: Some("127.0.0.1:0".into()),
        bootstrap,
        zone: None,
        no_mdns: true,
        loopback,
    }
}

/// Initialises `home` for a node on 127.0.0.1 with OS-chosen ports, no mDNS.
pub fn init_local_home(home: &Home, bootstrap: Vec<String>) -> Result<(), NodeError> {
    home.init(&local_options(bootstrap, true)).map(drop)
}

impl NodeProcess {
    /// Initialises `home` with [`init_local_home`], bootstrapping from
    /// `first` if given, and starts it with [`NodeProcess::start`].
    pub async fn start_local(
        exe: &Path,
        home: &Home,
        first: Option<&NodeProcess>,
        index: usize,
        lines: Option<mpsc::Sender<LogLine>>,
    ) -> Result<NodeProcess, LaunchError> {
        init_local_home(home, first.map(|f| f.listen.clone()).unwrap_or_default())?;
        NodeProcess::start(exe, home, index, lines).await
    }

    /// Runs `exe --home <home> up` and waits for its readiness line. Log lines
    /// are appended to `<home>/node.log` and, when `lines` is given, sent to
    /// that channel.
    pub async fn start(
        exe: &Path,
        home: &Home,
        index: usize,
        lines: Option<mpsc::Sender<LogLine>>,
    ) -> Result<NodeProcess, LaunchError> {
        NodeProcess::start_command(Command::new(exe), home, index, lines).await
    }

    /// Like [`NodeProcess::start`], with the program given as a command to
    /// which `--home <home> up` is added: `ip netns exec NS cloudy-p2p`, say.
    pub async fn start_command(
        mut command: Command,
        home: &Home,
        index: usize,
        lines: Option<mpsc::Sender<LogLine>>,
    ) -> Result<NodeProcess, LaunchError> {
        let exe = PathBuf::from(command.as_std().get_program());
        let log = home.root().join("node.log");
        let mut child = command
            .arg("--home")
            .arg(home.root())
            .arg("up")
            .env(
                "RUST_LOG",
                std::env::var("CLOUDY_TEST_LOG").unwrap_or_else(|_| "info,libp2p=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LaunchError::Spawn { exe, source })?;
        let stderr = child.stderr.take().expect("piped");
        tokio::spawn(copy_log(stderr, log.clone(), index, lines));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let not_ready = |reason: String| LaunchError::NotReady {
            home: home.root().to_path_buf(),
            log: log.clone(),
            reason,
            tail: String::new(),
        };
        let line = match tokio::time::timeout(READY_TIMEOUT, stdout.next_line()).await {
            Err(_) => Err(not_ready(format!("no readiness line within {READY_TIMEOUT:?}"))),
            Ok(Ok(Some(line))) if line.starts_with("ready ") => Ok(line),
            Ok(Ok(Some(line))) => Err(not_ready(format!("unexpected output {line:?}"))),
            Ok(Ok(None)) => Err(not_ready("the process exited".into())),
            Ok(Err(e)) => Err(not_ready(e.to_string())),
        };
        let line = match line {
            Ok(l) => l,
            Err(mut e) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                if let LaunchError::NotReady { tail, .. } = &mut e {
                    *tail = log_tail(&log);
                }
                return Err(e);
            }
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let field = |k: &str| {
            line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or_default().to_string()
        };
        Ok(NodeProcess {
            home: home.clone(),
            peer_id: field("peer="),
            api: field("api="),
            listen: field("listen=")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            log,
            child,
        })
    }

    /// Kills the process with SIGKILL (no goodbye) and reaps it.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits for the process to exit, at most `timeout`; kills it after that.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.kill9().await;
                None
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

async fn copy_log(
    stderr: tokio::process::ChildStderr,
    path: PathBuf,
    index: usize,
    lines: Option<mpsc::Sender<LogLine>>,
) {
    // Appended to: a restarted node's log keeps its previous processes'
    // lines (the churn benchmark reads them to explain a late restart).
    let opened = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await;
    let Ok(mut file) = opened else { return };
    let mut reader = BufReader::new(stderr).lines();
    while let Ok(Some(text)) = reader.next_line().await {
        let at = Instant::now();
        let _ = file.write_all(format!("{text}\n").as_bytes()).await;
        if let Some(tx) = &lines {
            let _ = tx.send(LogLine { index, at, text }).await;
        }
    }
    let _ = file.flush().await;
}

/// The last 40 lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
