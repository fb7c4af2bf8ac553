//! The filesystem API (`/v1/fs/…`) from the client side.

use super::{Client, ClientError};
use crate::control::api::{DeepCheck, DeepCheckReport};
use crate::control::api::{DirListing, FsPath, Link, Made, Mkdir, Move, Stat, Stored};
use serde::de::DeserializeOwned;
use serde::Serialize;

impl Client {
    /// A JSON POST with no overall timeout (directory updates of many
    /// entries and walks of large trees take what they take).
    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp = self.start(self.http.post(self.url(path)).json(body)).await?;
        self.json(resp).await
    }

    async fn post_done<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ClientError> {
        self.start(self.http.post(self.url(path)).json(body)).await.map(|_| ())
    }

    /// `POST /v1/fs/mkdir`.
    pub async fn mkdir(&self, cap: Option<&str>, path: &str) -> Result<Made, ClientError> {
        let req = Mkdir { cap: cap.map(str::to_string), path: path.to_string() };
        self.post_json("/v1/fs/mkdir", &req).await
    }

    /// `POST /v1/fs/ls`.
    pub async fn ls(&self, cap: &str, path: &str) -> Result<DirListing, ClientError> {
        self.post_json("/v1/fs/ls", &FsPath { cap: cap.into(), path: path.into() }).await
    }

    /// `POST /v1/fs/stat`.
    pub async fn stat(&self, cap: &str, path: &str) -> Result<Stat, ClientError> {
        self.post_json("/v1/fs/stat", &FsPath { cap: cap.into(), path: path.into() }).await
    }

    /// `POST /v1/fs/link`.
    pub async fn link(&self, req: &Link) -> Result<DirListing, ClientError> {
        self.post_json("/v1/fs/link", req).await
    }

    /// `POST /v1/fs/mv`.
    pub async fn mv(&self, from: FsPath, to: FsPath) -> Result<(), ClientError> {
        self.post_done("/v1/fs/mv", &Move { from, to }).await
    }

    /// `POST /v1/fs/rm`.
    pub async fn rm(&self, cap: &str, path: &str) -> Result<(), ClientError> {
        self.post_done("/v1/fs/rm", &FsPath { cap: cap.into(), path: path.into() }).await
    }

    /// `GET /v1/maintained/trees`.
    pub async fn maintained_trees(&self) -> Result<Vec<crate::trees::TreeRow>, ClientError> {
        let resp = self.start(self.http.get(self.url("/v1/maintained/trees"))).await?;
        self.json(resp).await
    }

    /// `POST /v1/fs/deep-check`.
    pub async fn deep_check(&self, req: &DeepCheck) -> Result<DeepCheckReport, ClientError> {
        self.post_json("/v1/fs/deep-check", req).await
    }

    /// `PUT /uri/{cap}`: new contents for the mutable file of write
    /// capability `cap`.
    pub async fn put_mutable<R: tokio::io::AsyncRead + Send + 'static>(
        &self,
        cap: &str,
        data: R,
        len: Option<u64>,
    ) -> Result<Stored, ClientError> {
        self.put_body(&format!("/uri/{}", super::encode(cap)), data, len).await
    }
}
