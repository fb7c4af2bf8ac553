//! Bytes per protocol, for every stream on every connection.
//!
//! libp2p counts bytes per transport only. To see what a node's idle
//! traffic is made of (membership gossip, probes, Kademlia, identify,
//! ping…), every connection's muxer is wrapped: each stream reads the
//! protocol its first bytes negotiate (multistream-select: a length-prefixed
//! `/multistream/1.0.0\n`, then the protocol proposed) and counts what it
//! carries under that name in `cloudy_protocol_bytes_total{protocol,direction}`.
//! Stream payload only: QUIC, TLS, noise and yamux framing are not counted
//! (the transport totals and wire counters include them).

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How many leading bytes a stream is read for its protocol.
const SNIFF_LIMIT: usize = 256;
const HEADER: &[u8] = b"/multistream/1.0.0\n";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    protocol: String,
    direction: &'static str,
}

/// The per-protocol byte counters.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    family: Family<Labels, Counter>,
}

impl Traffic {
    /// Registers `cloudy_protocol_bytes` in `registry`.
    pub fn new(registry: &mut Registry) -> Traffic {
        let t = Traffic::default();
        registry.sub_registry_with_prefix("cloudy").register(
            "protocol_bytes",
            "Stream bytes by negotiated protocol and direction (payload, without transport framing)",
            t.family.clone(),
        );
        t
    }

    fn counters(&self, protocol: String) -> (Counter, Counter) {
        let sent = self
            .family
            .get_or_create(&Labels { protocol: protocol.clone(), direction: "sent" })
            .clone();
        let received =
            self.family.get_or_create(&Labels { protocol, direction: "received" }).clone();
        (sent, received)
    }

    /// Wraps a connection's muxer.
    pub fn wrap(&self, inner: StreamMuxerBox) -> StreamMuxerBox {
        StreamMuxerBox::new(Muxer { inner, traffic: self.clone() })
    }
}

struct Muxer {
    inner: StreamMuxerBox,
    traffic: Traffic,
}

impl StreamMuxer for Muxer {
    type Substream = Counted;
    type Error = io::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Counted, io::Error>> {
        let this = self.get_mut();
        let s = futures::ready!(Pin::new(&mut this.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(Counted::new(s, this.traffic.clone())))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Counted, io::Error>> {
        let this = self.get_mut();
        let s = futures::ready!(Pin::new(&mut this.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(Counted::new(s, this.traffic.clone())))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, io::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A stream counting its bytes under its protocol, once known.
struct Counted {
    inner: SubstreamBox,
    traffic: Traffic,
    /// Leading bytes read and written, until the protocol is known.
    head: [Vec<u8>; 2],
    /// Bytes counted before the protocol was known: sent, received.
    early: [u64; 2],
    counters: Option<(Counter, Counter)>,
}

impl Counted {
    fn new(inner: SubstreamBox, traffic: Traffic) -> Counted {
        Counted { inner, traffic, head: [Vec::new(), Vec::new()], early: [0, 0], counters: None }
    }

    /// Counts `n` bytes sent (`dir` 0) or received (1), `bytes` being them.
    fn count(&mut self, dir: usize, bytes: &[u8]) {
        if let Some((sent, received)) = &self.counters {
            [sent, received][dir].inc_by(bytes.len() as u64);
            return;
        }
        self.early[dir] += bytes.len() as u64;
        let head = &mut self.head[dir];
        head.extend_from_slice(&bytes[..bytes.len().min(SNIFF_LIMIT.saturating_sub(head.len()))]);
        let name =
            protocol_of(&self.head[0]).or_else(|| protocol_of(&self.head[1])).or_else(|| {
                (self.head.iter().any(|h| h.len() >= SNIFF_LIMIT)).then(|| "unknown".to_string())
            });
        if let Some(name) = name {
            let (sent, received) = self.traffic.counters(name);
            sent.inc_by(self.early[0]);
            received.inc_by(self.early[1]);
            self.counters = Some((sent, received));
            self.head = [Vec::new(), Vec::new()];
        }
    }
}

/// The protocol a multistream-select negotiation proposes, if `head`
/// holds its start: varint length, `/multistream/1.0.0\n`, varint length,
/// `<protocol>\n`.
fn protocol_of(head: &[u8]) -> Option<String> {
    let (len, rest) = varint(head)?;
    let (first, rest) = (rest.get(..len)?, rest.get(len..)?);
    if first != HEADER {
        return None;
    }
    let (len, rest) = varint(rest)?;
    let line = rest.get(..len)?;
    let name = std::str::from_utf8(line.strip_suffix(b"\n")?).ok()?;
    Some(name.to_string())
}

fn varint(b: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    for (i, byte) in b.iter().enumerate().take(3) {
        v |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = futures::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.count(1, &buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = futures::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.count(0, &buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiation(protocol: &str) -> Vec<u8> {
        let mut v = vec![HEADER.len() as u8];
        v.extend_from_slice(HEADER);
        v.push(protocol.len() as u8 + 1);
        v.extend_from_slice(protocol.as_bytes());
        v.push(b'\n');
        v
    }

    #[test]
    fn reads_the_proposed_protocol() {
        let head = negotiation("/cloudy/probe/1.0.0");
        assert_eq!(protocol_of(&head).as_deref(), Some("/cloudy/probe/1.0.0"));
        assert_eq!(protocol_of(&head[..10]), None, "not all there yet");
        assert_eq!(protocol_of(b"\x13/multistream/2.0.0\n\x05/a/b\n"), None);
        assert_eq!(protocol_of(b"garbage that is no negotiation"), None);
    }
}
