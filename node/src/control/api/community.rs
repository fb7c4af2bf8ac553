//! The control API's types for the community (`/v1/community`).

use serde::{Deserialize, Serialize};

/// `GET /v1/community`: the community this node is in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommunityStatus {
    /// `open` (anyone who reaches a member may join) or `private`
    /// (admission by invite).
    pub kind: String,
    /// The community id (private only).
    pub id: Option<String>,
    /// Its name, when this node made it.
    pub name: Option<String>,
    /// This node's role: `admin` or `member`; none when its certificate is
    /// not valid (then `problem` says why).
    pub role: Option<String>,
    /// What is wrong with this node's certificate, if anything.
    pub problem: Option<String>,
    /// When this node's certificate expires (Unix seconds).
    pub expires: Option<u64>,
    /// Who signed it (the community key for the founder).
    pub issuer: Option<String>,
    /// Admins this node has seen, itself included.
    pub admins: Vec<String>,
    /// Connections refused since the node started.
    pub refused: u64,
    /// Members evicted: peer id and reason.
    #[serde(default)]
    pub evicted: Vec<(String, String)>,
}

/// `POST /v1/community/admins` (name an admin) and
/// `POST /v1/community/admins/remove` (remove one).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddAdmin {
    /// The member to name admin, or the admin to remove.
    pub peer: String,
}

/// `POST /v1/community/evict`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evict {
    /// The member to evict.
    pub peer: String,
    /// Why (shown to every member).
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/community/invites`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MakeInvite {
    /// Joins it allows.
    pub uses: u32,
    /// Seconds it stays good.
    pub expires_secs: u64,
}

/// An invite made (`POST /v1/community/invites`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InviteMade {
    /// The text to give the new member (`cloudy-p2p join TEXT`).
    pub invite: String,
    /// When it stops working (Unix seconds).
    pub expires: u64,
    /// Joins it allows.
    pub uses: u32,
}

/// `GET /v1/usage`: who stores what for whom.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UsageTable {
    /// What this node keeps for each member at most (bytes); `None` when
    /// it is not a storage server.
    pub quota_here: Option<u64>,
    /// One row per member seen on either side.
    pub members: Vec<UsageRow>,
}

/// One member in [`UsageTable`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UsageRow {
    /// The member.
    pub peer: String,
    /// Bytes of shares this node keeps under the member's leases.
    pub stored_here: u64,
    /// Bytes the member keeps for this node; `None` if it did not answer
    /// (or is not a storage server).
    pub stored_there: Option<u64>,
    /// The member's quota per member, if it has one.
    pub quota_there: Option<u64>,
    /// Live-channel chunk bytes sent to it and received from it (channels
    /// this node takes part in now).
    #[serde(default)]
    pub stream_sent: u64,
    /// ...received from it.
    #[serde(default)]
    pub stream_received: u64,
    /// Video piece bytes served to it since the node started.
    #[serde(default)]
    pub video_sent: u64,
    /// ...fetched from it.
    #[serde(default)]
    pub video_received: u64,
}
