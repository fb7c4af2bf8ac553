//! Noticing a holder that went silent: a stream wrapper that notes when
//! bytes last arrived, and how long a silence is tolerated given the
//! holder's measured round trip.

use futures::io::{AsyncRead, AsyncWrite};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The shortest silence after which a holder is abandoned: a lossy
/// wireless link can stall for a second or more while QUIC recovers a
/// lost packet.
pub(crate) const MIN_SILENCE: Duration = Duration::from_secs(2);
/// Round trips of silence tolerated.
const SILENT_ROUND_TRIPS: u32 = 8;

/// How long a holder with round trip `rtt` may send nothing while a
/// request is outstanding: [`SILENT_ROUND_TRIPS`] round trips, at least
/// [`MIN_SILENCE`], at most `ceiling` (the call timeout, also used when
/// the round trip is unknown).
pub(crate) fn silence_for(rtt: Option<Duration>, ceiling: Duration) -> Duration {
    rtt.map_or(ceiling, |r| (r * SILENT_ROUND_TRIPS).clamp(MIN_SILENCE, ceiling))
}

/// When bytes last arrived on a stream.
#[derive(Clone, Debug)]
pub(crate) struct Meter {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Meter {
    fn new() -> Self {
        Meter { start: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    /// Notes that bytes arrived now (also: a request just went out, so
    /// the silence is counted from here).
    pub(crate) fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since bytes last arrived (or since the last [`Meter::touch`]).
    pub(crate) fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A stream whose reads move its [`Meter`].
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    meter: Meter,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S) -> Self {
        let meter = Meter::new();
        meter.touch();
        Metered { inner, meter }
    }

    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.meter.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncReadExt;

    #[test]
    fn the_tolerated_silence_follows_the_round_trip_within_bounds() {
        let ceiling = Duration::from_secs(10);
        assert_eq!(silence_for(None, ceiling), ceiling);
        assert_eq!(silence_for(Some(Duration::from_millis(1)), ceiling), MIN_SILENCE);
        assert_eq!(silence_for(Some(Duration::from_millis(500)), ceiling), Duration::from_secs(4));
        assert_eq!(silence_for(Some(Duration::from_secs(3)), ceiling), ceiling);
    }

    #[tokio::test]
    async fn reads_move_the_meter() {
        let mut m = Metered::new(futures::io::Cursor::new(b"hello".to_vec()));
        std::thread::sleep(Duration::from_millis(30));
        assert!(m.meter().idle() >= Duration::from_millis(30));
        let mut buf = [0u8; 5];
        m.read_exact(&mut buf).await.unwrap();
        assert!(m.meter().idle() < Duration::from_millis(30));
    }
}
