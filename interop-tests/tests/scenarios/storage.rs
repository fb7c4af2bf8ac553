//! The storage grid across processes: put on one node, get on another,
//! servers killed (n − k of them, and one in the middle of a put), check,
//! verify and repair by hand and automatically, HTTP ranges.

use cloudy_interop_tests::{metric, Community, Member, Options, Out};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// `check --json`'s report, healthy (exit 0) or degraded (exit 3).
async fn check_json(node: &Member, args: &[&str]) -> Value {
    let out = node.cli(args).await;
    assert!(matches!(out.code, Some(0 | 3)), "{args:?}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Polls `services storage --json` on `node` until `n` servers are listed.
pub(crate) async fn wait_storage_servers(node: &Member, n: usize) {
    let what = format!("{n} storage servers");
    node.wait_json(&["services", "storage", "--json"], &what, 20, |v| {
        v.as_array().unwrap().len() == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_across_processes() {
    let mut c = Community::start(3).await;
    for node in c.members() {
        wait_storage_servers(node, 3).await;
    }
    let data: Vec<u8> =
        (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let input = c.dir().join("input.bin");
    std::fs::write(&input, &data).unwrap();
    let input = input.to_str().unwrap();
    // A second file, never repaired, for the "too few shares" case below.
    let other = c.dir().join("other.bin");
    std::fs::write(&other, vec![7u8; 100_000]).unwrap();
    let out =
        c[0].cli(&["put", other.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert!(out.ok, "{}", out.stderr);
    let cap2 = out.stdout.trim().to_string();
    let out = c[0].cli(&["put", input, "--k", "2", "--n", "3", "--happy", "3", "--json"]).await;
    assert!(out.ok, "{}", out.stderr);
    let stored: Value = serde_json::from_str(&out.stdout).unwrap();
    let cap = stored["cap"].as_str().unwrap().to_string();
    assert!(cap.starts_with("cloudy:chk:"), "{cap}");
    assert!(stored["verify_cap"].as_str().unwrap().starts_with("cloudy:chk-verify:"));
    // Convergence: the same file from the same node gives the same capability.
    let again = c[0].cli(&["put", input, "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert_eq!(again.stdout.trim(), cap, "{}", again.stderr);

    let info = c[0].cli(&["cap", "info", &cap]).await;
    assert!(
        info.ok && info.stdout.contains("2-of-3") && info.stdout.contains("3000000-byte"),
        "{}",
        info.stdout
    );
    c[0].fails_with(&["cap", "info", &cap[..cap.len() - 9]], "field").await;
    c[0].fails_with(&["get", "cloudy:chk:nonsense"], "read capability has 2 fields").await;
    c[0].fails_with(&["get", "URI:CHK:abc:def:3:10:4096"], "is a Tahoe-LAFS capability").await;
    let nowhere = c.dir().join("no-such-dir/out.bin");
    let nowhere = nowhere.to_str().unwrap();
    c[0].fails_with(&["get", &cap, "-o", nowhere], &format!("cannot write {nowhere}:")).await;

    let fetched = c.dir().join("fetched.bin");
    let out = c[2].cli(&["get", &cap, "-o", fetched.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&fetched).unwrap() == data, "file differs after get");

    // The first put a new user tries, with no options, works on three
    // servers and says how it was stored.
    let out = c[0].cli(&["put", other.to_str().unwrap(), "--random-key"]).await;
    assert!(out.ok, "default put on 3 servers: {}", out.stderr);
    assert!(out.stderr.contains("happy 3 instead of 4"), "{}", out.stderr);
    // A directory is not a file.
    c[0].fails_with(&["put", c.dir().to_str().unwrap()], "is a directory; put stores one file")
        .await;

    // Tiny files live in the capability.
    let tiny = c.dir().join("tiny.txt");
    std::fs::write(&tiny, b"hello grid").unwrap();
    let out = c[1].cli(&["put", tiny.to_str().unwrap()]).await;
    assert!(out.stderr.is_empty(), "a literal needs no servers, so no note: {}", out.stderr);
    let lit = out.stdout.trim().to_string();
    assert!(lit.starts_with("cloudy:lit:"), "{lit}");
    assert_eq!(c[2].cli(&["get", &lit]).await.stdout, "hello grid");
    let out = c[1].cli(&["put", tiny.to_str().unwrap(), "--random-key"]).await;
    assert_eq!((out.ok, out.stdout.trim()), (true, lit.as_str()), "{}", out.stderr);
    // One character changed in a literal capability is an error, not other
    // contents.
    let at = "cloudy:lit:".len() + 2;
    let mut typo = lit.clone().into_bytes();
    typo[at] = if typo[at] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let out = c[2].cli(&["get", &typo]).await;
    assert!(!out.ok && out.stdout.is_empty(), "a changed literal gave {:?}", out.stdout);
    assert!(out.stderr.contains("capability field"), "{}", out.stderr);

    // The metrics say what happened.
    let m = c[0].metrics().await;
    assert!(m.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    let value =
        |name: &str| metric(&m, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{m}"));
    assert!(value("cloudy_storage_requests_total{outcome=\"put_ok\"}") >= 3.0);
    assert_eq!(value("cloudy_members{state=\"alive\"}"), 2.0);
    assert!(value("cloudy_rtt_seconds_count") >= 1.0, "round trips are measured");
    assert!(value("cloudy_storage_used_bytes") > 0.0);
    assert!(m.contains("libp2p_swarm_connections_established_total"), "libp2p's own metrics");
    assert!(m.contains("libp2p_bandwidth_bytes_total"), "bytes on the wire per transport");
    assert!(m.contains("libp2p_gossipsub_") && m.contains("libp2p_kad_"), "gossip and DHT traffic");
    let reader = c[2].metrics().await;
    assert!(
        metric(&reader, "cloudy_storage_requests_total{outcome=\"get_ok\"}").unwrap_or(0.0) >= 1.0,
        "{reader}"
    );
    let mut served = 0.0;
    for node in c.members() {
        served += metric(&node.metrics().await, "cloudy_storage_bytes_total{direction=\"served\"}")
            .unwrap_or(0.0);
    }
    assert!(served >= data.len() as f64, "the servers served the file's shares: {served} bytes");

    // n − k = 1 server killed: still readable; two killed: a clear error, no file.
    c[1].kill9().await;
    wait_storage_servers(&c[2], 2).await;
    let again = c.dir().join("again.bin");
    let out = c[2].cli(&["get", &cap, "-o", again.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&again).unwrap() == data, "file differs after losing a server");
    // check sees the loss (exit status 3: degraded), repair regenerates the
    // share, verify confirms (0).
    let out = c[2].cli(&["check", &cap]).await;
    assert_eq!(out.code, Some(3), "degraded: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("degraded: 2 of 3 shares are good"), "{}", out.stderr);
    let out = c[2].cli(&["check", &cap, "--json"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (report["good_shares"].as_u64(), report["healthy"].as_bool()),
        (Some(2), Some(false)),
        "{report}"
    );
    let repaired = c[2].json(&["repair", &cap, "--json"]).await;
    assert_eq!(repaired["placed"].as_array().unwrap().len(), 1, "{repaired}");
    let report = c[2].json(&["check", &cap, "--verify", "--json"]).await;
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(c[2].cli(&["check", &cap]).await.code, Some(0), "healthy after the repair");
    c[2].fails_with(&["check", &lit], "literal capability holds its file itself").await;

    c[0].kill9().await;
    wait_storage_servers(&c[2], 1).await;
    let lost = c.dir().join("lost.bin");
    c[2].fails_with(
        &["get", &cap2, "-o", lost.to_str().unwrap()],
        "not enough shares: need 2, found 1",
    )
    .await;
    assert!(!lost.exists(), "no partial file is left behind");
    let out = c[2].cli(&["check", &cap2]).await;
    assert_eq!(out.code, Some(4), "unrecoverable: {}{}", out.stdout, out.stderr);
}

/// Polls `maintain list --json` on `node` until the only file's status is `want`.
pub(crate) async fn wait_maintained(node: &Member, want: &str) -> Value {
    let what = format!("status {want}");
    node.wait_json(&["maintain", "list", "--json"], &what, 30, |v| v[0]["status"] == want).await[0]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ranges_and_automatic_repair_across_processes() {
    // Node 0 acts on a failed server after half a second.
    let fast_repair = |i: usize, text: &str| {
        if i == 0 {
            text.replace("repair_delay = \"1m\"", "repair_delay = \"500ms\"")
        } else {
            text.to_string()
        }
    };
    let mut c = Community::start_with(
        4,
        Options { config: Some(Arc::new(fast_repair)), ..Options::default() },
    )
    .await;
    for node in c.members() {
        wait_storage_servers(node, 4).await;
    }
    let data: Vec<u8> =
        (0..2_500_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    let input = c.dir().join("movie.txt");
    std::fs::write(&input, &data).unwrap();
    let out =
        c[0].cli(&["put", input.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert!(out.ok, "{}", out.stderr);
    let cap = out.stdout.trim().to_string();

    // HTTP Range on the gateway, as a browser or video player would ask.
    let ask = |range: Option<&str>, query: &str| {
        let mut req = c[1].api_get(&format!("/uri/{cap}{query}"));
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        req.send()
    };
    let resp = ask(Some("bytes=1048570-1048589"), "").await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 1048570-1048589/2500000");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(
        resp.bytes().await.unwrap(),
        &data[1048570..1048590],
        "a range across a segment boundary"
    );
    // The URL `get --url` prints opens in a player: the token is in it.
    let url = c[1].ok(&["get", &cap, "--url", "--name", "movie.txt"]).await;
    assert!(url.contains("token=") && url.contains("filename=movie.txt"), "{url}");
    let resp = reqwest::Client::new()
        .get(&url)
        .header("Range", "bytes=1048570-1048589")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206, "a player's ranged request on the --url");
    assert_eq!(resp.bytes().await.unwrap(), &data[1048570..1048590]);
    let wrong = url.replace("token=", "token=x");
    assert_eq!(reqwest::get(&wrong).await.unwrap().status(), 401, "a wrong token is refused");
    let resp = ask(Some("bytes=-10"), "").await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.bytes().await.unwrap()),
        (206, data[2_499_990..].to_vec().into())
    );
    let resp = ask(Some("bytes=2500000-"), "").await.unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */2500000");
    let resp = ask(None, "?filename=movie.txt").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["content-length"], "2500000");
    assert!(resp.bytes().await.unwrap() == data, "whole file over HTTP");

    // The upload is maintained by node 0 (its first check comes later).
    let listed = c[0].json(&["maintain", "list", "--json"]).await;
    assert!(
        listed[0]["verify_cap"].as_str().unwrap().starts_with("cloudy:chk-verify:"),
        "{listed}"
    );
    // Kill a holder other than node 0: node 0 repairs on its own.
    let report = c[0].json(&["check", &cap, "--json"]).await;
    let ids: Vec<String> = c.members().iter().map(|n| n.peer_id().to_string()).collect();
    let holders: Vec<String> = report["shares"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let victim = (1..4).find(|i| holders.contains(&ids[*i])).expect("a holder besides node 0");
    c[victim].kill9().await;
    let entry = wait_maintained(&c[0], "repaired").await;
    assert_eq!(entry["good_shares"], 3, "{entry}");
    let report = c[0].json(&["check", &cap, "--verify", "--json"]).await;
    assert_eq!(report["healthy"], true, "{report}");
    let others: Vec<usize> = (0..4).filter(|i| *i != victim && *i != 0).collect();
    let fetched = c.dir().join("fetched.bin");
    let out = c[others[0]].cli(&["get", &cap, "-o", fetched.to_str().unwrap()]).await;
    assert!(out.ok && std::fs::read(&fetched).unwrap() == data, "{}", out.stderr);

    // The list can be edited by hand.
    let out = c[0].cli(&["maintain", "remove", &cap]).await;
    assert!(out.ok && out.stdout.contains("no longer maintained"), "{}", out.stderr);
    assert!(c[0].json(&["maintain", "list", "--json"]).await.as_array().unwrap().is_empty());
    c[0].fails_with(&["maintain", "add", "cloudy:chk:bad"], "read capability").await;
}

/// True when a half-written share (`*.tmp-*`) is in `home`'s share store.
fn writing_share(home: &Path) -> bool {
    let shares = home.join("data").join("shares");
    std::fs::read_dir(shares).into_iter().flatten().flatten().filter(|d| d.path().is_dir()).any(
        |d| {
            std::fs::read_dir(d.path())
                .into_iter()
                .flatten()
                .flatten()
                .any(|f| f.file_name().to_string_lossy().contains(".tmp-"))
        },
    )
}

/// Starts a put of `file` on node 0 and, as soon as one of `servers`
/// is writing a share, kills it; returns the put's outcome and the victim.
async fn put_and_kill_a_server(
    c: &mut Community,
    file: &Path,
    args: &[&str],
    servers: &[usize],
) -> (Out, usize) {
    let mut all = vec!["put", file.to_str().unwrap(), "--random-key"];
    all.extend_from_slice(args);
    let homes: Vec<_> = c.members().iter().map(|m| m.home().to_path_buf()).collect();
    let mut put = c[0].command(&all);
    let kill = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let victim = loop {
            if let Some(v) = servers.iter().copied().find(|i| writing_share(&homes[*i])) {
                break v;
            }
            assert!(tokio::time::Instant::now() < deadline, "no server started writing a share");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        c[victim].kill9().await;
        victim
    };
    let (out, victim) = tokio::join!(put.output(), kill);
    (Out::from(out.expect("run cloudy-p2p")), victim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_storage_node_during_a_put() {
    let mut c = Community::start(5).await;
    wait_storage_servers(&c[0], 5).await;
    let data: Vec<u8> =
        (0..48_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let input = c.dir().join("big.bin");
    std::fs::write(&input, &data).unwrap();

    // 4 shares, happy 3: losing one server mid-put still meets happiness.
    let (out, victim) = put_and_kill_a_server(
        &mut c,
        &input,
        &["--k", "2", "--n", "4", "--happy", "3"],
        &[1, 2, 3, 4],
    )
    .await;
    assert!(out.ok, "the put should survive one lost server: {}", out.stderr);
    let cap = out.stdout.trim().to_string();
    let alive: Vec<usize> = (1..5).filter(|i| *i != victim).collect();
    let fetched = c.dir().join("fetched.bin");
    let got = c[alive[0]].cli(&["get", &cap, "-o", fetched.to_str().unwrap()]).await;
    assert!(got.ok, "{}", got.stderr);
    assert!(std::fs::read(&fetched).unwrap() == data, "file differs");
    let report = check_json(&c[0], &["check", &cap, "--verify", "--json"]).await;
    let holders: std::collections::HashSet<String> = report["shares"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().clone())
        .map(|v| v.to_string())
        .collect();
    assert!(holders.len() >= 3, "happiness met: {report}");

    // 4 shares, happy 4, on the 4 servers left: losing one must fail cleanly.
    wait_storage_servers(&c[0], 4).await;
    let (out, second) =
        put_and_kill_a_server(&mut c, &input, &["--k", "2", "--n", "4", "--happy", "4"], &alive)
            .await;
    assert!(!out.ok, "the put cannot meet happiness: {}", out.stdout);
    assert!(
        out.stderr.contains("upload failed") && out.stderr.contains("4 needed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "one clear line: {}", out.stderr);
    // The survivors drop their half-written shares.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let survivors: Vec<usize> = (0..5).filter(|i| *i != victim && *i != second).collect();
    while survivors.iter().any(|i| writing_share(c[*i].home())) {
        assert!(tokio::time::Instant::now() < deadline, "half-written shares left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
