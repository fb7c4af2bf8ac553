//! Wire protocol of storage servers, `/cloudy/storage/1.0.0`, carried on
//! overlay streams (bulk data never goes through the event loop).
//!
//! A stream is a session of requests, each answered in turn. Every message
//! is a frame: `len:u32 ‖ tag:u8 ‖ fields` (big-endian, at most
//! [`MAX_FRAME`] bytes). An upload is `Put` → `Ready`, then one `Block`
//! frame per segment, then `Finish` → `Stored`; the stored share carries a
//! lease of the uploading peer, which `Renew` extends. Anything malformed ends the
//! session with an error; nothing is stored from it.

use crate::root::Hash;
use crate::store::StorageIndex;
use futures::{AsyncRead, AsyncWrite};

/// Protocol id.
pub const PROTOCOL: &str = "/cloudy/storage/1.0.0";
/// Largest frame: a block of the largest segment plus headroom.
pub const MAX_FRAME: usize = 16 << 20;

/// Client → server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start storing share `share` of `si`, `len` bytes in all.
    Put { si: StorageIndex, share: u8, len: u64 },
    /// Next block of the upload under way.
    Block(Vec<u8>),
    /// End of the upload: hash list and root record.
    Finish { root: Vec<u8>, hashes: Vec<Hash> },
    /// Root record and hash list of a share.
    Meta { si: StorageIndex, share: u8 },
    /// One block of a share.
    Get { si: StorageIndex, share: u8, segment: u64 },
    /// Which shares of `si` the server holds.
    List { si: StorageIndex },
    /// Renew the sender's lease on every share of `si` held here.
    Renew { si: StorageIndex },
    /// How much the server stores for the sender, and its quota.
    Usage,
    /// Keep a signed slot of a mutable file or directory (wire form).
    SlotPut(Vec<u8>),
    /// Every slot held under `si`.
    Slots {
        /// Storage index.
        si: StorageIndex,
    },
    /// Which shares of `si` the server holds, with the root record and
    /// hash list of each (what `Meta` answers), so that a download knows
    /// where its shares are and can check them after one round trip.
    Find {
        /// Storage index.
        si: StorageIndex,
    },
}

/// Root record and hash list of one share, in an answer to `Find`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundMeta {
    /// Share number.
    pub share: u8,
    /// Root record.
    pub root: Vec<u8>,
    /// Hash list.
    pub hashes: Vec<Hash>,
    /// The share's one block, when the file is one segment and the block
    /// at most [`FOUND_BLOCK_MAX`] bytes: a small file is read in one
    /// round trip per server.
    pub block: Option<Vec<u8>>,
}

/// Largest block an answer to `Find` carries.
pub const FOUND_BLOCK_MAX: usize = 64 << 10;

/// Bytes of root records and hash lists one answer to `Find` carries at
/// most; shares past it are listed without (the client asks `Meta`).
pub const FOUND_META_BUDGET: usize = 1 << 20;

/// Why a server refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorKind {
    /// No room.
    Full = 1,
    /// No such share.
    NotFound = 2,
    /// The stored share is damaged.
    Damaged = 3,
    /// The request was malformed or out of order.
    BadRequest = 4,
    /// Server-side trouble.
    Internal = 5,
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Upload accepted; send blocks.
    Ready,
    /// Upload finished and durable.
    Stored,
    /// Answer to `Meta`.
    Meta { root: Vec<u8>, hashes: Vec<Hash> },
    /// Answer to `Get`.
    Block(Vec<u8>),
    /// Answer to `List`.
    Shares(Vec<u8>),
    /// Answer to `Renew`: shares covered, and when the lease ends (Unix seconds).
    Renewed { shares: u8, until: u64 },
    /// Answer to `Usage`: bytes of shares under the sender's leases, and
    /// its quota here (`u64::MAX`: none).
    Usage { bytes: u64, quota: u64 },
    /// Refusal or failure, with a message naming what was wrong.
    Error { kind: ErrorKind, message: String },
    /// Answer to `SlotPut`: kept.
    SlotStored,
    /// Answer to `SlotPut`: a newer version (or the same version with
    /// other contents) is held.
    SlotStale {
        /// The version held.
        held: u64,
    },
    /// Answer to `Slots`.
    Slots(Vec<Vec<u8>>),
    /// Answer to `Find`: every share held, and the root record and hash
    /// list of those within [`FOUND_META_BUDGET`].
    Found {
        /// Share numbers held.
        shares: Vec<u8>,
        /// Their root records and hash lists (some may be missing).
        metas: Vec<FoundMeta>,
    },
}

/// Protocol failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream failed.
    #[error("storage stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid frame.
    #[error("malformed storage message: {0}")]
    Malformed(String),
    /// The server ended the session without answering (it restarted, or
    /// does not know the request).
    #[error("the server closed the session without answering")]
    Closed,
    /// The peer kept asking over its request rate (it was cut off).
    #[error(transparent)]
    OverRate(#[from] cloudy_overlay::limits::OverRate),
}

fn malformed<T>(m: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError::Malformed(m.into()))
}

/// Reads fields out of a frame, refusing to run past its end.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ProtocolError> {
        if self.0.len() < n {
            return malformed(format!("frame ends {} bytes early", n - self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn si(&mut self) -> Result<StorageIndex, ProtocolError> {
        Ok(self.take(16)?.try_into().expect("16 bytes"))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let n = self.u64()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn hashes(&mut self) -> Result<Vec<Hash>, ProtocolError> {
        let raw = self.bytes()?;
        if raw.len() % 32 != 0 {
            return malformed("hash list length is not a multiple of 32");
        }
        Ok(raw.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect())
    }
    fn end(self) -> Result<(), ProtocolError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            malformed(format!("{} unexpected bytes at the end of a frame", self.0.len()))
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

impl Request {
    /// Encodes the frame body (tag and fields).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        match self {
            Request::Put { si, share, len } => {
                o.push(1);
                o.extend_from_slice(si);
                o.push(*share);
                o.extend_from_slice(&len.to_be_bytes());
            }
            Request::Block(b) => {
                o.push(2);
                put_bytes(&mut o, b);
            }
            Request::Finish { root, hashes } => {
                o.push(3);
                put_bytes(&mut o, root);
                put_bytes(&mut o, &hashes.concat());
            }
            Request::Meta { si, share } => {
                o.push(4);
                o.extend_from_slice(si);
                o.push(*share);
            }
            Request::Get { si, share, segment } => {
                o.push(5);
                o.extend_from_slice(si);
                o.push(*share);
                o.extend_from_slice(&segment.to_be_bytes());
            }
            Request::List { si } => {
                o.push(6);
                o.extend_from_slice(si);
            }
            Request::Renew { si } => {
                o.push(7);
                o.extend_from_slice(si);
            }
            Request::Usage => o.push(8),
            Request::SlotPut(b) => {
                o.push(9);
                put_bytes(&mut o, b);
            }
            Request::Slots { si } => {
                o.push(10);
                o.extend_from_slice(si);
            }
            Request::Find { si } => {
                o.push(11);
                o.extend_from_slice(si);
            }
        }
        o
    }

    /// Decodes a frame body.
    pub fn decode(b: &[u8]) -> Result<Request, ProtocolError> {
        let mut f = Fields(b);
        let r = match f.u8()? {
            1 => Request::Put { si: f.si()?, share: f.u8()?, len: f.u64()? },
            2 => Request::Block(f.bytes()?),
            3 => Request::Finish { root: f.bytes()?, hashes: f.hashes()? },
            4 => Request::Meta { si: f.si()?, share: f.u8()? },
            5 => Request::Get { si: f.si()?, share: f.u8()?, segment: f.u64()? },
            6 => Request::List { si: f.si()? },
            7 => Request::Renew { si: f.si()? },
            8 => Request::Usage,
            9 => Request::SlotPut(f.bytes()?),
            10 => Request::Slots { si: f.si()? },
            11 => Request::Find { si: f.si()? },
            t => return malformed(format!("unknown request tag {t}")),
        };
        f.end()?;
        Ok(r)
    }
}

impl Response {
    /// Encodes the frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        match self {
            Response::Ready => o.push(1),
            Response::Stored => o.push(2),
            Response::Meta { root, hashes } => {
                o.push(3);
                put_bytes(&mut o, root);
                put_bytes(&mut o, &hashes.concat());
            }
            Response::Block(b) => {
                o.push(4);
                put_bytes(&mut o, b);
            }
            Response::Shares(s) => {
                o.push(5);
                put_bytes(&mut o, s);
            }
            Response::Renewed { shares, until } => {
                o.push(7);
                o.push(*shares);
                o.extend_from_slice(&until.to_be_bytes());
            }
            Response::Usage { bytes, quota } => {
                o.push(8);
                o.extend_from_slice(&bytes.to_be_bytes());
                o.extend_from_slice(&quota.to_be_bytes());
            }
            Response::Error { kind, message } => {
                o.push(6);
                o.push(*kind as u8);
                put_bytes(&mut o, message.as_bytes());
            }
            Response::SlotStored => o.push(9),
            Response::SlotStale { held } => {
                o.push(10);
                o.extend_from_slice(&held.to_be_bytes());
            }
            Response::Slots(v) => {
                o.push(11);
                o.extend_from_slice(&(v.len() as u64).to_be_bytes());
                for b in v {
                    put_bytes(&mut o, b);
                }
            }
            Response::Found { shares, metas } => {
                o.push(12);
                put_bytes(&mut o, shares);
                o.extend_from_slice(&(metas.len() as u64).to_be_bytes());
                for m in metas {
                    o.push(m.share);
                    put_bytes(&mut o, &m.root);
                    put_bytes(&mut o, &m.hashes.concat());
                    match &m.block {
                        Some(b) => {
                            o.push(1);
                            put_bytes(&mut o, b);
                        }
                        None => o.push(0),
                    }
                }
            }
        }
        o
    }

    /// Decodes a frame body.
    pub fn decode(b: &[u8]) -> Result<Response, ProtocolError> {
        let mut f = Fields(b);
        let r = match f.u8()? {
            1 => Response::Ready,
            2 => Response::Stored,
            3 => Response::Meta { root: f.bytes()?, hashes: f.hashes()? },
            4 => Response::Block(f.bytes()?),
            5 => Response::Shares(f.bytes()?),
            7 => Response::Renewed { shares: f.u8()?, until: f.u64()? },
            8 => Response::Usage { bytes: f.u64()?, quota: f.u64()? },
            9 => Response::SlotStored,
            10 => Response::SlotStale { held: f.u64()? },
            11 => {
                let count = f.u64()?;
                if count > crate::store::MAX_WRITERS as u64 {
                    return malformed(format!(
                        "{count} slots, at most {} expected",
                        crate::store::MAX_WRITERS
                    ));
                }
                let mut v = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    v.push(f.bytes()?);
                }
                Response::Slots(v)
            }
            12 => {
                let shares = f.bytes()?;
                let count = f.u64()?;
                if count > shares.len() as u64 {
                    return malformed(format!("{count} share records for {} shares", shares.len()));
                }
                let mut metas = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let (share, root, hashes) = (f.u8()?, f.bytes()?, f.hashes()?);
                    let block = match f.u8()? {
                        0 => None,
                        1 => Some(f.bytes()?),
                        b => return malformed(format!("block flag {b} in a share record")),
                    };
                    metas.push(FoundMeta { share, root, hashes, block });
                }
                Response::Found { shares, metas }
            }
            6 => {
                let kind = match f.u8()? {
                    1 => ErrorKind::Full,
                    2 => ErrorKind::NotFound,
                    3 => ErrorKind::Damaged,
                    4 => ErrorKind::BadRequest,
                    5 => ErrorKind::Internal,
                    k => return malformed(format!("unknown error kind {k}")),
                };
                let message = String::from_utf8_lossy(&f.bytes()?).into_owned();
                Response::Error { kind, message }
            }
            t => return malformed(format!("unknown response tag {t}")),
        };
        f.end()?;
        Ok(r)
    }
}

fn frame_error(e: std::io::Error) -> ProtocolError {
    if let Some(over) =
        e.get_ref().and_then(|i| i.downcast_ref::<cloudy_overlay::limits::OverRate>())
    {
        return ProtocolError::OverRate(*over);
    }
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
            ProtocolError::Malformed(e.to_string())
        }
        _ => ProtocolError::Io(e),
    }
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &[u8],
) -> Result<(), ProtocolError> {
    cloudy_overlay::frame::write_frame(w, body, MAX_FRAME).await.map_err(frame_error)
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, ProtocolError> {
    cloudy_overlay::frame::read_frame(r, MAX_FRAME).await.map_err(frame_error)
}

/// Reads one frame from `peer` within the bytes its pace lets it have in
/// flight (a server's sessions).
pub async fn read_frame_paced<R: AsyncRead + Unpin>(
    r: &mut R,
    pace: Option<(&cloudy_overlay::limits::Pace, cloudy_overlay::PeerId)>,
) -> Result<Option<Vec<u8>>, ProtocolError> {
    cloudy_overlay::frame::read_frame_paced(r, MAX_FRAME, pace).await.map_err(frame_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }

    #[test]
    fn every_message_roundtrips_and_truncations_fail() {
        let reqs = vec![
            Request::Put { si: [1; 16], share: 3, len: 99 },
            Request::Block(vec![5; 10]),
            Request::Finish { root: vec![1, 2], hashes: vec![[7; 32], [8; 32]] },
            Request::Meta { si: [2; 16], share: 1 },
            Request::Get { si: [2; 16], share: 1, segment: 77 },
            Request::List { si: [4; 16] },
            Request::Find { si: [5; 16] },
            Request::Renew { si: [5; 16] },
            Request::Usage,
            Request::SlotPut(vec![1, 2, 3]),
            Request::Slots { si: [6; 16] },
        ];
        for r in reqs {
            let b = r.encode();
            assert_eq!(Request::decode(&b).unwrap(), r);
            for cut in 0..b.len() {
                assert!(Request::decode(&b[..cut]).is_err(), "{r:?} cut at {cut}");
            }
        }
        let resps = vec![
            Response::Ready,
            Response::Stored,
            Response::Meta { root: vec![3], hashes: vec![[1; 32]] },
            Response::Block(vec![9; 3]),
            Response::Shares(vec![0, 2]),
            Response::Found {
                shares: vec![0, 2],
                metas: vec![
                    FoundMeta { share: 0, root: vec![7], hashes: vec![[9; 32]], block: None },
                    FoundMeta {
                        share: 2,
                        root: vec![7],
                        hashes: vec![[8; 32]],
                        block: Some(vec![5]),
                    },
                ],
            },
            Response::Renewed { shares: 2, until: 1_900_000_000 },
            Response::Error { kind: ErrorKind::Full, message: "disk full".into() },
            Response::SlotStored,
            Response::SlotStale { held: 4 },
            Response::Slots(vec![vec![1], vec![], vec![2, 3]]),
        ];
        for r in resps {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
        assert!(Request::decode(&[99]).unwrap_err().to_string().contains("unknown request tag 99"));
    }

    #[tokio::test]
    async fn frames_over_a_stream_and_oversized_lengths() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        let mut r = futures::io::Cursor::new(buf);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"hello");
        assert!(read_frame(&mut r).await.unwrap().is_none(), "clean end");
        let mut huge = futures::io::Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert!(read_frame(&mut huge).await.unwrap_err().to_string().contains("out of range"));
    }
}
