//! Upload: encrypt, encode and place a file's shares on the grid.

use super::share_error::ShareError;
use super::{read_response, Client, Conn};
use crate::capability::{Cap, LITERAL_MAX};
use crate::coding::Params;
use crate::crypt::ConvergentKey;
use crate::placement::{PlacementError, DEFAULT_HAPPY, DEFAULT_PARAMS};
use crate::protocol::{write_frame, Request, Response};
use crate::root::Hash;
use crate::server::{blocking, SharedStore};
use crate::store::{PipedWriter, StorageIndex};
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::path::Path;
use tokio::io::AsyncReadExt;

/// Options of one upload.
#[derive(Clone, Copy, Debug)]
pub struct PutOptions {
    /// Encoding parameters.
    pub params: Params,
    /// Servers-of-happiness.
    pub happy: usize,
    /// Use a random key instead of the convergent one.
    pub random_key: bool,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions { params: DEFAULT_PARAMS, happy: DEFAULT_HAPPY, random_key: false }
    }
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The file (or request body) could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file, or what else was being read.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Bad parameters.
    #[error(transparent)]
    Coding(#[from] CodingError),
    /// Not enough servers to be happy.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// Too many servers failed during the upload.
    #[error("upload failed: shares stored on {stored} distinct servers, {happy} needed; failures: {failures}")]
    Unhappy {
        /// Distinct servers that stored a share.
        stored: usize,
        /// Needed.
        happy: usize,
        /// What went wrong, per server.
        failures: String,
    },
}

/// Where one share is being written.
pub(super) enum Sink {
    Remote(super::progress::Metered<cloudy_overlay::Stream>),
    /// The writer, and what the lease needs once it is finished.
    Local(PipedWriter, SharedStore, String, StorageIndex),
}

pub(super) struct Upload {
    pub(super) share: u8,
    pub(super) peer: PeerId,
    pub(super) sink: Sink,
}

impl Upload {
    pub(super) async fn send(&mut self, block: Vec<u8>) -> Result<(), ShareError> {
        match &mut self.sink {
            Sink::Remote(s) => Ok(write_frame(s, &Request::Block(block).encode()).await?),
            Sink::Local(w, ..) => Ok(w.write(block).await?),
        }
    }

    pub(super) async fn finish(
        self,
        root: Vec<u8>,
        hashes: Vec<Hash>,
    ) -> Result<PeerId, ShareError> {
        let answer = match self.sink {
            Sink::Remote(mut s) => {
                write_frame(&mut s, &Request::Finish { root, hashes }.encode()).await?;
                read_response(&mut s).await?
            }
            Sink::Local(w, store, me, si) => {
                w.finish(root, hashes).await?;
                crate::server::renew(store, &me, si).await?
            }
        };
        match answer {
            Response::Stored | Response::Renewed { .. } => Ok(self.peer),
            other => Err(ShareError::answer(other)),
        }
    }
}

fn read_err(path: &Path) -> impl Fn(std::io::Error) -> PutError + '_ {
    move |source| PutError::Read { path: path.display().to_string(), source }
}

impl Client {
    /// Uploads the file at `path` and returns its capability.
    pub async fn put(&self, path: &Path, opts: PutOptions) -> Result<Cap, PutError> {
        opts.params.validate()?;
        let size = tokio::fs::metadata(path).await.map_err(read_err(path))?.len();
        let key = match opts.random_key || size as usize <= LITERAL_MAX {
            true => None,
            false => Some(self.convergent_key(path, opts.params).await?),
        };
        let file = std::fs::File::open(path).map_err(read_err(path))?;
        self.put_source(Box::new(file), &path.display().to_string(), size, key, opts).await
    }

    /// The hasher that gives a file's convergent key with this node's
    /// secret, for callers that see the file once (the HTTP gateway hashes
    /// the body while spooling it).
    pub fn convergence(&self, p: Params) -> ConvergentKey {
        ConvergentKey::new(&self.convergence, p.k as usize, p.n as usize, p.segment_size as usize)
    }

    async fn convergent_key(&self, path: &Path, p: Params) -> Result<[u8; 32], PutError> {
        let mut ck = self.convergence(p);
        let mut file = tokio::fs::File::open(path).await.map_err(read_err(path))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await.map_err(read_err(path))?;
            if n == 0 {
                return Ok(ck.finish());
            }
            ck.update(&buf[..n]);
        }
    }

    /// Starts every share's upload on its planned server, falling back to
    /// spares (then to servers already used) when one refuses.
    pub(super) async fn open_uploads(
        &self,
        si: &StorageIndex,
        len: u64,
        placed: &crate::placement::Plan,
        failures: &mut Vec<String>,
    ) -> Vec<Upload> {
        let mut spares = placed.spares.clone();
        let mut uploads: Vec<Upload> = Vec::new();
        for (share, first) in &placed.shares {
            let mut candidates = vec![*first];
            candidates.append(&mut spares);
            candidates.extend(placed.shares.iter().map(|(_, p)| *p).filter(|p| p != first));
            let mut opened = None;
            for (i, peer) in candidates.iter().enumerate() {
                match self.start_upload(*peer, si, *share, len).await {
                    Ok(sink) => {
                        opened = Some(Upload { share: *share, peer: *peer, sink });
                        // Unused spares stay available for later shares.
                        spares = candidates[i + 1..]
                            .iter()
                            .filter(|p| !placed.shares.iter().any(|(_, q)| q == *p))
                            .copied()
                            .collect();
                        break;
                    }
                    Err(e) => failures.push(format!("{peer} (share {share}): {e}")),
                }
            }
            uploads.extend(opened);
        }
        uploads
    }

    /// Opens the upload of one share on `peer`. A session the server
    /// dropped before answering is opened again (see `open_and_call`): libp2p-stream drops an
    /// inbound stream that arrives while the server's accept queue (one
    /// slot) is full, which a burst of uploads makes likely
    /// (rust-libp2p#5651).
    pub(super) async fn start_upload(
        &self,
        peer: PeerId,
        si: &StorageIndex,
        share: u8,
        len: u64,
    ) -> Result<Sink, ShareError> {
        let mut attempt = 1;
        loop {
            match self.try_start_upload(peer, si, share, len).await {
                Err(ShareError::Protocol(e))
                    if super::worth_retrying(&e) && attempt < super::OPEN_ATTEMPTS =>
                {
                    tokio::time::sleep(super::retry_pause(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_start_upload(
        &self,
        peer: PeerId,
        si: &StorageIndex,
        share: u8,
        len: u64,
    ) -> Result<Sink, ShareError> {
        match self.connect(peer).await? {
            Conn::Local(store, me) => {
                let (si, creating) = (*si, store.clone());
                let w = blocking(move || creating.create(&si, share, len)).await??;
                Ok(Sink::Local(PipedWriter::new(w), store, me, si))
            }
            Conn::Remote(mut s) => {
                let ask = async {
                    write_frame(&mut s, &Request::Put { si: *si, share, len }.encode()).await?;
                    read_response(&mut s).await
                };
                let answer = tokio::time::timeout(super::CALL_TIMEOUT, ask)
                    .await
                    .map_err(|_| ShareError::Timeout(super::CALL_TIMEOUT))?;
                match answer? {
                    Response::Ready => Ok(Sink::Remote(s)),
                    other => Err(ShareError::answer(other)),
                }
            }
        }
    }
}
