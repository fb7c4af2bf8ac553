//! Interop with js-libp2p: a cloudy-p2p node and a js-libp2p peer, over
//! TCP (noise + yamux) and QUIC, each side dialling. Identify, ping,
//! Kademlia under `/cloudy/kad/1.0.0` (records and providers written by
//! each side and read by the other) and gossipsub (our announcements
//! decoded by the js side from their documented JSON; its announcement
//! listed by `cloudy-p2p services`).

use cloudy_interop_tests::js::JsPeer;
use cloudy_interop_tests::Community;
use serde_json::{json, Value};
use std::time::Duration;

const TOPIC: &str = "/cloudy/membership/1";

async fn interop(transport: &str, js_dials: bool) {
    let c = Community::start(1).await;
    let node = &c[0];
    let me = node.peer_id().to_string();
    let mut js = JsPeer::start(&c.dir().join("js.log")).await;
    let tag = format!("{transport}-{}", if js_dials { "js-dials" } else { "we-dial" });

    // The connection, on the transport asked for, dialled by the side asked for.
    if js_dials {
        let ours = node
            .listen()
            .iter()
            .find(|a| a.contains(&format!("/{transport}/")))
            .expect("our address")
            .clone();
        let v = js.ok(json!({"op": "dial", "addr": ours})).await;
        assert_eq!(v["peer"], me.as_str());
    } else {
        let v = node.json(&["connect", js.addr(transport), "--json"]).await;
        assert_eq!(v["peer_id"], js.peer.as_str());
    }
    // Our side reports the connection when its handshake ends; the js
    // side registers it a moment later.
    let ours = |v: &Value| {
        v["peers"].as_array().unwrap().iter().find(|p| p["peer"] == me.as_str()).cloned()
    };
    let conns = js
        .wait(json!({"op": "connections"}), &format!("{tag}: js to list the connection"), 20, |v| {
            ours(v).is_some()
        })
        .await;
    let conn = ours(&conns).expect("connected");
    assert!(conn["addr"].as_str().unwrap().contains(&format!("/{transport}/")), "{tag}: {conn}");

    // Identify: the js side sees our protocols and agent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let info = loop {
        let v = js.call(json!({"op": "peer", "peer": me})).await;
        if v["agent"].is_string() {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{tag}: identify never completed: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let protocols: Vec<&str> =
        info["protocols"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for p in [
        "/cloudy/kad/1.0.0",
        "/ipfs/ping/1.0.0",
        "/ipfs/id/1.0.0",
        "/meshsub/1.1.0",
        "/cloudy/probe/1.0.0",
    ] {
        assert!(protocols.contains(&p), "{tag}: js does not see {p} in {protocols:?}");
    }
    assert!(info["agent"].as_str().unwrap_or_default().starts_with("cloudy-p2p/"), "{tag}: {info}");

    // Ping, both ways.
    let v = js.ok(json!({"op": "ping", "peer": me})).await;
    assert!(v["rtt"].as_f64().is_some(), "{tag}: {v}");
    let v = node.json(&["ping", &js.peer, "--json"]).await;
    assert!(v["rtt_ms"].as_f64().is_some_and(|ms| ms < 5000.0), "{tag}: {v}");

    // Kademlia: each side writes a record and a provider the other reads.
    // Our routing table learns of the js peer once identify has run on our
    // side too (it may lag the js side's): until then a put finds nobody.
    let ours = format!("/cloudy/from-rust-{tag}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = node.cli(&["dht", "put", &ours, "written by cloudy-p2p"]).await;
        if out.ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tag}: dht put kept failing: {}",
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v = js.ok(json!({"op": "get", "key": ours})).await;
    assert_eq!(v["value"], "written by cloudy-p2p", "{tag}");
    let theirs = format!("/cloudy/from-js-{tag}");
    js.ok(json!({"op": "put", "key": theirs, "value": "written by js-libp2p"})).await;
    let v = node.json(&["dht", "get", &theirs, "--json"]).await;
    assert_eq!(v["value"], "written by js-libp2p", "{tag}");
    let name = format!("rust-provides-{tag}");
    node.ok(&["dht", "provide", &name]).await;
    let what = format!("{tag}: js to find us providing");
    js.wait(json!({"op": "providers", "name": name}), &what, 20, |v| {
        v["providers"].as_array().unwrap().iter().any(|p| p["peer"] == me.as_str())
    })
    .await;
    let name = format!("js-provides-{tag}");
    js.ok(json!({"op": "provide", "name": name})).await;
    let jp = js.peer.clone();
    let what = format!("{tag}: us to find js providing");
    node.wait_json(&["dht", "providers", &name, "--json"], &what, 20, |v| {
        v["providers"].as_array().unwrap().iter().any(|p| p == jp.as_str())
    })
    .await;

    // Gossipsub: the js side decodes our heartbeats (JSON, documented in
    // overlay/src/membership/wire.rs)…
    js.ok(json!({"op": "subscribe", "topic": TOPIC})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let heartbeat = loop {
        let v = js.ok(json!({"op": "messages"})).await;
        let found = v["messages"].as_array().unwrap().iter().find_map(|m| {
            let body: Value = serde_json::from_str(m["data"].as_str()?).ok()?;
            (m["from"] == me.as_str() && body["kind"] == "alive").then_some(body)
        });
        if let Some(b) = found {
            break b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tag}: no heartbeat of ours reached js: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (heartbeat["v"].as_u64(), heartbeat["peer"].as_str()),
        (Some(1), Some(me.as_str())),
        "{tag}: {heartbeat}"
    );
    assert!(
        heartbeat["services"]["storage"].is_object(),
        "{tag}: our storage service is announced: {heartbeat}"
    );

    // … and an announcement it publishes in that format is listed by `services`.
    let incarnation =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let mut seq = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        seq += 1;
        let alive = json!({"v": 1, "kind": "alive", "peer": js.peer, "incarnation": incarnation, "seq": seq,
            "addrs": js.addrs.iter().map(|a| a.split("/p2p/").next().unwrap()).collect::<Vec<_>>(),
            "zone": "", "services": {"js-demo": {"lang": "javascript"}}});
        js.ok(json!({"op": "publish", "topic": TOPIC, "data": alive.to_string()})).await;
        let v = node.json(&["services", "js-demo", "--json"]).await;
        if v.as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["peer_id"] == js.peer.as_str() && r["meta"]["lang"] == "javascript")
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tag}: the js announcement never showed in `services`: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    js.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_libp2p_dials_us_over_tcp() {
    interop("tcp", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_js_libp2p_over_tcp() {
    interop("tcp", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_libp2p_dials_us_over_quic() {
    interop("quic-v1", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_js_libp2p_over_quic() {
    interop("quic-v1", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_tools_name_what_is_wrong() {
    let c = Community::start(1).await;
    c[0].fails_with(&["connect", "not-an-address"], "\"not-an-address\" is not a multiaddr").await;
    c[0].fails_with(&["connect", "/ip4/127.0.0.1/tcp/1"], "cannot dial").await;
    c[0].fails_with(&["ping", "nobody"], "no member's peer id starts or ends with \"nobody\"")
        .await;
    c[0].fails_with(&["ping", cloudy_interop_tests::STRANGER], cloudy_interop_tests::STRANGER)
        .await;
    c[0].fails_with(
        &["dht", "get", "/cloudy/nothing-here"],
        "no DHT record \"/cloudy/nothing-here\"",
    )
    .await;
    c[0].fails_with(&["dht", "put", "", "x"], "a DHT key cannot be empty").await;
}
