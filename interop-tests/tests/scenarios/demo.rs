//! `demo` as a new user runs it: the first `put` works on the community it
//! starts, and Ctrl-C leaves nothing behind in the temporary directory.

use cloudy_interop_tests::exe;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_takes_a_default_put_and_cleans_up_after_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = tokio::process::Command::new(exe())
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut home1 = None;
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix(&format!("{} --home ", exe().display())) {
                home1.get_or_insert_with(|| rest.split(' ').next().unwrap().to_string());
            }
            if line.contains("kill -9") {
                return;
            }
        }
        panic!("demo ended before it was ready");
    });
    ready.await.expect("demo ready within 90 s");
    let home1 = home1.expect("demo printed node1's home");
    assert!(home1.starts_with(tmp.path().to_str().unwrap()), "{home1}");

    // The first put a new user tries, with the defaults.
    let file = tmp.path().join("hello.bin");
    std::fs::write(&file, vec![42u8; 100_000]).unwrap();
    let out = tokio::process::Command::new(exe())
        .args(["--home", &home1, "put", file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the default put on the demo: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cloudy:chk:"));

    // Ctrl-C: the nodes stop and the temporary homes go.
    let pid = rustix::process::Pid::from_raw(demo.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait())
        .await
        .expect("demo exits within 30 s of Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cloudy-demo-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
