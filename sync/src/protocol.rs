//! Wire protocol `/cloudy/sync/1.0.0` on overlay streams. Every message is
//! one frame (see `cloudy_overlay::frame`) holding a postcard-encoded
//! [`Request`] or [`Response`]. A stream carries one kind of session:
//!
//! - `Join` → `Joined` / `Pending` / `Refused`.
//! - `Index { folder, since }` → `Members`, then `Files` batches as the
//!   server's index changes, for as long as the stream stays open (the
//!   first batches bring everything after `since`; each says the sequence
//!   it reaches).
//! - `Block { folder, hash }` → `Data` / `Missing`, and `List { folder,
//!   hash }` (a block-list piece, see [`crate::blocklist`]) → `Data` /
//!   `Missing`, pipelined: the client may send many requests before
//!   reading, and the server answers in order.
//!
//! The overlay authenticates the peer; the server refuses any request for
//! a folder the peer is not a member of.

use crate::blocklist;
use crate::chunk::{Block, Hash};
use crate::index::{FileInfo, Kind};
use crate::path::{PathError, RelPath};
use crate::vv::VersionVector;
use futures::{AsyncRead, AsyncWrite};
use serde::{Deserialize, Serialize};

/// Protocol id.
pub const PROTOCOL: &str = "/cloudy/sync/1.0.0";
/// Largest frame: a block, or an index batch.
pub const MAX_FRAME: usize = 4 << 20;
/// Entries per `Files` batch.
pub const BATCH: usize = 500;

/// Client → server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Ask to join a folder (sent to its owner).
    Join { folder: String },
    /// Subscribe to a folder's index after sequence `since`.
    Index { folder: String, since: u64 },
    /// One block's bytes.
    Block { folder: String, hash: Hash },
    /// One block-list piece's bytes.
    List { folder: String, hash: Hash },
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Admitted: the member list and the folder's name.
    Joined { name: String, members: Vec<String> },
    /// Waiting for the owner to admit.
    Pending,
    /// Not a member (or no such folder).
    Refused { reason: String },
    /// The folder's name and members, first answer to `Index`.
    Members { name: String, members: Vec<String> },
    /// Index entries, and the sequence they bring the client up to.
    Files { files: Vec<WireFile>, seq: u64 },
    /// A block (as one byte string, not a sequence of numbers).
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The server does not have the block.
    Missing,
}

/// A [`FileInfo`] as sent: paths as text (checked on receipt), and a long
/// block list as the hashes of its pieces (`blocks` is then empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFile {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i128,
    pub mode: u32,
    pub version: Vec<(u64, u64)>,
    pub deleted: bool,
    pub modified_by: u64,
    pub blocks: Vec<(Hash, u32)>,
    pub pieces: Vec<Hash>,
}

impl From<&FileInfo> for WireFile {
    fn from(f: &FileInfo) -> Self {
        let entries = f.entries();
        let (blocks, pieces) = if entries.len() > blocklist::INLINE {
            (Vec::new(), blocklist::pieces(&entries).into_iter().map(|(h, _)| h).collect())
        } else {
            (entries, Vec::new())
        };
        WireFile {
            path: f.path.to_string(),
            kind: f.kind.clone(),
            size: f.size,
            mtime_ns: f.mtime_ns,
            mode: f.mode,
            version: f.version.pairs().collect(),
            deleted: f.deleted,
            modified_by: f.modified_by,
            blocks,
            pieces,
        }
    }
}

impl WireFile {
    /// Checks the entry from a peer: a safe path, blocks adding up to the
    /// size. `piece` gives the entries of a piece (checked against its hash
    /// by whoever fetched it).
    pub fn into_info<'a>(
        mut self,
        piece: impl Fn(&Hash) -> Option<&'a [blocklist::Entry]>,
    ) -> Result<FileInfo, PathError> {
        let path = RelPath::parse(&self.path)?;
        if !self.pieces.is_empty() {
            if !self.blocks.is_empty() {
                return Err(PathError { path: self.path, reason: "both a block list and pieces" });
            }
            for h in &self.pieces {
                let entries = piece(h).ok_or(PathError {
                    path: self.path.clone(),
                    reason: "a block-list piece is missing",
                })?;
                self.blocks.extend_from_slice(entries);
            }
        }
        let total: u64 = self.blocks.iter().map(|(_, s)| *s as u64).sum();
        if !self.deleted && self.kind == Kind::File && total != self.size {
            return Err(PathError {
                path: self.path,
                reason: "block sizes do not add up to the file size",
            });
        }
        let mut offset = 0;
        let blocks = self
            .blocks
            .into_iter()
            .map(|(hash, size)| {
                let b = Block { hash, offset, size };
                offset += size as u64;
                b
            })
            .collect();
        Ok(FileInfo {
            path,
            kind: self.kind,
            size: self.size,
            mtime_ns: self.mtime_ns,
            mode: self.mode & 0o7777,
            version: VersionVector::from_pairs(self.version),
            deleted: self.deleted,
            modified_by: self.modified_by,
            blocks,
            sequence: 0,
        })
    }
}

/// Protocol failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream failed.
    #[error("sync stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid message.
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// The peer kept asking over its request rate (it was cut off).
    #[error(transparent)]
    OverRate(#[from] cloudy_overlay::limits::OverRate),
}

/// Sends one message.
pub async fn send<W: AsyncWrite + Unpin, M: Serialize>(
    w: &mut W,
    m: &M,
) -> Result<(), ProtocolError> {
    let body = postcard::to_stdvec(m).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    cloudy_overlay::frame::write_frame(w, &body, MAX_FRAME).await.map_err(ProtocolError::Io)
}

/// Largest request a server reads (requests name a folder and a hash), so
/// a peer's sessions buffer little on a server.
pub const MAX_REQUEST: usize = 4096;

/// Receives one message; `None` at a clean end of stream.
pub async fn recv<R: AsyncRead + Unpin, M: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<Option<M>, ProtocolError> {
    recv_within(r, MAX_FRAME).await
}

/// Receives one request (at most [`MAX_REQUEST`] bytes); `None` at a clean
/// end of stream.
pub async fn recv_request<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<Request>, ProtocolError> {
    recv_within(r, MAX_REQUEST).await
}

async fn recv_within<R: AsyncRead + Unpin, M: for<'de> Deserialize<'de>>(
    r: &mut R,
    max: usize,
) -> Result<Option<M>, ProtocolError> {
    let Some(frame) =
        cloudy_overlay::frame::read_frame(r, max).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ProtocolError::Malformed(e.to_string()),
            _ => ProtocolError::Io(e),
        })?
    else {
        return Ok(None);
    };
    postcard::from_bytes(&frame).map(Some).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_roundtrip_and_garbage_is_malformed() {
        let f = WireFile {
            path: "a/b".into(),
            kind: Kind::File,
            size: 7,
            mtime_ns: 5,
            mode: 0o644,
            version: vec![(1, 2)],
            deleted: false,
            modified_by: 1,
            blocks: vec![([3; 32], 7)],
            pieces: vec![],
        };
        let mut buf = Vec::new();
        send(&mut buf, &Response::Files { files: vec![f.clone()], seq: 9 }).await.unwrap();
        let got: Response = recv(&mut futures::io::Cursor::new(buf)).await.unwrap().unwrap();
        assert_eq!(got, Response::Files { files: vec![f.clone()], seq: 9 });
        let none = |_: &Hash| None;
        let info = f.clone().into_info(none).unwrap();
        assert_eq!(WireFile::from(&info), f);
        // Bad entries from a peer.
        assert!(WireFile { path: "../etc/passwd".into(), ..f.clone() }.into_info(none).is_err());
        assert!(WireFile { size: 8, ..f.clone() }.into_info(none).is_err());
        // A long list goes as pieces, and comes back from them.
        let entries: Vec<blocklist::Entry> =
            (0..200u32).map(|i| (*blake3::hash(&i.to_le_bytes()).as_bytes(), 10)).collect();
        let long =
            WireFile { blocks: entries.clone(), size: 2000, ..f.clone() }.into_info(none).unwrap();
        let wire = WireFile::from(&long);
        assert!(wire.blocks.is_empty() && !wire.pieces.is_empty());
        let pieces = blocklist::pieces(&entries);
        let lookup = |h: &Hash| pieces.iter().find(|(p, _)| p == h).map(|(_, e)| *e);
        assert_eq!(wire.clone().into_info(lookup).unwrap(), long);
        let err = wire.clone().into_info(none).unwrap_err();
        assert!(err.to_string().contains("piece is missing"), "{err}");
        assert!(WireFile { blocks: vec![([3; 32], 7)], ..wire }.into_info(lookup).is_err());
        let mut junk = Vec::new();
        cloudy_overlay::frame::write_frame(&mut junk, &[0xff, 0xff, 0xff], MAX_FRAME)
            .await
            .unwrap();
        let err = recv::<_, Request>(&mut futures::io::Cursor::new(junk)).await.unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed(_)), "{err}");
    }
}
