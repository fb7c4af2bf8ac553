//! Private communities across real processes: admission by invite, and
//! strangers, reused, expired and forged invites and forged certificates
//! refused with one clear line.

use cloudy_interop_tests::{exe, peer_state, wait_until, Community, Options, Out};
use cloudy_node::Home;
use std::path::{Path, PathBuf};

/// `cloudy-p2p --home HOME join INVITE` with local options.
pub(crate) async fn join(home: &Path, invite: &str) -> Out {
    let out = tokio::process::Command::new(exe())
        .arg("--home")
        .arg(home)
        .args(["join", invite, "--loopback", "--no-mdns", "--port", "0", "--api", "127.0.0.1:0"])
        .output()
        .await
        .expect("run cloudy-p2p join");
    out.into()
}

/// Homes named `names` (in the community's directory), each joined with
/// one invite of node 0 made for them all.
pub(crate) async fn joined(c: &Community, names: &[&str]) -> Vec<PathBuf> {
    let uses = names.len().to_string();
    let invite = c[0].json(&["invite", "--uses", &uses, "--json"]).await["invite"]
        .as_str()
        .unwrap()
        .to_string();
    let mut homes = Vec::new();
    for name in names {
        let home = c.dir().join(name);
        let out = join(&home, &invite).await;
        assert!(out.ok, "join: {}", out.stderr);
        homes.push(home);
    }
    homes
}

fn one_line_with(out: &Out, needle: &str) {
    assert!(!out.ok, "should fail; printed {}", out.stdout);
    assert!(out.stderr.contains(needle), "expected {needle:?} in {:?}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one clear line: {:?}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_community_admits_by_invite_and_refuses_strangers_and_forgeries() {
    let opts = Options { private: Some("hood".into()), ..Options::default() };
    let mut c = Community::start_with(1, opts).await;
    let st = c[0].json(&["community", "status", "--json"]).await;
    assert_eq!(st["kind"], "private");
    assert_eq!(st["role"], "admin");
    let id = st["id"].as_str().unwrap().to_string();
    assert!(c[0].ok(&["status"]).await.contains(&format!("community: private, hood ({id})")));
    // The dashboard's overview carries it (the page shows Invite to admins).
    let o: serde_json::Value =
        c[0].api_get("/ui/overview").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (o["community"]["kind"].as_str(), o["community"]["role"].as_str()),
        (Some("private"), Some("admin"))
    );

    // An invite admits one member, once.
    let invite = c[0].json(&["invite", "--json"]).await["invite"].as_str().unwrap().to_string();
    assert!(invite.starts_with("cloudy-join:2:"));
    let member = c.dir().join("member");
    let out = join(&member, &invite).await;
    assert!(out.ok, "join: {}", out.stderr);
    assert!(out.stdout.contains(&format!("joined private community {id}")), "{}", out.stdout);
    one_line_with(&join(&c.dir().join("second"), &invite).await, "this invite was already used");

    // A forged secret (one character of it changed), and an expired invite.
    let other = c[0].json(&["invite", "--json"]).await["invite"].as_str().unwrap().to_string();
    let mut forged: Vec<char> = other.chars().collect();
    let at = "cloudy-join:2:".len() + 100;
    forged[at] = if forged[at] == 'a' { 'b' } else { 'a' };
    let forged: String = forged.into_iter().collect();
    one_line_with(&join(&c.dir().join("forger"), &forged).await, "secret is wrong");
    let short = c[0].json(&["invite", "--expires", "1s", "--json"]).await;
    let expires = short["expires"].as_u64().unwrap();
    wait_until("the invite to expire", 5, || cloudy_overlay_now() > expires).await;
    one_line_with(
        &join(&c.dir().join("late"), short["invite"].as_str().unwrap()).await,
        "this invite expired",
    );

    // The member comes up and both see each other.
    let m = c.start_home(&Home::new(&member)).await;
    c.wait_alive(1, 30).await;
    let st = c[m].json(&["community", "status", "--json"]).await;
    assert_eq!((st["role"].as_str(), st["id"].as_str()), (Some("member"), Some(id.as_str())));

    // The admin names the member admin; it then admits a newcomer itself.
    c[m].fails_with(&["invite"], "not an admin").await;
    let member_id = c[m].peer_id().to_string();
    c[0].ok(&["community", "admin", "add", &member_id]).await;
    c[m].wait_json(&["community", "status", "--json"], "the member to be admin", 10, |v| {
        v["role"] == "admin"
    })
    .await;
    let from_second =
        c[m].json(&["invite", "--json"]).await["invite"].as_str().unwrap().to_string();
    let third = c.dir().join("third");
    let out = join(&third, &from_second).await;
    assert!(out.ok, "join through the second admin: {}", out.stderr);
    assert!(out.stdout.contains(&format!("admitted by {member_id}")), "{}", out.stdout);

    // The founder removes it as admin again: it stays a member, and can no
    // longer invite; the last admin cannot be removed.
    c[0].ok(&["community", "admin", "remove", &member_id]).await;
    c[m].wait_json(&["community", "status", "--json"], "the removal to arrive", 10, |v| {
        v["role"] == "member"
    })
    .await;
    c[m].fails_with(&["invite"], "not an admin").await;
    let founder = c[0].peer_id().to_string();
    c[0].fails_with(&["community", "admin", "remove", &founder], "last admin").await;
    let st = c[0].json(&["community", "status", "--json"]).await;
    assert_eq!(st["admins"], serde_json::json!([founder]), "{st}");

    // A stranger (an open node given the admin's address) is dropped and
    // learns nothing; members never list it.
    let s = c.add().await;
    let addr = c[0].listen()[0].clone();
    c[s].fails_with(&["connect", &addr], "private community this node is not a member of").await;
    let none = c[s].json(&["peers", "--json"]).await;
    assert_eq!(none.as_array().map(Vec::len), Some(0), "the stranger learnt of nobody: {none}");
    let stranger = c[s].peer_id().to_string();
    for i in [0, m] {
        let peers = c[i].json(&["peers", "--json"]).await;
        assert!(!peers.to_string().contains(&stranger), "node {i} lists the stranger: {peers}");
    }
    let file = c.dir().join("f.txt");
    // Larger than a literal capability holds: it needs storage servers.
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    let put = c[s].cli(&["put", file.to_str().unwrap()]).await;
    assert!(!put.ok, "a stranger stored a file: {}", put.stdout);
    // Nor read the community's DHT records, nor join its folders.
    c[0].ok(&["dht", "put", "hood-notes", "members only"]).await;
    assert!(c[m]
        .json(&["dht", "get", "hood-notes", "--json"])
        .await
        .to_string()
        .contains("members only"));
    let get = c[s].cli(&["dht", "get", "hood-notes"]).await;
    assert!(!get.ok, "a stranger read a DHT record: {}", get.stdout);
    let docs = c.dir().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let out = c[0].ok(&["sync", "add", docs.to_str().unwrap(), "--name", "docs"]).await;
    let folder_invite = out.split_whitespace().find(|w| w.starts_with("cloudy-sync:")).unwrap();
    let join =
        c[s].cli(&["sync", "join", folder_invite, c.dir().join("s-docs").to_str().unwrap()]).await;
    assert!(!join.ok, "a stranger joined a folder: {}", join.stdout);

    // A node that made its own certificate for this community's id (a
    // self-made community, its files edited) is refused too.
    let forger = c.dir().join("self-made");
    let home = Home::new(&forger);
    home.init(&cloudy_node::process::local_options(vec![], true)).unwrap();
    cloudy_node::community::create(&home, "fake").unwrap();
    let info_path = forger.join("community/community.json");
    let info = std::fs::read_to_string(&info_path).unwrap();
    let fake_id = serde_json::from_str::<serde_json::Value>(&info).unwrap()["id"].clone();
    std::fs::write(&info_path, info.replace(fake_id.as_str().unwrap(), &id)).unwrap();
    let f = c.start_home(&home).await;
    c[f].fails_with(&["connect", &addr], "refused this node").await;
    let peers = c[0].json(&["peers", "--json"]).await;
    assert!(!peers.to_string().contains(c[f].peer_id()), "the forger is listed: {peers}");
    let st = c[0].json(&["community", "status", "--json"]).await;
    assert!(st["refused"].as_u64().unwrap() >= 2, "{st}");
}

fn cloudy_overlay_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_member_is_cut_off_everywhere_and_for_good() {
    let opts = Options { private: Some("hood".into()), ..Options::default() };
    let mut c = Community::start_with(1, opts).await;
    let homes = joined(&c, &["m1", "m2"]).await;
    let m1 = c.start_home(&Home::new(&homes[0])).await;
    let m2 = c.start_home(&Home::new(&homes[1])).await;
    c.wait_alive(2, 30).await;
    let victim = c[m1].peer_id().to_string();
    // A member cannot evict.
    c[m2].fails_with(&["community", "evict", c[0].peer_id()], "not an admin").await;

    // The admin shares a folder with m1.
    let folder = c.dir().join("docs");
    std::fs::create_dir(&folder).unwrap();
    c[0].ok(&["sync", "add", folder.to_str().unwrap(), "--name", "docs", "--member", &victim])
        .await;

    // m1 publishes a live channel; the admin lists it.
    let (_publisher, _stdin, _) = cloudy_interop_tests::media::publish(&c[m1], "m1cam").await;
    c[0].wait_json(&["stream", "list", "--json"], "m1's channel listed", 10, |v| {
        v.to_string().contains("m1cam")
    })
    .await;

    // m2 is away while m1 is evicted.
    c[m2].stop().await;
    let t = std::time::Instant::now();
    c[0].ok(&["community", "evict", &victim, "--reason", "flooding"]).await;
    c[0].wait_json(&["peers", "--json"], "the evicted member listed as left", 5, |v| {
        peer_state(v, &victim) == Some("left")
    })
    .await;
    c[m1]
        .wait_json(&["peers", "--json"], "the evicted member cut off", 10, |v| {
            v.as_array().is_some_and(|p| p.iter().all(|p| p["state"] != "alive"))
        })
        .await;
    eprintln!("eviction to cut off on the admin and the evicted node: {:?}", t.elapsed());
    // Its channel is gone from the directory.
    c[0].wait_json(&["stream", "list", "--json"], "m1's channel gone", 5, |v| {
        !v.to_string().contains("m1cam")
    })
    .await;
    // The evicted node learns why, from the refusals of its reconnections.
    c[m1]
        .wait_json(&["community", "status", "--json"], "the evicted node to know", 20, |v| {
            v["role"].is_null() && v["problem"].as_str().is_some_and(|p| p.contains("evicted"))
        })
        .await;
    // It is no longer a member of the admin's folder.
    c[0].wait_json(&["sync", "list", "--json"], "the evicted member off the folder", 10, |v| {
        v[0]["members"].as_array().is_some_and(|m| m.len() == 1)
            && v[0]["errors"]
                .as_array()
                .is_some_and(|e| !e.iter().any(|e| e.to_string().contains(&victim)))
    })
    .await;

    // It cannot come back, also after the admin restarts.
    c[0].restart().await;
    let addr0 = c[0].listen()[0].clone();
    c[m1].fails_with(&["connect", &addr0], "was evicted").await;
    // The member that was away learns of it when it reconnects, and
    // refuses the evicted node too.
    c[m2].restart().await;
    c[m2].ok(&["connect", &addr0]).await;
    let addr2 = c[m2].listen()[0].clone();
    c[m1].fails_with(&["connect", &addr2], "was evicted").await;
    let st = c[m2].json(&["community", "status", "--json"]).await;
    assert!(st["evicted"].to_string().contains(&victim), "{st}");
    assert!(st["evicted"].to_string().contains("flooding"), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_quota_refuses_what_is_past_it_and_usage_shows_who_stores_what() {
    let quota: cloudy_interop_tests::ConfigEdit = std::sync::Arc::new(|_, text: &str| {
        text.replace("# member_quota_mib = 2560", "member_quota_mib = 1")
    });
    let opts = Options { config: Some(quota), ..Options::default() };
    let c = Community::start_with(3, opts).await;
    c.wait_alive(2, 30).await;
    for i in 0..3 {
        c[i].wait_json(&["services", "storage", "--json"], "3 storage servers", 20, |v| {
            v.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    }
    // A small file fits everywhere.
    let small = c.dir().join("small.bin");
    std::fs::write(&small, vec![5u8; 200_000]).unwrap();
    c[0].ok(&["put", small.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    // Shares of 2 MiB each are past the 1 MiB quota on the other servers:
    // refused there with the quota named, and the upload is not happy.
    let big = c.dir().join("big.bin");
    std::fs::write(&big, (0..6_000_000u32).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
        .unwrap();
    let out =
        c[0].cli(&["put", big.to_str().unwrap(), "--k", "3", "--n", "3", "--happy", "3"]).await;
    assert!(!out.ok, "a put past the quota succeeded: {}", out.stdout);
    assert!(out.stderr.contains("member quota reached"), "{}", out.stderr);
    // Usage: the others each keep the small file's share for node 0.
    let u = c[0].json(&["usage", "--json"]).await;
    assert_eq!(u["quota_here"].as_u64(), Some(1 << 20), "{u}");
    let members = u["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{u}");
    for m in members {
        let there = m["stored_there"].as_u64().unwrap_or(0);
        assert!(there > 50_000 && there <= 1 << 20, "{u}");
        assert_eq!(m["quota_there"].as_u64(), Some(1 << 20), "{u}");
    }
    let u1 = c[1].json(&["usage", "--json"]).await;
    let from0 = u1["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["peer"] == c[0].peer_id())
        .map(|m| m["stored_here"].as_u64().unwrap_or(0));
    assert!(from0.is_some_and(|b| b > 50_000), "node 1 keeps node 0's share: {u1}");
    // The same figures are metrics.
    let m = c[1].metrics().await;
    let line = format!("cloudy_storage_member_bytes{{member=\"{}\"}}", c[0].peer_id());
    assert!(m.contains(&line), "no {line} in the metrics");
    assert!(m.contains("cloudy_storage_member_quota_bytes 1048576"), "no quota in the metrics");
    assert!(c[0].ok(&["usage"]).await.contains("IT STORES FOR US"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_on_an_evicted_member_are_repaired_onto_the_others() {
    // The admin acts on a lost server after half a second.
    let fast_repair: cloudy_interop_tests::ConfigEdit = std::sync::Arc::new(|i, text: &str| {
        if i == 0 {
            text.replace("repair_delay = \"1m\"", "repair_delay = \"500ms\"")
        } else {
            text.to_string()
        }
    });
    let opts =
        Options { private: Some("hood".into()), config: Some(fast_repair), ..Options::default() };
    let mut c = Community::start_with(1, opts).await;
    for home in joined(&c, &["m1", "m2", "m3"]).await {
        c.start_home(&Home::new(&home)).await;
    }
    crate::storage::wait_storage_servers(&c[0], 4).await;
    let data: Vec<u8> =
        (0..2_500_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    let input = c.dir().join("file.bin");
    std::fs::write(&input, &data).unwrap();
    let out =
        c[0].cli(&["put", input.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    assert!(out.ok, "{}", out.stderr);
    let cap = out.stdout.trim().to_string();
    let report = c[0].json(&["check", &cap, "--json"]).await;
    let holders = report["shares"].to_string();
    let ids: Vec<String> = c.members().iter().map(|n| n.peer_id().to_string()).collect();
    let victim = (1..4).find(|i| holders.contains(&ids[*i])).expect("a holder besides node 0");
    c[0].ok(&["community", "evict", &ids[victim], "--reason", "test"]).await;
    let entry = crate::storage::wait_maintained(&c[0], "repaired").await;
    assert_eq!(entry["good_shares"], 3, "{entry}");
    let report = c[0].json(&["check", &cap, "--verify", "--json"]).await;
    assert_eq!(report["healthy"], true, "{report}");
    assert!(!report["shares"].to_string().contains(&ids[victim]), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_community_can_be_chosen_explicitly_and_made_private_later() {
    let mut c = Community::start(1).await;
    // Not while the node runs: the choice takes effect when it starts.
    c[0].fails_with(&["community", "create", "--open", "hood"], "stop it first").await;
    c[0].stop().await;
    let home = c[0].home().to_path_buf();
    let out: Out = tokio::process::Command::new(exe())
        .arg("--home")
        .arg(&home)
        .args(["community", "create", "--open", "hood"])
        .output()
        .await
        .unwrap()
        .into();
    assert!(out.ok && out.stdout.contains("community hood is open"), "{out:?}");
    c[0].restart().await;
    assert!(c[0].ok(&["status"]).await.contains("community: open, hood"));
    let st = c[0].json(&["community", "status", "--json"]).await;
    assert_eq!((st["kind"].as_str(), st["name"].as_str()), (Some("open"), Some("hood")), "{st}");
    // An open invite needs no secret.
    let invite = c[0].json(&["invite", "--json"]).await["invite"].as_str().unwrap().to_string();
    assert!(invite.starts_with("cloudy-join:1:"), "{invite}");

    // Made private later: the open choice is gone.
    c[0].stop().await;
    let out: Out = tokio::process::Command::new(exe())
        .arg("--home")
        .arg(&home)
        .args(["community", "create", "hood"])
        .output()
        .await
        .unwrap()
        .into();
    assert!(out.ok, "{out:?}");
    c[0].restart().await;
    let st = c[0].json(&["community", "status", "--json"]).await;
    assert_eq!((st["kind"].as_str(), st["name"].as_str()), (Some("private"), Some("hood")), "{st}");
    assert!(!home.join("community/open.json").exists());
}
