//! `cloudy-hostile`: a member of a private community that attacks it, for
//! the hostile-peer scenarios (`tests/scenarios/hostile.rs`). It runs a
//! real node from a home that joined by invite (so it holds a valid member
//! certificate), connects to a target member, and then:
//!
//! 1. gossips a forged revocation evicting `--victim` (signed with its own
//!    member chain: only admins may evict);
//! 2. opens storage and live-stream sessions on the target as fast as it
//!    can for half of `--secs`, holding the first hundred;
//! 3. gossips a storm of thousands of heartbeats;
//! 4. goes on opening sessions until `--secs` have passed.
//!
//! It prints one JSON line: `{"opened":N,"refused":M}`.
//!
//! `cloudy-hostile --home HOME --target MULTIADDR --victim PEER --secs S`

use cloudy_node::{Home, Node};
use cloudy_overlay::community::revoke::{Action, Revocation};
use cloudy_overlay::{MemberState, Multiaddr, PeerId, StreamProtocol};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    home: Home,
    target: Multiaddr,
    victim: PeerId,
    secs: u64,
}

fn args() -> Result<Args, Error> {
    let mut it = std::env::args().skip(1);
    let (mut home, mut target, mut victim, mut secs) = (None, None, None, 10);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--home" => home = Some(Home::new(value)),
            "--target" => target = Some(value.parse()?),
            "--victim" => victim = Some(value.parse()?),
            "--secs" => secs = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let usage = "usage: cloudy-hostile --home HOME --target MULTIADDR --victim PEER --secs S";
    Ok(Args {
        home: home.ok_or(usage)?,
        target: target.ok_or(usage)?,
        victim: victim.ok_or(usage)?,
        secs,
    })
}

/// Opens sessions on `target` until `until`, holding the first hundred;
/// returns (opened, refused).
async fn flood(node: &Node, target: PeerId, until: Instant) -> (u64, u64) {
    let mut control = node.overlay.stream_control();
    let protocols = [
        StreamProtocol::new(cloudy_storage::protocol::PROTOCOL),
        StreamProtocol::new(cloudy_streaming::protocol::PROTOCOL),
    ];
    let (mut opened, mut refused) = (0, 0);
    let mut keep = Vec::new();
    while Instant::now() < until {
        for p in &protocols {
            let open = control.open_stream(target, p.clone());
            match tokio::time::timeout(Duration::from_secs(2), open).await {
                Ok(Ok(s)) => {
                    opened += 1;
                    if keep.len() < 100 {
                        keep.push(s);
                    }
                }
                _ => {
                    refused += 1;
                    // Cut off: try again a little later rather than spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    (opened, refused)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let node = Node::start(&a.home).await?;
    let target = node.overlay.connect(a.target.clone()).await?;
    // Once the target counts this node alive, their gossip is wired up.
    let mut watch = node.overlay.watch();
    let alive = watch.wait_for(|s| {
        s.peers.get(&target).is_some_and(|v| v.connected && v.state == MemberState::Alive)
    });
    tokio::time::timeout(Duration::from_secs(20), alive)
        .await
        .map_err(|_| "the target did not become alive within 20 s")??;
    drop(watch);
    let started = Instant::now();
    let half = started + Duration::from_secs(a.secs / 2);
    let end = started + Duration::from_secs(a.secs);

    // 1. A forged eviction of the victim.
    let key = a.home.load_identity()?;
    let store = a.home.community();
    let community = store.info()?.ok_or("the home is not in a private community")?.id;
    let now = cloudy_overlay::community::gate::now_secs();
    let forged = Revocation::sign(
        &key,
        store.chain()?,
        community,
        Action::Evict,
        a.victim,
        now,
        "forged by a member",
    );
    node.overlay.gossip_revocation(&forged).await;

    // 2. to 4.: sessions, a gossip storm, sessions again.
    let (o1, r1) = flood(&node, target, half).await;
    node.overlay.flood_gossip(5000).await?;
    let (o2, r2) = flood(&node, target, end).await;
    println!("{{\"opened\":{},\"refused\":{}}}", o1 + o2, r1 + r2);
    node.shutdown().await;
    Ok(())
}
