//! The admission handshake of a private community. It runs on every new
//! connection, inside the transport, before the swarm (and so any other
//! protocol of ours) sees the connection: a peer that fails it is
//! disconnected and has learnt nothing but that the node is there.
//!
//! The dialer opens the first stream and sends a [`Hello`]: its chain, or
//! an invite. The listener checks it and answers with its own chain (and a
//! certificate it issued: for an invite, or a renewal), or a refusal with
//! the reason. The dialer checks the listener's chain in turn, so a member
//! never talks to a non-member either. Frames are length-prefixed postcard.

use super::cert::{self, Cert, CertError, Chain, Role, Standing};
use super::invites::{Book, InviteId, InviteRefusal, Secret};
use super::revoke::{Action, Revocation, RevocationError};
use super::store::{Store, StoreError};
use crate::frame::{read_frame, write_frame};
use futures::{AsyncWriteExt, FutureExt};
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt, SubstreamBox};
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// How long a connection may take to pass the handshake.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an admin's certificate lasts (renewed as a member's is).
pub const ADMIN_LIFETIME: u64 = 365 * 86_400;
/// How long a member's certificate lasts; it is renewed when it is past
/// half of that and its holder connects to an admin.
pub const MEMBER_LIFETIME: u64 = 30 * 86_400;
/// How often a member whose certificate is due asks an admin again.
pub const RENEW_EVERY: Duration = Duration::from_secs(3600);
/// How long a refused peer is given to read the refusal.
const REFUSAL_LINGER: Duration = Duration::from_millis(300);
/// Largest handshake message (chains and the community's revocations).
const MAX_FRAME: usize = 1 << 20;

/// What the dialer says first.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Hello {
    /// A member, with its chain.
    Member {
        /// The community it belongs to.
        community: PeerId,
        /// Its chain.
        chain: Chain,
        /// The evictions it knows of.
        revoked: Vec<Revocation>,
        /// A chain the dialer (an admin) issued to the listener: a
        /// promotion to admin.
        issued: Option<Chain>,
    },
    /// A newcomer with an invite.
    Join {
        /// The community it was invited to.
        community: PeerId,
        /// The invite's id.
        invite: InviteId,
        /// Its secret.
        secret: Secret,
    },
}

/// What the listener answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// Admitted: the listener's chain, and a chain it issued to the dialer
    /// (after an invite, or a renewal).
    Welcome {
        /// The listener's chain.
        chain: Chain,
        /// A new chain for the dialer.
        issued: Option<Chain>,
        /// The evictions the listener knows of.
        revoked: Vec<Revocation>,
    },
    /// Not admitted, and why.
    Refused {
        /// Why, in words.
        reason: String,
        /// The dialer's own eviction, if that is why: it learns it was
        /// evicted (and `community status` says so).
        revoked: Vec<Revocation>,
    },
}

/// Why this node refuses a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// It belongs to another community.
    #[error("it belongs to community {0}, not this one")]
    OtherCommunity(PeerId),
    /// Its certificate is not valid.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// Its invite is not good.
    #[error(transparent)]
    Invite(#[from] InviteRefusal),
    /// The spent invite could not be saved (the invite is not taken).
    #[error("the admin could not record the invite: {0}")]
    Store(#[from] StoreError),
    /// An admin asked to evict itself.
    #[error("an admin cannot evict itself; another admin can")]
    SelfEviction,
    /// Asked to remove as admin a peer that is not one (as far as this
    /// node knows).
    #[error("{0} is not an admin (as far as this node knows)")]
    NotAnAdmin(PeerId),
    /// Asked to remove the last admin.
    #[error("it is the last admin this node knows of; name another admin first (`community admin add PEER`)")]
    LastAdmin,
    /// A revocation that does not check.
    #[error(transparent)]
    Revocation(RevocationError),
    /// It sent something else than a hello.
    #[error("it did not start the admission handshake (is it in an open community?)")]
    Garbage,
}

/// Why a connection did not pass the handshake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The other side refused this node.
    #[error("{peer} refused this node: {reason}")]
    RefusedBy {
        /// The other side.
        peer: PeerId,
        /// Its reason.
        reason: String,
    },
    /// This node refused the other side.
    #[error("refused {peer}: {source}")]
    Refused {
        /// The other side.
        peer: PeerId,
        /// Why.
        #[source]
        source: Refusal,
    },
    /// The other side is not a member of this community.
    #[error("{peer} is not a member of this community: {source}")]
    NotMember {
        /// The other side.
        peer: PeerId,
        /// What is wrong with its chain.
        #[source]
        source: CertError,
    },
    /// It took too long.
    #[error("{peer} did not complete the admission handshake within {after:?}")]
    Timeout {
        /// The other side.
        peer: PeerId,
        /// The limit.
        after: Duration,
    },
    /// The stream failed or carried garbage.
    #[error("admission handshake with {peer}: {source}")]
    Io {
        /// The other side.
        peer: PeerId,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// This node's place in its community, as `community status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GateStatus {
    /// The community id.
    pub community: PeerId,
    /// This node's role, if its chain is valid now.
    pub role: Option<Role>,
    /// Why its chain is not valid, if it is not.
    pub problem: Option<String>,
    /// When its certificate expires (Unix seconds).
    pub expires: Option<u64>,
    /// Who signed it.
    pub issuer: Option<PeerId>,
    /// Admins this node has seen (in chains it checked), itself included.
    pub admins: Vec<PeerId>,
    /// Peers refused since the node started.
    pub refused: u64,
    /// Members evicted, with why.
    pub evicted: Vec<(PeerId, String)>,
}

struct State {
    chain: Chain,
    book: Book,
    admins: BTreeSet<PeerId>,
    refused: u64,
    revoked: BTreeMap<PeerId, Revocation>,
    /// Admins removed (the latest removal of each).
    removed: BTreeMap<PeerId, Revocation>,
    /// Evicted since the overlay last looked: to disconnect.
    to_drop: Vec<PeerId>,
    /// When this node last asked an admin for a renewal (Unix seconds).
    renew_asked: Option<u64>,
    /// Admin chains issued to members, handed over in their next
    /// handshakes with this node until they present them.
    promotions: BTreeMap<PeerId, Chain>,
}

impl State {
    /// Where `peer` stands.
    fn standing(&self, peer: &PeerId) -> Standing {
        if self.revoked.contains_key(peer) {
            Standing::Evicted
        } else if let Some(r) = self.removed.get(peer) {
            Standing::AdminUntil(r.at)
        } else {
            Standing::Good
        }
    }

    /// Keeps a checked revocation; `false` if it changes nothing.
    fn record(&mut self, r: Revocation) -> bool {
        let peer = r.peer;
        match r.action {
            Action::Evict if self.revoked.contains_key(&peer) => return false,
            Action::Evict => {
                self.to_drop.push(peer);
                self.revoked.insert(peer, r);
            }
            Action::RemoveAdmin if self.removed.get(&peer).is_some_and(|o| o.at >= r.at) => {
                return false
            }
            Action::RemoveAdmin => {
                self.removed.insert(peer, r);
            }
        }
        self.admins.remove(&peer);
        self.promotions.remove(&peer);
        true
    }

    /// Every revocation kept: evictions and admin removals.
    fn revocations(&self) -> Vec<Revocation> {
        self.revoked.values().chain(self.removed.values()).cloned().collect()
    }
}

/// The admission gate of a node in a private community.
pub struct Gate {
    key: Keypair,
    me: PeerId,
    community: PeerId,
    /// The community's name, when this node made it (else empty).
    name: String,
    store: Option<Store>,
    state: Mutex<State>,
    /// Bumped when a member was evicted.
    evicted: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("community", &self.community).finish_non_exhaustive()
    }
}

/// How long a certificate of `role` lasts.
fn lifetime(role: Role) -> u64 {
    match role {
        Role::Member => MEMBER_LIFETIME,
        Role::Admin => ADMIN_LIFETIME,
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Gate {
    /// A gate for `community` with this node's `chain` and invites; changes
    /// (a renewal, a spent invite) are saved to `store` if given.
    pub fn new(
        key: Keypair,
        community: PeerId,
        chain: Chain,
        book: Book,
        store: Option<Store>,
    ) -> Gate {
        let me = key.public().to_peer_id();
        let gate = Gate {
            key,
            me,
            community,
            name: String::new(),
            store,
            state: Mutex::new(State {
                chain,
                book,
                admins: BTreeSet::new(),
                refused: 0,
                revoked: BTreeMap::new(),
                removed: BTreeMap::new(),
                to_drop: Vec::new(),
                renew_asked: None,
                promotions: BTreeMap::new(),
            }),
            evicted: tokio::sync::watch::Sender::new(0),
        };
        let chain = gate.chain();
        gate.note_admins(&chain);
        gate
    }

    /// The gate of the community whose files are in `store`; `None` when
    /// the node is in an open community (no `community.json`).
    pub fn open(key: Keypair, store: Store) -> Result<Option<Gate>, StoreError> {
        let Some(info) = store.info()? else { return Ok(None) };
        let (chain, book, revoked) = (store.chain()?, store.book()?, store.revoked()?);
        let mut gate = Gate::new(key, info.id, chain, book, Some(store));
        gate.name = info.name;
        {
            let mut st = gate.state.lock().expect("gate lock");
            for r in revoked.into_iter().filter(|r| r.check(info.id, |_| Standing::Good).is_ok()) {
                st.record(r);
            }
            // Kept from before: nobody to disconnect now.
            st.to_drop.clear();
        }
        Ok(Some(gate))
    }

    /// The community id.
    pub fn community(&self) -> PeerId {
        self.community
    }

    /// The community's name, when this node made it.
    pub fn name(&self) -> Option<&str> {
        Some(self.name.as_str()).filter(|n| !n.is_empty())
    }

    /// This node's chain.
    pub fn chain(&self) -> Chain {
        self.state.lock().expect("gate lock").chain.clone()
    }

    /// This node's role now, or why it has none.
    pub fn role(&self) -> Result<Role, CertError> {
        self.verify(&self.chain(), self.me, now_secs())
    }

    /// Whether `peer` was evicted.
    pub fn is_revoked(&self, peer: &PeerId) -> bool {
        self.state.lock().expect("gate lock").revoked.contains_key(peer)
    }

    fn verify(&self, chain: &[Cert], peer: PeerId, now: u64) -> Result<Role, CertError> {
        let st = self.state.lock().expect("gate lock");
        cert::verify(chain, self.community, peer, now, |p| st.standing(p))
    }

    /// The evictions and admin removals this node knows of.
    pub fn revocations(&self) -> Vec<Revocation> {
        self.state.lock().expect("gate lock").revocations()
    }

    /// Takes a revocation (gossiped, or from a handshake); `true` if it is
    /// new here. A new one is saved; an evicted member is to be
    /// disconnected, a removed admin is a member from then on.
    pub fn take(&self, r: Revocation) -> Result<bool, RevocationError> {
        let mut st = self.state.lock().expect("gate lock");
        r.check(self.community, |p| st.standing(p))?;
        let (peer, action, by) = (r.peer, r.action, r.issuer());
        let what = match action {
            Action::Evict => "evicted",
            Action::RemoveAdmin => "removed as admin",
        };
        let reason = r.reason.clone();
        if !st.record(r) {
            return Ok(false);
        }
        tracing::warn!(target: "cloudy::_events::community", %peer, ?by, "{what}: {reason}");
        if let Some(store) = &self.store {
            if let Err(e) = store.set_revoked(&st.revocations()) {
                tracing::warn!("cannot save the revocations: {e}");
            }
        }
        drop(st);
        if action == Action::Evict {
            self.evicted.send_modify(|n| *n += 1);
        }
        Ok(true)
    }

    /// Evicts `peer` (admins only): the revocation to gossip.
    pub fn evict(&self, peer: PeerId, reason: &str) -> Result<Revocation, Refusal> {
        if peer == self.me {
            return Err(Refusal::SelfEviction);
        }
        self.revoke(Action::Evict, peer, reason)
    }

    /// Removes `peer` as admin (admins only; an admin may step down): it
    /// stays a member, and what it signs from now on does not count. The
    /// last admin this node knows of cannot be removed.
    pub fn remove_admin(&self, peer: PeerId) -> Result<Revocation, Refusal> {
        {
            let st = self.state.lock().expect("gate lock");
            if !st.admins.contains(&peer) {
                return Err(Refusal::NotAnAdmin(peer));
            }
            if st.admins.len() < 2 {
                return Err(Refusal::LastAdmin);
            }
        }
        self.revoke(Action::RemoveAdmin, peer, "")
    }

    /// Signs, takes and returns a revocation (admins only).
    fn revoke(&self, action: Action, peer: PeerId, reason: &str) -> Result<Revocation, Refusal> {
        if self.role() != Ok(Role::Admin) {
            return Err(InviteRefusal::NotAdmin.into());
        }
        let (key, chain, at) = (&self.key, self.chain(), now_secs());
        let r = Revocation::sign(key, chain, self.community, action, peer, at, reason);
        self.take(r.clone()).map_err(Refusal::Revocation)?;
        Ok(r)
    }

    /// Whether this node's certificate is past half its life (a member's:
    /// an admin renews it when this node connects to it), and the admins
    /// it may ask. Asked at most once per [`RENEW_EVERY`].
    pub fn renewal_due(&self) -> Option<Vec<PeerId>> {
        let now = now_secs();
        let mut st = self.state.lock().expect("gate lock");
        let leaf = st.chain.first()?;
        let half_gone = leaf.expires.saturating_sub(now) < MEMBER_LIFETIME / 2;
        let asked_lately = st.renew_asked.is_some_and(|t| now < t + RENEW_EVERY.as_secs());
        // An admin's own certificate is renewed by the admins it meets;
        // a removed admin's is a member's.
        let member = cert::verify(&st.chain, self.community, self.me, now, |p| st.standing(p))
            == Ok(Role::Member);
        if !half_gone || asked_lately || !member {
            return None;
        }
        st.renew_asked = Some(now);
        Some(st.admins.iter().copied().filter(|a| *a != self.me).collect())
    }

    /// Names `peer` an admin (admins only): its admin chain is handed over
    /// in its next handshake with this node.
    pub fn promote(&self, peer: PeerId) -> Result<(), Refusal> {
        if self.role() != Ok(Role::Admin) {
            return Err(InviteRefusal::NotAdmin.into());
        }
        if self.is_revoked(&peer) {
            return Err(Refusal::Cert(CertError::Revoked(peer)));
        }
        let chain = self.issue(peer, Role::Admin, now_secs());
        let mut st = self.state.lock().expect("gate lock");
        st.admins.insert(peer);
        st.promotions.insert(peer, chain);
        Ok(())
    }

    /// The promotion waiting for `peer`, if any.
    fn promotion_for(&self, peer: &PeerId) -> Option<Chain> {
        self.state.lock().expect("gate lock").promotions.get(peer).cloned()
    }

    /// `peer` presented `chain`: a promotion it now holds is delivered.
    fn delivered(&self, peer: &PeerId, chain: &[Cert]) {
        if chain.first().is_some_and(|c| c.role == Role::Admin) {
            self.state.lock().expect("gate lock").promotions.remove(peer);
        }
    }

    /// Members evicted since the last call (the overlay disconnects them).
    pub fn evicted_since(&self) -> Vec<PeerId> {
        std::mem::take(&mut self.state.lock().expect("gate lock").to_drop)
    }

    /// Changes each time a member is evicted (the overlay disconnects it;
    /// the services forget it).
    pub fn evictions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.evicted.subscribe()
    }

    fn take_all(&self, list: Vec<Revocation>) {
        for r in list {
            if let Err(e) = self.take(r) {
                tracing::debug!("ignored a revocation: {e}");
            }
        }
    }

    /// Where this node stands.
    pub fn status(&self) -> GateStatus {
        let role = self.role();
        let st = self.state.lock().expect("gate lock");
        let leaf = st.chain.first();
        GateStatus {
            community: self.community,
            role: role.as_ref().ok().copied(),
            problem: role.err().map(|e| e.to_string()),
            expires: leaf.map(|c| c.expires),
            issuer: leaf.and_then(Cert::issuer_id),
            admins: st.admins.iter().copied().collect(),
            refused: st.refused,
            evicted: st.revoked.values().map(|r| (r.peer, r.reason.clone())).collect(),
        }
    }

    /// A new invite of `uses` joins, good for `lifetime` (admins only);
    /// returns its id, secret and expiry.
    pub fn make_invite(
        &self,
        uses: u32,
        lifetime: Duration,
    ) -> Result<(InviteId, Secret, u64), Refusal> {
        if self.role() != Ok(Role::Admin) {
            return Err(InviteRefusal::NotAdmin.into());
        }
        let expires = now_secs() + lifetime.as_secs();
        let mut st = self.state.lock().expect("gate lock");
        let (id, secret) = st.book.make(uses, expires);
        if let Some(store) = &self.store {
            store.set_book(&st.book)?;
        }
        Ok((id, secret, expires))
    }

    fn note_admins(&self, chain: &[Cert]) {
        let mut st = self.state.lock().expect("gate lock");
        let admins: Vec<PeerId> = chain
            .iter()
            .filter(|c| c.role == Role::Admin)
            .filter(|c| match st.standing(&c.member) {
                Standing::Good => true,
                Standing::Evicted => false,
                Standing::AdminUntil(t) => c.issued > t,
            })
            .map(|c| c.member)
            .collect();
        st.admins.extend(admins);
    }

    /// A chain for `peer` in `role`, signed by this node (an admin).
    fn issue(&self, peer: PeerId, role: Role, now: u64) -> Chain {
        let cert = Cert::sign(&self.key, self.community, peer, role, now, now + lifetime(role));
        let mut chain = vec![cert];
        chain.extend(self.chain());
        chain
    }

    /// The listener's decision on `hello` from `peer`: the chain to issue
    /// it, if any.
    pub(crate) fn decide(
        &self,
        peer: PeerId,
        hello: Hello,
        now: u64,
    ) -> Result<Option<Chain>, Refusal> {
        let admin = self.role() == Ok(Role::Admin);
        match hello {
            Hello::Member { community, .. } | Hello::Join { community, .. }
                if community != self.community =>
            {
                Err(Refusal::OtherCommunity(community))
            }
            Hello::Member { chain, revoked, issued, .. } => {
                self.take_all(revoked);
                let role = self.verify(&chain, peer, now)?;
                self.note_admins(&chain);
                self.delivered(&peer, &chain);
                if let Some(mine) = issued {
                    if let Err(e) = self.accept_issued(mine) {
                        tracing::warn!(%peer, "a certificate it issued is not valid: {e}");
                    }
                }
                if let Some(promotion) = self.promotion_for(&peer) {
                    return Ok(Some(promotion));
                }
                let renew = admin && chain[0].expires.saturating_sub(now) < lifetime(role) / 2;
                Ok(renew.then(|| self.issue(peer, role, now)))
            }
            Hello::Join { invite, secret, .. } => {
                if !admin {
                    return Err(InviteRefusal::NotAdmin.into());
                }
                let mut st = self.state.lock().expect("gate lock");
                let mut book = st.book.clone();
                book.spend(&invite, &secret, now)?;
                if let Some(store) = &self.store {
                    store.set_book(&book)?;
                }
                st.book = book;
                drop(st);
                Ok(Some(self.issue(peer, Role::Member, now)))
            }
        }
    }

    /// Takes a chain issued to this node, if it is valid.
    fn accept_issued(&self, chain: Chain) -> Result<(), CertError> {
        self.verify(&chain, self.me, now_secs())?;
        if let Some(store) = &self.store {
            if let Err(e) = store.set_chain(&chain) {
                tracing::warn!("cannot save the renewed certificate: {e}");
            }
        }
        self.note_admins(&chain);
        self.state.lock().expect("gate lock").chain = chain;
        Ok(())
    }

    /// Runs the handshake on a new connection; the connection is handed on
    /// only if it passes.
    pub async fn admit(
        &self,
        peer: PeerId,
        mut muxer: StreamMuxerBox,
        endpoint: &ConnectedPoint,
    ) -> Result<(PeerId, StreamMuxerBox), AdmissionError> {
        let exchange = async {
            if endpoint.is_dialer() {
                self.dial_side(peer, &mut muxer).await
            } else {
                self.listen_side(peer, &mut muxer).await
            }
        };
        match tokio::time::timeout(ADMISSION_TIMEOUT, exchange).await {
            Ok(Ok(())) => Ok((peer, muxer)),
            Ok(Err(e)) => {
                if let AdmissionError::Refused { .. } = e {
                    self.state.lock().expect("gate lock").refused += 1;
                }
                Err(e)
            }
            Err(_) => {
                self.state.lock().expect("gate lock").refused += 1;
                Err(AdmissionError::Timeout { peer, after: ADMISSION_TIMEOUT })
            }
        }
    }

    async fn dial_side(
        &self,
        peer: PeerId,
        muxer: &mut StreamMuxerBox,
    ) -> Result<(), AdmissionError> {
        let hello = Hello::Member {
            community: self.community,
            chain: self.chain(),
            revoked: self.revocations(),
            issued: self.promotion_for(&peer),
        };
        let answer = ask(peer, muxer, &hello).await?;
        match answer {
            Answer::Welcome { chain, issued, revoked } => {
                self.take_all(revoked);
                self.verify(&chain, peer, now_secs())
                    .map_err(|source| AdmissionError::NotMember { peer, source })?;
                self.note_admins(&chain);
                self.delivered(&peer, &chain);
                if let Some(mine) = issued {
                    if let Err(e) = self.accept_issued(mine) {
                        tracing::warn!(%peer, "a certificate it issued is not valid: {e}");
                    }
                }
                Ok(())
            }
            Answer::Refused { reason, revoked } => {
                self.take_all(revoked);
                Err(AdmissionError::RefusedBy { peer, reason })
            }
        }
    }

    async fn listen_side(
        &self,
        peer: PeerId,
        muxer: &mut StreamMuxerBox,
    ) -> Result<(), AdmissionError> {
        let io = |source| AdmissionError::Io { peer, source };
        let mut s = std::future::poll_fn(|cx| muxer.poll_inbound_unpin(cx)).await.map_err(io)?;
        let exchange = async {
            let hello = read_frame(&mut s, MAX_FRAME)
                .await
                .ok()
                .flatten()
                .and_then(|b| postcard::from_bytes::<Hello>(&b).ok());
            let decision = match hello {
                Some(h) => self.decide(peer, h, now_secs()),
                None => Err(Refusal::Garbage),
            };
            let answer = match &decision {
                Ok(issued) => Answer::Welcome {
                    chain: self.chain(),
                    issued: issued.clone(),
                    revoked: self.revocations(),
                },
                Err(why) => Answer::Refused {
                    reason: why.to_string(),
                    revoked: self.revocations().into_iter().filter(|r| r.peer == peer).collect(),
                },
            };
            let bytes = postcard::to_stdvec(&answer).expect("answers serialise");
            // A refused peer may be gone already: its reason is a courtesy.
            let sent = async {
                write_frame(&mut s, &bytes, MAX_FRAME).await?;
                s.close().await
            }
            .await;
            if decision.is_err() && sent.is_ok() {
                // Let the refusal arrive before the connection is dropped:
                // the dialer closes its side once it has read it.
                let mut rest = [0u8; 1];
                let _ = tokio::time::timeout(
                    REFUSAL_LINGER,
                    futures::AsyncReadExt::read(&mut s, &mut rest),
                )
                .await;
            }
            match decision {
                Ok(_) => sent.map_err(io),
                Err(source) => {
                    tracing::warn!(target: "cloudy::_events::community", %peer, "refused: {source}");
                    Err(AdmissionError::Refused { peer, source })
                }
            }
        };
        drive(muxer, exchange).await
    }
}

/// Opens the first stream, sends `hello` and reads the answer.
pub(crate) async fn ask(
    peer: PeerId,
    muxer: &mut StreamMuxerBox,
    hello: &Hello,
) -> Result<Answer, AdmissionError> {
    let io = |source| AdmissionError::Io { peer, source };
    let mut s: SubstreamBox =
        std::future::poll_fn(|cx| muxer.poll_outbound_unpin(cx)).await.map_err(io)?;
    let exchange = async {
        let bytes = postcard::to_stdvec(hello).expect("hellos serialise");
        write_frame(&mut s, &bytes, MAX_FRAME).await.map_err(io)?;
        let answer = read_frame(&mut s, MAX_FRAME).await.map_err(io)?.ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "it closed the connection without answering (not a member of this community?)",
            ))
        })?;
        let _ = s.close().await;
        postcard::from_bytes::<Answer>(&answer).map_err(|e| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("malformed answer: {e}"),
            ))
        })
    };
    drive(muxer, exchange).await
}

/// Runs `work` while polling the connection (a yamux connection makes
/// progress only when polled).
async fn drive<T>(
    muxer: &mut StreamMuxerBox,
    work: impl std::future::Future<Output = Result<T, AdmissionError>>,
) -> Result<T, AdmissionError> {
    let mut work = std::pin::pin!(work.fuse());
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(r) = std::future::Future::poll(work.as_mut(), cx) {
            return std::task::Poll::Ready(r);
        }
        // Events (address changes) are of no use here; an error ends the
        // connection, and the work then fails on its own.
        while let std::task::Poll::Ready(Ok(_)) = muxer.poll_unpin(cx) {}
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
