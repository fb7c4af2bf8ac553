//! The services' own types turned into the control API's (`api`), so the
//! JSON a client sees is defined in one place and a service can change its
//! internals without changing the API.

use super::api;
use cloudy_streaming::live::{publish, stats, task};
use cloudy_streaming::{service, vod};

impl From<publish::FeedSummary> for api::FeedSummary {
    fn from(f: publish::FeedSummary) -> Self {
        api::FeedSummary { chunks: f.chunks, bytes: f.bytes, mpeg_ts: f.mpeg_ts, error: f.error }
    }
}

impl From<stats::Stats> for api::ChannelStats {
    fn from(s: stats::Stats) -> Self {
        api::ChannelStats {
            chunks: s.chunks,
            bytes_down: s.bytes_down,
            bytes_up: s.bytes_up,
            chunks_up: s.chunks_up,
            duplicates: s.duplicates,
            bytes_dup: s.bytes_dup,
            timeouts: s.timeouts,
            spared: s.spared,
            rejected: s.rejected,
            played: s.played,
            skipped: s.skipped,
            sessions_opened: s.sessions_opened,
            sessions_closed: s.sessions_closed,
            by_peer: s.by_peer,
            first_played: s.first_played,
            arrivals: s.arrivals,
        }
    }
}

impl From<task::ChannelStatus> for api::ChannelStatus {
    fn from(c: task::ChannelStatus) -> Self {
        api::ChannelStatus {
            id: c.id,
            name: c.name,
            role: c.role,
            state: c.state,
            neighbours: c.neighbours,
            players: c.players,
            latency_ms: c.latency_ms,
            continuity: c.continuity,
            stopped_ms: c.stopped_ms,
            stats: c.stats.into(),
        }
    }
}

impl From<service::ChannelRow> for api::ChannelRow {
    fn from(r: service::ChannelRow) -> Self {
        api::ChannelRow {
            id: r.id,
            name: r.name,
            publisher: r.publisher,
            viewers: r.viewers,
            local: r.local.map(Into::into),
        }
    }
}

impl From<vod::service::VideoRow> for api::VideoRow {
    fn from(v: vod::service::VideoRow) -> Self {
        api::VideoRow {
            id: v.id,
            size: v.size,
            held: v.held,
            pieces: v.pieces,
            published: v.published,
        }
    }
}

impl From<vod::service::VodStats> for api::VodStats {
    fn from(s: vod::service::VodStats) -> Self {
        api::VodStats { served: s.served, fetched: s.fetched }
    }
}

impl From<cloudy_sync::service::Status> for api::FolderStatus {
    fn from(s: cloudy_sync::service::Status) -> Self {
        api::FolderStatus {
            state: s.state,
            files: s.files,
            bytes: s.bytes,
            need_files: s.need_files,
            need_bytes: s.need_bytes,
            downloaded: s.downloaded,
            uploaded: s.uploaded,
            sequence: s.sequence,
            applied: s.applied,
            errors: s.errors,
        }
    }
}
