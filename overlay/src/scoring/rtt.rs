//! Exponentially weighted moving average of round-trip times.

use std::time::Duration;

/// Weight of a new sample.
pub const ALPHA: f64 = 0.3;

/// An RTT EWMA; `None` until the first sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RttEwma(Option<f64>);

impl RttEwma {
    /// Folds in one sample.
    pub fn add(&mut self, sample: Duration) {
        let s = sample.as_secs_f64();
        self.0 = Some(match self.0 {
            None => s,
            Some(prev) => ALPHA * s + (1.0 - ALPHA) * prev,
        });
    }

    /// The current average.
    pub fn get(&self) -> Option<Duration> {
        self.0.map(Duration::from_secs_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_then_smoothing() {
        let mut e = RttEwma::default();
        assert_eq!(e.get(), None);
        e.add(Duration::from_millis(10));
        assert_eq!(e.get(), Some(Duration::from_millis(10)));
        e.add(Duration::from_millis(110));
        let v = e.get().unwrap().as_secs_f64() * 1000.0;
        assert!((v - 40.0).abs() < 1e-6, "{v}");
    }
}
