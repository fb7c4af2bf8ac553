//! `/cloudy/vod/1.0.0`: one request and its answer per stream, postcard in
//! length-prefixed frames. A manifest is checked against the video id and
//! a piece against the manifest by the asker, so a provider cannot slip
//! anything in.

use cloudy_overlay::frame::{read_frame, write_frame};
use futures::{AsyncRead, AsyncWrite};
use serde::{Deserialize, Serialize};

/// The protocol name.
pub const PROTOCOL: &str = "/cloudy/vod/1.0.0";
/// Largest frame: a piece, or a manifest of a very long video.
pub const MAX_FRAME: usize = 64 << 20;

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Req {
    /// The manifest of a video.
    Manifest([u8; 32]),
    /// Which pieces the provider holds.
    Have([u8; 32]),
    /// A piece.
    Piece([u8; 32], u64),
}

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resp {
    /// The encoded manifest.
    Manifest(#[serde(with = "serde_bytes")] Vec<u8>),
    /// One byte per piece: 0 not held, 1 held (fetched and cached), 2 held
    /// in the copy published on that node (its source, asked last).
    Have(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A piece's bytes.
    Piece(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Not held here.
    NotHere,
}

/// Writes one message.
pub async fn send<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> std::io::Result<()> {
    let body = postcard::to_stdvec(msg).map_err(std::io::Error::other)?;
    write_frame(w, &body, MAX_FRAME).await
}

/// Reads an answer whose first bytes must come within `first_byte`.
pub async fn recv_answer<R: AsyncRead + Unpin>(
    r: &mut R,
    first_byte: std::time::Duration,
) -> std::io::Result<Option<Resp>> {
    let frame = cloudy_overlay::frame::read_frame_answered(r, MAX_FRAME, first_byte).await?;
    let Some(body) = frame else { return Ok(None) };
    postcard::from_bytes(&body).map(Some).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("garbage on the stream: {e}"))
    })
}

/// Largest request a provider reads (a video id and a piece number).
pub const MAX_REQUEST: usize = 256;

/// Reads one message (`None` at a clean end).
pub async fn recv<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    recv_within(r, MAX_FRAME).await
}

/// Reads one request (at most [`MAX_REQUEST`] bytes, so a peer's requests
/// buffer little on a provider).
pub async fn recv_request<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Req>> {
    recv_within(r, MAX_REQUEST).await
}

async fn recv_within<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<T>> {
    let Some(body) = read_frame(r, max).await? else { return Ok(None) };
    postcard::from_bytes(&body).map(Some).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("garbage on the stream: {e}"))
    })
}
