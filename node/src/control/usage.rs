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

pub(super) async fn usage(State(s): State<Shared>) -> Json<UsageTable> {
    let me = s.overlay.local_peer_id();
    let mut rows: BTreeMap<String, UsageRow> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<String, UsageRow>, peer: &str| {
        rows.entry(peer.to_string()).or_insert_with(|| UsageRow {
            peer: peer.to_string(),
            stored_here: 0,
            stored_there: None,
            quota_there: None,
            stream_sent: 0,
            stream_received: 0,
            video_sent: 0,
            video_received: 0,
        });
    };
    let mut quota_here = None;
    if let Some(store) = s.storage.local_store() {
        let store = store.clone();
        let usage = tokio::task::spawn_blocking(move || store.usage()).await;
        if let Ok(Ok(usage)) = usage {
            for (owner, bytes) in usage {
                if owner == me.to_string() {
                    continue;
                }
                row(&mut rows, &owner);
                if let Some(r) = rows.get_mut(&owner) {
                    r.stored_here = bytes;
                }
            }
        }
        quota_here = Some(s.member_quota);
    }
    let servers: Vec<_> =
        s.storage.servers().into_iter().map(|v| v.peer).filter(|p| *p != me).collect();
    let storage = &s.storage;
    let asks = servers.iter().map(|p| async move {
        (*p, tokio::time::timeout(ASK_TIMEOUT, storage.usage_on(*p)).await)
    });
    for (peer, answer) in futures::future::join_all(asks).await {
        let key = peer.to_string();
        row(&mut rows, &key);
        if let (Some(r), Ok(Ok((bytes, quota)))) = (rows.get_mut(&key), answer) {
            r.stored_there = Some(bytes);
            r.quota_there = (quota != u64::MAX).then_some(quota);
        }
    }
    for channel in s.streams.list() {
        for (peer, (sent, received)) in channel.local.map(|l| l.stats.by_peer).unwrap_or_default() {
            row(&mut rows, &peer);
            if let Some(r) = rows.get_mut(&peer) {
                r.stream_sent += sent;
                r.stream_received += received;
            }
        }
    }
    for (peer, sent, received) in s.vod.by_peer() {
        let key = peer.to_string();
        row(&mut rows, &key);
        if let Some(r) = rows.get_mut(&key) {
            r.video_sent += sent;
            r.video_received += received;
        }
    }
    Json(UsageTable { quota_here, members: rows.into_values().collect() })
}
