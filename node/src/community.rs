//! A node's community, on the home: `community create` makes a private
//! community with this node as its first admin, `join` with a private
//! invite obtains this node's certificate. The files live in
//! `HOME/community/` (see `cloudy_overlay::community::store`).

use crate::error::NodeError;
use crate::home::Home;
use cloudy_overlay::community::cert::{Cert, Role};
use cloudy_overlay::community::gate::now_secs;
use cloudy_overlay::community::join::{join as obtain, Ticket};
use cloudy_overlay::community::store::{Info, OpenInfo, Store};
use cloudy_overlay::{Keypair, Multiaddr, PeerId};

/// How long the founder's own admin certificate lasts (it is signed by the
/// community key, which only the founder's node holds).
const FOUNDER_LIFETIME: u64 = 10 * 365 * 86_400;

impl Home {
    /// The community files of this home.
    pub fn community(&self) -> Store {
        Store::new(self.root().join("community"))
    }
}

fn already(home: &Home, info: &Info) -> NodeError {
    NodeError::CommunityState(format!(
        "{} is already in community {} ({}); a node belongs to one community",
        home.root().display(),
        info.id,
        home.community().dir().display()
    ))
}

/// Makes the private community `name`, with this node as its first admin;
/// returns its id.
pub fn create(home: &Home, name: &str) -> Result<PeerId, NodeError> {
    let key = home.load_identity()?;
    let store = home.community();
    if let Some(info) = store.info()? {
        return Err(already(home, &info));
    }
    let community = Keypair::generate_ed25519();
    let id = community.public().to_peer_id();
    let now = now_secs();
    let me = key.public().to_peer_id();
    let cert = Cert::sign(&community, id, me, Role::Admin, now, now + FOUNDER_LIFETIME);
    store.set_community_key(&community)?;
    store.set_chain(&vec![cert])?;
    // Written last: a node is in a private community once this exists.
    store.set_info(&Info { id, name: name.to_string() })?;
    store.clear_open_info()?;
    Ok(id)
}

/// Records the explicit choice of an open community named `name`: anyone
/// who reaches a member may join (today's behaviour, now with a name that
/// `status` shows). Refused on a node in a private community.
pub fn create_open(home: &Home, name: &str) -> Result<(), NodeError> {
    home.load_identity()?;
    let store = home.community();
    if let Some(info) = store.info()? {
        return Err(already(home, &info));
    }
    store.set_open_info(&OpenInfo { name: name.to_string() })?;
    Ok(())
}

/// The name of the open community this node was told it is in, if any.
pub fn open_name(home: &Home) -> Result<Option<String>, NodeError> {
    Ok(home.community().open_info()?.map(|i| i.name))
}

/// Joins the private community of `ticket` through the admins at `addrs`;
/// returns the community id and the admin that admitted this node.
pub async fn join(
    home: &Home,
    addrs: &[Multiaddr],
    ticket: Ticket,
) -> Result<(PeerId, Option<PeerId>), NodeError> {
    let key = home.load_identity()?;
    let store = home.community();
    if let Some(info) = store.info()? {
        if info.id != ticket.community {
            return Err(already(home, &info));
        }
    }
    let chain = obtain(&key, addrs, ticket).await.map_err(Box::new)?;
    let admin = chain.first().and_then(Cert::issuer_id);
    store.set_chain(&chain)?;
    store.set_info(&Info { id: ticket.community, name: String::new() })?;
    Ok((ticket.community, admin))
}
