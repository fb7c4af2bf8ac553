//! Deep check: everything reachable from a directory — its slots, the
//! chunks of its logs, its files and subdirectories — checked, and with
//! `repair`, brought back to full health (a server holding an old version
//! of a slot, or none, gets the newest one). It also renews this node's
//! leases on all it finds, so a maintained tree outlives lease expiry.

use super::grid::{Dirs, Listing};
use super::ops::Kind;
use crate::capability::{Cap, MutKind};
use crate::client::{slot_happy, Client};
use crate::placement::DEFAULT_PARAMS;
use crate::store::StorageIndex;
use futures::stream::{self, StreamExt};
use std::collections::HashSet;

/// Checks (and repairs) at once.
const PARALLEL: usize = 8;

/// One thing found not healthy.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Where (path from the root; `""` is the root).
    pub path: String,
    /// What is wrong.
    pub what: String,
    /// Whether it can be repaired.
    pub recoverable: bool,
    /// Whether this run repaired it.
    pub repaired: bool,
}

/// What a deep check found.
#[derive(Clone, Debug, Default)]
pub struct DeepReport {
    /// Directories walked.
    pub dirs: usize,
    /// Files checked.
    pub files: usize,
    /// Objects (files, directories, log chunks) found healthy.
    pub healthy: usize,
    /// The rest.
    pub problems: Vec<Problem>,
}

enum Item {
    /// An immutable file (or a log chunk) to check.
    Chk(String, Cap),
    /// The slots of a mutable file or directory.
    Slots(String, StorageIndex),
}

impl Dirs {
    /// Walks everything reachable from `root` and checks it.
    pub async fn deep_check(&self, root: &Cap, verify: bool, repair: bool) -> DeepReport {
        let mut report = DeepReport::default();
        let mut items = Vec::new();
        let mut seen: HashSet<StorageIndex> = HashSet::new();
        let mut stack = vec![(String::new(), root.clone())];
        while let Some((path, cap)) = stack.pop() {
            let Cap::Mutable(m) = &cap else { continue };
            let si = m.verify_key().storage_index();
            if !seen.insert(si) {
                continue;
            }
            items.push(Item::Slots(path.clone(), si));
            if m.kind == MutKind::File {
                report.files += 1;
                if let Some(rk) = m.read_key() {
                    if let Ok((_, contents)) = self.client().resolve(&rk).await {
                        items.push(Item::Chk(path, contents));
                    }
                }
                continue;
            }
            report.dirs += 1;
            let listing: Listing = match self.list(&cap).await {
                Ok(l) => l,
                Err(e) => {
                    report.problems.push(Problem {
                        path,
                        what: format!("cannot list: {e}"),
                        recoverable: false,
                        repaired: false,
                    });
                    continue;
                }
            };
            for b in &listing.bad {
                report.problems.push(Problem {
                    path: path.clone(),
                    what: b.clone(),
                    recoverable: false,
                    repaired: false,
                });
            }
            for c in &listing.chunks {
                if let Ok(chunk) = c.parse::<Cap>() {
                    items.push(Item::Chk(format!("{path} (directory log)"), chunk));
                }
            }
            for e in listing.entries {
                let child =
                    if path.is_empty() { e.name.clone() } else { format!("{path}/{}", e.name) };
                match (&e.cap, e.kind) {
                    (Cap::Mutable(_), _) | (_, Kind::Dir) => stack.push((child, e.cap)),
                    _ => {
                        report.files += 1;
                        items.push(Item::Chk(child, e.cap));
                    }
                }
            }
        }
        let client = self.client().clone();
        let results: Vec<Option<Problem>> = stream::iter(items.into_iter().map(|item| {
            let client = client.clone();
            async move {
                match item {
                    Item::Chk(path, cap) => check_chk(&client, path, &cap, verify, repair).await,
                    Item::Slots(path, si) => check_slots(&client, path, &si, repair).await,
                }
            }
        }))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
        for r in results {
            match r {
                None => report.healthy += 1,
                Some(p) => report.problems.push(p),
            }
        }
        report.problems.sort_by(|a, b| a.path.cmp(&b.path));
        report
    }
}

async fn check_chk(
    client: &Client,
    path: String,
    cap: &Cap,
    verify: bool,
    repair: bool,
) -> Option<Problem> {
    let Cap::Read(r) = cap else { return None };
    let vc = r.verify_cap();
    let problem = |what: String, recoverable, repaired| {
        Some(Problem { path: path.clone(), what, recoverable, repaired })
    };
    let report = match client.check(&vc, verify).await {
        Ok(rep) => rep,
        Err(e) => return problem(e.to_string(), false, false),
    };
    // A deep check keeps what it reaches alive: leases renewed where held.
    let holders: Vec<_> = report.good.values().flatten().copied().collect();
    client.renew(&vc, &holders).await;
    if report.healthy() {
        return None;
    }
    let what =
        format!("{} of {} shares good ({} needed)", report.good_shares(), report.n, report.k);
    if !report.recoverable() {
        return problem(what, false, false);
    }
    if !repair {
        return problem(what, true, false);
    }
    match client.repair(&vc).await {
        Ok(done) if done.failures.is_empty() => problem(what, true, true),
        Ok(done) => {
            problem(format!("{what}; repair failed: {}", done.failures.join("; ")), true, false)
        }
        Err(e) => problem(format!("{what}; repair failed: {e}"), true, false),
    }
}

/// A slot is healthy when the newest version of every writer sits on as
/// many servers as a write puts it on.
async fn check_slots(
    client: &Client,
    path: String,
    si: &StorageIndex,
    repair: bool,
) -> Option<Problem> {
    let read = client.slots_of(si).await;
    let newest = read.newest();
    if newest.is_empty() {
        return Some(Problem {
            path,
            what: "no server holds any version".into(),
            recoverable: false,
            repaired: false,
        });
    }
    let holding: Vec<_> = read
        .servers
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|v| !v.is_empty()))
        .map(|(p, _)| *p)
        .collect();
    client.renew_index(*si, &holding).await;
    let servers = client.servers().len();
    let want = (DEFAULT_PARAMS.n as usize).min(servers);
    let mut short = Vec::new();
    for (writer, slot) in &newest {
        let have = read.holders(writer, slot.seqnum);
        if have.len() < want {
            short.push((slot.clone(), have));
        }
    }
    if short.is_empty() {
        return None;
    }
    let what = format!("{} versions on fewer than {want} servers", short.len());
    if !repair {
        return Some(Problem { path, what, recoverable: true, repaired: false });
    }
    let mut failures = Vec::new();
    for (slot, have) in short {
        if let Err(e) = client.write_slot(&slot, want, slot_happy(servers).min(want), &have).await {
            failures.push(e.to_string());
        }
    }
    let repaired = failures.is_empty();
    let what =
        if repaired { what } else { format!("{what}; repair failed: {}", failures.join("; ")) };
    Some(Problem { path, what, recoverable: true, repaired })
}
