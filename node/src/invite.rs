//! Community invites: `cloudy-join:1:<base32>`, carrying the addresses of
//! one or more members (with `/p2p/`), for `cloudy-p2p join`. Base32
//! (lowercase, no padding) of the addresses' binary multiaddrs, each
//! preceded by its length as one byte, so an invite survives being pasted
//! into chat, mail or a web form.
//!
//! An open community's invite (`cloudy-join:1:`) carries no secret: anyone
//! who reaches a member may join. A private community's invite
//! (`cloudy-join:2:`) starts with the community id, the invite's id and its
//! one-time secret, then the admin's addresses, and is good only at that
//! admin (see DESIGN/security.md).

use cloudy_overlay::community::join::Ticket;
use cloudy_overlay::multiaddr::Protocol;
use cloudy_overlay::{Multiaddr, PeerId};

const PREFIX: &str = "cloudy-join:1:";
const PRIVATE: &str = "cloudy-join:2:";

/// A decoded invite.
#[derive(Clone, Debug)]
pub struct Invite {
    /// Members to dial (with `/p2p/`).
    pub addrs: Vec<Multiaddr>,
    /// For a private community: what admits this node.
    pub ticket: Option<Ticket>,
}

/// Why an invite cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad invite: {0}")]
pub struct InviteError(String);

fn bad(why: impl Into<String>) -> InviteError {
    InviteError(why.into())
}

/// The invite for `addrs`; those without `/p2p/` are left out.
pub fn encode(addrs: &[Multiaddr]) -> String {
    let mut bytes = Vec::new();
    for a in addrs.iter().filter(|a| has_peer(a)) {
        let raw = a.to_vec();
        if let Ok(len) = u8::try_from(raw.len()) {
            bytes.push(len);
            bytes.extend_from_slice(&raw);
        }
    }
    format!("{PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

/// The invite to a private community for `addrs` (the admin's).
pub fn encode_private(addrs: &[Multiaddr], t: &Ticket) -> String {
    let id = t.community.to_bytes();
    let mut bytes = vec![id.len() as u8];
    bytes.extend_from_slice(&id);
    bytes.extend_from_slice(&t.invite);
    bytes.extend_from_slice(&t.secret);
    let open = encode(addrs);
    let tail = data_encoding::BASE32_NOPAD
        .decode(open[PREFIX.len()..].to_ascii_uppercase().as_bytes())
        .expect("encode writes base32");
    bytes.extend(tail);
    format!("{PRIVATE}{}", data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

/// The addresses in an invite (at least one, each with `/p2p/`) and, for a
/// private community, its ticket.
pub fn decode_any(invite: &str) -> Result<Invite, InviteError> {
    let text = invite.trim();
    let Some(body) = text.strip_prefix(PRIVATE) else {
        return Ok(Invite { addrs: decode(text)?, ticket: None });
    };
    let bytes = base32(body)?;
    let cut = || bad("it ends before its addresses (was it cut short?)");
    let (&len, rest) = bytes.split_first().ok_or_else(cut)?;
    let id = rest.get(..len as usize).ok_or_else(cut)?;
    let community = PeerId::from_bytes(id)
        .map_err(|e| bad(format!("its community id is not a peer id: {e}")))?;
    let rest = &rest[len as usize..];
    let invite: [u8; 16] = rest.get(..16).ok_or_else(cut)?.try_into().expect("16 bytes");
    let secret: [u8; 32] = rest.get(16..48).ok_or_else(cut)?.try_into().expect("32 bytes");
    let addrs = addresses(&rest[48..])?;
    Ok(Invite { addrs, ticket: Some(Ticket { community, invite, secret }) })
}

fn base32(body: &str) -> Result<Vec<u8>, InviteError> {
    data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|e| bad(format!("not base32: {e} (was it cut short when pasted?)")))
}

/// The addresses in an open community's invite: at least one, each with
/// `/p2p/`.
pub fn decode(invite: &str) -> Result<Vec<Multiaddr>, InviteError> {
    let body = invite.trim().strip_prefix(PREFIX).ok_or_else(|| {
        bad(format!("it does not start with {PREFIX} or {PRIVATE} (`cloudy-p2p invite` on a member prints one)"))
    })?;
    addresses(&base32(body)?)
}

/// Length-prefixed binary multiaddrs, each with `/p2p/`; at least one.
fn addresses(bytes: &[u8]) -> Result<Vec<Multiaddr>, InviteError> {
    let mut addrs = Vec::new();
    let mut rest = bytes;
    while let Some((&len, tail)) = rest.split_first() {
        let raw = tail
            .get(..len as usize)
            .ok_or_else(|| bad("it ends in the middle of an address (was it cut short?)"))?;
        let addr = Multiaddr::try_from(raw.to_vec())
            .map_err(|e| bad(format!("an address in it is not a multiaddr: {e}")))?;
        if !has_peer(&addr) {
            return Err(bad(format!("{addr} has no /p2p/ peer id")));
        }
        addrs.push(addr);
        rest = &tail[len as usize..];
    }
    if addrs.is_empty() {
        return Err(bad("it holds no address"));
    }
    Ok(addrs)
}

fn has_peer(a: &Multiaddr) -> bool {
    matches!(a.iter().last(), Some(Protocol::P2p(_)))
}

/// The addresses worth inviting to: all but loopback ones, unless there
/// are only loopback ones (a local test community).
pub fn shareable(addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let loopback = |a: &Multiaddr| {
        a.iter().any(|p| {
            matches!(p, Protocol::Ip4(ip) if ip.is_loopback())
                || matches!(p, Protocol::Ip6(ip) if ip.is_loopback())
        })
    };
    if addrs.iter().all(loopback) {
        return addrs;
    }
    addrs.into_iter().filter(|a| !loopback(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "12D3KooWN4aihBqGyP3pNXD9wxEfGP7dY4u6YFejG8CNpMs8UybT";

    fn addrs() -> Vec<Multiaddr> {
        vec![
            format!("/ip4/10.1.2.3/udp/7391/quic-v1/p2p/{PEER}").parse().unwrap(),
            format!("/ip4/10.1.2.3/tcp/7391/p2p/{PEER}").parse().unwrap(),
        ]
    }

    #[test]
    fn round_trip_and_plain_text() {
        let invite = encode(&addrs());
        assert!(invite.starts_with("cloudy-join:1:"));
        assert!(
            invite[PREFIX.len()..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{invite}"
        );
        assert_eq!(decode(&format!("  {invite}\n")).unwrap(), addrs());
    }

    #[test]
    fn a_private_invite_carries_its_ticket_and_survives_pasting() {
        let ticket = Ticket { community: PEER.parse().unwrap(), invite: [3; 16], secret: [9; 32] };
        let text = encode_private(&addrs(), &ticket);
        assert!(text.starts_with(PRIVATE));
        let back = decode_any(&format!(" {text}\n")).unwrap();
        assert_eq!(back.addrs, addrs());
        let t = back.ticket.expect("a ticket");
        assert_eq!((t.community, t.invite, t.secret), (ticket.community, [3; 16], [9; 32]));
        assert!(decode_any(&text[..30]).unwrap_err().to_string().contains("cut short"));
        // An open invite has no ticket.
        assert!(decode_any(&encode(&addrs())).unwrap().ticket.is_none());
    }

    #[test]
    fn bad_invites_say_what_is_wrong() {
        let invite = encode(&addrs());
        let cases = [
            ("cloudy-sync:abc", "does not start with cloudy-join:1: or cloudy-join:2:"),
            ("cloudy-join:1:!!!", "not base32"),
            (&invite[..invite.len() - 8], "cut short"),
            ("cloudy-join:1:", "holds no address"),
        ];
        for (input, words) in cases {
            let e = decode(input).unwrap_err().to_string();
            assert!(e.contains(words), "{input}: {e}");
        }
        let no_peer: Multiaddr = "/ip4/10.1.2.3/tcp/7391".parse().unwrap();
        let raw = no_peer.to_vec();
        let mut bytes = vec![raw.len() as u8];
        bytes.extend(raw);
        let forged =
            format!("{PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
        assert!(decode(&forged).unwrap_err().to_string().contains("has no /p2p/ peer id"));
        assert_eq!(encode(&[no_peer]), PREFIX, "addresses without a peer id are left out");
    }

    #[test]
    fn loopback_addresses_only_when_there_is_nothing_else() {
        let lo: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{PEER}").parse().unwrap();
        let mut all = addrs();
        all.push(lo.clone());
        assert_eq!(shareable(all), addrs());
        assert_eq!(shareable(vec![lo.clone()]), vec![lo]);
    }
}
