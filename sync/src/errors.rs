//! A folder's outstanding errors, each under what it is about, so that an
//! error goes away once it no longer applies: a file's when the file is
//! applied, a member's when a batch from it applies cleanly, a "changed
//! here" when the next scan has indexed the file, the folder's own when
//! the next scan succeeds.

use std::sync::Mutex;

/// What an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum About {
    /// One file (by its path in the folder).
    File(String),
    /// A file changed here and not scanned yet.
    Unscanned(String),
    /// A session with a member, or a batch from it.
    Member(String),
    /// The folder as a whole (scanning, the index).
    Folder,
}

/// At most this many errors are kept (the oldest go first).
const KEEP: usize = 20;

/// The outstanding errors, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Errors(Mutex<Vec<(About, String)>>);

impl Errors {
    /// Records `message` about `about`, in place of what was said of it.
    pub(crate) fn set(&self, about: About, message: String) {
        let mut v = self.0.lock().expect("errors lock");
        v.retain(|(a, _)| *a != about);
        v.push((about, message));
        let extra = v.len().saturating_sub(KEEP);
        v.drain(..extra);
    }

    /// Forgets the errors `drop` picks.
    pub(crate) fn clear(&self, drop: impl Fn(&About) -> bool) {
        self.0.lock().expect("errors lock").retain(|(a, _)| !drop(a));
    }

    /// The messages, oldest first.
    pub(crate) fn messages(&self) -> Vec<String> {
        self.0.lock().expect("errors lock").iter().map(|(_, m)| m.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_replaced_cleared_and_bounded() {
        let e = Errors::default();
        e.set(About::File("a".into()), "a: first".into());
        e.set(About::File("a".into()), "a: second".into());
        e.set(About::Unscanned("b".into()), "b: changed here".into());
        e.set(About::Member("p".into()), "p: batch".into());
        assert_eq!(e.messages(), ["a: second", "b: changed here", "p: batch"]);
        e.clear(|a| matches!(a, About::Unscanned(_)));
        e.clear(|a| *a == About::File("a".into()));
        assert_eq!(e.messages(), ["p: batch"]);
        for i in 0..30 {
            e.set(About::File(i.to_string()), i.to_string());
        }
        assert_eq!(e.messages().len(), KEEP);
        assert_eq!(e.messages()[0], "10");
    }
}
