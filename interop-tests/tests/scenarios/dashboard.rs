//! The web dashboard in a real browser (Debian's Chromium, headless,
//! driven by playwright-core: `interop-tests/js/dashboard.mjs`) against a
//! running community; and its defences against other origins, checked
//! with plain HTTP. Screenshots are kept in `target/dashboard-screenshots`.

use cloudy_interop_tests::js::js_dir;
use cloudy_interop_tests::Community;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_runs_the_node_from_the_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: scripts/test installs Debian's chromium"
    );
    let c = Community::start(3).await;
    c.wait_alive(2, 30).await;
    // A folder on node 0 that node 2 asks to join; a video published on node 0.
    let folder = c.dir().join("docs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), b"meeting at eight").unwrap();
    let out = c[0].ok(&["sync", "add", folder.to_str().unwrap(), "--name", "docs"]).await;
    let invite = out
        .split_whitespace()
        .find(|w| w.starts_with("cloudy-sync:"))
        .expect("an invite")
        .to_string();
    let joined = c.dir().join("docs-2");
    std::fs::create_dir(&joined).unwrap();
    c[2].ok(&["sync", "join", &invite, joined.to_str().unwrap()]).await;
    let film = c.dir().join("film.ts");
    std::fs::write(&film, vec![0x47u8; 600_000]).unwrap();
    let video = c[0].ok(&["stream", "vod", "publish", film.to_str().unwrap()]).await;
    let upload = c.dir().join("photo.jpg");
    std::fs::write(
        &upload,
        (0..400_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();

    let token = std::fs::read_to_string(c[0].home().join("api.token")).unwrap();
    let cfg = serde_json::json!({
        "url": format!("http://{}/", c[0].api()),
        "token": token.trim(),
        "out": screenshots(),
        "upload": upload,
        "pending": c[2].peer_id(),
        "folder": "docs",
        "video": video,
    });
    let run = tokio::process::Command::new("node")
        .arg(js_dir().join("dashboard.mjs"))
        .arg(cfg.to_string())
        .env("CHROMIUM", &chromium)
        .current_dir(js_dir())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished in time")
        .expect("node");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{said}",
        screenshots().display()
    );
    assert_eq!(said.matches("ok: ").count(), 8, "{said}");

    // What the browser did, seen from the nodes.
    c[0].wait_json(&["sync", "status", "docs", "--json"], "node 2 admitted", 20, |v| {
        v[0]["pending"].as_array().is_some_and(|p| p.is_empty())
    })
    .await;
    cloudy_interop_tests::wait_file(&joined.join("notes.txt"), b"meeting at eight", 30).await;
    let maintained = c[0].json(&["maintain", "list", "--json"]).await;
    assert_eq!(
        maintained.as_array().map(Vec::len),
        Some(1),
        "the upload is maintained: {maintained}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_and_missing_tokens_cannot_act_on_the_node() {
    let c = Community::start(1).await;
    let base = format!("http://{}", c[0].api());
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let token = std::fs::read_to_string(c[0].home().join("api.token")).unwrap();

    // Without a session: the login page, and nothing else.
    let page = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("API token") && !page.contains("app.js"), "{page}");
    assert_eq!(http.get(format!("{base}/ui/overview")).send().await.unwrap().status(), 401);
    let wrong =
        http.post(format!("{base}/ui/login")).form(&[("token", "guess")]).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    // The right token: a session cookie that is not the token.
    let ok = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", token.trim())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains(token.trim()),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    assert_eq!(
        http.get(format!("{base}/ui/overview"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Changes with the cookie need the dashboard's header and origin; no CORS.
    let announce = |origin: Option<&str>, marked: bool| {
        let mut req = http
            .post(format!("{base}/v1/services"))
            .header("cookie", &session)
            .json(&serde_json::json!({"name": "x", "meta": {}}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if marked {
            req = req.header("x-cloudy-csrf", "1");
        }
        req.send()
    };
    for (origin, marked) in
        [(None, false), (Some("http://evil.example"), true), (Some("http://127.0.0.1:1"), true)]
    {
        let resp = announce(origin, marked).await.unwrap();
        assert_eq!(resp.status(), 403, "origin {origin:?}, header {marked}");
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        assert!(resp.text().await.unwrap().contains("cross-site request refused"));
    }
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/services"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "no CORS");
    assert_eq!(announce(Some(&base), true).await.unwrap().status(), 204);
    assert_eq!(c[0].json(&["services", "x", "--json"]).await.as_array().map(Vec::len), Some(1));
}
