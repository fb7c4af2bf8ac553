//! What a node measures of a channel it takes part in.

use std::collections::VecDeque;

/// Arrivals remembered for [`Stats::arrivals`].
pub const ARRIVALS: usize = 4096;

/// Counters of one channel on one node.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Distinct chunks received (viewer) or cut (publisher).
    pub chunks: u64,
    /// Chunk bytes received from neighbours.
    pub bytes_down: u64,
    /// Chunk bytes sent to neighbours.
    pub bytes_up: u64,
    /// Chunks sent to neighbours.
    pub chunks_up: u64,
    /// Chunks received twice.
    pub duplicates: u64,
    /// Their bytes.
    pub bytes_dup: u64,
    /// Requests that went unanswered in time.
    pub timeouts: u64,
    /// Requests the publisher turned down to keep its upload low.
    pub spared: u64,
    /// Chunks refused: forged, altered or malformed.
    pub rejected: u64,
    /// Chunks written to players.
    pub played: u64,
    /// Chunks skipped by players (late or undecodable after a loss).
    pub skipped: u64,
    /// Neighbour sessions opened and closed since the start.
    pub sessions_opened: u64,
    /// Sessions closed.
    pub sessions_closed: u64,
    /// Chunk bytes by neighbour (peer id): `(sent to it, received from it)`.
    pub by_peer: std::collections::BTreeMap<String, (u64, u64)>,
    /// The first chunk played here.
    pub first_played: Option<u64>,
    /// The latest chunks: `(seq, publisher's timestamp ms, ms from that
    /// timestamp to arrival here)`.
    pub arrivals: VecDeque<(u64, u64, u64)>,
}

impl Stats {
    /// Records a new chunk.
    pub fn arrived(&mut self, seq: u64, timestamp_ms: u64, now_ms: u64) {
        self.chunks += 1;
        if self.arrivals.len() == ARRIVALS {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((seq, timestamp_ms, now_ms.saturating_sub(timestamp_ms)));
    }

    /// Latency percentiles (ms) over the remembered arrivals:
    /// `(p50, p95, max)`.
    pub fn latency(&self) -> Option<(u64, u64, u64)> {
        let mut l: Vec<u64> = self.arrivals.iter().map(|a| a.2).collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.95), at(1.0)))
    }

    /// Share of chunks from the first one played to the newest that
    /// arrived within `deadline_ms` of being cut.
    pub fn continuity(&self, deadline_ms: u64) -> Option<f64> {
        let first = self.first_played?;
        let newest = self.arrivals.iter().map(|a| a.0).max()?;
        if newest < first {
            return None;
        }
        let span = newest - first + 1;
        let on_time =
            self.arrivals.iter().filter(|a| a.0 >= first && a.2 <= deadline_ms).count() as u64;
        Some(on_time.min(span) as f64 / span as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_and_continuity() {
        let mut s = Stats::default();
        assert!(s.latency().is_none() && s.continuity(3000).is_none());
        for seq in 0..10u64 {
            if seq == 6 {
                continue; // never arrived
            }
            let late = if seq == 7 { 5000 } else { seq * 10 };
            s.arrived(seq, 1000, 1000 + late);
        }
        s.first_played = Some(2);
        assert_eq!(s.latency(), Some((40, 5000, 5000)));
        // 2..=9 is 8 chunks: 6 is missing and 7 was late.
        assert_eq!(s.continuity(3000), Some(6.0 / 8.0));
    }
}
