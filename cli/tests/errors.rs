//! The CLI alone, before any node runs: its errors (an uninitialised home,
//! a second init, a broken config file, a damaged identity key, a bad
//! invite), and the shell completions and manual page generated from its
//! definition. Scenarios across running nodes are in interop-tests.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn cli(home: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(EXE)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .await
        .expect("run cloudy-p2p");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn fails_with(home: &Path, args: &[&str], needle: &str) {
    let out = cli(home, args).await;
    assert!(!out.ok, "{args:?} should fail, printed {}", out.stdout);
    assert!(out.stderr.contains(needle), "{args:?}: expected {needle:?} in {:?}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one clear line: {:?}", out.stderr);
}

#[tokio::test]
async fn user_errors_before_any_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    fails_with(&home, &["status"], "is not an initialised cloudy-p2p home").await;
    fails_with(&home, &["up"], "is not an initialised cloudy-p2p home").await;
    let out = cli(&home, &["init", "--port", "0", "--api", "127.0.0.1:0", "--no-mdns"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("next: cloudy-p2p --home"), "{}", out.stdout);
    for secret in ["identity.key", "api.token"] {
        let mode = std::fs::metadata(home.join(secret)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    fails_with(&home, &["init"], "already initialised").await;
    fails_with(&home, &["status"], "no node is running").await;
    fails_with(&home, &["peers"], "no node is running").await;

    let cfg = home.join("config.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let line = good.lines().position(|l| l.starts_with("bootstrap")).unwrap() + 1;
    let bad = good.replace("bootstrap = []", "bootstrap = [\"/ip4/10.0.0.1/tcp/notaport\"]");
    std::fs::write(&cfg, bad).unwrap();
    fails_with(
        &home,
        &["up"],
        &format!("config.toml: line {line}: invalid multiaddr \"/ip4/10.0.0.1/tcp/notaport\""),
    )
    .await;
    std::fs::write(&cfg, good.replace("mdns = false", "mdns = maybe")).unwrap();
    fails_with(&home, &["up"], "config.toml: line").await;
    std::fs::write(&cfg, &good).unwrap();
    std::fs::write(home.join("identity.key"), b"garbage").unwrap();
    fails_with(&home, &["up"], "identity.key: not a valid identity key").await;
}

#[tokio::test]
async fn a_failed_or_partial_init_is_repaired_by_init() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    // A bad option is named, and nothing is written.
    fails_with(&home, &["init", "--api", "notanaddr"], "--api \"notanaddr\": not an IP:PORT").await;
    fails_with(
        &home,
        &["init", "--bootstrap", "garbage"],
        "--bootstrap \"garbage\": not a multiaddr",
    )
    .await;
    assert!(!home.join("identity.key").exists(), "nothing written after a bad option");
    let init = ["init", "--port", "0", "--api", "127.0.0.1:0", "--no-mdns"];
    let out = cli(&home, &init).await;
    assert!(out.ok, "the corrected init works: {}", out.stderr);
    let id = std::fs::read(home.join("identity.key")).unwrap();

    // A deleted token: commands name it and init recreates it, keeping the
    // identity.
    std::fs::remove_file(home.join("api.token")).unwrap();
    fails_with(&home, &["up"], "lacks api.token; run `cloudy-p2p --home").await;
    fails_with(&home, &["status"], "lacks api.token").await;
    let out = cli(&home, &init).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("wrote api.token"), "{}", out.stdout);
    assert_eq!(std::fs::read(home.join("identity.key")).unwrap(), id, "identity kept");
    let mode = std::fs::metadata(home.join("api.token")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    fails_with(&home, &["init"], "already initialised").await;

    // An init that stopped before the config was written.
    std::fs::remove_file(home.join("config.toml")).unwrap();
    let out = cli(&home, &init).await;
    assert!(out.ok && out.stdout.contains("wrote config.toml"), "{}{}", out.stdout, out.stderr);
    fails_with(&home, &["status"], "no node is running").await;
    assert!(
        std::fs::read_dir(&home).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")),
        "no half-written files left"
    );
}

#[tokio::test]
async fn a_node_that_hangs_up_or_answers_garbage_gets_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    let init = ["init", "--port", "0", "--api", "127.0.0.1:0", "--no-mdns"];
    assert!(cli(&home, &init).await.ok);
    // Something at the API address that hangs up at once, then one that
    // answers with what is not JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    std::fs::write(home.join("api.addr"), listener.local_addr().unwrap().to_string()).unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (s, _) = listener.accept().await.unwrap();
        drop(s);
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let body = "<html>not json</html>";
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes()).await.unwrap();
    });
    fails_with(&home, &["status"], "the node closed the connection before answering").await;
    fails_with(&home, &["status"], "the node's answer is not what this version").await;
    server.await.unwrap();
    for out in [cli(&home, &["status"]).await] {
        for internal in ["oneshot", "error sending request", "error decoding response body"] {
            assert!(!out.stderr.contains(internal), "{internal}: {}", out.stderr);
        }
    }
}

#[tokio::test]
async fn completions_manual_page_and_bad_invites() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef cloudy-p2p"),
        ("fish", "complete -c cloudy-p2p"),
    ] {
        let out = cli(&home, &["completions", shell]).await;
        assert!(out.ok && out.stdout.contains(marker), "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("invite") && out.stdout.contains("dht"),
            "{shell} completes subcommands"
        );
    }
    let man = cli(&home, &["man"]).await;
    assert!(
        man.ok && man.stdout.contains(".TH cloudy-p2p 1") && man.stdout.contains("join"),
        "{}",
        man.stderr
    );
    let out = cli(&home, &["completions", "tcsh"]).await;
    assert!(
        !out.ok && out.stderr.contains("invalid value 'tcsh'") && out.stderr.contains("bash"),
        "{}",
        out.stderr
    );

    fails_with(
        &home,
        &["join", "cloudy-sync:abc"],
        "bad invite: it does not start with cloudy-join:1:",
    )
    .await;
    fails_with(&home, &["join", "cloudy-join:1:abc!"], "bad invite: not base32").await;
    assert!(!home.exists(), "a bad invite creates no home");
}

/// `cloudy-p2p … | head -1`: the reader goes away after one line, and the
/// command stops quietly, as Unix tools do (it used to panic, or print
/// "error: Broken pipe").
#[test]
fn a_reader_that_goes_away_stops_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(EXE)
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("cloudy"), "{first:?}");
    // The reader is dropped here, with 130 KB of the script unread.
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing on stderr");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

#[tokio::test]
async fn a_first_start_alone_warns_only_of_what_the_user_should_fix() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_local(dir.path()).await;
    // A key restored from a backup readable by everyone.
    let key = home.join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_node, log) = start_node(&home).await;
    // Past Kademlia's wish to walk (0.5 s after the node's addresses
    // appear); then the node stops when asked, which ends its log.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(cli(&home, &["stop"]).await.ok);
    let log = tokio::time::timeout(std::time::Duration::from_secs(30), log).await.unwrap().unwrap();
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("identity.key was readable by other users"), "{warnings:#?}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// A new home under `dir` for a node alone on 127.0.0.1, on ports the
/// system picks.
async fn init_local(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("a");
    let init = ["init", "--port", "0", "--api", "127.0.0.1:0", "--no-mdns", "--loopback"];
    assert!(cli(&home, &init).await.ok);
    home
}

/// Starts `up` on `home` with the default log filter; returns the child
/// once it printed "ready", and a task collecting its log until it exits.
async fn start_node(home: &Path) -> (tokio::process::Child, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::AsyncBufReadExt;
    let mut node = tokio::process::Command::new(EXE)
        .arg("--home")
        .arg(home)
        .arg("up")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let stderr = node.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut log = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push(line);
        }
        log
    });
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.next_line()).await;
    assert!(ready.unwrap().unwrap().unwrap().starts_with("ready"));
    (node, log)
}

#[tokio::test]
async fn a_put_the_node_refuses_mid_upload_says_why() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let home = init_local(dir.path()).await;
    let (_node, _log) = start_node(&home).await;
    // The node refuses at once (one server, 7 wanted) while the client is
    // still sending the file. The client died of SIGPIPE there, in silence,
    // about 1 run in 3; then, with SIGPIPE ignored, it often got only a
    // broken pipe, as the node closed the connection on the unread rest.
    // The node reads the rest and throws it away now: the node's reason
    // comes through every time.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![0u8; 64 << 20]).unwrap();
    for _ in 0..4 {
        let put =
            ["put", big.to_str().unwrap(), "--random-key", "--k", "3", "--n", "10", "--happy", "7"];
        let out = tokio::process::Command::new(EXE)
            .arg("--home")
            .arg(&home)
            .args(put)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.signal(), None, "{:?}", out.status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.contains("not enough storage servers");
        assert!(why && stderr.trim().lines().count() == 1, "{stderr:?}");
    }
}
