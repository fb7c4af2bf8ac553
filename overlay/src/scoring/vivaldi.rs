//! Vivaldi network coordinates, the variant Serf and Consul use (Dabek et al.,
//! "Vivaldi: A Decentralized Network Coordinate System", plus a height term
//! for the access link and an adjustment term learnt from recent errors).
//!
//! Each node keeps one [`Coordinate`]. Every measured round trip to a peer
//! whose coordinate we know moves ours a little ([`Coordinate::update`]);
//! the distance between two coordinates estimates the RTT between their nodes
//! even when they have never exchanged a packet.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Number of Euclidean dimensions, as in Serf.
pub const DIMENSIONS: usize = 8;
const ERROR_MAX: f64 = 1.5;
const CE: f64 = 0.25;
const CC: f64 = 0.25;
const HEIGHT_MIN: f64 = 10.0e-6;
const ADJUSTMENT_WINDOW: usize = 20;
const ZERO: f64 = 1.0e-6;
/// RTT samples above this are treated as measurement faults and ignored.
const MAX_RTT_SECS: f64 = 10.0;

/// A network coordinate. Units are seconds.
///
/// Serialized with 5 significant digits ([`short`]): a coordinate rides
/// in every heartbeat, and `1.2345678901234567e-5` costs 21 bytes where
/// `1.2346e-5` costs 9, for a precision far below what round trips can
/// measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// Position in the Euclidean part of the space.
    #[serde(serialize_with = "short::vec")]
    pub vec: [f64; DIMENSIONS],
    /// Confidence in the position: 1.5 means "no idea", near 0 means settled.
    #[serde(serialize_with = "short::num")]
    pub error: f64,
    /// Learnt offset that absorbs systematic error of this node.
    #[serde(serialize_with = "short::num")]
    pub adjustment: f64,
    /// Height above the plane: the node's own access-link latency.
    #[serde(serialize_with = "short::num")]
    pub height: f64,
}

/// Serializes numbers rounded to 5 significant digits.
mod short {
    use serde::ser::{SerializeTuple, Serializer};

    /// `x` rounded to 5 significant digits (non-finite values unchanged).
    pub(super) fn round(x: f64) -> f64 {
        if x == 0.0 || !x.is_finite() {
            return x;
        }
        format!("{x:.4e}").parse().unwrap_or(x)
    }

    pub(super) fn num<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(round(*x))
    }

    pub(super) fn vec<S: Serializer>(
        v: &[f64; super::DIMENSIONS],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(v.len())?;
        for x in v {
            t.serialize_element(&round(*x))?;
        }
        t.end()
    }
}

impl Default for Coordinate {
    fn default() -> Self {
        Coordinate { vec: [0.0; DIMENSIONS], error: ERROR_MAX, adjustment: 0.0, height: HEIGHT_MIN }
    }
}

impl Coordinate {
    /// True when every field is a finite number in a sane range; coordinates
    /// from the wire are checked with this before use.
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|v| v.is_finite() && v.abs() < 1.0e6)
            && self.error.is_finite()
            && self.error >= 0.0
            && self.adjustment.is_finite()
            && self.height.is_finite()
            && self.height >= 0.0
    }

    /// Estimated round-trip time to `other`.
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        let plain = magnitude(&diff(&self.vec, &other.vec)) + self.height + other.height;
        let adjusted = plain + self.adjustment + other.adjustment;
        let secs = if adjusted > 0.0 { adjusted } else { plain };
        Duration::from_secs_f64(secs.clamp(0.0, MAX_RTT_SECS))
    }
}

/// Our own coordinate plus the state needed to update it.
#[derive(Clone, Debug, Default)]
pub struct VivaldiClient {
    coord: Coordinate,
    adjustment_samples: Vec<f64>,
    next_sample: usize,
}

impl VivaldiClient {
    /// The current coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// Feeds one RTT measurement to a peer whose coordinate is `other`.
    /// Invalid coordinates and absurd RTTs are ignored.
    pub fn update(&mut self, other: &Coordinate, rtt: Duration) {
        let rtt = rtt.as_secs_f64();
        if !other.is_valid() || !(0.0..MAX_RTT_SECS).contains(&rtt) {
            return;
        }
        let rtt = rtt.max(ZERO);
        self.update_position(other, rtt);
        self.update_adjustment(other, rtt);
        if !self.coord.is_valid() {
            // Numerical trouble: start over rather than spread garbage.
            *self = VivaldiClient::default();
        }
    }

    fn update_position(&mut self, other: &Coordinate, rtt: f64) {
        let dist = raw_distance(&self.coord, other);
        let wrongness = (dist - rtt).abs() / rtt;
        let total_error = (self.coord.error + other.error).max(ZERO);
        let weight = self.coord.error / total_error;
        self.coord.error =
            (CE * weight * wrongness + self.coord.error * (1.0 - CE * weight)).min(ERROR_MAX);
        let force = CC * weight * (rtt - dist);
        self.apply_force(force, other);
    }

    fn apply_force(&mut self, force: f64, other: &Coordinate) {
        let (unit, mag) = unit_vector_at(&self.coord.vec, &other.vec);
        for (v, u) in self.coord.vec.iter_mut().zip(unit.iter()) {
            *v += u * force;
        }
        if mag > ZERO {
            let h = (self.coord.height + other.height) * force / mag + self.coord.height;
            self.coord.height = h.max(HEIGHT_MIN);
        }
    }

    fn update_adjustment(&mut self, other: &Coordinate, rtt: f64) {
        let sample = rtt - raw_distance(&self.coord, other);
        if self.adjustment_samples.len() < ADJUSTMENT_WINDOW {
            self.adjustment_samples.push(sample);
        } else {
            self.adjustment_samples[self.next_sample] = sample;
        }
        self.next_sample = (self.next_sample + 1) % ADJUSTMENT_WINDOW;
        let sum: f64 = self.adjustment_samples.iter().sum();
        self.coord.adjustment = sum / (2.0 * ADJUSTMENT_WINDOW as f64);
    }
}

/// Distance without the adjustment terms, in seconds.
fn raw_distance(a: &Coordinate, b: &Coordinate) -> f64 {
    magnitude(&diff(&a.vec, &b.vec)) + a.height + b.height
}

fn diff(a: &[f64; DIMENSIONS], b: &[f64; DIMENSIONS]) -> [f64; DIMENSIONS] {
    let mut out = [0.0; DIMENSIONS];
    for i in 0..DIMENSIONS {
        out[i] = a[i] - b[i];
    }
    out
}

fn magnitude(v: &[f64; DIMENSIONS]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Unit vector pointing from `b` to `a`, and the distance between them. When
/// the two points coincide a random direction is chosen, so that nodes that
/// all start at the origin push each other apart.
fn unit_vector_at(a: &[f64; DIMENSIONS], b: &[f64; DIMENSIONS]) -> ([f64; DIMENSIONS], f64) {
    let d = diff(a, b);
    let mag = magnitude(&d);
    if mag > ZERO {
        return (d.map(|x| x / mag), mag);
    }
    let r: [f64; DIMENSIONS] = std::array::from_fn(|_| rand::random::<f64>() - 0.5);
    let rmag = magnitude(&r).max(ZERO);
    (r.map(|x| x / rmag), 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_short_and_close() {
        let c = Coordinate {
            vec: [
                1.2345678901234567e-5,
                -0.0123456789,
                0.0,
                3.0,
                1e-9,
                -7.77777777e-4,
                0.5,
                2.0e-3,
            ],
            error: 0.123456789,
            adjustment: -1.0e-5 / 3.0,
            height: 1.0e-5 + 1.0e-12,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.len() < 170, "{} bytes: {json}", json.len());
        let back: Coordinate = serde_json::from_str(&json).unwrap();
        assert!(back.is_valid());
        let close = |a: f64, b: f64| (a - b).abs() <= a.abs() * 1e-4;
        assert!(c.vec.iter().zip(back.vec).all(|(a, b)| close(*a, b)), "{json}");
        assert!(
            close(c.error, back.error)
                && close(c.adjustment, back.adjustment)
                && close(c.height, back.height)
        );
        assert!(json.contains("0.000012346,"), "{json}");
    }

    /// Three nodes on a line with true RTTs 10 ms (a-b), 20 ms (b-c) and
    /// 30 ms (a-c): after some rounds the estimates are close to the truth.
    #[test]
    fn converges_on_a_line() {
        let truth = [[0.0, 0.010, 0.030], [0.010, 0.0, 0.020], [0.030, 0.020, 0.0]];
        let mut nodes: [VivaldiClient; 3] = Default::default();
        for _ in 0..300 {
            for i in 0..3 {
                for j in 0..3 {
                    if i != j {
                        let other = nodes[j].coordinate().clone();
                        nodes[i].update(&other, Duration::from_secs_f64(truth[i][j]));
                    }
                }
            }
        }
        for i in 0..3 {
            for j in 0..3 {
                if i == j {
                    continue;
                }
                let est = nodes[i].coordinate().distance_to(nodes[j].coordinate()).as_secs_f64();
                assert!(
                    (est - truth[i][j]).abs() < 0.004,
                    "{i}->{j}: est {est} truth {}",
                    truth[i][j]
                );
            }
        }
        assert!(nodes[0].coordinate().error < 0.5);
    }

    #[test]
    fn garbage_is_ignored() {
        let mut c = VivaldiClient::default();
        let mut bad = Coordinate::default();
        bad.vec[0] = f64::NAN;
        c.update(&bad, Duration::from_millis(10));
        c.update(&Coordinate::default(), Duration::from_secs(3600));
        assert_eq!(c.coordinate(), &Coordinate::default());
    }
}
