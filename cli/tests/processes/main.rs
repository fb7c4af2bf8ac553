//! Real `cloudy-p2p` processes on 127.0.0.1, driven through the CLI.

use cloudy_node::process::{init_local_home, NodeProcess};
use cloudy_node::Home;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

pub(crate) const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");
/// A valid peer id that belongs to no test community.
const STRANGER: &str = "12D3KooWN4aihBqGyP3pNXD9wxEfGP7dY4u6YFejG8CNpMs8UybT";

pub(crate) struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) async fn cli(home: &Path, args: &[&str]) -> Out {
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

pub(crate) async fn fails_with(home: &Path, args: &[&str], needle: &str) {
    let out = cli(home, args).await;
    assert!(!out.ok, "{args:?} should fail, printed {}", out.stdout);
    assert!(out.stderr.contains(needle), "{args:?}: expected {needle:?} in {:?}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one clear line: {:?}", out.stderr);
}

pub(crate) async fn json(home: &Path, args: &[&str]) -> Value {
    let out = cli(home, args).await;
    assert!(out.ok, "{args:?} failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("JSON output")
}

/// Runs `args` (a `--json` command) on `home` every 100 ms until `pred`
/// holds for its output, which it returns; fails after `secs` seconds.
pub(crate) async fn wait_json(home: &Path, args: &[&str], what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = json(home, args).await;
        if pred(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `n` local nodes with homes `<dir>/<prefix><i>`, the first as
/// everyone's bootstrap; returns them and their homes.
pub(crate) async fn start_nodes(dir: &Path, prefix: &str, n: usize) -> (Vec<NodeProcess>, Vec<std::path::PathBuf>) {
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..n {
        let home = Home::new(dir.join(format!("{prefix}{i}")));
        nodes.push(NodeProcess::start_local(Path::new(EXE), &home, nodes.first(), i, None).await.unwrap());
    }
    let homes = nodes.iter().map(|n| n.home.root().to_path_buf()).collect();
    (nodes, homes)
}

/// Polls `peers --json` on `home` until `pred` holds (20 s at most).
async fn wait_peers(home: &Path, what: &str, pred: impl Fn(&[Value]) -> bool) {
    wait_json(home, &["peers", "--json"], what, 20, |v| pred(v.as_array().expect("array"))).await;
}

fn state_of(peers: &[Value], id: &str) -> Option<String> {
    peers.iter().find(|p| p["peer_id"] == id).map(|p| p["state"].as_str().unwrap_or("").to_string())
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
    fails_with(&home, &["up"], &format!("config.toml: line {line}: invalid multiaddr \"/ip4/10.0.0.1/tcp/notaport\"")).await;
    std::fs::write(&cfg, good.replace("mdns = false", "mdns = maybe")).unwrap();
    fails_with(&home, &["up"], "config.toml: line").await;
    std::fs::write(&cfg, &good).unwrap();
    std::fs::write(home.join("identity.key"), b"garbage").unwrap();
    fails_with(&home, &["up"], "identity.key: not a valid identity key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_of_processes_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h) = start_nodes(dir.path(), "n", 3).await;
    let ids: Vec<_> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    wait_peers(&h[0], "two alive members", |p| p.iter().filter(|p| p["state"] == "alive").count() == 2).await;

    // Service directory.
    let out = cli(&h[1], &["announce", "web", "--meta", "port=80"]).await;
    assert!(out.ok, "{}", out.stderr);
    for home in [&h[0], &h[2]] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = json(home, &["services", "web", "--json"]).await;
            if v.as_array().unwrap().len() == 1 {
                assert_eq!(v[0]["peer_id"], ids[1].as_str());
                assert_eq!(v[0]["meta"]["port"], "80");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "announcement never reached {}", home.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    fails_with(&h[1], &["announce", "bad name!"], "invalid service name").await;
    fails_with(&h[1], &["announce", "x", "--meta", "novalue"], "not of the form key=value").await;
    fails_with(&h[1], &["withdraw", "nothere"], "is not announced by this node").await;
    fails_with(&h[0], &["peers", "not-a-peer"], "is not a valid peer id").await;
    fails_with(&h[0], &["peers", STRANGER], "unknown peer").await;
    let one = json(&h[0], &["peers", &ids[1], "--json"]).await;
    let services: Vec<&str> = one[0]["services"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(services.contains(&"web"), "{one}");
    let status = json(&h[0], &["status", "--json"]).await;
    assert_eq!(status["peer_id"], ids[0].as_str());
    assert_eq!(status["members"]["alive"], 2);

    // A second node on a taken API port says so.
    let clash = Home::new(dir.path().join("clash"));
    init_local_home(&clash, vec![]).unwrap();
    let cfg = clash.config_path();
    let text = std::fs::read_to_string(&cfg).unwrap().replace("127.0.0.1:0", &nodes[0].api);
    std::fs::write(&cfg, text).unwrap();
    fails_with(clash.root(), &["up"], &format!("cannot serve the control API on {}: address already in use", nodes[0].api)).await;
    // ... and so does one whose QUIC port is taken.
    let quic = nodes[0].listen.iter().find(|a| a.contains("quic")).unwrap();
    let quic = quic.split("/p2p/").next().unwrap();
    let text: String = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&nodes[0].api, "127.0.0.1:0")
        .lines()
        .map(|l| if l.starts_with("listen = ") { format!("listen = [\"{quic}\"]\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(&cfg, text).unwrap();
    fails_with(clash.root(), &["up"], &format!("cannot listen on {quic}: address already in use")).await;

    // kill -9: failed everywhere; its announcements expire.
    nodes[1].kill9().await;
    for home in [&h[0], &h[2]] {
        wait_peers(home, "killed node failed", |p| state_of(p, &ids[1]).as_deref() == Some("failed")).await;
    }
    assert!(json(&h[2], &["services", "web", "--json"]).await.as_array().unwrap().is_empty());

    // A clean stop: left, and the process exits by itself with success.
    let out = cli(&h[2], &["stop"]).await;
    assert!(out.ok, "{}", out.stderr);
    let status = nodes[2].wait_exit(Duration::from_secs(15)).await.expect("exits after stop");
    assert!(status.success());
    wait_peers(&h[0], "stopped node left", |p| state_of(p, &ids[2]).as_deref() == Some("left")).await;
    fails_with(&h[2], &["status"], "no node is running").await;
}

/// Polls `services storage --json` on `home` until `n` servers are listed.
async fn wait_storage_servers(home: &Path, n: usize) {
    let what = format!("{n} storage servers");
    wait_json(home, &["services", "storage", "--json"], &what, 20, |v| v.as_array().unwrap().len() == n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h) = start_nodes(dir.path(), "s", 3).await;
    for home in &h {
        wait_storage_servers(home, 3).await;
    }
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let input = dir.path().join("input.bin");
    std::fs::write(&input, &data).unwrap();
    let input = input.to_str().unwrap();
    // A second file, never repaired, for the "too few shares" case below.
    let other = dir.path().join("other.bin");
    std::fs::write(&other, vec![7u8; 100_000]).unwrap();
    let out = cli(&h[0], &["put", other.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert!(out.ok, "{}", out.stderr);
    let cap2 = out.stdout.trim().to_string();
    let out = cli(&h[0], &["put", input, "--k", "2", "--n", "3", "--happy", "3", "--json"]).await;
    assert!(out.ok, "{}", out.stderr);
    let stored: Value = serde_json::from_str(&out.stdout).unwrap();
    let cap = stored["cap"].as_str().unwrap().to_string();
    assert!(cap.starts_with("cloudy:chk:"), "{cap}");
    assert!(stored["verify_cap"].as_str().unwrap().starts_with("cloudy:chk-verify:"));
    // Convergence: the same file from the same node gives the same capability.
    let again = cli(&h[0], &["put", input, "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert_eq!(again.stdout.trim(), cap, "{}", again.stderr);

    let info = cli(&h[0], &["cap", "info", &cap]).await;
    assert!(info.ok && info.stdout.contains("2-of-3") && info.stdout.contains("3000000-byte"), "{}", info.stdout);
    fails_with(&h[0], &["cap", "info", &cap[..cap.len() - 9]], "field").await;
    fails_with(&h[0], &["get", "cloudy:chk:nonsense"], "read capability has 2 fields").await;

    let fetched = dir.path().join("fetched.bin");
    let out = cli(&h[2], &["get", &cap, "-o", fetched.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&fetched).unwrap() == data, "file differs after get");

    // Tiny files live in the capability.
    let tiny = dir.path().join("tiny.txt");
    std::fs::write(&tiny, b"hello grid").unwrap();
    let lit = cli(&h[1], &["put", tiny.to_str().unwrap()]).await.stdout.trim().to_string();
    assert!(lit.starts_with("cloudy:lit:"), "{lit}");
    assert_eq!(cli(&h[2], &["get", &lit]).await.stdout, "hello grid");
    let out = cli(&h[1], &["put", tiny.to_str().unwrap(), "--random-key"]).await;
    assert_eq!((out.ok, out.stdout.trim()), (true, lit.as_str()), "{}", out.stderr);

    // n − k = 1 server killed: still readable; two killed: a clear error, no file.
    nodes[1].kill9().await;
    wait_storage_servers(&h[2], 2).await;
    let again = dir.path().join("again.bin");
    let out = cli(&h[2], &["get", &cap, "-o", again.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&again).unwrap() == data, "file differs after losing a server");
    // check sees the loss, repair regenerates the share, verify confirms.
    let report = json(&h[2], &["check", &cap, "--json"]).await;
    assert_eq!((report["good_shares"].as_u64(), report["healthy"].as_bool()), (Some(2), Some(false)), "{report}");
    let repaired = json(&h[2], &["repair", &cap, "--json"]).await;
    assert_eq!(repaired["placed"].as_array().unwrap().len(), 1, "{repaired}");
    let report = json(&h[2], &["check", &cap, "--verify", "--json"]).await;
    assert_eq!(report["healthy"], true, "{report}");
    fails_with(&h[2], &["check", &lit], "literal capability holds its file itself").await;

    nodes[0].kill9().await;
    wait_storage_servers(&h[2], 1).await;
    let lost = dir.path().join("lost.bin");
    fails_with(&h[2], &["get", &cap2, "-o", lost.to_str().unwrap()], "not enough shares: need 2, found 1").await;
    assert!(!lost.exists(), "no partial file is left behind");
}

/// Polls `maintain list --json` on `home` until the only file's status is `want`.
async fn wait_maintained(home: &Path, want: &str) -> Value {
    let what = format!("status {want}");
    wait_json(home, &["maintain", "list", "--json"], &what, 30, |v| v[0]["status"] == want).await[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ranges_and_automatic_repair_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..4 {
        let home = Home::new(dir.path().join(format!("r{i}")));
        init_local_home(&home, nodes.first().map(|f| f.listen.clone()).unwrap_or_default()).unwrap();
        if i == 0 {
            // Node 0 acts on a failed server after half a second.
            let text = std::fs::read_to_string(home.config_path()).unwrap();
            std::fs::write(home.config_path(), text.replace("repair_delay = \"1m\"", "repair_delay = \"500ms\"")).unwrap();
        }
        nodes.push(NodeProcess::start(Path::new(EXE), &home, i, None).await.unwrap());
    }
    let h: Vec<_> = nodes.iter().map(|n| n.home.root().to_path_buf()).collect();
    for home in &h {
        wait_storage_servers(home, 4).await;
    }
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    let input = dir.path().join("movie.txt");
    std::fs::write(&input, &data).unwrap();
    let out = cli(&h[0], &["put", input.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert!(out.ok, "{}", out.stderr);
    let cap = out.stdout.trim().to_string();

    // HTTP Range on the gateway, as a browser or video player would ask.
    let token = std::fs::read_to_string(nodes[1].home.token_path()).unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{}/uri/{cap}", nodes[1].api);
    let ask = |range: Option<&str>, query: &str| {
        let mut req = http.get(format!("{url}{query}")).bearer_auth(token.trim());
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        req.send()
    };
    let resp = ask(Some("bytes=1048570-1048589"), "").await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 1048570-1048589/2500000");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().await.unwrap(), &data[1048570..1048590], "a range across a segment boundary");
    let resp = ask(Some("bytes=-10"), "").await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.bytes().await.unwrap()), (206, data[2_499_990..].to_vec().into()));
    let resp = ask(Some("bytes=2500000-"), "").await.unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */2500000");
    let resp = ask(None, "?filename=movie.txt").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["content-length"], "2500000");
    assert!(resp.bytes().await.unwrap() == data, "whole file over HTTP");

    // The upload is maintained by node 0 (its first check comes later).
    let listed = json(&h[0], &["maintain", "list", "--json"]).await;
    assert!(listed[0]["verify_cap"].as_str().unwrap().starts_with("cloudy:chk-verify:"), "{listed}");
    // Kill a holder other than node 0: node 0 repairs on its own.
    let report = json(&h[0], &["check", &cap, "--json"]).await;
    let ids: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    let holders: Vec<String> = report["shares"].as_object().unwrap().values().flat_map(|v| v.as_array().unwrap().clone()).map(|v| v.as_str().unwrap().to_string()).collect();
    let victim = (1..4).find(|i| holders.contains(&ids[*i])).expect("a holder besides node 0");
    nodes[victim].kill9().await;
    let entry = wait_maintained(&h[0], "repaired").await;
    assert_eq!(entry["good_shares"], 3, "{entry}");
    let report = json(&h[0], &["check", &cap, "--verify", "--json"]).await;
    assert_eq!(report["healthy"], true, "{report}");
    let others: Vec<usize> = (0..4).filter(|i| *i != victim && *i != 0).collect();
    let fetched = dir.path().join("fetched.bin");
    let out = cli(&h[others[0]], &["get", &cap, "-o", fetched.to_str().unwrap()]).await;
    assert!(out.ok && std::fs::read(&fetched).unwrap() == data, "{}", out.stderr);

    // The list can be edited by hand.
    let out = cli(&h[0], &["maintain", "remove", &cap]).await;
    assert!(out.ok && out.stdout.contains("no longer maintained"), "{}", out.stderr);
    assert!(json(&h[0], &["maintain", "list", "--json"]).await.as_array().unwrap().is_empty());
    fails_with(&h[0], &["maintain", "add", "cloudy:chk:bad"], "read capability").await;
}

/// True when a half-written share (`*.tmp-*`) is in `home`'s share store.
fn writing_share(home: &Path) -> bool {
    let shares = home.join("data").join("shares");
    std::fs::read_dir(shares).into_iter().flatten().flatten().filter(|d| d.path().is_dir()).any(|d| {
        std::fs::read_dir(d.path()).into_iter().flatten().flatten().any(|f| f.file_name().to_string_lossy().contains(".tmp-"))
    })
}

/// Starts a put of `file` on `home` and, as soon as one of `servers`
/// is writing a share, kills it; returns the put's outcome and the victim.
async fn put_and_kill_a_server(home: &Path, file: &Path, args: &[&str], nodes: &mut [NodeProcess], servers: &[usize]) -> (Out, usize) {
    let mut all = vec!["put", file.to_str().unwrap(), "--random-key"];
    all.extend_from_slice(args);
    let kill = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let victim = loop {
            if let Some(v) = servers.iter().copied().find(|i| writing_share(nodes[*i].home.root())) {
                break v;
            }
            assert!(tokio::time::Instant::now() < deadline, "no server started writing a share");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        nodes[victim].kill9().await;
        victim
    };
    tokio::join!(cli(home, &all), kill)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_storage_node_during_a_put() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h) = start_nodes(dir.path(), "k", 5).await;
    wait_storage_servers(&h[0], 5).await;
    let data: Vec<u8> = (0..48_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let input = dir.path().join("big.bin");
    std::fs::write(&input, &data).unwrap();

    // 4 shares, happy 3: losing one server mid-put still meets happiness.
    let (out, victim) = put_and_kill_a_server(&h[0], &input, &["--k", "2", "--n", "4", "--happy", "3"], &mut nodes, &[1, 2, 3, 4]).await;
    assert!(out.ok, "the put should survive one lost server: {}", out.stderr);
    let cap = out.stdout.trim().to_string();
    let alive: Vec<usize> = (1..5).filter(|i| *i != victim).collect();
    let fetched = dir.path().join("fetched.bin");
    let got = cli(&h[alive[0]], &["get", &cap, "-o", fetched.to_str().unwrap()]).await;
    assert!(got.ok, "{}", got.stderr);
    assert!(std::fs::read(&fetched).unwrap() == data, "file differs");
    let report = json(&h[0], &["check", &cap, "--verify", "--json"]).await;
    let holders: std::collections::HashSet<String> =
        report["shares"].as_object().unwrap().values().flat_map(|v| v.as_array().unwrap().clone()).map(|v| v.to_string()).collect();
    assert!(holders.len() >= 3, "happiness met: {report}");

    // 4 shares, happy 4, on the 4 servers left: losing one must fail cleanly.
    wait_storage_servers(&h[0], 4).await;
    let (out, second) = put_and_kill_a_server(&h[0], &input, &["--k", "2", "--n", "4", "--happy", "4"], &mut nodes, &alive).await;
    assert!(!out.ok, "the put cannot meet happiness: {}", out.stdout);
    assert!(out.stderr.contains("upload failed") && out.stderr.contains("4 needed"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one clear line: {}", out.stderr);
    // The survivors drop their half-written shares.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let survivors: Vec<usize> = (0..5).filter(|i| *i != victim && *i != second).collect();
    while survivors.iter().any(|i| writing_share(&h[*i])) {
        assert!(tokio::time::Instant::now() < deadline, "half-written shares left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod sync;
mod stream;
