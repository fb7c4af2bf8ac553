//! `/cloudy/stream/1.0.0`: one QUIC stream per pair of neighbours watching
//! a channel, carrying postcard messages in length-prefixed frames
//! ([`cloudy_overlay::frame`]).
//!
//! The peer that opens the stream sends [`Msg::Hello`] naming the channel;
//! the other answers [`Msg::Welcome`] or [`Msg::Refuse`] (not watching it,
//! or no room for another neighbour). From then on the link is symmetric:
//! either side tells what it holds ([`Msg::Have`], on every new chunk the
//! other neither holds nor heard of, and at least once a second), asks for chunks ([`Msg::Want`]) and answers
//! with [`Msg::Chunk`] or [`Msg::Missing`]. The publisher also sends
//! chunks nobody asked for (its push). Every chunk is checked against the
//! channel's key before it is used.

use crate::chunk::{Chunk, MAX_DATA};
use crate::window::BufferMap;
use cloudy_overlay::frame::{read_frame, write_frame};
use futures::{AsyncRead, AsyncWrite};
use serde::{Deserialize, Serialize};

/// The protocol name.
pub const PROTOCOL: &str = "/cloudy/stream/1.0.0";
/// Largest frame: a chunk and its header.
pub const MAX_FRAME: usize = MAX_DATA + 1024;
/// Most sequence numbers in one [`Msg::Want`].
pub const MAX_WANT: usize = 64;

/// One message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// First message of the opener: the channel id.
    Hello {
        /// The channel id.
        channel: String,
    },
    /// The session is open.
    Welcome,
    /// The session is refused, and why.
    Refuse {
        /// Why.
        reason: String,
    },
    /// What the sender holds.
    Have(BufferMap),
    /// Chunks the sender asks for.
    Want(Vec<u64>),
    /// A chunk.
    Chunk(Chunk),
    /// The sender does not have (or will not send) this chunk.
    Missing(u64),
}

/// Protocol failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The stream failed or closed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a message.
    #[error("garbage on the stream: {0}")]
    Garbage(String),
}

/// Writes one message.
pub async fn send<W: AsyncWrite + Unpin>(w: &mut W, msg: &Msg) -> Result<(), WireError> {
    let body = postcard::to_stdvec(msg).map_err(|e| WireError::Garbage(e.to_string()))?;
    Ok(write_frame(w, &body, MAX_FRAME).await?)
}

/// Writes a chunk without copying it into a [`Msg`] first.
pub async fn send_chunk<W: AsyncWrite + Unpin>(w: &mut W, chunk: &Chunk) -> Result<(), WireError> {
    #[derive(Serialize)]
    enum Ref<'a> {
        #[allow(dead_code)]
        Hello,
        #[allow(dead_code)]
        Welcome,
        #[allow(dead_code)]
        Refuse,
        #[allow(dead_code)]
        Have,
        #[allow(dead_code)]
        Want,
        Chunk(&'a Chunk),
    }
    let body =
        postcard::to_stdvec(&Ref::Chunk(chunk)).map_err(|e| WireError::Garbage(e.to_string()))?;
    Ok(write_frame(w, &body, MAX_FRAME).await?)
}

/// Reads one message; `None` when the peer closed the stream.
pub async fn recv<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Msg>, WireError> {
    let Some(body) = read_frame(r, MAX_FRAME).await? else { return Ok(None) };
    let msg: Msg = postcard::from_bytes(&body).map_err(|e| WireError::Garbage(e.to_string()))?;
    if let Msg::Want(seqs) = &msg {
        if seqs.len() > MAX_WANT {
            return Err(WireError::Garbage(format!(
                "want of {} chunks (most is {MAX_WANT})",
                seqs.len()
            )));
        }
    }
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::Channel;

    #[test]
    fn messages_round_trip_and_garbage_is_named() {
        futures::executor::block_on(async {
            let ch = Channel::generate();
            let chunk = ch.sign(5, 1, crate::chunk::KEY, vec![7; 1000]);
            let mut buf = Vec::new();
            send(&mut buf, &Msg::Hello { channel: ch.id().to_string() }).await.unwrap();
            send_chunk(&mut buf, &chunk).await.unwrap();
            send(&mut buf, &Msg::Want(vec![1, 2])).await.unwrap();
            let mut r = futures::io::Cursor::new(buf);
            assert_eq!(
                recv(&mut r).await.unwrap(),
                Some(Msg::Hello { channel: ch.id().to_string() })
            );
            assert_eq!(
                recv(&mut r).await.unwrap(),
                Some(Msg::Chunk(chunk)),
                "send_chunk encodes like Msg::Chunk"
            );
            assert_eq!(recv(&mut r).await.unwrap(), Some(Msg::Want(vec![1, 2])));
            assert_eq!(recv(&mut r).await.unwrap(), None);
            let mut bad = futures::io::Cursor::new(vec![0, 0, 0, 3, 0xff, 0xff, 0xff]);
            assert!(matches!(recv(&mut bad).await, Err(WireError::Garbage(_))));
            let mut huge = Vec::new();
            send(&mut huge, &Msg::Want((0..100).collect())).await.unwrap();
            let err = recv(&mut futures::io::Cursor::new(huge)).await.unwrap_err();
            assert!(err.to_string().contains("want of 100 chunks"), "{err}");
        });
    }
}
