//! One function per subcommand.

mod backup;
mod community;
mod copy;
mod demo;
mod files;
mod info;
mod join;
mod net;
mod peer;
mod stream;
mod sync;
mod tree;
mod up;

use crate::args::{CapCommand, Cli, Command, InitArgs, MaintainCommand};
use anyhow::{bail, Context, Result};
use cloudy_node::control::api::Announce;
use cloudy_node::control::client::Client;
use cloudy_node::{Home, InitOptions};

/// Runs one parsed command line.
/// An outcome that is not an error of the command but that scripts must
/// tell apart by the exit status (`check`: 3 degraded, 4 unrecoverable).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Verdict {
    pub(crate) code: u8,
    pub(crate) message: String,
}

pub(crate) async fn run(cli: Cli) -> Result<()> {
    let home = Home::resolve(cli.home);
    match cli.command {
        Command::Init(a) => init(&home, a),
        Command::Up { log_format } => up::run(&home, log_format).await,
        Command::Status { json } => info::status(&client(&home)?, json).await,
        Command::Peers { peer, json } => {
            let client = client(&home)?;
            let peer = match peer {
                Some(p) => Some(peer::resolve(&client, &p).await?),
                None => None,
            };
            info::peers(&client, peer.as_deref(), json).await
        }
        Command::Services { name, json } => {
            info::services(&client(&home)?, name.as_deref(), json).await
        }
        Command::Announce { name, meta } => announce(&client(&home)?, name, &meta).await,
        Command::Withdraw { name } => {
            client(&home)?.withdraw(&name).await?;
            println!("withdrew {name}");
            Ok(())
        }
        Command::Stop => {
            client(&home)?.shutdown().await?;
            println!("node is leaving the community and stopping");
            Ok(())
        }
        Command::Demo { nodes, dir, keep } => demo::run(nodes, dir, keep).await,
        Command::Put { file, dest: Some(dest), .. } => copy::put_to(&home, &file, &dest).await,
        Command::Put { file, dest: None, mutable, encoding: e, random_key, json } => {
            let q = files::PutQuery { k: e.k, n: e.n, happy: e.happy, random_key, mutable };
            files::put(&client(&home)?, &file, q, json).await
        }
        Command::Get { cap, url: true, name, .. } => {
            let c = client(&home)?;
            let cap = copy::resolve_cap(&home, &c, &cap).await?;
            files::get_url(&c, &cap, name)
        }
        Command::Get { cap, output, .. } => {
            let c = client(&home)?;
            let cap = copy::resolve_cap(&home, &c, &cap).await?;
            files::get(&c, &cap, &output).await
        }
        Command::Backup { local, dest } => backup::backup(&home, &local, &dest).await,
        Command::Alias { command } => tree::alias(&home, command).await,
        Command::Mkdir { path } => tree::mkdir(&home, path).await,
        Command::Ls { path, long, json } => tree::ls(&home, &path, long, json).await,
        Command::Cp { recursive, paths, encoding: e } => {
            let q = files::PutQuery {
                k: e.k,
                n: e.n,
                happy: e.happy,
                random_key: false,
                mutable: false,
            };
            copy::cp(&home, recursive, paths, &q.to_query()).await
        }
        Command::Mv { from, to } => tree::mv(&home, &from, &to).await,
        Command::Ln { from, to } => tree::ln(&home, &from, &to).await,
        Command::Rm { path } => tree::rm(&home, &path).await,
        Command::Tree { path } => tree::tree(&home, &path).await,
        Command::DeepCheck { path, verify, repair, json } => {
            tree::deep_check(&home, &path, verify, repair, json).await
        }
        Command::Invite { uses, expires, json } => {
            join::invite(&client(&home)?, uses, expires, json).await
        }
        Command::Community { command } => community::run(&home, command).await,
        Command::Usage { json } => community::usage(&client(&home)?, json).await,
        Command::Join { invite, init } => join::join(&home, &invite, init_options(init)).await,
        Command::Completions { shell } => join::completions(shell),
        Command::Man => join::man(),
        Command::Connect { addr, json } => net::connect(&client(&home)?, &addr, json).await,
        Command::Ping { peer, json } => {
            let client = client(&home)?;
            net::ping(&client, &peer::resolve(&client, &peer).await?, json).await
        }
        Command::Dht { command } => net::dht(&client(&home)?, command).await,
        Command::Cap { command: CapCommand::Info { cap } } => files::cap_info(&cap),
        Command::Check { cap, verify, json } => {
            files::check(&client(&home)?, &cap, verify, json).await
        }
        Command::Repair { cap, json } => files::repair(&client(&home)?, &cap, json).await,
        Command::Sync { command } => sync::run(&client(&home)?, command).await,
        Command::Stream { command } => stream::run(&client(&home)?, command).await,
        Command::Maintain { command } => {
            let c = client(&home)?;
            match command {
                MaintainCommand::List { json, trees } => files::maintained(&c, json, trees).await,
                MaintainCommand::Add { cap } => {
                    let changed = c.maintain(&cap).await?;
                    println!("{}", if changed { "now maintained" } else { "already maintained" });
                    Ok(())
                }
                MaintainCommand::Remove { cap } => {
                    let changed = c.unmaintain(&cap).await?;
                    println!(
                        "{}",
                        if changed { "no longer maintained" } else { "was not maintained" }
                    );
                    Ok(())
                }
                MaintainCommand::Run => {
                    c.run_upkeep().await?;
                    println!("checking every maintained file now; see `cloudy-p2p maintain list`");
                    Ok(())
                }
            }
        }
    }
}

fn client(home: &Home) -> Result<Client> {
    Ok(Client::for_home(home)?)
}

fn init_options(a: InitArgs) -> InitOptions {
    InitOptions {
        port: Some(a.port),
        api: Some(a.api),
        bootstrap: a.bootstrap,
        zone: a.zone,
        no_mdns: a.no_mdns,
        loopback: a.loopback,
    }
}

fn init(home: &Home, a: InitArgs) -> Result<()> {
    let written = home.init(&init_options(a))?;
    if written.len() == 3 {
        println!("initialised {}", home.root().display());
    } else {
        println!("completed {}: wrote {}", home.root().display(), written.join(", "));
        if written.contains(&"identity.key") {
            println!("identity.key is new: this node now has a new peer id");
        }
        if !written.contains(&"config.toml") {
            println!("config.toml was kept as it is; the options of this init did not change it");
        }
    }
    println!("next: cloudy-p2p --home {} up", home.root().display());
    Ok(())
}

async fn announce(client: &Client, name: String, meta: &[String]) -> Result<()> {
    let mut a = Announce { name, meta: Default::default() };
    for pair in meta {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--meta {pair:?} is not of the form key=value");
        };
        a.meta.insert(k.to_string(), v.to_string());
    }
    client.announce(&a).await.with_context(|| format!("announcing {}", a.name))?;
    println!("announced {}", a.name);
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, saying which.
pub(crate) async fn interrupted() -> Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|_| "interrupted").map_err(Into::into),
        _ = term.recv() => Ok("terminated"),
    }
}
