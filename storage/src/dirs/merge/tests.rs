use super::*;
use crate::dirs::ops::Kind;
use proptest::prelude::*;

fn add(w: u8, c: u64, t: u64, name: &str) -> Op {
    Op {
        id: OpId { writer: [w; 16], counter: c },
        lamport: t,
        at: 1_796_350_500,
        action: Action::Add(Entry {
            name: name.into(),
            kind: Kind::File,
            ro: format!("cap-{w}-{c}"),
            rw: None,
            size: 1,
            mtime: 0,
        }),
    }
}

fn rm(w: u8, c: u64, t: u64, target: (u8, u64)) -> Op {
    Op {
        id: OpId { writer: [w; 16], counter: c },
        lamport: t,
        at: 0,
        action: Action::Remove(OpId { writer: [target.0; 16], counter: target.1 }),
    }
}

fn mv(w: u8, c: u64, t: u64, target: (u8, u64), name: &str) -> Op {
    Op {
        id: OpId { writer: [w; 16], counter: c },
        lamport: t,
        at: 0,
        action: Action::Rename {
            target: OpId { writer: [target.0; 16], counter: target.1 },
            name: name.into(),
        },
    }
}

fn names(ops: &[Op]) -> Vec<String> {
    merge(ops, &HashMap::new()).into_iter().map(|l| l.name).collect()
}

#[test]
fn adds_removes_and_renames() {
    let ops = vec![
        add(1, 1, 1, "a"),
        add(1, 2, 2, "b"),
        rm(1, 3, 3, (1, 1)),
        mv(1, 4, 4, (1, 2), "c"),
        mv(2, 1, 5, (1, 2), "d"),
    ];
    assert_eq!(names(&ops), vec!["d"], "the later rename wins; a is removed");
}

#[test]
fn a_remove_takes_only_what_its_writer_saw() {
    // Writer 2 removes a's first add while writer 1, partitioned, adds "a"
    // again: the new add survives.
    let ops = vec![add(1, 1, 1, "a"), rm(2, 1, 2, (1, 1)), add(1, 2, 2, "a")];
    let listed = merge(&ops, &HashMap::new());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.counter, 2);
}

#[test]
fn the_same_name_twice_keeps_both_and_renames_the_later_visibly() {
    let mut peers = HashMap::new();
    peers.insert([2; 16], "12D3KooWPeerTwoXYZ".to_string());
    let ops = vec![add(1, 1, 5, "report.pdf"), add(2, 1, 6, "report.pdf")];
    let listed = merge(&ops, &peers);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "report.conflict-20261204-021500-erTwoXYZ-1.pdf");
    assert_eq!(listed[1].name, "report.pdf");
    assert_eq!(listed[1].id.writer, [1; 16], "the earlier keeps the name");
    assert!(listed[0].conflict && !listed[1].conflict);
    // No extension, unknown writer: a hex prefix names it.
    let listed = merge(&[add(1, 1, 5, "notes"), add(3, 9, 6, "notes")], &HashMap::new());
    assert!(listed.iter().any(|l| l.name == "notes.conflict-20261204-021500-03030303-9"));
}

#[test]
fn civil_dates() {
    assert_eq!(civil(0), (1970, 1, 1));
    assert_eq!(civil(20_791), (2026, 12, 4));
    assert_eq!(civil(11_016), (2000, 2, 29));
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let name = prop::sample::select(vec!["a", "b", "c"]);
    (0u8..3, 1u64..6, 1u64..8, 0u8..3, name, 0u8..3, 1u64..6).prop_map(
        |(w, c, t, kind, name, tw, tc)| match kind {
            0 => add(w, c, t, name),
            1 => rm(w, c + 10, t, (tw, tc)),
            _ => mv(w, c + 20, t, (tw, tc), name),
        },
    )
}

proptest! {
    #[test]
    fn any_order_gives_the_same_listing(mut ops in proptest::collection::vec(op_strategy(), 0..20), seed in any::<u64>()) {
        // Ids are unique per writer in real logs.
        let mut seen = std::collections::HashSet::new();
        ops.retain(|o| seen.insert(o.id));
        let a = merge(&ops, &HashMap::new());
        let mut shuffled = ops.clone();
        let mut x = seed;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        let b = merge(&shuffled, &HashMap::new());
        prop_assert_eq!(&a, &b);
        // Every add that no remove names is listed, under some name.
        let removed: std::collections::HashSet<OpId> = ops.iter().filter_map(|o| match o.action { Action::Remove(t) => Some(t), _ => None }).collect();
        let live = ops.iter().filter(|o| matches!(o.action, Action::Add(_)) && !removed.contains(&o.id)).count();
        prop_assert_eq!(a.len(), live);
        let unique: std::collections::HashSet<&str> = a.iter().map(|l| l.name.as_str()).collect();
        prop_assert_eq!(unique.len(), a.len(), "names shown are unique");
    }
}

#[test]
fn the_same_child_under_the_same_name_twice_is_one_entry_with_both_ids() {
    let mut a = add(1, 1, 5, "inbox");
    let mut b = add(2, 1, 5, "inbox");
    for op in [&mut a, &mut b] {
        if let Action::Add(e) = &mut op.action {
            e.ro = "the-same-directory".into();
        }
    }
    let listed = merge(&[a.clone(), b.clone()], &HashMap::new());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].also, vec![b.id]);
    // Removing both ids removes it; removing one leaves the other.
    assert!(merge(
        &[a.clone(), b.clone(), rm(1, 2, 6, (1, 1)), rm(1, 3, 6, (2, 1))],
        &HashMap::new()
    )
    .is_empty());
    assert_eq!(merge(&[a, b, rm(1, 2, 6, (1, 1))], &HashMap::new()).len(), 1);
}
