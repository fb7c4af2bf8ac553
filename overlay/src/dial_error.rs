//! Why a dial failed, in the user's terms rather than libp2p's
//! ("Failed to negotiate transport protocol(s): [(…: : Handshake with the
//! remote timed out.: Handshake with the remote timed out.)]").

use libp2p::core::transport::TransportError;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::DialError;
use libp2p::Multiaddr;
use std::io;

/// One line saying why a dial failed.
pub(crate) fn reason(e: &DialError) -> String {
    match e {
        DialError::LocalPeerId { .. } => "that is this node's own address".into(),
        DialError::WrongPeerId { obtained, .. } => {
            format!("another node answers there ({obtained}); the address is out of date")
        }
        DialError::NoAddresses => "no address is known for it".into(),
        DialError::Denied { cause } => cause.to_string(),
        DialError::Transport(errors) => {
            // One address: the caller names it already.
            let one = errors.len() == 1;
            let mut reasons: Vec<String> = errors
                .iter()
                .map(|(addr, e)| match (transport_reason(addr, e), one) {
                    (r, true) => r,
                    (r, false) => format!("{r} at {addr}"),
                })
                .collect();
            reasons.dedup();
            reasons.join("; ")
        }
        other => other.to_string(),
    }
}

fn transport_reason(addr: &Multiaddr, e: &TransportError<io::Error>) -> String {
    match e {
        TransportError::MultiaddrNotSupported(_) => unsupported(addr),
        TransportError::Other(io) => {
            // libp2p's wrappers may hide the socket's error behind their
            // own (a transparent wrapper forwards its text, not itself):
            // its text says it then.
            let kinds = kinds(io);
            let text = first_words(io);
            let lower = text.to_lowercase();
            if kinds.contains(&io::ErrorKind::ConnectionRefused)
                || lower.contains("connection refused")
            {
                "connection refused (nothing listens on that port)".to_string()
            } else if kinds.contains(&io::ErrorKind::TimedOut) || lower.contains("timed out") {
                no_answer()
            } else {
                // The other side's own words (a private community's gate:
                // "… refused this node: … was evicted from the community").
                text
            }
        }
    }
}

fn no_answer() -> String {
    "no answer (nothing listens there, or a firewall drops the packets)".into()
}

/// Why this node cannot use `addr` at all.
fn unsupported(addr: &Multiaddr) -> String {
    let mut names_port = false;
    for p in addr.iter() {
        match p {
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_) => {
                return format!(
                    "{addr} names a host; give its IP address instead (/ip4/… or /ip6/…)"
                )
            }
            Protocol::Udp(_) | Protocol::Tcp(_) => names_port = true,
            _ => {}
        }
    }
    match names_port {
        false => format!(
            "{addr} names no port; a member's address looks like /ip4/10.0.0.5/udp/7391/quic-v1 (`cloudy-p2p status` on it prints them)"
        ),
        true => format!("{addr} is not an address this node can dial (it speaks QUIC and TCP)"),
    }
}

/// The errors inside `e`, outermost first. An I/O error's `source()`
/// skips the error it wraps (it returns that error's own source), so the
/// walk starts at `get_ref`.
fn inner(e: &io::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    let first = e.get_ref().map(|s| s as &(dyn std::error::Error + 'static));
    std::iter::successors(first, |s| s.source())
}

/// The kinds of the I/O errors in an error's chain (libp2p's transports
/// wrap the socket's error in their own).
fn kinds(e: &io::Error) -> Vec<io::ErrorKind> {
    let wrapped = inner(e).filter_map(|s| s.downcast_ref::<io::Error>()).map(io::Error::kind);
    std::iter::once(e.kind()).chain(wrapped).collect()
}

/// The first message in an error's chain that says something (libp2p's
/// outer errors may print nothing, or the same words as their source).
fn first_words(e: &io::Error) -> String {
    std::iter::once(e.to_string())
        .chain(inner(e).map(|s| s.to_string()))
        .find(|text| !text.is_empty())
        .map(|text| text.trim_end_matches('.').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(addr: &str, e: TransportError<io::Error>) -> String {
        let addr: Multiaddr = addr.parse().unwrap();
        reason(&DialError::Transport(vec![(addr, e)]))
    }

    #[test]
    fn a_failed_dial_says_why_in_plain_words() {
        // As libp2p-tcp reports it: the socket's error inside another.
        let refused = io::Error::other(io::Error::from(io::ErrorKind::ConnectionRefused));
        let r = transport("/ip4/127.0.0.1/tcp/9", TransportError::Other(refused));
        assert_eq!(r, "connection refused (nothing listens on that port)");
        let hidden = io::Error::other("Connection refused (os error 111)");
        let r = transport("/ip4/127.0.0.1/tcp/9", TransportError::Other(hidden));
        assert_eq!(r, "connection refused (nothing listens on that port)");
        let timeout = io::Error::other(io::Error::other("Handshake with the remote timed out."));
        let r = transport("/ip4/127.0.0.1/udp/9/quic-v1", TransportError::Other(timeout));
        assert!(r.starts_with("no answer (nothing listens there"), "{r}");
        let bare: Multiaddr = "/ip4/1.2.3.4".parse().unwrap();
        let r = transport("/ip4/1.2.3.4", TransportError::MultiaddrNotSupported(bare));
        assert!(r.contains("names no port") && r.contains("/udp/7391/quic-v1"), "{r}");
        let dns: Multiaddr = "/dns4/example.org/tcp/7391".parse().unwrap();
        let r = transport("/dns4/example.org/tcp/7391", TransportError::MultiaddrNotSupported(dns));
        assert!(r.contains("names a host"), "{r}");
        let odd = io::Error::other(io::Error::other("peer sent garbage"));
        let r = transport("/ip4/127.0.0.1/tcp/9", TransportError::Other(odd));
        assert_eq!(r, "peer sent garbage");
        // A gate's refusal keeps its own words (it says "refused" too).
        let gate = io::Error::other("12D3KooW… refused this node: it was evicted");
        let r = transport("/ip4/127.0.0.1/udp/9/quic-v1", TransportError::Other(gate));
        assert_eq!(r, "12D3KooW… refused this node: it was evicted");
        // Several addresses of one peer: each says where.
        let (a, b): (Multiaddr, Multiaddr) =
            ("/ip4/10.0.0.1/tcp/9".parse().unwrap(), "/ip4/10.0.0.2/tcp/9".parse().unwrap());
        let refused = || TransportError::Other(io::Error::from(io::ErrorKind::ConnectionRefused));
        let r = reason(&DialError::Transport(vec![(a, refused()), (b, refused())]));
        assert!(r.contains("at /ip4/10.0.0.1/tcp/9; connection refused"), "{r}");
    }
}
