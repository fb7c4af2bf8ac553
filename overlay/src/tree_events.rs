//! The event loop's side of the broadcast tree: membership messages go out
//! over the tree ([`crate::broadcast`]) and come in from it, checked before
//! they are taken or passed on. Gossipsub still carries them to and from
//! peers that are not cloudy nodes (a js-libp2p peer), while one is
//! connected.

use crate::broadcast::Frame;
use crate::event_loop::EventLoop;
use crate::limits::Verdict;
use crate::membership::signed;
use crate::membership::wire::Message;
use crate::tree_links::LinkEvent;
use libp2p::{gossipsub, PeerId};
use tokio::time::Instant;
use tracing::{debug, warn};

/// How one of our membership messages goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Over the tree's eager links.
    Gossip,
    /// Our refutation of a suspicion: the same, ahead of the frames
    /// already queued on each link.
    Refutation,
    /// Our last message: over every link, lazy ones too, as no later round
    /// will announce it.
    Goodbye,
}

impl EventLoop {
    /// Sends one of our membership messages to the community.
    pub(crate) fn publish(&mut self, msg: Message) {
        self.publish_with(msg, Publish::Gossip);
    }

    /// [`EventLoop::publish`], as `how` says.
    pub(crate) fn publish_with(&mut self, msg: Message, how: Publish) {
        let bytes = msg.encode();
        let sealed = signed::seal(&self.signer, &bytes);
        let id = signed::id_of(&sealed);
        let out = match how {
            Publish::Goodbye => self.tree.broadcast_last(id, sealed, Instant::now()),
            _ => self.tree.broadcast(id, sealed, Instant::now()),
        };
        // Fields are evaluated only when the line is enabled.
        debug!(
            pushed = out.len(),
            eager = self.tree.links().0.count(),
            lazy = self.tree.links().1.count(),
            streams = self.tree_streams.len(),
            "publishing a membership message over the tree"
        );
        self.send_frames(out, how == Publish::Refutation);
        if self.foreign.iter().any(|p| self.swarm.is_connected(p)) {
            match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), bytes) {
                Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
                Err(e) => debug!("membership publish failed: {e}"),
            }
        }
    }

    /// An event off the links' channel: into the inbox, marked if it
    /// settles a suspicion ([`crate::tree_inbox`]).
    fn put_in_inbox(&mut self, ev: LinkEvent) {
        let urgent = self.settles_suspicion(&ev);
        self.inbox.push(ev, urgent);
    }

    /// Moves what waits on the links' channel into the inbox.
    fn fill_inbox(&mut self) {
        while !self.inbox.is_full() {
            let Ok(ev) = self.link_events.try_recv() else { break };
            self.put_in_inbox(ev);
        }
    }

    /// An event the event loop waited for on the links' channel (the inbox
    /// was empty), then the next one to take.
    pub(crate) fn on_link_channel(&mut self, ev: LinkEvent) {
        self.put_in_inbox(ev);
        self.on_inbox();
    }

    /// Whether `ev` is a message new to us that, if genuine, settles a
    /// suspicion, over a link already up (its `Up` is taken first).
    fn settles_suspicion(&self, ev: &LinkEvent) -> bool {
        let LinkEvent::Frame { peer, frame: Frame::Push { id, data } } = ev else { return false };
        if !self.tree_streams.contains_key(peer) || self.tree.knows(id) {
            return false;
        }
        let Some(raw) = signed::peek(data).filter(|raw| self.table.may_settle(raw)) else {
            return false;
        };
        Message::decode(raw).is_ok_and(|m| self.table.settles_suspicion(&m))
    }

    /// Takes the next event from the links, those that settle a suspicion
    /// first.
    pub(crate) fn on_inbox(&mut self) {
        self.fill_inbox();
        if let Some((ev, urgent)) = self.inbox.pop() {
            self.on_link_event(ev, urgent);
        }
    }

    /// Before suspicions may run out: takes every received frame that
    /// settles one.
    pub(crate) fn settle_waiting(&mut self) {
        self.fill_inbox();
        while let Some(ev) = self.inbox.pop_urgent() {
            self.on_link_event(ev, true);
        }
    }

    /// One event from the links; frames an `urgent` one makes us send go
    /// ahead of those already queued.
    fn on_link_event(&mut self, ev: LinkEvent, urgent: bool) {
        match ev {
            LinkEvent::Up { peer, stream, out } => {
                // A stream that ended before we heard it opened is no link
                // (its Down follows). A newcomer's links come and go as its
                // table fills; its announcement pushed into one already
                // closed went nowhere, and the members its own dials did
                // not reach learnt of it only from anti-entropy, 10 s later
                // (1 run in 3 of 29 members started at once).
                if out.is_closed() {
                    return;
                }
                let streams = self.tree_streams.entry(peer).or_default();
                streams.push((stream, out));
                debug!(%peer, stream, streams = streams.len(), "broadcast link stream up");
                if streams.len() == 1 {
                    let out = self.tree.link_up(peer, Instant::now());
                    self.send_tree(out);
                }
                // Our join announcement goes out over our first link; if
                // that link was lost meanwhile, over the next.
                if !self.announced {
                    debug!(first = %peer, "announcing ourselves to the community");
                    self.publish_alive();
                    self.announced = self.tree_streams.contains_key(&peer);
                }
            }
            LinkEvent::Down { peer, stream } => {
                let Some(streams) = self.tree_streams.get_mut(&peer) else { return };
                streams.retain(|(s, _)| *s != stream);
                debug!(%peer, stream, streams = streams.len(), "broadcast link stream down");
                if streams.is_empty() {
                    self.tree_streams.remove(&peer);
                    let out = self.tree.link_down(peer, Instant::now());
                    self.send_tree(out);
                } else {
                    // The link is up over another stream, but frames we
                    // wrote on this one may be lost: libp2p-stream drops
                    // an inbound stream unread when two arrive at once
                    // (rust-libp2p#5651), and both ends of a link open one.
                    let out = self.tree.pushes_lost(peer, Instant::now());
                    self.send_tree(out);
                }
            }
            LinkEvent::Frame { peer, frame } => self.on_tree_frame(peer, frame, urgent),
        }
    }

    /// A frame from a link. A message new to us is checked (signature,
    /// format, author, rate) before the tree may pass it on.
    fn on_tree_frame(&mut self, peer: PeerId, frame: Frame, urgent: bool) {
        let mut take = None;
        if let Frame::Push { id, data } = &frame {
            if !self.tree.knows(id) {
                match self.admit(peer, id, data) {
                    Some(msg) => take = Some(msg),
                    None => return,
                }
            }
        }
        let now = Instant::now();
        if matches!(frame, Frame::Prune | Frame::Graft(_)) {
            debug!(%peer, prune = matches!(frame, Frame::Prune), "tree link changed by its far end");
        }
        let r = self.tree.receive(peer, frame, now);
        if tracing::enabled!(tracing::Level::DEBUG)
            && r.send.iter().any(|(_, f)| matches!(f, Frame::Prune))
        {
            debug!(%peer, "a duplicate: pruning the link");
        }
        let passed_on = r.send.len();
        self.send_frames(r.send, urgent);
        if let (Some(msg), Some(_)) = (take, r.fresh) {
            let author = msg.author();
            let changes = self.table.apply(msg, now);
            debug!(via = %peer, %author, changes = changes.len(), passed_on, "membership message over the tree");
            self.apply_changes(changes);
        }
    }

    /// The message in a pushed envelope, if it may be taken.
    fn admit(&mut self, from: PeerId, id: &crate::broadcast::Id, data: &[u8]) -> Option<Message> {
        let checked = signed::open(id, data).map_err(|e| e.to_string()).and_then(|(author, m)| {
            let msg = Message::decode(m).map_err(|e| e.to_string())?;
            match msg.author() == author {
                true => Ok(msg),
                false => {
                    Err(format!("message signed by {author} claims to be from {}", msg.author()))
                }
            }
        });
        let msg = match checked {
            Ok(msg) => msg,
            Err(reason) => {
                warn!(%from, "rejected membership message: {reason}");
                return None;
            }
        };
        self.within_rate(msg.author()).then_some(msg)
    }

    /// Whether a message of `author`'s may be taken now: within
    /// [`crate::event_loop::GOSSIP_RATE`]; far over it, the author is cut off.
    pub(crate) fn within_rate(&mut self, author: PeerId) -> bool {
        match self.gossip_limits.arrive(author, Instant::now()) {
            Verdict::Serve => {
                self.gossip_limits.leave(&author);
                true
            }
            Verdict::Refuse => {
                debug!(%author, "membership message over its author's rate; not taken");
                false
            }
            Verdict::Abusive => {
                warn!(target: "cloudy::_events::limits", peer = %author, "gossips far over its rate; disconnecting it");
                self.on_command(crate::handle::Command::Abusive { peer: author });
                false
            }
        }
    }

    /// Test hook: `messages` heartbeats written straight onto every
    /// link's stream as fast as it takes them, as a hostile member would
    /// (through the tree, all but the first 256 would be dropped at our
    /// own queue and the storm would depend on scheduling).
    #[cfg(feature = "test-utils")]
    pub(crate) fn flood(&mut self, messages: usize) {
        let frames: Vec<Frame> = (0..messages)
            .map(|_| {
                let msg = self.local.alive(&self.cfg.external_addrs);
                let sealed = signed::seal(&self.signer, &msg.encode());
                Frame::Push { id: signed::id_of(&sealed), data: sealed }
            })
            .collect();
        for streams in self.tree_streams.values() {
            let Some((_, lanes)) = streams.iter().find(|(_, l)| !l.is_closed()) else { continue };
            let (tx, frames) = (lanes.normal.clone(), frames.clone());
            tokio::spawn(async move {
                for frame in frames {
                    if tx.send(frame).await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    /// Announcements and grafts that are due, old messages forgotten, and
    /// links whose streams ended silently taken down.
    pub(crate) fn on_tree_tick(&mut self) {
        self.drop_closed_links();
        let out = self.tree.tick(Instant::now());
        self.send_tree(out);
    }

    /// Sends frames over the links. A link whose streams have all ended
    /// without saying so (their task was stopped when the member stopped
    /// being a target) goes down here, and the tree grafts a lazy link in
    /// its place: until then frames for it were dropped and the tree
    /// counted it as a live branch.
    fn send_tree(&mut self, out: Vec<(PeerId, Frame)>) {
        self.send_frames(out, false);
    }

    /// [`EventLoop::send_tree`], on the `urgent` lanes or not.
    fn send_frames(&mut self, mut out: Vec<(PeerId, Frame)>, urgent: bool) {
        while !out.is_empty() {
            let mut lost = Vec::new();
            for (peer, frame) in out {
                if self.link_lost(peer) {
                    lost.push(peer);
                    continue;
                }
                let Some((_, lanes)) = self.tree_streams.get(&peer).and_then(|s| s.first()) else {
                    continue;
                };
                let tx = if urgent { &lanes.urgent } else { &lanes.normal };
                if tx.try_send(frame).is_err() {
                    debug!(%peer, "broadcast link busy; a frame was dropped");
                }
            }
            out = lost.into_iter().flat_map(|p| self.tree.link_down(p, Instant::now())).collect();
        }
    }

    /// Links whose streams all ended silently go down (see `send_tree`).
    fn drop_closed_links(&mut self) {
        let peers: Vec<PeerId> = self.tree_streams.keys().copied().collect();
        let lost: Vec<PeerId> = peers.into_iter().filter(|p| self.link_lost(*p)).collect();
        let out = lost.into_iter().flat_map(|p| self.tree.link_down(p, Instant::now())).collect();
        self.send_tree(out);
    }

    /// Forgets `peer`'s closed streams; true if that left none (the link
    /// is then forgotten too, and the caller takes it off the tree).
    fn link_lost(&mut self, peer: PeerId) -> bool {
        let Some(streams) = self.tree_streams.get_mut(&peer) else { return false };
        streams.retain(|(_, lanes)| !lanes.is_closed());
        if !streams.is_empty() {
            return false;
        }
        self.tree_streams.remove(&peer);
        true
    }
}
