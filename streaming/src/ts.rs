//! Just enough MPEG-TS to cut a stream where a player can start: packet
//! framing, the packet id, and the random access flag (set by muxers such
//! as ffmpeg's on keyframes).

/// Bytes per TS packet.
pub const PACKET: usize = 188;
/// First byte of every packet.
pub const SYNC: u8 = 0x47;
/// Packets looked at to decide whether a stream is TS.
const PROBE: usize = 5;

/// Whether `buf` looks like MPEG-TS: a sync byte at the start of each of
/// its first packets (at least two whole packets needed).
pub fn looks_like_ts(buf: &[u8]) -> bool {
    let whole = (buf.len() / PACKET).min(PROBE);
    whole >= 2 && (0..whole).all(|i| buf[i * PACKET] == SYNC)
}

/// The packet's id (13 bits).
pub fn pid(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])
}

/// Whether the packet is the Program Association Table (pid 0).
pub fn is_pat(p: &[u8]) -> bool {
    pid(p) == 0
}

/// Whether the packet's adaptation field says a decoder can start here.
/// Muxers set this on every audio frame too; see [`starts_picture_group`].
pub fn random_access(p: &[u8]) -> bool {
    let has_adaptation = p[3] & 0x20 != 0;
    has_adaptation && p[4] > 0 && p[5] & 0x40 != 0
}

/// Whether the packet carries a program clock reference.
pub fn has_pcr(p: &[u8]) -> bool {
    let has_adaptation = p[3] & 0x20 != 0;
    has_adaptation && p[4] > 0 && p[5] & 0x10 != 0
}

/// A random access point on the stream that carries the clock, which is
/// the video stream in what ffmpeg and broadcast muxers write: the start
/// of a group of pictures.
pub fn starts_picture_group(p: &[u8]) -> bool {
    random_access(p) && has_pcr(p)
}

/// A packet for tests: `pid`, optionally flagged as a random access point
/// with a clock reference (a keyframe), its payload filled with `fill`.
#[cfg(test)]
pub fn packet(pid: u16, keyframe: bool, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; PACKET];
    p[0] = SYNC;
    p[1] = (pid >> 8) as u8 & 0x1f;
    p[2] = pid as u8;
    if keyframe {
        p[3] = 0x30; // adaptation field and payload
        p[4] = 7; // adaptation field length
        p[5] = 0x50; // random_access_indicator, PCR_flag
    } else {
        p[3] = 0x10; // payload only
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_flags() {
        let mut s = packet(0, false, 1);
        s.extend(packet(256, true, 2));
        assert!(looks_like_ts(&s));
        assert!(!looks_like_ts(&s[..PACKET]), "one packet is not enough to tell");
        assert!(!looks_like_ts(b"hello, this is not a transport stream at all, just some text that goes on for a while; hello, this is not a transport stream at all, just some text that goes on for a while; and on and on and on and on"));
        let (a, b) = (&s[..PACKET], &s[PACKET..]);
        assert!(is_pat(a) && !is_pat(b));
        assert_eq!(pid(b), 256);
        assert!(random_access(b) && !random_access(a));
        assert!(starts_picture_group(b) && !starts_picture_group(a));
        let mut audio = packet(257, false, 3);
        audio[3] = 0x30;
        audio[4] = 1;
        audio[5] = 0x40;
        assert!(
            random_access(&audio) && !starts_picture_group(&audio),
            "an audio frame is not a picture group"
        );
    }
}
