//! Progress bars for `put` and `get`, drawn on stderr only when it is a
//! terminal (scripts and pipes see nothing).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// A bar for `len` bytes (a byte counter when the length is unknown).
pub(crate) fn bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (pb, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ),
        None => (ProgressBar::no_length(), "{msg:>10} {spinner} {bytes} {binary_bytes_per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// Counts what is read through it on `bar`, and says when the input is
/// all sent (the node then still encodes and places shares).
pub(crate) struct Reading<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R> Reading<R> {
    pub(crate) fn new(inner: R, bar: ProgressBar) -> Self {
        Reading { inner, bar }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Reading<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            match buf.filled().len() - before {
                0 => self.bar.set_message("storing"),
                n => self.bar.inc(n as u64),
            }
        }
        r
    }
}

/// A bar counting `n` items (files of a recursive copy).
pub(crate) fn count_bar(n: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} files {per_sec} eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}
