//! Live media for the streaming scenarios: an ffmpeg source, a publisher
//! fed from it, players writing files, and checking what they received.

use crate::member::Member;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

/// `stream publish NAME` on `node`, reading stdin; returns the process,
/// its stdin and the channel id it printed.
pub async fn publish(node: &Member, name: &str) -> (Child, ChildStdin, String) {
    let mut child = node
        .command(&["stream", "publish", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cloudy-p2p");
    let stdin = child.stdin.take().expect("stdin");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let id = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("publish printed the id in time")
        .expect("publish's stdout")
        .expect("a line");
    (child, stdin, id)
}

/// `stream play ID -o out` on `node`.
pub fn play(node: &Member, id: &str, out: &Path) -> Child {
    node.command(&["stream", "play", id, "-o", out.to_str().expect("a UTF-8 path")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cloudy-p2p")
}

/// Waits for a player to exit (`secs` at most): `(success, stderr)`.
pub async fn finished(mut c: Child, secs: u64) -> (bool, String) {
    let mut err = String::new();
    let mut stderr = c.stderr.take().expect("stderr");
    let status = tokio::time::timeout(Duration::from_secs(secs), async {
        let _ = stderr.read_to_string(&mut err).await;
        c.wait().await
    })
    .await
    .unwrap_or_else(|_| panic!("the player did not exit within {secs} s"))
    .expect("the player's status");
    (status.success(), err)
}

/// What `ffmpeg -v error` says decoding `file` (empty: no error).
pub fn decode_errors(file: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is needed; scripts/test installs it");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An ffmpeg live source on stdout: `secs` of H.264 + AAC MPEG-TS in real
/// time, the video at `video_kbps`.
pub fn ffmpeg_live(secs: u32, video_kbps: u32) -> Child {
    let secs = secs.to_string();
    let rate = format!("{video_kbps}k");
    Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            &secs,
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-b:v",
            &rate,
            "-maxrate",
            &rate,
            "-bufsize",
            &rate,
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "mpegts", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is needed for this test; scripts/test installs it")
}

/// Copies `from` into a publisher's stdin, keeping a copy; closes stdin at the end.
pub async fn pump(mut from: impl tokio::io::AsyncRead + Unpin, mut to: ChildStdin) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.expect("read the source");
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    drop(to);
    all
}

/// Checks a viewer's received file against the source: at least half of
/// it, the source byte for byte from its first chunk, decoding cleanly.
pub fn check_received(viewer: usize, source: &[u8], file: &Path) {
    let got =
        std::fs::read(file).unwrap_or_else(|e| panic!("viewer {viewer}: {}: {e}", file.display()));
    assert!(
        got.len() >= source.len() / 2,
        "viewer {viewer} got {} of {} bytes",
        got.len(),
        source.len()
    );
    assert!(
        source.ends_with(&got),
        "viewer {viewer} has the source byte for byte from its first chunk"
    );
    assert_eq!(decode_errors(file), "", "viewer {viewer} decodes cleanly");
}
