//! WebDAV on the gateway: `/dav/DIRCAP/…` serves a directory of the grid
//! (and everything under it) to rclone, davfs2 and desktop file managers,
//! through the `dav-server` crate. Clients authenticate as on the rest of
//! the API (`Authorization: Bearer <api.token>`; rclone:
//! `--webdav-bearer-token`).
//!
//! - Reading a file fetches it in 1 MiB ranges (one segment), so a client
//!   reading in small pieces costs one grid read per megabyte.
//! - Writing spools the body under `data/spool/` and stores it when the
//!   client finishes (`flush`), then links it in its directory, replacing
//!   what had the name; a mutable file there is changed in place.
//! - Directories are the grid's, so two mounts writing one directory merge
//!   as every other writer does.

use super::state::Shared;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cloudy_storage::capability::{Cap, MutKind};
use cloudy_storage::client::PutOptions;
use cloudy_storage::dirs::{split, DirError, Dirs, Kind, NewEntry};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsResult, FsStream,
    OpenOptions, ReadDirMeta,
};
use futures::FutureExt;
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes fetched per grid read.
const READ_AHEAD: u64 = 1 << 20;

/// `ANY /dav/{cap}[/path]`.
pub(super) async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let raw = req.uri().path().trim_start_matches("/dav/");
    let raw_cap = raw.split('/').next().unwrap_or("");
    let decoded = percent_decode(raw_cap);
    let cap = match decoded.parse::<Cap>() {
        Ok(c @ Cap::Mutable(_)) => c,
        Ok(_) => {
            return super::gateway::bad("WebDAV serves a directory: give a directory capability")
                .into_response()
        }
        Err(e) => return super::gateway::bad(e).into_response(),
    };
    let fs = GridFs { dirs: s.dirs.clone(), root: cap, spool: s.spool.clone() };
    let handler = dav_server::DavHandler::builder()
        .filesystem(Box::new(fs))
        .locksystem(dav_server::fakels::FakeLs::new())
        .strip_prefix(format!("/dav/{decoded}"))
        .build_handler();
    handler.handle(req).await.into_response()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone)]
struct GridFs {
    dirs: Dirs,
    root: Cap,
    spool: std::path::PathBuf,
}

fn fs_error(e: DirError) -> FsError {
    match e {
        DirError::NoEntry(_) => FsError::NotFound,
        DirError::Exists(_) => FsError::Exists,
        DirError::ReadOnly
        | DirError::VerifyOnly
        | DirError::BadName(_)
        | DirError::NotADirectory(_) => FsError::Forbidden,
        DirError::Mutable(cloudy_storage::client::MutableError::NotFound { .. }) => {
            FsError::NotFound
        }
        other => {
            tracing::warn!("WebDAV: {other}");
            FsError::GeneralFailure
        }
    }
}

/// The path's components, decoded.
fn parts(path: &DavPath) -> Vec<String> {
    let text = String::from_utf8_lossy(path.as_bytes()).into_owned();
    split(&text).into_iter().map(str::to_string).collect()
}

#[derive(Clone, Debug)]
struct Meta {
    len: u64,
    mtime: u64,
    dir: bool,
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(UNIX_EPOCH + Duration::from_secs(self.mtime))
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
}

struct Entry {
    name: String,
    meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        async move { Ok(m) }.boxed()
    }
}

impl GridFs {
    async fn dir_at(&self, path: &[String]) -> FsResult<Cap> {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let cap = self.dirs.lookup(&self.root, &refs).await.map_err(fs_error)?;
        match &cap {
            Cap::Mutable(m) if m.kind == MutKind::Dir => Ok(cap),
            _ => Err(FsError::Forbidden),
        }
    }

    /// The directory holding the last component, and that name.
    async fn parent(&self, path: &DavPath) -> FsResult<(Cap, String)> {
        let mut p = parts(path);
        let name = p.pop().ok_or(FsError::Forbidden)?;
        Ok((self.dir_at(&p).await?, name))
    }

    async fn meta(&self, path: &DavPath) -> FsResult<Meta> {
        let p = parts(path);
        if p.is_empty() {
            return Ok(Meta { len: 0, mtime: 0, dir: true });
        }
        let (dir, name) = self.parent(path).await?;
        let c = self.dirs.child(&dir, &name).await.map_err(fs_error)?;
        Ok(Meta { len: c.size, mtime: c.mtime, dir: c.kind == Kind::Dir })
    }

    /// The contents' capability of the file at `path`, and its metadata
    /// (its length is the contents').
    async fn contents(&self, path: &DavPath) -> FsResult<(Cap, Meta)> {
        let (dir, name) = self.parent(path).await?;
        let c = self.dirs.child(&dir, &name).await.map_err(fs_error)?;
        if c.kind == Kind::Dir {
            return Err(FsError::Forbidden);
        }
        let cap = match &c.cap {
            Cap::Mutable(m) => {
                let rk = m.read_key().ok_or(FsError::Forbidden)?;
                self.dirs.client().resolve(&rk).await.map_err(|_| FsError::GeneralFailure)?.1
            }
            other => other.clone(),
        };
        let size = match &cap {
            Cap::Read(r) => r.size,
            Cap::Literal(d) => d.len() as u64,
            _ => return Err(FsError::GeneralFailure),
        };
        Ok((cap, Meta { len: size, mtime: c.mtime, dir: false }))
    }
}

impl DavFileSystem for GridFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            if options.write {
                let (dir, name) = self.parent(path).await?;
                let existing = self.dirs.child(&dir, &name).await.ok();
                if existing.is_some() && options.create_new {
                    return Err(FsError::Exists);
                }
                if existing.is_none() && !options.create && !options.create_new {
                    return Err(FsError::NotFound);
                }
                let spool =
                    tempfile::tempfile_in(&self.spool).map_err(|_| FsError::InsufficientStorage)?;
                let f: Box<dyn DavFile> = Box::new(WriteFile {
                    fs: self.clone(),
                    dir,
                    name,
                    existing: existing.map(|c| c.cap),
                    spool,
                    len: 0,
                    dirty: true,
                });
                return Ok(f);
            }
            let (cap, meta) = self.contents(path).await?;
            let f: Box<dyn DavFile> = Box::new(ReadFile {
                fs: self.clone(),
                cap,
                meta,
                pos: 0,
                buf_at: 0,
                buf: Bytes::new(),
            });
            Ok(f)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let dir = self.dir_at(&parts(path)).await?;
            let listing = self.dirs.list(&dir).await.map_err(fs_error)?;
            let entries: Vec<FsResult<Box<dyn DavDirEntry>>> = listing
                .entries
                .into_iter()
                .map(|c| {
                    let meta = Meta { len: c.size, mtime: c.mtime, dir: c.kind == Kind::Dir };
                    Ok(Box::new(Entry { name: c.name, meta }) as Box<dyn DavDirEntry>)
                })
                .collect();
            let stream: FsStream<Box<dyn DavDirEntry>> = Box::pin(futures::stream::iter(entries));
            Ok(stream)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move { Ok(Box::new(self.meta(path).await?) as Box<dyn DavMetaData>) }.boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (dir, name) = self.parent(path).await?;
            if self.dirs.child(&dir, &name).await.is_ok() {
                return Err(FsError::Exists);
            }
            self.dirs.mkdir_p(&dir, &[name.as_str()]).await.map_err(fs_error)?;
            Ok(())
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        self.remove_file(path)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (dir, name) = self.parent(path).await?;
            self.dirs.unlink(&dir, &name).await.map_err(fs_error)?;
            Ok(())
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (fd, fname) = self.parent(from).await?;
            let (td, tname) = self.parent(to).await?;
            self.dirs.rename(&fd, &fname, &td, &tname).await.map_err(fs_error)
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (fd, fname) = self.parent(from).await?;
            let c = self.dirs.child(&fd, &fname).await.map_err(fs_error)?;
            let (td, tname) = self.parent(to).await?;
            let entry = NewEntry { name: tname, cap: c.cap, size: c.size, mtime: c.mtime };
            self.dirs.link_many(&td, vec![entry], true).await.map_err(fs_error)?;
            Ok(())
        }
        .boxed()
    }
}

/// A file being read.
#[derive(Debug)]
struct ReadFile {
    fs: GridFs,
    cap: Cap,
    /// Its metadata; `len` is the contents' size.
    meta: Meta,
    pos: u64,
    buf_at: u64,
    buf: Bytes,
}

impl std::fmt::Debug for GridFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridFs").finish_non_exhaustive()
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        async move { Ok(m) }.boxed()
    }
    fn write_buf(&mut self, _buf: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            if self.pos >= self.meta.len || count == 0 {
                return Ok(Bytes::new());
            }
            let in_buf = self.pos >= self.buf_at && self.pos < self.buf_at + self.buf.len() as u64;
            if !in_buf {
                let end = (self.pos + READ_AHEAD).min(self.meta.len);
                let data = match &self.cap {
                    Cap::Literal(d) => d[self.pos as usize..end as usize].to_vec(),
                    Cap::Read(r) => {
                        let mut out = Vec::with_capacity((end - self.pos) as usize);
                        self.fs.dirs.client().get_range(r, self.pos..end, &mut out).await.map_err(
                            |e| {
                                tracing::warn!("WebDAV read: {e}");
                                FsError::GeneralFailure
                            },
                        )?;
                        out
                    }
                    _ => return Err(FsError::GeneralFailure),
                };
                self.buf_at = self.pos;
                self.buf = Bytes::from(data);
            }
            let from = (self.pos - self.buf_at) as usize;
            let to = (from + count).min(self.buf.len());
            let out = self.buf.slice(from..to);
            self.pos += out.len() as u64;
            Ok(out)
        }
        .boxed()
    }
    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let new = match pos {
                SeekFrom::Start(p) => p as i64,
                SeekFrom::Current(d) => self.pos as i64 + d,
                SeekFrom::End(d) => self.meta.len as i64 + d,
            };
            if new < 0 {
                return Err(FsError::GeneralFailure);
            }
            self.pos = new as u64;
            Ok(self.pos)
        }
        .boxed()
    }
    fn flush(&mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

/// A file being written: spooled, stored and linked on `flush`.
#[derive(Debug)]
struct WriteFile {
    fs: GridFs,
    dir: Cap,
    name: String,
    existing: Option<Cap>,
    spool: std::fs::File,
    len: u64,
    dirty: bool,
}

impl WriteFile {
    fn append(&mut self, data: &[u8]) -> FsResult<()> {
        self.spool.write_all(data).map_err(|_| FsError::InsufficientStorage)?;
        self.len += data.len() as u64;
        self.dirty = true;
        Ok(())
    }

    async fn store(&mut self) -> FsResult<()> {
        let mut source = self.spool.try_clone().map_err(|_| FsError::GeneralFailure)?;
        source.seek(SeekFrom::Start(0)).map_err(|_| FsError::GeneralFailure)?;
        let client = self.fs.dirs.client();
        let servers = client.servers().len();
        let mut opts = PutOptions::default();
        opts.happy = super::gateway::default_happy(opts.happy, opts.params.k, servers).0;
        let contents = client
            .put_source(Box::new(source), "a WebDAV upload", self.len, None, opts)
            .await
            .map_err(|e| {
                tracing::warn!("WebDAV upload of {}: {e}", self.name);
                FsError::InsufficientStorage
            })?;
        if let Some(Cap::Mutable(m)) = &self.existing {
            if let (MutKind::File, Some(key)) = (m.kind, m.write_key()) {
                client.publish(key, &contents).await.map_err(|_| FsError::GeneralFailure)?;
                return Ok(());
            }
        }
        let mtime = cloudy_storage::store::now_secs();
        let entry = NewEntry { name: self.name.clone(), cap: contents, size: self.len, mtime };
        self.fs.dirs.link_many(&self.dir, vec![entry], true).await.map_err(fs_error)?;
        Ok(())
    }
}

impl DavFile for WriteFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(Meta { len: self.len, mtime: 0, dir: false });
        async move { Ok(m) }.boxed()
    }
    fn write_buf(&mut self, mut buf: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                self.append(&chunk)?;
                buf.advance(chunk.len());
            }
            Ok(())
        }
        .boxed()
    }
    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.append(&buf) }.boxed()
    }
    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            match pos {
                SeekFrom::Start(p) if p == self.len => Ok(p),
                SeekFrom::Current(0) => Ok(self.len),
                _ => Err(FsError::NotImplemented),
            }
        }
        .boxed()
    }
    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            if self.dirty {
                self.store().await?;
                self.dirty = false;
            }
            Ok(())
        }
        .boxed()
    }
}
