//! `invite` and `join` (a community in one step), shell completions and
//! the manual page.

use crate::args::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use cloudy_node::control::client::Client;
use cloudy_node::invite;
use cloudy_node::{Home, InitOptions};

pub(super) async fn invite(client: &Client, json: bool) -> Result<()> {
    let status = client.status().await?;
    let addrs = status.listen_addrs.iter().filter_map(|a| a.parse().ok()).collect();
    let text = invite::encode(&invite::shareable(addrs));
    if json {
        println!("{}", serde_json::json!({ "invite": text, "peer_id": status.peer_id }));
    } else {
        println!("{text}");
        eprintln!("on the new member: cloudy-p2p join {text}");
    }
    Ok(())
}

pub(super) async fn join(home: &Home, text: &str, mut opts: InitOptions) -> Result<()> {
    let addrs = invite::decode(text)?;
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
