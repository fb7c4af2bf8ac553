//! The operations a directory's writers append to their logs, and how a
//! log is written down (JSON, sealed inside the writer's slot).

use serde::{Deserialize, Serialize};

/// Names an `Add`: the writer that made it and its counter there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId {
    /// Writer id, hex.
    #[serde(with = "hex_16")]
    pub writer: [u8; 16],
    /// The writer's counter.
    pub counter: u64,
}

/// What a child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A file (immutable, literal or mutable).
    File,
    /// A directory.
    Dir,
}

/// A name and the child it leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its name in the directory.
    pub name: String,
    /// File or directory.
    pub kind: Kind,
    /// The child's read capability.
    pub ro: String,
    /// The child's write capability sealed with the directory's child key
    /// (base64), for mutable children added by a writer that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rw: Option<String>,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Modification time, Unix seconds.
    #[serde(default)]
    pub mtime: u64,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new entry.
    Add(Entry),
    /// Removes the entry that `Add` made (observed remove).
    Remove(OpId),
    /// Gives the entry that `Add` made a new name.
    Rename {
        /// The entry.
        target: OpId,
        /// Its new name.
        name: String,
    },
}

/// One operation of a writer's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Its id (for an `Add`, the entry's id).
    pub id: OpId,
    /// Lamport time: one more than the highest the writer had seen.
    pub lamport: u64,
    /// When it was made (Unix seconds; names conflict copies).
    #[serde(default)]
    pub at: u64,
    /// The change.
    pub action: Action,
}

/// A writer's log as sealed in its slot: older operations in immutable
/// chunks, newer ones inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    /// Format version.
    pub v: u32,
    /// The writer's node (peer id), shown in conflict names.
    pub peer: String,
    /// Read capabilities of chunks of older operations (each a JSON list).
    #[serde(default)]
    pub chunks: Vec<String>,
    /// Newer operations, undecoded so that one bad entry does not hide the
    /// rest.
    #[serde(default)]
    pub ops: Vec<serde_json::Value>,
}

/// Decodes a list of operations, keeping the good ones and naming the bad.
pub fn decode_ops(values: &[serde_json::Value]) -> (Vec<Op>, Vec<String>) {
    let mut good = Vec::with_capacity(values.len());
    let mut bad = Vec::new();
    for v in values {
        match serde_json::from_value::<Op>(v.clone()) {
            Ok(op) if valid_name_of(&op) => good.push(op),
            Ok(op) => bad.push(format!("an entry with an unusable name: {:?}", name_of(&op))),
            Err(e) => {
                let name = v.pointer("/action/add/name").and_then(|n| n.as_str());
                bad.push(match name {
                    Some(n) => format!("entry {n:?} does not decode: {e}"),
                    None => format!("an entry does not decode: {e}"),
                });
            }
        }
    }
    (good, bad)
}

fn name_of(op: &Op) -> Option<&str> {
    match &op.action {
        Action::Add(e) => Some(&e.name),
        Action::Rename { name, .. } => Some(name),
        Action::Remove(_) => None,
    }
}

fn valid_name_of(op: &Op) -> bool {
    name_of(op).is_none_or(valid_name)
}

/// Whether `name` can name a directory entry: not empty, not `.` or `..`,
/// no `/` and no NUL.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

mod hex_16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map_err(|_| serde::de::Error::custom("a writer id is 16 bytes"))
    }
}
