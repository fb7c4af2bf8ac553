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

/// Reads one frame of at most `max` bytes; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
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
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}
