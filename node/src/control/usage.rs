//! `GET /v1/usage`: contribution accounting. Per member: the bytes this
//! node stores for it (its leases here) and the bytes it stores for this
//! node (asked of it), with its quota.

use super::api::{UsageRow, UsageTable};
use super::state::Shared;
use axum::extract::State;
use axum::Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one server is given to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes this node's share store keeps under each member's leases (empty
/// when it is not a storage server or the store cannot say).
pub(super) async fn kept_here(s: &Shared) -> BTreeMap<String, u64> {
    let Some(store) = s.storage.local_store().cloned() else { return BTreeMap::new() };
    tokio::task::spawn_blocking(move || store.usage())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// The row of `peer`, made empty the first time.
fn row<'a>(rows: &'a mut BTreeMap<String, UsageRow>, peer: &str) -> &'a mut UsageRow {
    rows.entry(peer.to_string())
        .or_insert_with(|| UsageRow { peer: peer.to_string(), ..UsageRow::default() })
}

/// Live-channel and video bytes sent to and received from each member, as
/// rows of the usage table (the storage columns empty).
pub(super) fn media_by_member(s: &Shared) -> BTreeMap<String, UsageRow> {
    let mut rows: BTreeMap<String, UsageRow> = BTreeMap::new();
    for channel in s.streams.list() {
        for (peer, (sent, received)) in channel.local.map(|l| l.stats.by_peer).unwrap_or_default() {
            let r = row(&mut rows, &peer);
            r.stream_sent += sent;
            r.stream_received += received;
        }
    }
    for (peer, sent, received) in s.vod.by_peer() {
        let r = row(&mut rows, &peer.to_string());
        r.video_sent += sent;
        r.video_received += received;
    }
    rows
}

pub(super) async fn usage(State(s): State<Shared>) -> Json<UsageTable> {
    let me = s.overlay.local_peer_id().to_string();
    let mut rows = media_by_member(&s);
    for (owner, bytes) in kept_here(&s).await {
        if owner != me {
            row(&mut rows, &owner).stored_here = bytes;
        }
    }
    let quota_here = s.storage.local_store().map(|_| s.member_quota);
    let servers: Vec<_> =
        s.storage.servers().iter().map(|v| v.peer).filter(|p| p.to_string() != me).collect();
    let storage = &s.storage;
    let asks = servers.iter().map(|p| async move {
        (*p, tokio::time::timeout(ASK_TIMEOUT, storage.usage_on(*p)).await)
    });
    for (peer, answer) in futures::future::join_all(asks).await {
        let r = row(&mut rows, &peer.to_string());
        if let Ok(Ok((bytes, quota))) = answer {
            r.stored_there = Some(bytes);
            r.quota_there = (quota != u64::MAX).then_some(quota);
        }
    }
    Json(UsageTable { quota_here, members: rows.into_values().collect() })
}
