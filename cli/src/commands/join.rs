//! `invite` and `join` (a community in one step), shell completions and
//! the manual page.

use crate::args::Cli;
use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use cloudy_node::control::api::MakeInvite;
use cloudy_node::control::client::Client;
use cloudy_node::invite;
use cloudy_node::{Home, InitOptions};

pub(super) async fn invite(
    client: &Client,
    uses: Option<u32>,
    expires: Option<std::time::Duration>,
    json: bool,
) -> Result<()> {
    let status = client.status().await?;
    let community = client.community().await?;
    let mut expires_at = None;
    let (text, about) = if community.id.is_some() {
        let req = MakeInvite {
            uses: uses.unwrap_or(1),
            expires_secs: expires.map_or(DEFAULT_INVITE_SECS, |d| d.as_secs()),
        };
        let made = client.make_invite(&req).await?;
        expires_at = Some(made.expires);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(made.expires);
        let about = format!(
            "good for {} join(s) until {}, at this admin only",
            made.uses,
            humantime::format_rfc3339_seconds(when)
        );
        (made.invite, about)
    } else {
        if uses.is_some() || expires.is_some() {
            bail!("this node is in an open community: its invite has no uses or expiry (anyone who reaches a member may join); `cloudy-p2p community create NAME` makes it private");
        }
        let addrs = status.listen_addrs.iter().filter_map(|a| a.parse().ok()).collect();
        (
            invite::encode(&invite::shareable(addrs)),
            "open community: anyone with it may join".into(),
        )
    };
    if json {
        let v =
            serde_json::json!({ "invite": text, "peer_id": status.peer_id, "expires": expires_at });
        println!("{v}");
    } else {
        println!("{text}");
        eprintln!("{about}; on the new member: cloudy-p2p join {text}");
    }
    Ok(())
}

/// How long a private invite stays good unless told: 7 days.
const DEFAULT_INVITE_SECS: u64 = 7 * 86_400;

pub(super) async fn join(home: &Home, text: &str, mut opts: InitOptions) -> Result<()> {
    let decoded = invite::decode_any(text)?;
    let addrs = decoded.addrs;
    let listed: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    if home.is_initialised() {
        let added = home.add_bootstrap(&listed)?;
        println!("added {added} bootstrap address(es) to {}", home.config_path().display());
    } else {
        opts.bootstrap.extend(listed.iter().cloned());
        home.init(&opts)?;
        // A config kept from an incomplete home still gets the addresses.
        home.add_bootstrap(&listed)?;
        println!(
            "initialised {} with the invite's {} address(es)",
            home.root().display(),
            addrs.len()
        );
    }
    if let Some(ticket) = decoded.ticket {
        let (id, admin) = cloudy_node::community::join(home, &addrs, ticket).await?;
        let by = admin.map_or(String::new(), |a| format!(", admitted by {a}"));
        println!("joined private community {id}{by}");
        if super::community::running(home).await {
            println!(
                "restart the node to use its certificate: cloudy-p2p --home {} stop, then up",
                home.root().display()
            );
        } else {
            println!("next: cloudy-p2p --home {} up", home.root().display());
        }
        return Ok(());
    }
    // A node already running here joins now; otherwise at its next start.
    if let Ok(client) = Client::for_home(home) {
        if client.status().await.is_ok() {
            let mut last = None;
            for a in &addrs {
                match client.connect(&a.to_string()).await {
                    Ok(r) => {
                        println!("connected to {}", r.peer_id);
                        return Ok(());
                    }
                    Err(e) => last = Some(e),
                }
            }
            let e = last.expect("an invite has an address");
            return Err(e).context("the running node could not reach any address in the invite");
        }
    }
    println!("next: cloudy-p2p --home {} up", home.root().display());
    Ok(())
}

pub(super) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cloudy-p2p", &mut out);
    write_stdout(&out)
}

pub(super) fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}
