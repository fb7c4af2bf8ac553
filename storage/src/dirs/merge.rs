//! The merge law of a directory: its entries as a function of the *set*
//! of operations in all its writers' logs, so every reader that has read
//! the same operations lists the same entries, whatever order it read them
//! in, and no acknowledged operation is lost.
//!
//! - An entry exists if its `Add` is present and no `Remove` names its id
//!   (add-wins observed remove: a remove takes away only the adds its
//!   writer had seen).
//! - Its name is that of the `Rename` of it with the highest
//!   `(lamport, writer, counter)`, or its `Add`'s name if none.
//! - Entries that end up with the same name are all kept: the one whose
//!   name was set first (lowest `(lamport, writer, counter)`) keeps it; the
//!   others are shown under a conflict name that says who made them and
//!   when, as sync's conflict copies do.
//! - Entries with the same name that lead to the same child (two writers
//!   making the same subdirectory at once: its key is derived from the
//!   parent's, the name and the Lamport time) are one entry with several
//!   ids; removing or renaming it acts on all of them.

use super::ops::{Action, Entry, Op, OpId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One entry as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The entry's id (its `Add`).
    pub id: OpId,
    /// The name shown: the entry's name, or its conflict name.
    pub name: String,
    /// The entry (with its own name).
    pub entry: Entry,
    /// Whether the name shown is a conflict name.
    pub conflict: bool,
    /// Ids of identical entries (same name, same child) shown as this one.
    pub also: Vec<OpId>,
}

/// The entries of a directory given all its operations, sorted by name.
/// `peers` names each writer's node (for conflict names).
pub fn merge<'a>(
    ops: impl IntoIterator<Item = &'a Op>,
    peers: &HashMap<[u8; 16], String>,
) -> Vec<Listed> {
    let mut adds: HashMap<OpId, (&Op, &Entry)> = HashMap::new();
    let mut removed: HashSet<OpId> = HashSet::new();
    let mut renames: HashMap<OpId, (&Op, &str)> = HashMap::new();
    for op in ops {
        match &op.action {
            Action::Add(e) => {
                adds.insert(op.id, (op, e));
            }
            Action::Remove(target) => {
                removed.insert(*target);
            }
            Action::Rename { target, name } => {
                let newer = renames.get(target).is_none_or(|(held, _)| order(op) > order(held));
                if newer {
                    renames.insert(*target, (op, name));
                }
            }
        }
    }
    // name → entries under it, each with the order of the op that set its name.
    let mut by_name: BTreeMap<&str, Vec<(Order, &Op, &Entry)>> = BTreeMap::new();
    for (id, (add, entry)) in &adds {
        if removed.contains(id) {
            continue;
        }
        let (setter, name) = match renames.get(id) {
            Some((op, name)) => (*op, *name),
            None => (*add, entry.name.as_str()),
        };
        by_name.entry(name).or_default().push((order(setter), add, entry));
    }
    let mut out = Vec::with_capacity(adds.len());
    for (name, mut group) in by_name {
        group.sort_by_key(|g| g.0);
        let mut shown_here: Vec<Listed> = Vec::new();
        for (_, add, entry) in group {
            if let Some(same) =
                shown_here.iter_mut().find(|l| l.entry.ro == entry.ro && l.entry.kind == entry.kind)
            {
                same.also.push(add.id);
                continue;
            }
            let mut entry = entry.clone();
            entry.name = name.to_string();
            let first = shown_here.is_empty();
            let shown = if first { name.to_string() } else { conflict_name(name, add, peers) };
            shown_here.push(Listed {
                id: add.id,
                name: shown,
                entry,
                conflict: !first,
                also: vec![],
            });
        }
        out.extend(shown_here);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

/// `(lamport, writer, counter)`: the total order of operations.
type Order = (u64, [u8; 16], u64);

fn order(op: &Op) -> Order {
    (op.lamport, op.id.writer, op.id.counter)
}

/// `report.pdf` made by node `12D3KooWAbc…` at 2026-12-04 02:15:00 →
/// `report.conflict-20261204-021500-KooWAbcd.pdf` (with `-N`, the add's
/// counter, when needed to keep names apart).
fn conflict_name(name: &str, add: &Op, peers: &HashMap<[u8; 16], String>) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let who = peers
        .get(&add.id.writer)
        .map(|p| p.chars().skip(p.len().saturating_sub(8)).collect::<String>())
        .unwrap_or_else(|| hex::encode(&add.id.writer[..4]));
    let secs = add.at as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    let stamp =
        format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, (rem / 60) % 60, rem % 60);
    format!("{stem}.conflict-{stamp}-{who}-{}{ext}", add.id.counter)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests;
