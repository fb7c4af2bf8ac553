//! Length-prefixed frames on overlay streams (`len:u32 ‖ body`, big-endian),
//! shared by the services' protocols. A length of zero or over the
//! caller's limit is refused before anything is allocated.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io::{Error, ErrorKind};

/// Writes one frame of at most `max` bytes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &[u8],
    max: usize,
) -> std::io::Result<()> {
    if body.is_empty() || body.len() > max {
        let msg = format!("frame of {} bytes is out of range (1..={max})", body.len());
        return Err(Error::new(ErrorKind::InvalidInput, msg));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

/// Reads one frame of at most `max` bytes from `peer`, its body within the
/// bytes `pace` lets that peer have in flight (waiting for room, and
/// failing with [`crate::limits::OverRate`] inside an `Other` error if
/// there is none for long); `None` at a clean end of stream.
pub async fn read_frame_paced<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    pace: Option<(&crate::limits::Pace, crate::PeerId)>,
) -> std::io::Result<Option<Vec<u8>>> {
    let Some((pace, peer)) = pace else { return read_frame(r, max).await };
    let Some(len) = read_len(r, max).await? else { return Ok(None) };
    let _room = pace.receive(peer, len).await.map_err(Error::other)?;
    read_body(r, len).await
}

/// Reads one frame of at most `max` bytes whose first bytes must arrive
/// within `first_byte` (a `TimedOut` error if not: the sender is silent);
/// the rest may take as long as it takes. `None` at a clean end of stream.
pub async fn read_frame_answered<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    first_byte: std::time::Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let silent = || Error::new(ErrorKind::TimedOut, format!("no answer within {first_byte:?}"));
    let Some(len) =
        tokio::time::timeout(first_byte, read_len(r, max)).await.map_err(|_| silent())??
    else {
        return Ok(None);
    };
    read_body(r, len).await
}

/// Reads a frame's length; `None` at a clean end of stream.
async fn read_len<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Option<usize>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("frame length {len} is out of range (1..={max})"),
        ));
    }
    Ok(Some(len))
}

/// Reads one frame of at most `max` bytes; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let Some(len) = read_len(r, max).await? else { return Ok(None) };
    read_body(r, len).await
}

/// Reads a frame's body of `len` bytes.
async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    len: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}
