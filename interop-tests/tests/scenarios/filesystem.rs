//! The filesystem on the grid across processes: aliases, directories,
//! `cp -r` both ways, `mv`, `ln`, `rm`, `tree`, mutable files, two nodes
//! writing one directory, the gateway's paths, deep-check and repair, and
//! bad input.

use super::lossy::pseudo_random;
use super::storage::wait_storage_servers;
use cloudy_interop_tests::{Community, Member, Options};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Sizes of [`make_tree`]'s files: empty, literal, one segment, several.
const SIZES: [usize; 5] = [0, 30, 4096, 70_000, 1_300_000];
/// The same without the multi-segment files, for copies of many files.
const SMALLER: [usize; 5] = [0, 30, 4096, 20_000, 200_000];

/// A local tree of `files` files of the `sizes` in turn, in nested
/// directories, plus an empty one; trees of different `seed`s share no
/// file contents.
pub(crate) fn make_tree(
    root: &Path,
    files: usize,
    sizes: &[usize],
    seed: u32,
) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 4)).join(if i % 3 == 0 { "deep" } else { "" });
        std::fs::create_dir_all(&dir).unwrap();
        let size = sizes[i % sizes.len()];
        let data = pseudo_random(size, seed + i as u32);
        let path = dir.join(format!("f{i:03}.bin"));
        std::fs::write(&path, &data).unwrap();
        out.push((path.strip_prefix(root).unwrap().to_path_buf(), data));
    }
    out
}

fn names(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

async fn ls(node: &Member, path: &str) -> Value {
    node.json(&["ls", "--json", path]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_copies_and_mutable_files_across_processes() {
    // Nothing maintained on its own until the end, so that the damage of a
    // killed server stays for deep-check to find.
    let by_hand =
        |_: usize, text: &str| text.replace("maintain_uploads = true", "maintain_uploads = false");
    let opts = Options { config: Some(std::sync::Arc::new(by_hand)), ..Options::default() };
    let mut c = Community::start_with(4, opts).await;
    for node in c.members() {
        wait_storage_servers(node, 4).await;
    }
    let dir = c.dir().to_path_buf();
    let home = c[0].ok(&["alias", "create", "home"]).await;
    assert!(home.contains("cloudy:dir-read:"), "{home}");
    let caps: Value = c[0].json(&["alias", "list", "--json"]).await;
    let root = caps["home"].as_str().unwrap().to_string();
    let root_ro = home.lines().last().unwrap().to_string();

    // cp -r a tree in, list it elsewhere, copy it back out byte for byte.
    let src = dir.join("src");
    let files = make_tree(&src, 40, &SIZES, 0);
    c[0].ok(&["cp", "-r", src.to_str().unwrap(), "home:backup"]).await;
    c[2].ok(&["alias", "add", "shared", &root_ro]).await;
    let top = ls(&c[2], "shared:backup").await;
    assert_eq!(names(&top), vec!["d0", "d1", "d2", "d3", "empty"]);
    assert_eq!(top["writable"], false);
    let out = dir.join("out");
    c[2].ok(&["cp", "-r", "shared:backup", out.to_str().unwrap()]).await;
    for (rel, data) in &files {
        assert!(std::fs::read(out.join(rel)).unwrap() == *data, "{} differs", rel.display());
    }
    assert!(out.join("empty").is_dir(), "empty directories are copied too");
    let tree = c[2].ok(&["tree", "shared:backup/d0"]).await;
    assert!(tree.contains("deep") && tree.contains("f000.bin"), "{tree}");

    // The read-only alias cannot change anything: one clear line.
    let one = dir.join("one.txt");
    std::fs::write(&one, b"one little file, longer than a literal capability holds").unwrap();
    c[2].fails_with(&["cp", one.to_str().unwrap(), "shared:one.txt"], "read-only").await;

    // Two nodes write the same directory at once (node 1 holds its write
    // capability), then mv, ln and rm; every node sees the result.
    c[1].ok(&["alias", "add", "home", &root]).await;
    let two = dir.join("two.txt");
    std::fs::write(&two, b"two").unwrap();
    let (args_a, args_b) = (
        ["cp", one.to_str().unwrap(), "home:inbox/"],
        ["cp", two.to_str().unwrap(), "home:inbox/"],
    );
    let (a, b) = tokio::join!(c[0].cli(&args_a), c[1].cli(&args_b));
    assert!(a.ok && b.ok, "{} {}", a.stderr, b.stderr);
    c[0].ok(&["mv", "home:inbox/one.txt", "home:inbox/uno.txt"]).await;
    c[1].ok(&["mv", "home:inbox/two.txt", "home:backup/"]).await;
    c[0].ok(&["ln", "home:backup/d1", "home:inbox/link-to-d1"]).await;
    c[0].ok(&["rm", "home:backup/d3"]).await;
    let inbox = ls(&c[3], &format!("{root_ro}/inbox")).await;
    assert_eq!(names(&inbox), vec!["link-to-d1", "uno.txt"]);
    assert!(names(&ls(&c[2], "shared:backup").await).contains(&"two.txt".to_string()));
    assert!(!names(&ls(&c[2], "shared:backup").await).contains(&"d3".to_string()));
    let got = dir.join("uno.txt");
    c[3].ok(&["get", &format!("{root_ro}/inbox/uno.txt"), "-o", got.to_str().unwrap()]).await;
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&one).unwrap());

    // Mutable files: made, changed in place, read by another node; the
    // directory entry follows the change.
    let v1 = dir.join("v1.txt");
    std::fs::write(&v1, pseudo_random(100_000, 9)).unwrap();
    let stored: Value = c[0].json(&["put", "--mutable", "--json", v1.to_str().unwrap()]).await;
    let wcap = stored["cap"].as_str().unwrap().to_string();
    assert!(wcap.starts_with("cloudy:mut:"), "{wcap}");
    c[0].ok(&["ln", &wcap, "home:notes.txt"]).await;
    let v2 = dir.join("v2.txt");
    std::fs::write(&v2, b"the second version of the notes, long enough for a server").unwrap();
    c[1].ok(&["put", v2.to_str().unwrap(), "home:notes.txt"]).await;
    let got = dir.join("notes.txt");
    c[3].ok(&["get", &format!("{root_ro}/notes.txt"), "-o", got.to_str().unwrap()]).await;
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&v2).unwrap());
    let ro_entry = ls(&c[2], "shared:").await;
    let notes =
        ro_entry["entries"].as_array().unwrap().iter().find(|e| e["name"] == "notes.txt").unwrap();
    assert!(notes["cap"].as_str().unwrap().starts_with("cloudy:mut-read:"), "{notes}");

    // Backups: a snapshot, one with nothing changed (nothing read, no
    // directory made), one after a change; Latest follows. The tree
    // backed up shares no contents with `backup`, so that what the kill
    // below takes from `backup` is not stored a second time elsewhere.
    let src = dir.join("bsrc");
    let files = make_tree(&src, 40, &SIZES, 1000);
    let first = c[0].ok(&["backup", src.to_str().unwrap(), "home:bk"]).await;
    assert!(first.contains("(40 stored, 0 unchanged)"), "{first}");
    let second = c[0].ok(&["backup", src.to_str().unwrap(), "home:bk"]).await;
    assert!(second.contains("(0 stored, 40 unchanged)") && second.contains("(0 new"), "{second}");
    let (changed, _) = &files[1];
    std::fs::write(src.join(changed), b"changed after the first backup").unwrap();
    let third = c[0].ok(&["backup", src.to_str().unwrap(), "home:bk"]).await;
    assert!(third.contains("(1 stored, 39 unchanged)"), "{third}");
    let archives = ls(&c[2], "shared:bk/Archives").await;
    assert_eq!(archives["entries"].as_array().unwrap().len(), 3, "{archives}");
    let latest = dir.join("latest.bin");
    let rel = changed.to_str().unwrap();
    c[2].ok(&["get", &format!("shared:bk/Latest/{rel}"), "-o", latest.to_str().unwrap()]).await;
    assert_eq!(std::fs::read(&latest).unwrap(), b"changed after the first backup");

    // The gateway: a file by path, a listing as JSON and as a page.
    let enc = |s: &str| s.replace(':', "%3A");
    let r = c[0].api_get(&format!("/uri/{}/inbox/uno.txt", enc(&root))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), std::fs::read(&one).unwrap().as_slice());
    let r = c[0].api_get(&format!("/uri/{}/inbox?t=json", enc(&root))).send().await.unwrap();
    let j: Value = r.json().await.unwrap();
    assert_eq!(names(&j), vec!["link-to-d1", "uno.txt"]);
    let page = c[0].api_get(&format!("/uri/{}/backup", enc(&root_ro))).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("d0") && page.contains("read-only"), "{page}");
    let r = c[0].api_get(&format!("/uri/{}/nothing/here", enc(&root))).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Bad input, one clear line each.
    c[0].fails_with(&["ls", "nosuch:x"], "unknown alias \"nosuch\"").await;
    let mut tampered = root.clone().into_bytes();
    let i = tampered.len() - 15;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    c[0].fails_with(&["ls", &tampered], "changed or mistyped").await;
    c[0].fails_with(&["ls", "home:backup/d0/deep/f000.bin"], "not a directory").await;
    c[0].fails_with(&["rm", "home:no-such-entry"], "no entry").await;

    // Deep check: healthy; after a server dies, degraded; repair brings
    // everything back on the servers left.
    let healthy = c[0].json(&["deep-check", "--json", "home:"]).await;
    assert_eq!(healthy["problems"].as_array().unwrap().len(), 0, "{healthy}");
    c[0].ok(&["check", &wcap]).await;
    c[3].kill9().await;
    c.wait_alive_on(&[0], 2, 60).await;
    let out = c[0].cli(&["deep-check", "home:backup"]).await;
    assert_eq!(out.code, Some(3), "degraded: {} {}", out.stdout, out.stderr);
    let repaired = c[0].json(&["deep-check", "--repair", "--json", "home:backup"]).await;
    let problems = repaired["problems"].as_array().unwrap();
    assert!(problems.iter().all(|p| p["repaired"] == true), "{repaired}");
    assert!(c[0].cli(&["deep-check", "home:backup"]).await.ok, "healthy after repair");
    // Maintained, the rest of the alias is repaired by upkeep on its own.
    c[0].ok(&["maintain", "add", &root]).await;
    let maintained = c[0].ok(&["maintain", "list"]).await;
    assert!(maintained.contains("tree") && maintained.contains(&root_ro), "{maintained}");
    cloudy_interop_tests::wait_until("the maintained tree healthy again", 90, || {
        std::process::Command::new(cloudy_interop_tests::exe())
            .arg("--home")
            .arg(c[0].home())
            .args(["deep-check", "home:"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
}

/// `rclone args…` against the WebDAV mount of `root` on `node`, with a
/// config made of environment variables only.
async fn rclone(node: &Member, root: &str, dir: &Path, args: &[&str]) -> String {
    let token = std::fs::read_to_string(node.home().join("api.token")).unwrap();
    let url = format!("http://{}/dav/{}", node.api(), root.replace(':', "%3A"));
    let out = tokio::process::Command::new("rclone")
        .args(args)
        .args(["--transfers", "8", "--checkers", "8", "--low-level-retries", "2", "--retries", "1"])
        .env("RCLONE_CONFIG", dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_GRID_TYPE", "webdav")
        .env("RCLONE_CONFIG_GRID_URL", url)
        .env("RCLONE_CONFIG_GRID_VENDOR", "other")
        .env("RCLONE_CONFIG_GRID_BEARER_TOKEN", token.trim())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), out)
        .await
        .expect("rclone finishes within 5 minutes")
        .expect("rclone runs (Debian package rclone)");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "rclone {args:?} failed: {stderr}");
    format!("{stdout}{stderr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_a_tree_through_webdav_and_other_nodes_see_it() {
    let c = Community::start(3).await;
    for node in c.members() {
        wait_storage_servers(node, 3).await;
    }
    let dir = c.dir().to_path_buf();
    c[0].ok(&["alias", "create", "home"]).await;
    let caps: Value = c[0].json(&["alias", "list", "--json"]).await;
    let root = caps["home"].as_str().unwrap().to_string();
    c[2].ok(&["alias", "add", "home", &root]).await;

    // 500 files of mixed sizes in nested directories, in; checked
    // byte for byte against the source; out again.
    let src = dir.join("src");
    let files = make_tree(&src, 500, &SMALLER, 0);
    rclone(&c[0], &root, &dir, &["copy", src.to_str().unwrap(), "grid:tree"]).await;
    rclone(&c[0], &root, &dir, &["check", "--download", src.to_str().unwrap(), "grid:tree"]).await;
    let out = dir.join("out");
    rclone(&c[0], &root, &dir, &["copy", "grid:tree", out.to_str().unwrap()]).await;
    for (rel, data) in &files {
        assert!(std::fs::read(out.join(rel)).unwrap() == *data, "{} differs", rel.display());
    }

    // Rename and delete through the mount; another node's `ls` sees both.
    let (first, _) = &files[0];
    let first = first.to_str().unwrap();
    let renamed = first.replace("f000", "renamed");
    rclone(
        &c[0],
        &root,
        &dir,
        &["moveto", &format!("grid:tree/{first}"), &format!("grid:tree/{renamed}")],
    )
    .await;
    let (second, _) = &files[1];
    rclone(&c[0], &root, &dir, &["deletefile", &format!("grid:tree/{}", second.to_str().unwrap())])
        .await;
    let parent = |p: &str| p.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string());
    let there = names(&ls(&c[2], &format!("home:tree/{}", parent(first))).await);
    assert!(
        there.contains(&"renamed.bin".to_string()) && !there.contains(&"f000.bin".to_string()),
        "{there:?}"
    );
    let there = names(&ls(&c[2], &format!("home:tree/{}", parent(second.to_str().unwrap()))).await);
    assert!(!there.contains(&"f001.bin".to_string()), "{there:?}");
    // A file written through the mount reads back through the CLI.
    let got = dir.join("back.bin");
    c[2].ok(&[
        "get",
        &format!("home:tree/{}", files[2].0.to_str().unwrap()),
        "-o",
        got.to_str().unwrap(),
    ])
    .await;
    assert!(std::fs::read(&got).unwrap() == files[2].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_in_the_middle_of_directory_updates_leaves_the_directory_whole() {
    let mut c = Community::start(4).await;
    for node in c.members() {
        wait_storage_servers(node, 4).await;
    }
    c[0].ok(&["alias", "create", "home"]).await;
    let caps: Value = c[0].json(&["alias", "list", "--json"]).await;
    let root = caps["home"].as_str().unwrap().to_string();
    c[1].ok(&["alias", "add", "home", &root]).await;
    c[0].ok(&["mkdir", "home:busy"]).await;
    // Node 0 adds files one update at a time (each small enough to live in
    // its capability) until it is killed.
    let dir = c.dir().to_path_buf();
    let home0 = c[0].home().to_path_buf();
    let writer = tokio::spawn(async move {
        for i in 0..400 {
            let f = dir.join(format!("n{i:03}.txt"));
            std::fs::write(&f, format!("file number {i}")).unwrap();
            let ok = tokio::process::Command::new(cloudy_interop_tests::exe())
                .arg("--home")
                .arg(&home0)
                .args(["cp", f.to_str().unwrap(), &format!("home:busy/n{i:03}.txt")])
                .output()
                .await
                .is_ok_and(|o| o.status.success());
            if !ok {
                return i;
            }
        }
        400
    });
    c[1].wait_json(&["ls", "--json", "home:busy"], "ten entries", 60, |v| {
        v["entries"].as_array().is_some_and(|e| e.len() >= 10)
    })
    .await;
    c[0].kill9().await;
    let acknowledged = writer.await.unwrap();
    assert!(acknowledged < 400, "the writer was cut off by the kill");
    // The directory reads whole on the others: no entry that does not
    // decode, every acknowledged file present, and only files that were
    // written, each with its contents.
    c.wait_alive_on(&[1], 2, 60).await;
    for i in 1..4 {
        let listing = ls(&c[i], &format!("{root}/busy")).await;
        assert!(listing["bad"].as_array().unwrap().is_empty(), "{listing}");
        let got = names(&listing);
        for n in 0..acknowledged {
            assert!(
                got.contains(&format!("n{n:03}.txt")),
                "node {i}: n{n:03}.txt acknowledged but missing"
            );
        }
        assert!(
            got.len() <= acknowledged + 1,
            "node {i}: {} entries, {acknowledged} written",
            got.len()
        );
        for e in listing["entries"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            let n: usize = name[1..4].parse().unwrap();
            let out = c[i].ok(&["get", e["cap"].as_str().unwrap()]).await;
            assert_eq!(out, format!("file number {n}"), "{name}");
        }
    }
}
