//! Naming a peer on the command line: tables show ids shortened
//! (`…USUp62G1` in the CLI, `12D3KooW…p62G1` in the dashboard), so any
//! unique prefix or suffix of a member's id, or both around an ellipsis,
//! is accepted wherever a peer is named.

use anyhow::{bail, Result};
use cloudy_node::control::client::Client;

/// The full peer id that `text` names: a full id as it is, else the one
/// member (or this node) whose id starts or ends with it.
pub(super) async fn resolve(client: &Client, text: &str) -> Result<String> {
    let fragment = fragment(text);
    if looks_full(fragment) {
        return Ok(fragment.to_string());
    }
    let mut ids: Vec<String> = client.peers().await?.into_iter().map(|p| p.peer_id).collect();
    ids.push(client.status().await?.peer_id);
    pick(fragment, &ids)
}

/// `text` without surrounding space and a leading or trailing ellipsis.
fn fragment(text: &str) -> &str {
    let t = text.trim();
    let t = t.trim_start_matches('…').trim_start_matches("...");
    t.trim_end_matches('…').trim_end_matches("...")
}

/// A whole libp2p peer id (Ed25519 ids are 52 characters, RSA ones 46).
fn looks_full(s: &str) -> bool {
    (s.starts_with("12D3KooW") && s.len() == 52) || (s.starts_with("Qm") && s.len() == 46)
}

fn pick(fragment: &str, ids: &[String]) -> Result<String> {
    if fragment.is_empty() {
        bail!("no peer named: give a peer id, or the end of one as `peers` shows it");
    }
    // The dashboard shows `12D3KooW…a1b2c3`: both ends must match.
    let matches = |id: &str| match fragment.split_once('…') {
        Some((head, tail)) => id.starts_with(head) && id.ends_with(tail),
        None => id.starts_with(fragment) || id.ends_with(fragment),
    };
    let mut found: Vec<&String> = ids.iter().filter(|id| matches(id)).collect();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(one.to_string()),
        [] if fragment.starts_with('/') => bail!(
            "{fragment:?} is an address; this command takes a member's peer id (see `peers`), and `cloudy-p2p connect ADDRESS` dials an address"
        ),
        [] => bail!(
            "no member's peer id starts or ends with {fragment:?} (see `peers` for the members)"
        ),
        many => bail!(
            "{fragment:?} names {} members ({}); give more characters",
            many.len(),
            many.iter().map(|m| crate::output::short(m)).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec![
            "12D3KooWAbCdEfGhJkLmNoPqRsTuVwXyZ123456789abcdefUSUp62G1".to_string(),
            "12D3KooWZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzUSUq62G1".to_string(),
        ]
    }

    #[test]
    fn a_shortened_id_names_its_member() {
        let ids = ids();
        assert_eq!(pick(fragment("…USUp62G1"), &ids).unwrap(), ids[0]);
        assert_eq!(pick(fragment("...Up62G1"), &ids).unwrap(), ids[0]);
        assert_eq!(pick(fragment("12D3KooWZz"), &ids).unwrap(), ids[1]);
        let err = pick(fragment("…62G1"), &ids).unwrap_err().to_string();
        assert!(err.contains("names 2 members"), "{err}");
        let err = pick(fragment("12D3KooW"), &ids).unwrap_err().to_string();
        assert!(err.contains("names 2 members"), "{err}");
        let err = pick(fragment("nothing"), &ids).unwrap_err().to_string();
        assert!(err.contains("no member's peer id starts or ends with \"nothing\""), "{err}");
        assert!(pick(fragment("…"), &ids).is_err());
        let err = pick(fragment("/ip4/10.0.0.5/udp/7391/quic-v1"), &ids).unwrap_err().to_string();
        assert!(err.contains("is an address") && err.contains("connect ADDRESS"), "{err}");
        assert_eq!(pick(fragment("12D3KooW…Uq62G1"), &ids).unwrap(), ids[1]);
        assert!(looks_full("12D3KooWN4aihBqGyP3pNXD9wxEfGP7dY4u6YFejG8CNpMs8UybT"));
    }
}
