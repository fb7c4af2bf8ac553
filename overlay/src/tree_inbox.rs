//! What the links delivered and the event loop has not yet taken, in two
//! queues: events that settle a suspicion go first
//! ([`crate::membership::MemberTable::settles_suspicion`]), the rest in the
//! order they came.
//!
//! After a CPU starvation every node has a backlog of frames to take. In
//! one order, a member's refutation reached its observers through that
//! backlog at every hop, 8–15 s after it was made and after their
//! suspicions had run out (DESIGN/failure-detection.md). The event loop
//! moves what waits on the links' channel in here before it takes an event
//! and before any suspicion may run out, so a refutation already received
//! is taken first.

use std::collections::VecDeque;

/// Most events held here; beyond, the links' channel holds as many (and
/// its readers wait): with the inbox, a node holds no more link events
/// than the channel alone held before (1,024).
pub(crate) const INBOX_MAX: usize = 512;

/// Capacity kept when the inbox empties; a larger one is given back.
const KEEP_CAPACITY: usize = 64;

/// The two queues.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    urgent: VecDeque<T>,
    rest: VecDeque<T>,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox { urgent: VecDeque::new(), rest: VecDeque::new() }
    }
}

impl<T> Inbox<T> {
    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.urgent.is_empty() && self.rest.is_empty()
    }

    /// Whether no more may be added.
    pub(crate) fn is_full(&self) -> bool {
        self.urgent.len() + self.rest.len() >= INBOX_MAX
    }

    /// Adds an event, `urgent` if it settles a suspicion.
    pub(crate) fn push(&mut self, ev: T, urgent: bool) {
        match urgent {
            true => self.urgent.push_back(ev),
            false => self.rest.push_back(ev),
        }
    }

    /// The next event, urgent ones first, and whether it was urgent.
    pub(crate) fn pop(&mut self) -> Option<(T, bool)> {
        let next = match self.urgent.pop_front() {
            Some(ev) => Some((ev, true)),
            None => self.rest.pop_front().map(|ev| (ev, false)),
        };
        self.shrink_if_empty();
        next
    }

    /// The next urgent event.
    pub(crate) fn pop_urgent(&mut self) -> Option<T> {
        let next = self.urgent.pop_front();
        self.shrink_if_empty();
        next
    }

    /// A backlog's queue is not kept on an idle node.
    fn shrink_if_empty(&mut self) {
        if self.is_empty() {
            for q in [&mut self.urgent, &mut self.rest] {
                if q.capacity() > KEEP_CAPACITY {
                    q.shrink_to(KEEP_CAPACITY);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_events_go_first_and_each_queue_keeps_its_order() {
        let mut inbox = Inbox::default();
        assert!(inbox.is_empty());
        for (ev, urgent) in [(1, false), (2, true), (3, false), (4, true)] {
            inbox.push(ev, urgent);
        }
        let order: Vec<_> = std::iter::from_fn(|| inbox.pop()).collect();
        assert_eq!(order, vec![(2, true), (4, true), (1, false), (3, false)]);
        inbox.push(5, false);
        inbox.push(6, true);
        assert_eq!(inbox.pop_urgent(), Some(6));
        assert_eq!(inbox.pop_urgent(), None, "only urgent ones");
        assert_eq!(inbox.pop(), Some((5, false)));
    }

    #[test]
    fn the_inbox_is_bounded_and_gives_back_a_backlog_s_memory() {
        let mut inbox = Inbox::default();
        let mut n = 0;
        while !inbox.is_full() {
            inbox.push(n, n % 3 == 0);
            n += 1;
        }
        assert_eq!(n, INBOX_MAX);
        while inbox.pop().is_some() {}
        assert!(inbox.urgent.capacity() <= KEEP_CAPACITY);
        assert!(inbox.rest.capacity() <= KEEP_CAPACITY);
        // Urgent events alone, taken before a suspicion may run out.
        for n in 0..INBOX_MAX {
            inbox.push(n, true);
        }
        while inbox.pop_urgent().is_some() {}
        assert!(inbox.urgent.capacity() <= KEEP_CAPACITY);
    }
}
