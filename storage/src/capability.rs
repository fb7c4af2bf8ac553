//! Capabilities: the text a person pastes to get, check or repair a file.
//!
//! ```text
//! cloudy:chk:<key>:<root>:<k>:<n>:<size>         read (decrypts; base32 key and root hash)
//! cloudy:chk-verify:<si>:<root>:<k>:<n>:<size>   verify (check and repair, cannot decrypt)
//! cloudy:lit:<data>:<checksum>                   literal (files of up to 55 bytes, no server;
//!                                                 the checksum-less form of old ones still reads)
//! cloudy:mut:<write key>:<checksum>              mutable file: write (change, read, check)
//! cloudy:mut-read:<read key>:<vk hash>:<checksum> mutable file: read
//! cloudy:mut-verify:<vk hash>:<checksum>         mutable file: check and repair
//! cloudy:dir:…, cloudy:dir-read:…, cloudy:dir-verify:…   the same for a directory
//! ```
//!
//! Mutable capabilities carry a checksum so that a changed or mistyped
//! character is named as such rather than read as another file.
//!
//! The verify capability is derived from the read capability one way: the
//! storage index is a hash of the key. Base32 is RFC 4648 lowercase without
//! padding.

use crate::crypt::{storage_index, SI_LEN};
use crate::mutable::{ReadKey, VerifyKey, WriteKey};
use crate::root::Hash;
use data_encoding::{Encoding, Specification};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// Files up to this size live inside their capability.
pub const LITERAL_MAX: usize = 55;

static B32: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.encoding().expect("valid base32 specification")
});

/// Reads (and so decrypts) one immutable file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCap {
    /// The file key.
    pub key: [u8; 32],
    /// Hash of the root record.
    pub root: Hash,
    /// Blocks needed.
    pub k: u8,
    /// Blocks made.
    pub n: u8,
    /// File size.
    pub size: u64,
}

/// Checks and repairs one file without being able to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyCap {
    /// Where servers keep the shares.
    pub storage_index: [u8; SI_LEN],
    /// Hash of the root record.
    pub root: Hash,
    /// Blocks needed.
    pub k: u8,
    /// Blocks made.
    pub n: u8,
    /// File size.
    pub size: u64,
}

/// Any capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cap {
    /// Read capability.
    Read(ReadCap),
    /// Verify capability.
    Verify(VerifyCap),
    /// A tiny file carried in the capability itself.
    Literal(Vec<u8>),
    /// A mutable file or a directory.
    Mutable(MutCap),
}

/// What a mutable capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutKind {
    /// A mutable file.
    File,
    /// A directory.
    Dir,
}

/// What a mutable capability allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Change, read and check.
    Write(WriteKey),
    /// Read and check.
    Read(ReadKey),
    /// Check and repair only.
    Verify(VerifyKey),
}

/// A capability to a mutable file or a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutCap {
    /// File or directory.
    pub kind: MutKind,
    /// Write, read or verify.
    pub access: Access,
}

impl MutCap {
    /// The read key, unless this is a verify capability.
    pub fn read_key(&self) -> Option<ReadKey> {
        match &self.access {
            Access::Write(w) => Some(w.read()),
            Access::Read(r) => Some(r.clone()),
            Access::Verify(_) => None,
        }
    }

    /// The write key, if this is a write capability.
    pub fn write_key(&self) -> Option<&WriteKey> {
        match &self.access {
            Access::Write(w) => Some(w),
            _ => None,
        }
    }

    /// The verify key.
    pub fn verify_key(&self) -> VerifyKey {
        match &self.access {
            Access::Write(w) => w.read().verify(),
            Access::Read(r) => r.verify(),
            Access::Verify(v) => *v,
        }
    }

    /// The read-only form (itself if it is already read-only or verify).
    pub fn to_read(&self) -> MutCap {
        match &self.access {
            Access::Write(w) => MutCap { kind: self.kind, access: Access::Read(w.read()) },
            _ => self.clone(),
        }
    }

    /// The verify form.
    pub fn to_verify(&self) -> MutCap {
        MutCap { kind: self.kind, access: Access::Verify(self.verify_key()) }
    }

    fn prefix(&self) -> &'static str {
        match (self.kind, &self.access) {
            (MutKind::File, Access::Write(_)) => "mut",
            (MutKind::File, Access::Read(_)) => "mut-read",
            (MutKind::File, Access::Verify(_)) => "mut-verify",
            (MutKind::Dir, Access::Write(_)) => "dir",
            (MutKind::Dir, Access::Read(_)) => "dir-read",
            (MutKind::Dir, Access::Verify(_)) => "dir-verify",
        }
    }

    fn fields(&self) -> String {
        match &self.access {
            Access::Write(w) => B32.encode(&w.0),
            Access::Read(r) => format!("{}:{}", B32.encode(&r.key), B32.encode(&r.vkh)),
            Access::Verify(v) => B32.encode(&v.vkh),
        }
    }

    fn parse(kind: &str, f: &[&str]) -> Result<MutCap, CapError> {
        let (file_kind, access) = match kind {
            "mut" => (MutKind::File, "write"),
            "mut-read" => (MutKind::File, "read"),
            "mut-verify" => (MutKind::File, "verify"),
            "dir" => (MutKind::Dir, "write"),
            "dir-read" => (MutKind::Dir, "read"),
            _ => (MutKind::Dir, "verify"),
        };
        let expected = if access == "read" { 3 } else { 2 };
        if f.len() != expected {
            return Err(CapError::FieldCount {
                kind: access,
                expected: expected + 1,
                got: f.len() + 1,
            });
        }
        let access = match access {
            "write" => Access::Write(WriteKey(bytes("write key", f[0])?)),
            "read" => Access::Read(ReadKey {
                key: bytes("read key", f[0])?,
                vkh: bytes("key hash", f[1])?,
            }),
            _ => Access::Verify(VerifyKey { vkh: bytes("key hash", f[0])? }),
        };
        let cap = MutCap { kind: file_kind, access };
        let check = f[expected - 1];
        if check != cap.check() {
            return Err(CapError::BadField {
                field: "checksum",
                value: check.to_string(),
                reason: "does not match the rest: the capability was changed or mistyped".into(),
            });
        }
        Ok(cap)
    }

    fn check(&self) -> String {
        let text = format!("{}:{}", self.prefix(), self.fields());
        let hash = blake3::keyed_hash(
            blake3::hash(b"cloudy mutable capability").as_bytes(),
            text.as_bytes(),
        );
        B32.encode(&hash.as_bytes()[..5])
    }
}

impl ReadCap {
    /// The verify capability of the same file.
    pub fn verify_cap(&self) -> VerifyCap {
        VerifyCap {
            storage_index: storage_index(&self.key),
            root: self.root,
            k: self.k,
            n: self.n,
            size: self.size,
        }
    }
}

/// Why a capability string does not parse. Each names the part at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapError {
    /// Not one of ours at all.
    #[error("not a cloudy capability (expected it to start with \"cloudy:\"): {0:?}")]
    NotACapability(String),
    /// A Tahoe-LAFS capability (`URI:CHK:…`, `URI:DIR2:…`): another grid.
    #[error("{0:?} is a Tahoe-LAFS capability; this grid has its own (they start with \"cloudy:\"): copy the file out of Tahoe with `tahoe get` and store it here with `cloudy-p2p put`")]
    Tahoe(String),
    /// Unknown kind after `cloudy:`.
    #[error("unknown capability kind {0:?} (expected chk, chk-verify, lit, mut or dir)")]
    UnknownKind(String),
    /// Too few or too many `:`-separated parts (e.g. truncated when pasted).
    #[error("{kind} capability has {got} fields, expected {expected} (truncated when copied?)")]
    FieldCount {
        /// Kind.
        kind: &'static str,
        /// Fields expected.
        expected: usize,
        /// Fields found.
        got: usize,
    },
    /// One field is malformed.
    #[error("capability field {field} is malformed ({value:?}): {reason}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

fn bytes<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], CapError> {
    let bad = |reason: String| CapError::BadField { field, value: s.to_string(), reason };
    let v = B32.decode(s.as_bytes()).map_err(|e| bad(format!("not base32: {e}")))?;
    v.try_into().map_err(|v: Vec<u8>| bad(format!("{} bytes, expected {N}", v.len())))
}

fn number<T: FromStr>(field: &'static str, s: &str) -> Result<T, CapError> {
    s.parse().map_err(|_| CapError::BadField {
        field,
        value: s.to_string(),
        reason: "not a number in range".into(),
    })
}

/// Parses the shared tail `<k>:<n>:<size>` and checks 1 ≤ k ≤ n.
fn params(f: &[&str]) -> Result<(u8, u8, u64), CapError> {
    let (k, n): (u8, u8) = (number("k", f[0])?, number("n", f[1])?);
    if k == 0 || k > n {
        return Err(CapError::BadField {
            field: "k",
            value: f[0].into(),
            reason: format!("need 1 <= k <= n (n = {n})"),
        });
    }
    Ok((k, n, number("size", f[2])?))
}

/// `URI:CHK:…`: a foreign capability's kind, without its secrets.
fn short(s: &str) -> String {
    let kind: Vec<&str> = s.splitn(3, ':').take(2).collect();
    format!("{}:…", kind.join(":"))
}

impl FromStr for Cap {
    type Err = CapError;

    fn from_str(s: &str) -> Result<Cap, CapError> {
        let s = s.trim();
        let Some(rest) = s.strip_prefix("cloudy:") else {
            return Err(match s.starts_with("URI:") {
                true => CapError::Tahoe(short(s)),
                false => CapError::NotACapability(s.to_string()),
            });
        };
        let f: Vec<&str> = rest.split(':').collect();
        let count = |kind, expected| {
            if f.len() == expected {
                Ok(())
            } else {
                Err(CapError::FieldCount { kind, expected, got: f.len() })
            }
        };
        match f[0] {
            "chk" => {
                count("read", 6)?;
                let (k, n, size) = params(&f[3..])?;
                Ok(Cap::Read(ReadCap {
                    key: bytes("key", f[1])?,
                    root: bytes("root", f[2])?,
                    k,
                    n,
                    size,
                }))
            }
            "chk-verify" => {
                count("verify", 6)?;
                let (k, n, size) = params(&f[3..])?;
                let storage_index = bytes("storage index", f[1])?;
                Ok(Cap::Verify(VerifyCap { storage_index, root: bytes("root", f[2])?, k, n, size }))
            }
            "lit" => {
                // Three fields with the checksum; two in capabilities made
                // before it existed, which stay readable.
                if f.len() != 3 {
                    count("literal", 2)?;
                }
                let data = B32.decode(f[1].as_bytes()).map_err(|e| CapError::BadField {
                    field: "data",
                    value: f[1].to_string(),
                    reason: format!("not base32: {e}"),
                })?;
                if data.len() > LITERAL_MAX {
                    let reason =
                        format!("{} bytes, a literal holds at most {LITERAL_MAX}", data.len());
                    return Err(CapError::BadField {
                        field: "data",
                        value: f[1].to_string(),
                        reason,
                    });
                }
                if let Some(check) = f.get(2) {
                    if *check != literal_check(&data) {
                        return Err(CapError::BadField {
                            field: "checksum",
                            value: check.to_string(),
                            reason: "does not match the data: the capability was changed or \
                                     mistyped"
                                .into(),
                        });
                    }
                }
                Ok(Cap::Literal(data))
            }
            kind @ ("mut" | "mut-read" | "mut-verify" | "dir" | "dir-read" | "dir-verify") => {
                Ok(Cap::Mutable(MutCap::parse(kind, &f[1..])?))
            }
            other => Err(CapError::UnknownKind(other.to_string())),
        }
    }
}

/// The checksum field of a literal capability: 5 bytes of a keyed hash of
/// the data, so that a changed or mistyped character is an error rather
/// than other contents.
fn literal_check(data: &[u8]) -> String {
    let hash = blake3::keyed_hash(blake3::hash(b"cloudy literal capability").as_bytes(), data);
    B32.encode(&hash.as_bytes()[..5])
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Read(c) => {
                write!(
                    f,
                    "cloudy:chk:{}:{}:{}:{}:{}",
                    B32.encode(&c.key),
                    B32.encode(&c.root),
                    c.k,
                    c.n,
                    c.size
                )
            }
            Cap::Verify(c) => write!(
                f,
                "cloudy:chk-verify:{}:{}:{}:{}:{}",
                B32.encode(&c.storage_index),
                B32.encode(&c.root),
                c.k,
                c.n,
                c.size
            ),
            Cap::Literal(d) => write!(f, "cloudy:lit:{}:{}", B32.encode(d), literal_check(d)),
            Cap::Mutable(m) => write!(f, "cloudy:{}:{}:{}", m.prefix(), m.fields(), m.check()),
        }
    }
}

impl Cap {
    /// A human explanation, for `cloudy-p2p cap info`.
    pub fn describe(&self) -> String {
        match self {
            Cap::Read(c) => format!(
                "read capability: decrypts and reads a {}-byte file stored as {}-of-{} shares\nstorage index: {}\nverify capability: {}",
                c.size,
                c.k,
                c.n,
                B32.encode(&c.verify_cap().storage_index),
                Cap::Verify(c.verify_cap())
            ),
            Cap::Verify(c) => format!(
                "verify capability: can check and repair a {}-byte file stored as {}-of-{} shares, cannot read it\nstorage index: {}",
                c.size,
                c.k,
                c.n,
                B32.encode(&c.storage_index)
            ),
            Cap::Literal(d) => format!("literal capability: a {}-byte file held in the capability itself, on no server", d.len()),
            Cap::Mutable(m) => {
                let what = match m.kind {
                    MutKind::File => "mutable file",
                    MutKind::Dir => "directory",
                };
                let can = match m.access {
                    Access::Write(_) => "change, read and check",
                    Access::Read(_) => "read and check, cannot change",
                    Access::Verify(_) => "check and repair, cannot read",
                };
                let mut out = format!(
                    "{what} {} capability: can {can} it\nstorage index: {}",
                    match m.access {
                        Access::Write(_) => "write",
                        Access::Read(_) => "read",
                        Access::Verify(_) => "verify",
                    },
                    B32.encode(&m.verify_key().storage_index())
                );
                if let Access::Write(_) = m.access {
                    out += &format!("\nread capability: {}", Cap::Mutable(m.to_read()));
                }
                if !matches!(m.access, Access::Verify(_)) {
                    out += &format!("\nverify capability: {}", Cap::Mutable(m.to_verify()));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read() -> ReadCap {
        ReadCap { key: [1; 32], root: [2; 32], k: 3, n: 6, size: 1234 }
    }

    proptest! {
        #[test]
        fn print_parse_roundtrip(key in any::<[u8; 32]>(), root in any::<[u8; 32]>(), k in 1u8..10, extra in 0u8..10, size in any::<u64>(), lit in proptest::collection::vec(any::<u8>(), 0..=LITERAL_MAX)) {
            let r = ReadCap { key, root, k, n: k + extra, size };
            for cap in [Cap::Read(r.clone()), Cap::Verify(r.verify_cap()), Cap::Literal(lit.clone())] {
                prop_assert_eq!(cap.to_string().parse::<Cap>().unwrap(), cap);
            }
        }
    }

    #[test]
    fn malformed_and_truncated_caps_name_the_part() {
        let good = Cap::Read(read()).to_string();
        let err = |s: &str| s.parse::<Cap>().unwrap_err().to_string();
        assert!(err("URI:CHK:abc").contains("is a Tahoe-LAFS capability"));
        assert!(err("URI:DIR2:abc:def").contains("`tahoe get`"));
        assert!(err("chk:abc").contains("not a cloudy capability"));
        assert!(err("cloudy:folder:x").contains("unknown capability kind \"folder\""));
        let truncated = &good[..good.rfind(':').unwrap()];
        assert!(
            err(truncated).contains("read capability has 5 fields, expected 6"),
            "{}",
            err(truncated)
        );
        let short_key = good.replacen(":aeaq", ":", 1);
        assert!(err(&short_key).contains("field key"), "{}", err(&short_key));
        assert!(err(&good.replace(":3:6:", ":9:6:")).contains("field k"));
        assert!(err(&good.replace(":3:6:", ":3:x:")).contains("field n"));
        assert!(err(&good.replace("1234", "-1")).contains("field size"));
        assert!(err("cloudy:lit:!!").contains("field data"));
        let long = Cap::Literal(vec![0; LITERAL_MAX + 1]).to_string();
        assert!(err(&long).contains("at most 55"));
    }

    #[test]
    fn a_changed_character_in_a_literal_is_an_error_and_old_literals_still_read() {
        let data = b"hello, community".to_vec();
        let cap = Cap::Literal(data.clone()).to_string();
        let start = "cloudy:lit:".len();
        let end = cap.rfind(':').unwrap();
        for i in start..end {
            let mut bytes = cap.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            // Either no longer base32, or caught by the checksum; never
            // other contents.
            let err = changed.parse::<Cap>().unwrap_err().to_string();
            assert!(err.contains("field data") || err.contains("field checksum"), "{err}");
        }
        let old = format!("cloudy:lit:{}", B32.encode(&data));
        assert_eq!(old.parse::<Cap>().unwrap(), Cap::Literal(data));
        assert!("cloudy:lit::".parse::<Cap>().unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn mutable_caps_round_trip_derive_downwards_and_catch_a_changed_character() {
        for kind in [MutKind::File, MutKind::Dir] {
            let w = MutCap { kind, access: Access::Write(WriteKey::generate()) };
            for cap in [w.clone(), w.to_read(), w.to_verify(), w.to_read().to_verify()] {
                let text = Cap::Mutable(cap.clone()).to_string();
                assert_eq!(text.parse::<Cap>().unwrap(), Cap::Mutable(cap.clone()), "{text}");
                let mut changed = text.clone().into_bytes();
                let i = text.len() - 12;
                changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
                let err = String::from_utf8(changed).unwrap().parse::<Cap>().unwrap_err();
                assert!(
                    err.to_string().contains("changed or mistyped")
                        || err.to_string().contains("base32"),
                    "{err}"
                );
            }
            assert_eq!(w.to_read().verify_key(), w.verify_key());
            assert!(w.to_read().write_key().is_none());
        }
        let d = Cap::Mutable(MutCap {
            kind: MutKind::Dir,
            access: Access::Write(WriteKey::generate()),
        });
        assert!(d.to_string().starts_with("cloudy:dir:"));
        assert!(d.describe().contains("cloudy:dir-read:"), "{}", d.describe());
        let s = d.to_string();
        let truncated = &s[..s.rfind(':').unwrap()];
        assert!(truncated.parse::<Cap>().unwrap_err().to_string().contains("fields"));
    }

    #[test]
    fn verify_cap_cannot_give_back_the_key_and_describe_says_so() {
        let v = read().verify_cap();
        assert_eq!(v.root, [2; 32]);
        assert_ne!(&v.storage_index[..], &read().key[..16]);
        assert!(Cap::Verify(v).describe().contains("cannot read"));
        assert!(Cap::Read(read()).describe().contains("cloudy:chk-verify:"));
    }
}
