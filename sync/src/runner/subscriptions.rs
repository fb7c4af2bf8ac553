//! A folder's subscriptions: one session per other member, following
//! its index and handing each batch to [`super::batch`].

use super::*;

/// Keeps one subscription per other member running.
pub(super) async fn members(inner: Arc<Inner>, id: String, r: Arc<Running>) {
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = r.cancel.cancelled() => break,
            _ = tick.tick() => {}
            _ = r.members_changed.notified() => {}
        }
        let Some(f) = inner.folders.get(&id) else { break };
        for m in f.members.iter().filter(|m| **m != inner.me) {
            if subs.get(m).is_some_and(|h| !h.is_finished()) {
                continue;
            }
            let Ok(peer) = m.parse::<PeerId>() else { continue };
            subs.insert(
                m.clone(),
                inner.tasks.spawn(
                    "sync subscription",
                    subscribe(inner.clone(), id.clone(), r.clone(), peer),
                ),
            );
        }
    }
    for h in subs.values() {
        h.abort();
    }
}

/// Follows `peer`'s index of folder `id` and applies what changes.
async fn subscribe(inner: Arc<Inner>, id: String, r: Arc<Running>, peer: PeerId) {
    let mut snapshots = inner.overlay.watch();
    let mut again = r.resubscribe.subscribe();
    loop {
        // Wait until the peer is up (alive, or suspected but not yet failed).
        let up = snapshots.wait_for(|s| s.peers.get(&peer).is_some_and(|p| p.state.is_up()));
        tokio::select! {
            _ = r.cancel.cancelled() => return,
            ok = up => if ok.is_err() { return },
        }
        // A member that fails or leaves ends the session at once: its
        // connection may take a while to time out, and it may be back with
        // a new one before that. A mere suspicion does not: on a lossy
        // link a missed probe or two is common, and ending the session on
        // each one restarted every pull in the lossy testbed.
        let gone = snapshots.wait_for(|s| s.peers.get(&peer).is_none_or(|p| !p.state.is_up()));
        again.borrow_and_update();
        let outcome = tokio::select! {
            _ = r.cancel.cancelled() => return,
            o = follow(&inner, &id, &r, peer) => o,
            _ = gone => Err(FollowError::Gone),
            _ = again.changed() => continue,
        };
        match outcome {
            Err(e) => r.error(About::Member(peer.to_string()), format!("{peer}: {e}")),
            Ok(()) => r.errors.clear(|a| *a == About::Member(peer.to_string())),
        }
        tokio::select! {
            _ = r.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Why a session following a member's index ended.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    /// The overlay says the member left or failed.
    #[error("the member left or failed")]
    Gone,
    /// No session could be opened in time.
    #[error("no session in time")]
    NoSession,
    /// The session could not be opened.
    #[error("cannot open a session: {0}")]
    Open(#[from] cloudy_overlay::stream::OpenStreamError),
    /// The local index failed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The session failed or carried garbage.
    #[error(transparent)]
    Protocol(#[from] crate::protocol::ProtocolError),
    /// The member does not let this node in (yet).
    #[error("refused: {0}")]
    Refused(String),
    /// A batch must be retried.
    #[error("some changes could not be applied yet")]
    Unfinished,
    /// The member sent something the protocol does not allow here.
    #[error("unexpected {0}")]
    Unexpected(String),
}

/// One `Index` session with `peer`, until it ends.
async fn follow(inner: &Inner, id: &str, r: &Running, peer: PeerId) -> Result<(), FollowError> {
    let generation = *r.resubscribe.borrow();
    let open = inner.overlay.open_stream(peer, StreamProtocol::new(PROTOCOL));
    let mut s = tokio::time::timeout(TIMEOUT, open).await.map_err(|_| FollowError::NoSession)??;
    let seen = r.index.peer_seen(&peer.to_string())?;
    send(&mut s, &Request::Index { folder: id.to_string(), since: seen }).await?;
    let me = inner.overlay.local_peer_id();
    let others: Vec<PeerId> = inner
        .folders
        .get(id)
        .map(|f| f.members.iter().filter_map(|m| m.parse().ok()).filter(|p| *p != me).collect())
        .unwrap_or_default();
    let source = MemberBlocks::new(
        inner.overlay.clone(),
        &inner.tasks,
        id,
        peer,
        others,
        r.downloaded.clone(),
    );
    loop {
        let msg = recv::<_, Response>(&mut s).await?;
        match msg {
            None => return Ok(()),
            Some(Response::Refused { reason }) => {
                ask_to_join(inner, id, peer).await;
                return Err(FollowError::Refused(reason));
            }
            Some(Response::Members { name, members }) => {
                // Only the owner's word counts for the name and the members.
                let owner = inner.folders.get(id).map(|f| f.owner);
                if owner.as_deref() == Some(&peer.to_string()) {
                    take_members(inner, id, name, members);
                    r.members_changed.notify_one();
                }
            }
            Some(Response::Files { files, seq }) => {
                let clean = super::batch::apply_batch(inner, id, r, peer, files, &source).await;
                if clean {
                    r.errors.clear(|a| *a == About::Member(peer.to_string()));
                    r.index.set_peer_seen(&peer.to_string(), seq)?;
                    if *r.resubscribe.borrow() != generation {
                        r.index.set_peer_seen(&peer.to_string(), 0)?;
                        return Ok(());
                    }
                } else {
                    // Retry the batch on a new session.
                    return Err(FollowError::Unfinished);
                }
            }
            Some(other) => return Err(FollowError::Unexpected(format!("{other:?}"))),
        }
    }
}

/// Records the folder's name and member list as its owner gave them.
fn take_members(inner: &Inner, id: &str, name: String, members: Vec<String>) {
    let _ = inner.folders.update(id, |f| {
        f.map(|mut f| {
            f.name = name;
            f.members = members;
            f
        })
    });
}

async fn ask_to_join(inner: &Inner, id: &str, peer: PeerId) {
    let Some(f) = inner.folders.get(id) else { return };
    if f.owner != peer.to_string() {
        return;
    }
    let ask = async {
        let mut s = inner.overlay.open_stream(peer, StreamProtocol::new(PROTOCOL)).await.ok()?;
        send(&mut s, &Request::Join { folder: id.to_string() }).await.ok()?;
        recv::<_, Response>(&mut s).await.ok()?
    };
    if let Ok(Some(Response::Joined { name, members })) = tokio::time::timeout(TIMEOUT, ask).await {
        take_members(inner, id, name, members);
    } else if let Some(r) = inner.running.lock().expect("running lock").get(id) {
        r.set_state(FolderState::WaitingForAdmission);
    }
}
