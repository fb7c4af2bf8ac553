//! Members going down and coming back, as the Guifi availability model of
//! the durability simulation says: 40 % of nodes available 50–90 % of the
//! time, the others 90–99.9 %; down spells of 4 hours on average; each
//! node alternates exponential up and down spells whose means give its
//! availability. A node down when the phase starts (as often as its
//! availability says) has been gone since before the simulation began: it
//! is in no table and comes back as a newcomer.

use super::super::durability::{RELIABLE, UNRELIABLE};
use super::super::wire::draw;

/// Share of nodes in the unreliable class.
const UNRELIABLE_SHARE: f64 = 0.4;
/// Mean length of a down spell, s.
const MEAN_DOWN_SECS: f64 = 4.0 * 3600.0;

/// Node `i`'s availability.
pub(super) fn availability(seed: u64, i: usize) -> f64 {
    let range = if draw((seed, "class", i)) < UNRELIABLE_SHARE { UNRELIABLE } else { RELIABLE };
    range.start + (range.end - range.start) * draw((seed, "avail", i))
}

/// Whether node `i` is down when the churn phase starts.
pub(super) fn down_at_start(seed: u64, i: usize) -> bool {
    draw((seed, "down", i)) >= availability(seed, i)
}

/// When node `i` changes state within `secs` of the phase's start (s from
/// the start), given its state then.
pub(super) fn transitions(seed: u64, i: usize, up: bool, secs: f64) -> Vec<f64> {
    let a = availability(seed, i);
    let mean_up = MEAN_DOWN_SECS * a / (1.0 - a);
    let mut out = Vec::new();
    let (mut t, mut up) = (0.0, up);
    for k in 0.. {
        let mean = if up { mean_up } else { MEAN_DOWN_SECS };
        t += -mean * (1.0 - draw((seed, "spell", i, k))).ln();
        if t >= secs {
            break;
        }
        out.push(t);
        up = !up;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_up_as_often_as_their_availability() {
        let n = 4000;
        let mean_a = (0..n).map(|i| availability(9, i)).sum::<f64>() / n as f64;
        assert!((0.82..0.88).contains(&mean_a), "{mean_a}");
        let down = (0..n).filter(|i| down_at_start(9, *i)).count() as f64 / n as f64;
        assert!((down - (1.0 - mean_a)).abs() < 0.03, "{down} vs {mean_a}");
        // Over a long time, the share of time up matches the availability.
        let year = 365.0 * 86400.0;
        let (mut last, mut up, mut up_time) = (0.0, true, 0.0);
        for x in transitions(9, 3, true, year).into_iter().chain([year]) {
            if up {
                up_time += x - last;
            }
            (last, up) = (x, !up);
        }
        let share = up_time / year;
        assert!((share - availability(9, 3)).abs() < 0.05, "{share}");
    }
}
