//! Dissemination over the node's broadcast tree
//! ([`cloudy_overlay::broadcast::Tree`]) instead of gossipsub's mesh: every
//! connection is a link of the tree, each simulated node runs the tree's
//! code, and frames cross [`crate::sim::wire::Links`] as gossip does.

use super::{Ev, Frame, Sim};
use crate::sim::wire;

impl Sim {
    /// `i`'s connections become links of its tree (both ends).
    pub(super) fn tree_links(&mut self, i: usize, conns: Vec<usize>) {
        for j in conns {
            if j == i || self.nodes[i].mesh.contains(&j) {
                continue;
            }
            self.nodes[i].mesh.push(j);
            self.nodes[j].mesh.push(i);
            let now = self.at();
            let out = self.nodes[i].tree.link_up(j, now);
            self.send_frames(i, out, 0);
            let out = self.nodes[j].tree.link_up(i, now);
            self.send_frames(j, out, 0);
        }
    }

    /// `i`'s link to `p` went away.
    pub(super) fn tree_link_down(&mut self, i: usize, p: usize) {
        let now = self.at();
        let out = self.nodes[i].tree.link_down(p, now);
        self.send_frames(i, out, 0);
    }

    /// Node `i` sends message `m` of its own.
    pub(super) fn tree_publish(&mut self, i: usize, m: usize) {
        let (id, data) = ids(m, self.msgs[m].2);
        let now = self.at();
        let out = self.code(i, super::GOSSIP, |n| n.tree.broadcast(id, data, now));
        self.send_frames(i, out, 1);
        self.tree_arm(i);
    }

    /// A node's second: announcements over lazy links, grafts due.
    pub(super) fn tree_tick(&mut self, i: usize) {
        let now = self.at();
        let out = self.code(i, super::GOSSIP, |n| n.tree.tick(now));
        self.send_frames(i, out, 0);
        self.tree_arm(i);
    }

    /// A missing message's deadline.
    pub(super) fn tree_check(&mut self, i: usize) {
        if self.nodes[i].tree_check_at != Some(self.now) {
            return;
        }
        self.nodes[i].tree_check_at = None;
        if self.nodes[i].up {
            self.tree_tick(i);
        }
    }

    fn tree_arm(&mut self, i: usize) {
        let Some(due) = self.nodes[i].tree.next_deadline() else { return };
        let at = self.wake_at(due);
        if self.nodes[i].tree_check_at.is_none_or(|c| at < c) {
            self.nodes[i].tree_check_at = Some(at);
            self.schedule(at, Ev::TreeCheck(i as u32));
        }
    }

    pub(super) fn tree_frame(&mut self, to: usize, from: usize, k: usize) {
        let Some((frame, hops)) = self.frames[k].take() else { return };
        self.free_frames.push(k);
        if !self.nodes[to].up {
            return;
        }
        let now = self.at();
        let r = self.code(to, super::GOSSIP, |n| n.tree.receive(from, frame, now));
        if let Some((_, data)) = &r.fresh {
            let m = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
            self.nodes[to].seen.insert(self.msgs[m].2);
            self.take(to, m, hops);
        }
        self.send_frames(to, r.send, hops + 1);
        self.tree_arm(to);
    }

    fn send_frames(&mut self, from: usize, out: Vec<(usize, Frame)>, hops: u32) {
        for (to, frame) in out {
            let len = match &frame {
                Frame::Push { data, .. } => {
                    let m = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
                    self.msgs[m].1
                }
                Frame::IHave(ids) | Frame::Graft(ids) => {
                    wire::TREE_FRAME + ids.len() as u64 * wire::TREE_ID
                }
                Frame::Prune => wire::TREE_FRAME,
            };
            let k = match self.free_frames.pop() {
                Some(k) => {
                    self.frames[k] = Some((frame, hops));
                    k
                }
                None => {
                    self.frames.push(Some((frame, hops)));
                    self.frames.len() - 1
                }
            };
            let (ms, times) = self.links.deliver(from, to, (k, 't'));
            self.nodes[from].sent[super::GOSSIP] += times * (len + wire::PACKET);
            if self.nodes[to].up {
                self.nodes[to].sent[super::GOSSIP] += wire::ACK;
            }
            let ev = Ev::Frame { to: to as u32, from: from as u32, frame: k as u32 };
            self.schedule(self.now + (ms * 1000.0) as u64, ev);
        }
    }
}

/// A message's 16-byte tree id and the data the tree carries for it (its
/// index in the simulator; its size is counted from `msgs`).
fn ids(m: usize, id: u64) -> (cloudy_overlay::broadcast::Id, Vec<u8>) {
    let mut tid = [0u8; 16];
    tid[..8].copy_from_slice(&id.to_be_bytes());
    tid[8..].copy_from_slice(&(m as u64).to_be_bytes());
    (tid, (m as u32).to_be_bytes().to_vec())
}
