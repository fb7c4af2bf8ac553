//! Membership and failure detection among ten processes; the service
//! directory; a node stopped, killed and restarted; ports already taken.

use cloudy_interop_tests::{peer_state, Community, STRANGER};
use cloudy_node::process::init_local_home;
use cloudy_node::Home;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_members_detect_failures_leaves_and_returns() {
    let mut c = Community::start(10).await;
    c.wait_alive(9, 30).await;
    let ids: Vec<String> = c.members().iter().map(|m| m.peer_id().to_string()).collect();

    // Service directory: an announcement reaches everyone.
    c[1].ok(&["announce", "web", "--meta", "port=80"]).await;
    for i in [0, 5, 9] {
        let v = c[i]
            .wait_json(&["services", "web", "--json"], "the announcement", 20, |v| {
                v.as_array().is_some_and(|a| a.len() == 1)
            })
            .await;
        assert_eq!(
            (v[0]["peer_id"].as_str(), v[0]["meta"]["port"].as_str()),
            (Some(ids[1].as_str()), Some("80")),
            "{v}"
        );
    }
    c[1].fails_with(&["announce", "storage"], "is used by the node itself").await;
    let storage = c[0].json(&["services", "storage", "--json"]).await;
    let storage = storage.as_array().unwrap();
    assert!(!storage.is_empty() && storage.iter().all(|s| s["internal"] == true), "{storage:?}");
    let web = c[0].json(&["services", "web", "--json"]).await;
    assert_eq!(web[0]["internal"], false, "{web}");
    // On a fresh community availability is not guessed: there is no
    // figure (not the 50 % the prior gave) until a member was watched for
    // a minute.
    let fresh = c[0].json(&["peers", "--json"]).await;
    for p in fresh.as_array().unwrap() {
        if p["observed_secs"].as_u64().unwrap() < 60 {
            assert!(p["availability"].is_null(), "{p}");
        }
    }
    c[1].fails_with(&["announce", "x", "--meta", "novalue"], "not of the form key=value").await;
    c[1].fails_with(&["withdraw", "nothere"], "is not announced by this node").await;
    c[0].fails_with(&["peers", "not-a-peer"], "no member's peer id starts or ends with").await;
    c[0].fails_with(&["peers", STRANGER], "unknown peer").await;
    let one = c[0].json(&["peers", &ids[1], "--json"]).await;
    assert!(one[0]["services"].as_array().unwrap().iter().any(|s| s == "web"), "{one}");
    // Ids as the tables show them (`…` and the last 8 characters) name the
    // member too, wherever a peer is named.
    let shown = format!("…{}", &ids[1][ids[1].len() - 8..]);
    let same = c[0].json(&["peers", &shown, "--json"]).await;
    assert_eq!(same[0]["peer_id"].as_str(), Some(ids[1].as_str()), "{same}");
    let pinged = c[0].json(&["ping", &shown, "--json"]).await;
    assert_eq!(pinged["peer_id"].as_str(), Some(ids[1].as_str()), "{pinged}");
    let prefix = &ids[2][..20];
    assert_eq!(c[0].json(&["peers", prefix, "--json"]).await[0]["peer_id"], ids[2].as_str());
    c[0].fails_with(&["ping", "12D3KooW"], "give more characters").await;
    let status = c[0].json(&["status", "--json"]).await;
    assert_eq!(
        (status["peer_id"].as_str(), status["members"]["alive"].as_u64()),
        (Some(ids[0].as_str()), Some(9))
    );

    // kill -9 of two nodes: failed everywhere; their announcements expire.
    c[1].kill9().await;
    c[7].kill9().await;
    for i in [0, 2, 3, 4, 5, 6, 8, 9] {
        for dead in [1, 7] {
            let what = format!("node {dead} failed");
            c[i].wait_json(&["peers", "--json"], &what, 20, |v| {
                peer_state(v, &ids[dead]) == Some("failed")
            })
            .await;
        }
    }
    assert_eq!(c[9].json(&["services", "web", "--json"]).await, serde_json::json!([]));

    // A clean stop: left, and the process exits by itself with success.
    c[2].stop().await;
    for i in [0, 5, 9] {
        c[i].wait_json(&["peers", "--json"], "node 2 left", 20, |v| {
            peer_state(v, &ids[2]) == Some("left")
        })
        .await;
    }
    c[2].fails_with(&["status"], "no node is running").await;

    // The killed and the stopped come back, with new ports, and are alive again.
    for i in [1, 2] {
        c[i].restart().await;
    }
    for i in [0, 4, 9] {
        c[i].wait_json(&["peers", "--json"], "nodes 1 and 2 alive again", 30, |v| {
            peer_state(v, &ids[1]) == Some("alive") && peer_state(v, &ids[2]) == Some("alive")
        })
        .await;
    }
    c.wait_alive_on(&[1, 2], 8, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_taken_ports_says_which() {
    let c = Community::start(1).await;
    let clash = Home::new(c.dir().join("clash"));
    init_local_home(&clash, vec![]).unwrap();
    let cfg = clash.config_path();
    let text = std::fs::read_to_string(&cfg).unwrap().replace("127.0.0.1:0", c[0].api());
    std::fs::write(&cfg, text).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(cloudy_interop_tests::exe());
        cmd.arg("--home").arg(clash.root()).args(args);
        cmd.output().unwrap()
    };
    let out = run(&["up"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!(
                "cannot serve the control API on {}: address already in use",
                c[0].api()
            )),
        "{err}"
    );
    // ... and one whose QUIC port is taken.
    let quic = c[0].listen().iter().find(|a| a.contains("quic")).unwrap();
    let quic = quic.split("/p2p/").next().unwrap();
    let text: String = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(c[0].api(), "127.0.0.1:0")
        .lines()
        .map(|l| {
            if l.starts_with("listen = ") {
                format!("listen = [\"{quic}\"]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&cfg, text).unwrap();
    let out = run(&["up"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!("cannot listen on {quic}: address already in use")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_joins_with_an_invite_in_one_step() {
    let mut c = Community::start(2).await;
    c.wait_alive(1, 20).await;
    let invite = c[1].ok(&["invite"]).await;
    assert!(invite.starts_with("cloudy-join:1:"), "{invite}");

    // A new home: join creates it with the invite's addresses, then it starts.
    let home = Home::new(c.dir().join("newcomer"));
    let local = ["--port", "0", "--api", "127.0.0.1:0", "--no-mdns", "--loopback"];
    let mut args = vec!["join", invite.as_str()];
    args.extend(local);
    let out = std::process::Command::new(cloudy_interop_tests::exe())
        .arg("--home")
        .arg(home.root())
        .args(&args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("next: cloudy-p2p"),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = c.start_home(&home).await;
    c.wait_alive(2, 30).await;

    // A node already running alone joins at once, and keeps the addresses.
    let mut alone = Community::start(1).await;
    let out = alone[0].ok(&["join", &invite]).await;
    assert!(out.contains("connected to"), "{out}");
    let id = alone[0].peer_id().to_string();
    c[n].wait_json(&["peers", "--json"], "the running node joined", 30, |v| {
        peer_state(v, &id) == Some("alive")
    })
    .await;
    let config = std::fs::read_to_string(alone[0].home().join("config.toml")).unwrap();
    assert!(config.contains(c[1].peer_id()), "the invite's addresses are in the bootstrap list");
    // Addresses that lead nowhere get one plain line each.
    alone[0].fails_with(&["connect", "/ip4/127.0.0.1"], "names no port").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = format!("/ip4/127.0.0.1/tcp/{closed}");
    alone[0].fails_with(&["connect", &closed], "connection refused").await;
    alone[0].kill9().await;
}
