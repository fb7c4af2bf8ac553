//! `GET /metrics`: Prometheus (OpenMetrics) text. The overlay's metrics are
//! kept live (libp2p's, round trips, members by state); the services' are
//! read from their counters and status at each scrape into a fresh
//! registry, so they cost nothing between scrapes.

use super::state::{ApiError, Shared};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;

pub use super::state::RequestCounters;

/// A counter family set to `values` (totals kept elsewhere).
fn counters(reg: &mut Registry, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let family = Family::<Vec<(String, String)>, Counter>::default();
    for (v, n) in values {
        family.get_or_create(&vec![(label.to_string(), v.to_string())]).inc_by(*n);
    }
    reg.register(name, help, family);
}

/// A counter family with labels `member` and `direction` (`sent`,
/// `received`), one pair per usage row: `bytes` picks (sent, received).
fn member_counters<'a>(
    reg: &mut Registry,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = &'a super::api::UsageRow>,
    bytes: impl Fn(&super::api::UsageRow) -> (u64, u64),
) {
    let family = Family::<Vec<(String, String)>, Counter>::default();
    for row in rows {
        let (sent, received) = bytes(row);
        for (direction, n) in [("sent", sent), ("received", received)] {
            let labels = vec![
                ("member".to_string(), row.peer.clone()),
                ("direction".to_string(), direction.to_string()),
            ];
            family.get_or_create(&labels).inc_by(n);
        }
    }
    reg.register(name, help, family);
}

/// A gauge family set to `values`.
fn gauges(reg: &mut Registry, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    for (v, n) in values {
        family.get_or_create(&vec![(label.to_string(), v.to_string())]).set(*n as i64);
    }
    reg.register(name, help, family);
}

/// One gauge.
fn gauge(reg: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(value as i64);
    reg.register(name, help, g);
}

/// One counter.
fn counter(reg: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    reg.register(name, help, c);
}

/// The services' metrics now; `usage`: bytes kept here per member.
fn services(s: &Shared, usage: &std::collections::BTreeMap<String, u64>) -> Registry {
    let mut reg = Registry::with_prefix("cloudy");
    // Storage.
    if let Some(store) = s.storage.local_store() {
        gauge(
            &mut reg,
            "storage_used_bytes",
            "Bytes of shares held by this storage server",
            store.used(),
        );
        gauge(
            &mut reg,
            "storage_free_bytes",
            "Bytes this storage server may still take",
            store.free(),
        );
        let per_member: Vec<(&str, u64)> = usage.iter().map(|(m, b)| (m.as_str(), *b)).collect();
        gauges(
            &mut reg,
            "storage_member_bytes",
            "Bytes of shares this server keeps under each member's leases",
            "member",
            &per_member,
        );
        gauge(
            &mut reg,
            "storage_member_quota_bytes",
            "What this server keeps for one member at most",
            s.member_quota,
        );
        let t = store.traffic();
        counters(
            &mut reg,
            "storage_bytes",
            "Share bytes served to readers and stored for writers",
            "direction",
            &[("served", t.read), ("stored", t.written)],
        );
    }
    let media = super::usage::media_by_member(s);
    member_counters(
        &mut reg,
        "stream_member_bytes",
        "Live-channel bytes sent to and received from each member",
        media.values(),
        |r| (r.stream_sent, r.stream_received),
    );
    member_counters(
        &mut reg,
        "video_member_bytes",
        "Video (VOD) bytes sent to and received from each member",
        media.values(),
        |r| (r.video_sent, r.video_received),
    );
    let r = &s.requests;
    let ops = [
        ("put_ok", r.puts.load(Relaxed)),
        ("put_error", r.put_errors.load(Relaxed)),
        ("get_ok", r.gets.load(Relaxed)),
        ("get_error", r.get_errors.load(Relaxed)),
    ];
    counters(
        &mut reg,
        "storage_requests",
        "Grid puts and gets through this node, by outcome",
        "outcome",
        &ops,
    );
    let repairs = [("automatic", s.upkeep.repairs()), ("by_hand", r.repairs.load(Relaxed))];
    counters(&mut reg, "storage_repairs", "Files repaired, by who asked", "trigger", &repairs);
    let mut by_status: Vec<(String, u64)> = Vec::new();
    for e in s.upkeep.list().all().unwrap_or_default() {
        let status = match &e.status {
            cloudy_storage::upkeep::Health::Error(_) => "error".to_string(),
            other => other.to_string(),
        };
        match by_status.iter_mut().find(|(k, _)| *k == status) {
            Some((_, n)) => *n += 1,
            None => by_status.push((status, 1)),
        }
    }
    let by_status: Vec<(&str, u64)> = by_status.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    gauges(
        &mut reg,
        "maintained_files",
        "Files this node maintains, by the outcome of their last check",
        "status",
        &by_status,
    );

    // Sync.
    let folders = s.sync.list();
    let sum = |f: fn(&cloudy_sync::service::Status) -> u64| {
        folders.iter().map(|(_, st)| f(st)).sum::<u64>()
    };
    gauge(&mut reg, "sync_folders", "Folders shared", folders.len() as u64);
    gauge(
        &mut reg,
        "sync_files_pending",
        "Files still to fetch, over all folders",
        sum(|st| st.need_files),
    );
    gauge(
        &mut reg,
        "sync_bytes_pending",
        "Bytes still to fetch, over all folders",
        sum(|st| st.need_bytes),
    );
    let sync_bytes = [("downloaded", sum(|st| st.downloaded)), ("uploaded", sum(|st| st.uploaded))];
    counters(
        &mut reg,
        "sync_bytes",
        "Block bytes moved by folder sync since start",
        "direction",
        &sync_bytes,
    );

    // Live channels (those this node takes part in) and video on demand.
    let mut chunks = [("received", 0), ("sent", 0), ("played", 0), ("late", 0), ("rejected", 0)];
    let mut bytes = [("received", 0), ("sent", 0)];
    let mut channels = 0;
    for row in s.streams.list() {
        let Some(st) = row.local else { continue };
        channels += 1;
        let x = &st.stats;
        for (slot, v) in
            chunks.iter_mut().zip([x.chunks, x.chunks_up, x.played, x.skipped, x.rejected])
        {
            slot.1 += v;
        }
        bytes[0].1 += x.bytes_down;
        bytes[1].1 += x.bytes_up;
    }
    gauge(&mut reg, "stream_channels", "Live channels this node publishes or watches", channels);
    counters(
        &mut reg,
        "stream_chunks",
        "Live chunks of the channels this node takes part in (late: skipped by players)",
        "kind",
        &chunks,
    );
    counters(
        &mut reg,
        "stream_bytes",
        "Live chunk bytes of the channels this node takes part in",
        "direction",
        &bytes,
    );
    let vod = s.vod.stats();
    counters(
        &mut reg,
        "vod_bytes",
        "Video-on-demand piece bytes",
        "direction",
        &[("served", vod.served), ("fetched", vod.fetched)],
    );
    counter(
        &mut reg,
        "uptime_seconds",
        "Seconds since the node started",
        s.started.elapsed().as_secs(),
    );
    reg
}

pub(crate) async fn metrics(State(s): State<Shared>) -> Result<Response, ApiError> {
    let reg = services(&s, &super::usage::kept_here(&s).await);
    let mut text = String::new();
    let fail = |e: std::fmt::Error| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}"))
    };
    encode_registry(&mut text, s.overlay.metrics()).map_err(fail)?;
    encode_registry(&mut text, &reg).map_err(fail)?;
    encode_eof(&mut text).map_err(fail)?;
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, kind)], text).into_response())
}
