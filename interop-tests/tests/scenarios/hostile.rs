//! A hostile member across real processes: `cloudy-hostile` (a member's
//! node that attacks, `src/bin/cloudy-hostile.rs`) forges an eviction,
//! opens thousands of sessions on the admin, and gossips a storm, while the
//! admin publishes a live channel to two members and the members put and
//! get files. The others carry on; the hostile member is cut off.

use cloudy_interop_tests::media::{ffmpeg_live, finished, play, publish, pump};
use cloudy_interop_tests::{metric, peer_state, Community, Options};
use cloudy_node::Home;
use std::process::Stdio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_member_is_cut_off_and_the_others_carry_on() {
    let opts = Options { private: Some("hood".into()), ..Options::default() };
    let mut c = Community::start_with(1, opts).await;
    let homes = super::community::joined(&c, &["m1", "m2", "hostile"]).await;
    let m1 = c.start_home(&Home::new(&homes[0])).await;
    let m2 = c.start_home(&Home::new(&homes[1])).await;
    c.wait_alive(2, 30).await;

    // The admin publishes a live channel; both members watch it.
    let mut ffmpeg = ffmpeg_live(16, 400);
    let (mut publisher, stdin, id) = publish(&c[0], "camera").await;
    let source = tokio::spawn(pump(ffmpeg.stdout.take().unwrap(), stdin));
    let players: Vec<_> = [m1, m2]
        .iter()
        .map(|&i| play(&c[i], "camera", &c.dir().join(format!("recv{i}.ts"))))
        .collect();
    for i in [m1, m2] {
        // Listed as a viewer (its node took part) before its status is asked.
        c[i].wait_json(&["stream", "list", "--json"], "both viewers listed", 20, |v| {
            v[0]["viewers"] == 2
        })
        .await;
        c[i].wait_json(&["stream", "status", &id, "--json"], "the viewer playing", 20, |v| {
            v["stats"]["played"].as_u64() >= Some(2)
        })
        .await;
    }

    // The hostile member attacks the admin for 8 s.
    let victim = c[m2].peer_id().to_string();
    let hostile = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloudy-hostile"))
        .arg("--home")
        .arg(&homes[2])
        .args(["--target", &c[0].listen()[0], "--victim", &victim, "--secs", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run cloudy-hostile");

    // Meanwhile the members put and get files through the grid.
    for n in 0..3u8 {
        let file = c.dir().join(format!("f{n}.bin"));
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + u32::from(n)) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let cap = c[m1].ok(&["put", file.to_str().unwrap()]).await.trim().to_string();
        let back = c.dir().join(format!("back{n}.bin"));
        c[m2].ok(&["get", &cap, "-o", back.to_str().unwrap()]).await;
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "file {n} back byte for byte");
    }
    let out = hostile.wait_with_output().await.unwrap();
    assert!(out.status.success(), "cloudy-hostile failed");
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cloudy-hostile's summary");
    assert!(summary["opened"].as_u64() >= Some(200), "the flood opened sessions: {summary}");
    assert!(summary["refused"].as_u64() >= Some(1), "the admin refused some: {summary}");
    eprintln!("hostile member: {summary}");

    // The admin cut the hostile member off for abuse.
    let m = c[0].metrics().await;
    assert!(metric(&m, "cloudy_abusive_peers_total").unwrap_or(0.0) >= 1.0, "no abusive peer");
    // The forged eviction changed nothing: the victim is a member
    // everywhere, alive, and nobody was evicted.
    for i in [0, m1] {
        let peers = c[i].json(&["peers", "--json"]).await;
        assert_eq!(peer_state(&peers, &victim), Some("alive"), "node {i}: {peers}");
        let st = c[i].json(&["community", "status", "--json"]).await;
        assert_eq!(st["evicted"], serde_json::json!([]), "node {i}: {st}");
    }
    let log = std::fs::read_to_string(c[0].home().join("node.log")).unwrap();
    assert!(
        log.contains("rejected a revocation: a revocation signed by a member, not an admin"),
        "the admin's log names the forgery"
    );

    // The channel played on through it all.
    source.await.unwrap();
    assert!(publisher.wait().await.unwrap().success());
    for (p, i) in players.into_iter().zip([m1, m2]) {
        let (ok, err) = finished(p, 60).await;
        assert!(ok, "viewer {i}: {err}");
        let st = c[i].json(&["stream", "status", &id, "--json"]).await;
        let continuity = st["continuity"].as_f64().unwrap_or(0.0);
        let (played, skipped) = (&st["stats"]["played"], &st["stats"]["skipped"]);
        eprintln!("viewer {i}: continuity {continuity}, {played} chunks played, {skipped} skipped");
        assert!(continuity >= 0.99, "viewer {i}: continuity {continuity}: {st}");
    }
    let _ = ffmpeg.wait().await;
}
