//! Low-level network tools of the control API, for operators and interop
//! tests: dial an address, ping a peer with the standard libp2p ping, and
//! use the Kademlia DHT (`/cloudy/kad/1.0.0`) directly.
//!
//! - `POST /v1/connect {"addr"}` → `{"peer_id","rtt_ms"}` once connected and
//!   answering a ping.
//! - `POST /v1/ping {"peer"}` → `{"peer_id","rtt_ms"}`.
//! - `POST /v1/dht/put {"key","value"}` stores a record (UTF-8 key and
//!   value) here and on the closest peers; `POST /v1/dht/get {"key"}` →
//!   `{"key","value"}`, the first record found.
//! - `POST /v1/dht/provide {"name"}` announces this node as a provider of
//!   `name`, and `POST /v1/dht/providers {"name"}` lists its providers. The
//!   DHT key of a name is the sha2-256 multihash of its UTF-8 bytes (the key
//!   of a raw CIDv1 in IPFS terms), so other libp2p implementations can
//!   compute it.

use super::state::{unavailable, ApiError, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::time::Duration;

/// Body of `/v1/connect`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectBody {
    /// A multiaddr, with `/p2p/` or without.
    pub addr: String,
}

/// Body of `/v1/ping`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PingBody {
    /// The peer.
    pub peer: String,
}

/// Answer of `/v1/connect` and `/v1/ping`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reached {
    /// The remote peer.
    pub peer_id: String,
    /// The ping's round trip, ms (ping only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// A DHT record: the body of `/v1/dht/put` and the answer of `/v1/dht/get`
/// (whose body has only the key).
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// The key, UTF-8.
    pub key: String,
    /// The value, UTF-8.
    #[serde(default)]
    pub value: String,
}

/// Body of `/v1/dht/provide` and `/v1/dht/providers`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NameBody {
    /// What is provided.
    pub name: String,
}

/// Answer of `/v1/dht/provide` and `/v1/dht/providers`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Providers {
    /// The name.
    pub name: String,
    /// Its DHT key, hex.
    pub key: String,
    /// The providers found (empty for `provide`).
    pub providers: Vec<String>,
}

/// The DHT key of a provided name: the sha2-256 multihash of its bytes.
pub fn provider_key(name: &str) -> Vec<u8> {
    let mut key = vec![0x12, 0x20];
    key.extend_from_slice(&sha2::Sha256::digest(name.as_bytes()));
    key
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

fn dht_error(e: cloudy_overlay::Error) -> ApiError {
    match e {
        cloudy_overlay::Error::Closed => unavailable(e),
        e => ApiError(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

pub(crate) async fn connect(
    State(s): State<Shared>,
    Json(b): Json<ConnectBody>,
) -> Result<Json<Reached>, ApiError> {
    let addr = b.addr.parse().map_err(|e| bad(format!("{:?} is not a multiaddr: {e}", b.addr)))?;
    let peer = s.overlay.connect(addr).await.map_err(dht_error)?;
    // A node of a private community drops a stranger's connection right
    // after the transport handshake: in an open community a ping says
    // whether it stayed. (A private node's dial passed the admission
    // handshake already.)
    if s.community.is_some() {
        return Ok(Json(Reached { peer_id: peer.to_string(), rtt_ms: None }));
    }
    let mut last = None;
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(3), s.overlay.ping(peer)).await {
            Ok(Ok(rtt)) => {
                let rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                return Ok(Json(Reached { peer_id: peer.to_string(), rtt_ms }));
            }
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("no answer to a ping within 3 s".into()),
        }
    }
    Err(ApiError(
        StatusCode::BAD_GATEWAY,
        format!(
            "{peer} dropped the connection ({}): it is probably in a private community this node is not a member of (join it with an invite from one of its admins)",
            last.unwrap_or_default()
        ),
    ))
}

pub(crate) async fn ping(
    State(s): State<Shared>,
    Json(b): Json<PingBody>,
) -> Result<Json<Reached>, ApiError> {
    let peer = super::state::parse_peer(&b.peer)?;
    let rtt = s.overlay.ping(peer).await.map_err(dht_error)?;
    Ok(Json(Reached { peer_id: peer.to_string(), rtt_ms: Some(rtt.as_secs_f64() * 1000.0) }))
}

pub(crate) async fn put(
    State(s): State<Shared>,
    Json(r): Json<Record>,
) -> Result<StatusCode, ApiError> {
    if r.key.is_empty() {
        return Err(bad("a DHT key cannot be empty"));
    }
    s.overlay.put_record(r.key.into_bytes(), r.value.into_bytes()).await.map_err(dht_error)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn get(
    State(s): State<Shared>,
    Json(r): Json<Record>,
) -> Result<Json<Record>, ApiError> {
    let value = s.overlay.get_record(r.key.clone().into_bytes()).await.map_err(|e| match e {
        cloudy_overlay::Error::Dht(why) => {
            ApiError(StatusCode::NOT_FOUND, format!("no DHT record {:?}: {why}", r.key))
        }
        e => dht_error(e),
    })?;
    Ok(Json(Record { key: r.key, value: String::from_utf8_lossy(&value).into_owned() }))
}

pub(crate) async fn provide(
    State(s): State<Shared>,
    Json(b): Json<NameBody>,
) -> Result<Json<Providers>, ApiError> {
    let key = provider_key(&b.name);
    s.overlay.start_providing(key.clone()).await.map_err(dht_error)?;
    Ok(Json(Providers { name: b.name, key: hex::encode(key), providers: Vec::new() }))
}

pub(crate) async fn providers(
    State(s): State<Shared>,
    Json(b): Json<NameBody>,
) -> Result<Json<Providers>, ApiError> {
    let key = provider_key(&b.name);
    let found = s.overlay.get_providers(key.clone()).await.map_err(dht_error)?;
    let mut providers: Vec<String> = found.iter().map(|p| p.to_string()).collect();
    providers.sort();
    Ok(Json(Providers { name: b.name, key: hex::encode(key), providers }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_keys_are_sha2_256_multihashes() {
        let key = super::provider_key("abc");
        assert_eq!(
            hex::encode(&key),
            "1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
