//! Client of the control API, used by every CLI subcommand but `init` and `up`.

use super::api::{
    AddFolder, Admit, Announce, CapBody, Changed, CheckReport, CheckRequest, ErrorBody, FolderRow,
    JoinFolder, MaintainedRow, PeerRow, RepairResult, ServiceRow, Status, Stored,
};
mod fs;

use super::dht::{ConnectBody, NameBody, PingBody, Providers, Reached, Record};
use crate::error::NodeError;
use crate::home::Home;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Errors talking to the local node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The home is not initialised or its files are broken.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Nothing answers at the API address.
    #[error("no node is running for {} (nothing answers at {addr}); start one with `cloudy-p2p up`", home.display())]
    NotRunning {
        /// The home.
        home: PathBuf,
        /// Where we knocked.
        addr: SocketAddr,
    },
    /// The node answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The node's error message.
        message: String,
    },
    /// The answer could not be understood or the request failed midway.
    #[error("talking to the node at {addr}: {reason}")]
    Protocol {
        /// Where.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// A client bound to one node's home.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    addr: SocketAddr,
    token: String,
    home: PathBuf,
}

impl Client {
    /// A client for the node of `home`: the address comes from `api.addr`
    /// (written by the running node) or else from the config.
    pub fn for_home(home: &Home) -> Result<Client, ClientError> {
        let token = home.load_token()?;
        let addr = match std::fs::read_to_string(home.api_addr_path()) {
            Ok(s) => s.trim().parse().ok(),
            Err(_) => None,
        };
        let addr = match addr {
            Some(a) => a,
            None => home.load_config()?.api,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Protocol { addr, reason: e.to_string() })?;
        Ok(Client { http, addr, token, home: home.root().to_path_buf() })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request; a non-success answer becomes [`ClientError::Api`].
    async fn start(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp =
            req.bearer_auth(&self.token).send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
            let message =
                serde_json::from_slice::<ErrorBody>(&bytes).map(|b| b.error).unwrap_or_else(|_| {
                    format!(
                        "the node answered {status}: {}",
                        String::from_utf8_lossy(&bytes).trim()
                    )
                });
            return Err(ClientError::Api { status: status.as_u16(), message });
        }
        Ok(resp)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Option<T>, ClientError> {
        let resp = self.start(req.timeout(Duration::from_secs(30))).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| self.unexpected(e))
    }

    /// Reads a whole JSON answer.
    async fn json<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.unexpected(e))
    }

    /// An answer that does not parse: most likely another program at the
    /// API address, or a node of another version.
    fn unexpected(&self, e: serde_json::Error) -> ClientError {
        ClientError::Protocol {
            addr: self.addr,
            reason: format!("the node's answer is not what this version of cloudy-p2p expects ({e}); is something else listening there, or a node of another version?"),
        }
    }

    /// A failed exchange with the node, in the user's terms: reqwest's own
    /// texts ("error sending request for url", "error decoding response
    /// body", hyper's "oneshot canceled") say nothing to a user.
    fn transport_error(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() {
            return ClientError::NotRunning { home: self.home.clone(), addr: self.addr };
        }
        let reason = if e.is_timeout() {
            "the node did not answer in time (it may be overloaded; see its log)".to_string()
        } else {
            // The innermost cause is the one that says what happened.
            let mut inner: &dyn std::error::Error = &e;
            while let Some(next) = inner.source() {
                inner = next;
            }
            let cause = inner.to_string();
            if cause.contains("Broken pipe") {
                // It closed the connection while we were still sending:
                // an upload it refused before reading it all.
                "the node stopped reading what was sent and closed the connection (it refused the upload, or stopped; its log says why)"
                    .to_string()
            } else if cause.contains("canceled")
                || cause.contains("closed")
                || cause.contains("reset")
            {
                "the node closed the connection before answering (did it stop? see its log)"
                    .to_string()
            } else {
                format!("the exchange with the node failed: {cause}")
            }
        };
        ClientError::Protocol { addr: self.addr, reason }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)))
            .await?
            .ok_or_else(|| ClientError::Protocol { addr: self.addr, reason: "empty answer".into() })
    }

    /// `GET /metrics`: the node's metrics, as OpenMetrics text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self
            .start(self.http.get(self.url("/metrics")).timeout(Duration::from_secs(30)))
            .await?;
        resp.text().await.map_err(|e| self.transport_error(e))
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status").await
    }

    /// `GET /v1/community`.
    pub async fn community(&self) -> Result<super::api::CommunityStatus, ClientError> {
        self.get("/v1/community").await
    }

    /// `POST /v1/community/invites`.
    pub async fn make_invite(
        &self,
        req: &super::api::MakeInvite,
    ) -> Result<super::api::InviteMade, ClientError> {
        self.send_json(self.http.post(self.url("/v1/community/invites")).json(req)).await
    }

    /// `POST /v1/community/admins`.
    pub async fn add_admin(&self, req: &super::api::AddAdmin) -> Result<(), ClientError> {
        self.send::<()>(self.http.post(self.url("/v1/community/admins")).json(req))
            .await
            .map(|_| ())
    }

    /// `POST /v1/community/admins/remove`.
    pub async fn remove_admin(&self, req: &super::api::AddAdmin) -> Result<(), ClientError> {
        let url = self.url("/v1/community/admins/remove");
        self.send::<()>(self.http.post(url).json(req)).await.map(|_| ())
    }

    /// `POST /v1/community/evict`.
    pub async fn evict(&self, req: &super::api::Evict) -> Result<(), ClientError> {
        self.send::<()>(self.http.post(self.url("/v1/community/evict")).json(req)).await.map(|_| ())
    }

    /// `GET /v1/usage`.
    pub async fn usage(&self) -> Result<super::api::UsageTable, ClientError> {
        self.get("/v1/usage").await
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Vec<PeerRow>, ClientError> {
        self.get("/v1/peers").await
    }

    /// `GET /v1/peers/{id}`.
    pub async fn peer(&self, id: &str) -> Result<PeerRow, ClientError> {
        self.get(&format!("/v1/peers/{}", encode(id))).await
    }

    /// `GET /v1/services[?name=]`.
    pub async fn services(&self, name: Option<&str>) -> Result<Vec<ServiceRow>, ClientError> {
        match name {
            Some(n) => self.get(&format!("/v1/services?name={}", encode(n))).await,
            None => self.get("/v1/services").await,
        }
    }

    /// `POST /v1/services`.
    pub async fn announce(&self, a: &Announce) -> Result<(), ClientError> {
        self.send::<()>(self.http.post(self.url("/v1/services")).json(a)).await.map(|_| ())
    }

    /// `DELETE /v1/services/{name}`.
    pub async fn withdraw(&self, name: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/v1/services/{}", encode(name)));
        self.send::<()>(self.http.delete(url)).await.map(|_| ())
    }

    /// `POST /v1/connect`.
    pub async fn connect(&self, addr: &str) -> Result<Reached, ClientError> {
        let body = ConnectBody { addr: addr.to_string() };
        self.send_json(self.http.post(self.url("/v1/connect")).json(&body)).await
    }

    /// `POST /v1/ping`.
    pub async fn ping(&self, peer: &str) -> Result<Reached, ClientError> {
        let body = PingBody { peer: peer.to_string() };
        self.send_json(self.http.post(self.url("/v1/ping")).json(&body)).await
    }

    /// `POST /v1/dht/put`.
    pub async fn dht_put(&self, key: &str, value: &str) -> Result<(), ClientError> {
        let body = Record { key: key.to_string(), value: value.to_string() };
        self.send::<()>(self.http.post(self.url("/v1/dht/put")).json(&body)).await.map(|_| ())
    }

    /// `POST /v1/dht/get`.
    pub async fn dht_get(&self, key: &str) -> Result<Record, ClientError> {
        let body = Record { key: key.to_string(), value: String::new() };
        self.send_json(self.http.post(self.url("/v1/dht/get")).json(&body)).await
    }

    /// `POST /v1/dht/provide` or, with `find`, `POST /v1/dht/providers`.
    pub async fn dht_providers(&self, name: &str, find: bool) -> Result<Providers, ClientError> {
        let path = if find { "/v1/dht/providers" } else { "/v1/dht/provide" };
        let body = NameBody { name: name.to_string() };
        self.send_json(self.http.post(self.url(path)).json(&body)).await
    }

    /// `POST /v1/shutdown`.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        self.send::<()>(self.http.post(self.url("/v1/shutdown"))).await.map(|_| ())
    }
}

impl Client {
    /// `PUT /uri`: uploads `data` (a file or stdin) of `len` bytes if known;
    /// `query` is `k=3&n=5…` or empty.
    pub async fn put<R: tokio::io::AsyncRead + Send + 'static>(
        &self,
        data: R,
        len: Option<u64>,
        query: &str,
    ) -> Result<Stored, ClientError> {
        self.put_body(&format!("/uri?{query}"), data, len).await
    }

    /// `PUT path` with `data` (of `len` bytes if known) as the body,
    /// streamed; answers what the gateway stored.
    pub(crate) async fn put_body<R: tokio::io::AsyncRead + Send + 'static>(
        &self,
        path: &str,
        data: R,
        len: Option<u64>,
    ) -> Result<Stored, ClientError> {
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            data,
            256 << 10,
        ));
        let mut req = self.http.put(self.url(path)).body(body);
        if let Some(len) = len {
            req = req.header(reqwest::header::CONTENT_LENGTH, len);
        }
        let resp = self.start(req).await?;
        self.json(resp).await
    }

    /// `POST /v1/check` (no overall timeout: verifying reads every block).
    pub async fn check(&self, cap: &str, verify: bool) -> Result<CheckReport, ClientError> {
        let req = CheckRequest { cap: cap.to_string(), verify };
        let resp = self.start(self.http.post(self.url("/v1/check")).json(&req)).await?;
        self.json(resp).await
    }

    /// `POST /v1/repair`.
    pub async fn repair(&self, cap: &str) -> Result<RepairResult, ClientError> {
        let req = CheckRequest { cap: cap.to_string(), verify: true };
        let resp = self.start(self.http.post(self.url("/v1/repair")).json(&req)).await?;
        self.json(resp).await
    }

    /// `GET /v1/sync`.
    pub async fn folders(&self) -> Result<Vec<FolderRow>, ClientError> {
        self.get("/v1/sync").await
    }

    /// `POST /v1/sync`.
    pub async fn add_folder(&self, req: &AddFolder) -> Result<FolderRow, ClientError> {
        self.send_json(self.http.post(self.url("/v1/sync")).json(req)).await
    }

    /// `POST /v1/sync/join`.
    pub async fn join_folder(&self, req: &JoinFolder) -> Result<FolderRow, ClientError> {
        self.send_json(self.http.post(self.url("/v1/sync/join")).json(req)).await
    }

    /// `POST /v1/sync/{id}/admit`.
    pub async fn admit(&self, id: &str, peer: &str) -> Result<FolderRow, ClientError> {
        let req = Admit { peer: peer.to_string() };
        self.send_json(
            self.http.post(self.url(&format!("/v1/sync/{}/admit", encode(id)))).json(&req),
        )
        .await
    }

    /// `DELETE /v1/sync/{id}`.
    pub async fn remove_folder(&self, id: &str) -> Result<FolderRow, ClientError> {
        self.send_json(self.http.delete(self.url(&format!("/v1/sync/{}", encode(id))))).await
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.send(req)
            .await?
            .ok_or_else(|| ClientError::Protocol { addr: self.addr, reason: "empty answer".into() })
    }

    /// `GET /v1/maintained`.
    pub async fn maintained(&self) -> Result<Vec<MaintainedRow>, ClientError> {
        self.get("/v1/maintained").await
    }

    /// `POST /v1/maintained`; `false` if already maintained.
    pub async fn maintain(&self, cap: &str) -> Result<bool, ClientError> {
        let body = CapBody { cap: cap.to_string() };
        let c: Option<Changed> =
            self.send(self.http.post(self.url("/v1/maintained")).json(&body)).await?;
        Ok(c.is_some_and(|c| c.changed))
    }

    /// `DELETE /v1/maintained/{cap}`; `false` if it was not maintained.
    pub async fn unmaintain(&self, cap: &str) -> Result<bool, ClientError> {
        let c: Option<Changed> = self
            .send(self.http.delete(self.url(&format!("/v1/maintained/{}", encode(cap)))))
            .await?;
        Ok(c.is_some_and(|c| c.changed))
    }

    /// `POST /v1/maintained/run`.
    pub async fn run_upkeep(&self) -> Result<(), ClientError> {
        self.send::<Changed>(self.http.post(self.url("/v1/maintained/run"))).await.map(|_| ())
    }

    /// `GET /uri/{cap}` into `out`; fails unless exactly the file's size arrived.
    pub async fn get_file<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        cap: &str,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        let resp = self.start(self.http.get(self.url(&format!("/uri/{}", encode(cap))))).await?;
        self.download(resp, "download", out).await
    }

    /// Writes a response body into `out`; fails unless exactly its
    /// `Content-Length` arrived.
    async fn download<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        mut resp: reqwest::Response,
        what: &str,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let expected = resp.content_length();
        let mut got = 0u64;
        let cut = |got: u64, e: String| ClientError::Protocol {
            addr: self.addr,
            reason: format!("{what} stopped after {got} bytes ({e}); the node's log says why"),
        };
        while let Some(chunk) = resp.chunk().await.map_err(|e| cut(got, e.to_string()))? {
            out.write_all(&chunk).await.map_err(|e| cut(got, e.to_string()))?;
            got += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| cut(got, e.to_string()))?;
        match expected {
            Some(n) if n != got => Err(cut(got, format!("expected {n}"))),
            _ => Ok(got),
        }
    }
}

/// Live channels.
impl Client {
    /// `GET /v1/streams`.
    pub async fn channels(&self) -> Result<Vec<super::api::ChannelRow>, ClientError> {
        self.get("/v1/streams").await
    }

    /// `POST /v1/streams`.
    pub async fn create_channel(
        &self,
        name: &str,
    ) -> Result<super::api::ChannelStatus, ClientError> {
        let req = super::api::CreateChannel { name: name.to_string() };
        self.send_json(self.http.post(self.url("/v1/streams")).json(&req)).await
    }

    /// `GET /v1/streams/{id}`.
    pub async fn channel(&self, id: &str) -> Result<super::api::ChannelStatus, ClientError> {
        self.get(&format!("/v1/streams/{}", encode(id))).await
    }

    /// `PUT /v1/streams/{id}/input`: publishes `data` until it ends.
    pub async fn feed_channel<R: tokio::io::AsyncRead + Send + 'static>(
        &self,
        id: &str,
        data: R,
    ) -> Result<super::api::FeedSummary, ClientError> {
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(data, 64 << 10));
        let resp = self
            .start(self.http.put(self.url(&format!("/v1/streams/{}/input", encode(id)))).body(body))
            .await?;
        self.json(resp).await
    }

    /// `GET /stream/{channel}` into `out` until the channel ends; returns
    /// the channel id and the bytes written.
    pub async fn play_channel<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        channel: &str,
        out: &mut W,
    ) -> Result<(String, u64), ClientError> {
        use tokio::io::AsyncWriteExt;
        let mut resp =
            self.start(self.http.get(self.url(&format!("/stream/{}", encode(channel))))).await?;
        let id = resp
            .headers()
            .get(super::api::CHANNEL_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(channel)
            .to_string();
        let mut got = 0u64;
        let cut = |got: u64, e: String| ClientError::Protocol {
            addr: self.addr,
            reason: format!("stream stopped after {got} bytes ({e})"),
        };
        while let Some(chunk) = resp.chunk().await.map_err(|e| cut(got, e.to_string()))? {
            out.write_all(&chunk).await.map_err(|e| cut(got, e.to_string()))?;
            out.flush().await.map_err(|e| cut(got, e.to_string()))?;
            got += chunk.len() as u64;
        }
        Ok((id, got))
    }

    /// The URL a player opens for `path` (`/stream/…`), token included.
    pub fn media_url(&self, path: &str) -> String {
        format!("{}?token={}", self.url(path), encode(&self.token))
    }

    /// The gateway URL of a file (`/uri/CAP`), with the token in it, that
    /// a browser or player opens and seeks in; `name` sets its type.
    pub fn file_url(&self, cap: &str, name: Option<&str>) -> String {
        let url = self.media_url(&format!("/uri/{cap}"));
        match name {
            Some(n) => format!("{url}&filename={}", encode(n)),
            None => url,
        }
    }
}

/// Video on demand.
impl Client {
    /// `POST /v1/vod`.
    pub async fn publish_video(
        &self,
        req: &super::api::PublishVideo,
    ) -> Result<super::api::Published, ClientError> {
        let resp = self.start(self.http.post(self.url("/v1/vod")).json(&req)).await?;
        self.json(resp).await
    }

    /// `GET /v1/vod`.
    pub async fn videos(&self) -> Result<super::api::Videos, ClientError> {
        self.get("/v1/vod").await
    }

    /// `GET /v1/vod?holders=true`: also who holds each catalogue video.
    pub async fn videos_with_holders(&self) -> Result<super::api::Videos, ClientError> {
        self.get("/v1/vod?holders=true").await
    }

    /// `GET /vod/{id}` into `out`; fails unless the whole video arrived.
    pub async fn get_video<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        id: &str,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        let resp = self.start(self.http.get(self.url(&format!("/vod/{}", encode(id))))).await?;
        self.download(resp, "video", out).await
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
