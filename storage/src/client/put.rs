//! Upload: encrypt, encode and place a file's shares on the grid.

use super::{read_response, Client, Conn};
use crate::capability::{Cap, ReadCap, LITERAL_MAX};
use crate::coding::{Encoder, Params};
use crate::crypt::{storage_index, ConvergentKey};
use crate::placement::{plan, PlacementError, DEFAULT_HAPPY, DEFAULT_PARAMS};
use crate::protocol::{write_frame, Request, Response};
use crate::root::{Hash, RootRecord};
use crate::server::blocking;
use crate::store::{share_len, ShareWriter, StorageIndex};
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::collections::HashSet;
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
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
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
    Remote(cloudy_overlay::Stream),
    /// `None` only while the writer is away on the blocking pool.
    Local(Option<Box<dyn ShareWriter>>),
}

pub(super) struct Upload {
    pub(super) share: u8,
    pub(super) peer: PeerId,
    pub(super) sink: Sink,
}

impl Upload {
    pub(super) async fn send(&mut self, block: Vec<u8>) -> Result<(), String> {
        match &mut self.sink {
            Sink::Remote(s) => write_frame(s, &Request::Block(block).encode()).await.map_err(|e| e.to_string()),
            Sink::Local(slot) => {
                let mut w = slot.take().ok_or("local share writer lost")?;
                let (w, r) = blocking(move || {
                    let r = w.write_block(&block);
                    (w, r)
                })
                .await
                .map_err(|e| e.to_string())?;
                *slot = Some(w);
                r.map_err(|e| e.to_string())
            }
        }
    }

    pub(super) async fn finish(self, root: Vec<u8>, hashes: Vec<Hash>) -> Result<PeerId, String> {
        match self.sink {
            Sink::Remote(mut s) => {
                write_frame(&mut s, &Request::Finish { root, hashes }.encode()).await.map_err(|e| e.to_string())?;
                match read_response(&mut s).await.map_err(|e| e.to_string())? {
                    Response::Stored => Ok(self.peer),
                    other => Err(format!("{other:?}")),
                }
            }
            Sink::Local(None) => Err("local share writer lost".into()),
            Sink::Local(Some(w)) => blocking(move || w.finish(&root, &hashes))
                .await
                .map_err(|e| e.to_string())?
                .map(|()| self.peer)
                .map_err(|e| e.to_string()),
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
        if size as usize <= LITERAL_MAX {
            return Ok(Cap::Literal(tokio::fs::read(path).await.map_err(read_err(path))?));
        }
        let key = match opts.random_key {
            true => rand::random(),
            false => self.convergent_key(path, opts.params).await?,
        };
        let si = storage_index(&key);
        let p = opts.params;
        let len = share_len(&RootRecord::unsealed(p, size));
        let placed = plan(&si, &self.servers(), p.n, len, opts.happy)?;
        let mut failures = Vec::new();
        let mut uploads = self.open_uploads(&si, len, &placed, &mut failures).await;
        let mut enc = Encoder::new(key, p, size)?;
        let mut file = tokio::fs::File::open(path).await.map_err(read_err(path))?;
        let mut buf = vec![0u8; p.segment_size as usize];
        while let Some(n) = enc.next_segment_len() {
            file.read_exact(&mut buf[..n]).await.map_err(read_err(path))?;
            let blocks = enc.push(&buf[..n])?;
            let sends = uploads.iter_mut().map(|u| {
                let block = blocks[u.share as usize].clone();
                async move { u.send(block).await }
            });
            let results = futures::future::join_all(sends).await;
            let mut keep = Vec::new();
            for (u, r) in uploads.into_iter().zip(results) {
                match r {
                    Ok(()) => keep.push(u),
                    Err(e) => failures.push(format!("{} (share {}): {e}", u.peer, u.share)),
                }
            }
            uploads = keep;
            check_happy(&uploads, opts.happy, &failures)?;
        }
        let (record, hashes) = enc.finish()?;
        let root = record.encode();
        let finishes = uploads.into_iter().map(|u| {
            let (root, h, share, peer) = (root.clone(), hashes[u.share as usize].clone(), u.share, u.peer);
            async move { u.finish(root, h).await.map_err(|e| format!("{peer} (share {share}): {e}")) }
        });
        let mut stored = HashSet::new();
        for r in futures::future::join_all(finishes).await {
            match r {
                Ok(peer) => drop(stored.insert(peer)),
                Err(e) => failures.push(e),
            }
        }
        if stored.len() < opts.happy {
            return Err(PutError::Unhappy { stored: stored.len(), happy: opts.happy, failures: failures.join("; ") });
        }
        Ok(Cap::Read(ReadCap { key, root: record.hash(), k: p.k, n: p.n, size }))
    }

    async fn convergent_key(&self, path: &Path, p: Params) -> Result<[u8; 32], PutError> {
        let mut ck = ConvergentKey::new(&self.convergence, p.k as usize, p.n as usize, p.segment_size as usize);
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
    async fn open_uploads(
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
                        spares = candidates[i + 1..].iter().filter(|p| !placed.shares.iter().any(|(_, q)| q == *p)).copied().collect();
                        break;
                    }
                    Err(e) => failures.push(format!("{peer} (share {share}): {e}")),
                }
            }
            uploads.extend(opened);
        }
        uploads
    }

    pub(super) async fn start_upload(&self, peer: PeerId, si: &StorageIndex, share: u8, len: u64) -> Result<Sink, String> {
        match self.connect(peer).await.map_err(|e| e.to_string())? {
            Conn::Local(store) => {
                let si = *si;
                let w = blocking(move || store.create(&si, share, len)).await.map_err(|e| e.to_string())?;
                w.map(|w| Sink::Local(Some(w))).map_err(|e| e.to_string())
            }
            Conn::Remote(mut s) => {
                let ask = async {
                    write_frame(&mut s, &Request::Put { si: *si, share, len }.encode()).await?;
                    read_response(&mut s).await
                };
                let answer = tokio::time::timeout(super::CALL_TIMEOUT, ask).await.map_err(|_| "no answer in time".to_string())?;
                match answer.map_err(|e| e.to_string())? {
                    Response::Ready => Ok(Sink::Remote(s)),
                    Response::Error { message, .. } => Err(message),
                    other => Err(format!("unexpected answer {other:?}")),
                }
            }
        }
    }
}

fn check_happy(uploads: &[Upload], happy: usize, failures: &[String]) -> Result<(), PutError> {
    let distinct: HashSet<PeerId> = uploads.iter().map(|u| u.peer).collect();
    if distinct.len() < happy {
        return Err(PutError::Unhappy { stored: distinct.len(), happy, failures: failures.join("; ") });
    }
    Ok(())
}
