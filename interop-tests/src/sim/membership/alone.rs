//! One member table alone: the idle work of one node's table and detector
//! each second (the detector's tick, its monitor targets, two probes
//! answered, and a table summary every `sync_interval`), at N members, in
//! a process that holds nothing else, as a node's does.
//!
//! The simulation's CPU per table is measured among up to 300 full tables
//! and 10,000 nodes' state in one process, which keeps every table out of
//! the caches; this measures the same calls on one warm table, to tell the
//! cost of the code from the cost of the simulation (DESIGN/simulation.md).

use super::engine::alive_of;
use cloudy_overlay::membership::detector::Detector;
use cloudy_overlay::membership::wire::Message;
use cloudy_overlay::membership::MemberTable;
use cloudy_overlay::{Config, PeerId};
use std::time::Duration;
use tokio::time::Instant;

/// The CPU time one table's idle second takes with `members` members,
/// the mean over `secs` simulated seconds.
pub fn idle_second(members: usize, secs: u32) -> Duration {
    let cfg = Config::default();
    let local = PeerId::random();
    let mut table = MemberTable::new(local, cfg.timing);
    let start = Instant::now();
    for i in 0..members {
        table.apply(Message::Alive(alive_of(PeerId::random(), i, 1)), start);
    }
    let me = alive_of(local, members, 1);
    let mut detector = Detector::default();
    let sync_every = cfg.sync_interval.as_secs().max(1) as u32;
    let mut work = || {
        let began = std::time::Instant::now();
        for s in 1..=secs {
            let now = start + Duration::from_secs(u64::from(s));
            assert!(table.tick(now).is_empty(), "an idle table changes nothing");
            let targets = detector.targets(&table, local, cfg.monitors).to_vec();
            for t in &targets {
                assert!(table.touch(t, now).is_empty());
            }
            if s % sync_every == 0 {
                std::hint::black_box(table.hello(&me));
            }
            std::hint::black_box(table.next_deadline());
        }
        began.elapsed()
    };
    work(); // warm, as a running node's table is
    work() / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_second_is_measured_at_any_size() {
        for n in [10, 1000] {
            let t = idle_second(n, 100);
            assert!(t > Duration::ZERO && t < Duration::from_millis(1), "{n}: {t:?}");
        }
    }
}
