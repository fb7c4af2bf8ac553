//! What a video on demand is: its size and the blake3 hash of each
//! 256 KiB piece. The video's id is the blake3 hash of that list (the root
//! of a one-level hash tree), so a viewer that knows the id can check the
//! manifest from anyone, then each piece alone.

use std::io::Read;

/// Bytes per piece (the last may be shorter).
pub const PIECE: u64 = 256 * 1024;
/// Largest video accepted: 1 TiB (a manifest of 128 MiB would be absurd).
pub const MAX_SIZE: u64 = 1 << 40;

const DOMAIN: &[u8] = b"cloudy-vod-manifest/1";

/// Manifest failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// The text is not a video id.
    #[error("not a video id: {0:?} (64 hexadecimal characters)")]
    BadId(String),
    /// The manifest does not hash to the id.
    #[error("the manifest of video {0} does not match its id (forged or corrupt)")]
    Mismatch(String),
    /// The manifest bytes do not parse or are inconsistent.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// A piece does not hash to its entry.
    #[error("piece {index} of video {id} is corrupt or forged (hash mismatch)")]
    BadPiece {
        /// The video.
        id: String,
        /// The piece.
        index: u64,
    },
}

/// A video id: the root hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VodId(pub [u8; 32]);

impl VodId {
    /// Parses 64 hex characters.
    pub fn parse(s: &str) -> Result<VodId, ManifestError> {
        let bad = || ManifestError::BadId(s.chars().take(80).collect());
        if s.len() != 64 {
            return Err(bad());
        }
        let bytes = hex_decode(s).ok_or_else(bad)?;
        Ok(VodId(bytes))
    }

    /// Whether `s` looks like a video id (rather than a channel).
    pub fn looks_like(s: &str) -> bool {
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The DHT key providers announce.
    pub fn dht_key(&self) -> Vec<u8> {
        let mut k = b"/cloudy/vod/".to_vec();
        k.extend_from_slice(&self.0);
        k
    }
}

fn hex_decode(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

impl std::fmt::Display for VodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A video's size and piece hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Bytes.
    pub size: u64,
    /// blake3 of each piece.
    pub hashes: Vec<[u8; 32]>,
}

impl Manifest {
    /// Reads `r` to its end (blocking), hashing each piece.
    pub fn build(mut r: impl Read) -> std::io::Result<Manifest> {
        let mut hashes = Vec::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; PIECE as usize];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = r.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            size += filled as u64;
            hashes.push(*blake3::hash(&buf[..filled]).as_bytes());
            if filled < buf.len() {
                break;
            }
        }
        Ok(Manifest { size, hashes })
    }

    /// The bytes the id covers.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DOMAIN.len() + 8 + 32 * self.hashes.len());
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// The video id.
    pub fn id(&self) -> VodId {
        VodId(*blake3::hash(&self.encode()).as_bytes())
    }

    /// Parses `bytes` and checks them against `id`.
    pub fn decode(id: &VodId, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if VodId(*blake3::hash(bytes).as_bytes()) != *id {
            return Err(ManifestError::Mismatch(id.to_string()));
        }
        let rest = bytes
            .strip_prefix(DOMAIN)
            .ok_or_else(|| ManifestError::Malformed("no header".into()))?;
        if rest.len() < 8 || (rest.len() - 8) % 32 != 0 {
            return Err(ManifestError::Malformed(format!("{} bytes", bytes.len())));
        }
        let size = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
        let hashes: Vec<[u8; 32]> =
            rest[8..].chunks(32).map(|c| c.try_into().expect("32 bytes")).collect();
        if size > MAX_SIZE || hashes.len() as u64 != size.div_ceil(PIECE) {
            return Err(ManifestError::Malformed(format!(
                "{} pieces for {size} bytes",
                hashes.len()
            )));
        }
        Ok(Manifest { size, hashes })
    }

    /// Pieces.
    pub fn pieces(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The byte range of piece `i`.
    pub fn range(&self, i: u64) -> std::ops::Range<u64> {
        let start = i * PIECE;
        start..(start + PIECE).min(self.size)
    }

    /// The piece holding byte `offset`.
    pub fn piece_at(&self, offset: u64) -> u64 {
        offset / PIECE
    }

    /// Checks piece `i`.
    pub fn verify(&self, i: u64, data: &[u8]) -> Result<(), ManifestError> {
        let ok = self.hashes.get(i as usize).is_some_and(|h| h == blake3::hash(data).as_bytes())
            && data.len() as u64 == self.range(i).end - self.range(i).start;
        if ok {
            Ok(())
        } else {
            Err(ManifestError::BadPiece { id: self.id().to_string(), index: i })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cover_every_piece_and_pieces_verify_alone() {
        let data: Vec<u8> = (0..(3 * PIECE + 1000) as u32).map(|i| (i % 251) as u8).collect();
        let m = Manifest::build(&data[..]).unwrap();
        assert_eq!((m.size, m.pieces()), (data.len() as u64, 4));
        let id = m.id();
        assert_eq!(VodId::parse(&id.to_string()).unwrap(), id);
        assert!(VodId::looks_like(&id.to_string()));
        let back = Manifest::decode(&id, &m.encode()).unwrap();
        assert_eq!(back, m);
        for i in 0..4 {
            let r = m.range(i);
            m.verify(i, &data[r.start as usize..r.end as usize]).unwrap();
        }
        assert_eq!(m.range(3), 3 * PIECE..data.len() as u64);
        assert_eq!(m.piece_at(PIECE), 1);
        let mut bad = data[..PIECE as usize].to_vec();
        bad[7] ^= 1;
        assert!(matches!(m.verify(0, &bad), Err(ManifestError::BadPiece { index: 0, .. })));
        assert!(m.verify(9, &bad).is_err());
        // A manifest altered anywhere fails its id.
        let mut enc = m.encode();
        let last = enc.len() - 1;
        enc[last] ^= 1;
        assert!(matches!(Manifest::decode(&id, &enc), Err(ManifestError::Mismatch(_))));
        for bad in ["", "zz", &"g".repeat(64)] {
            assert!(VodId::parse(bad).is_err());
        }
        // Empty input is a video of no pieces.
        let empty = Manifest::build(&b""[..]).unwrap();
        assert_eq!(Manifest::decode(&empty.id(), &empty.encode()).unwrap().pieces(), 0);
    }
}
