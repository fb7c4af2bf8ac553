//! What a video file holds, as `stream vod publish` says and the catalogue
//! lists: its container (MPEG-TS or MP4), its video and audio codecs, its
//! duration, and whether a browser plays it (H.264 video, AAC audio). MP4
//! headers are read with the `mp4` crate; MPEG-TS program tables and
//! timestamps are read here. Pure logic over bytes, plus one function that
//! reads a file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// A video file's container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// MPEG transport stream.
    MpegTs,
    /// MP4 (ISO base media file).
    Mp4,
    /// Neither.
    Unknown,
}

impl Container {
    /// Its short name (`mpegts`, `mp4`, `unknown`), as the catalogue has it.
    pub fn name(self) -> &'static str {
        match self {
            Container::MpegTs => "mpegts",
            Container::Mp4 => "mp4",
            Container::Unknown => "unknown",
        }
    }

    /// The HTTP content type a video of this container is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Container::Mp4 => "video/mp4",
            _ => "video/mp2t",
        }
    }
}

/// What a file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Its container.
    pub container: Container,
    /// Its video codec, if it has video.
    pub video: Option<String>,
    /// Its audio codec, if it has audio.
    pub audio: Option<String>,
    /// How long it plays, when the file says.
    pub duration: Option<Duration>,
}

impl Found {
    /// Whether a browser plays it (from the node's player page).
    pub fn plays_in_browsers(&self) -> bool {
        self.container != Container::Unknown
            && self.video.as_deref().is_none_or(|v| v == "H.264")
            && self.audio.as_deref().is_none_or(|a| a == "AAC")
            && (self.video.is_some() || self.audio.is_some())
    }

    /// One line for the publisher: what was found and where it plays.
    pub fn describe(&self) -> String {
        let codecs: Vec<&str> = self.video.iter().chain(&self.audio).map(String::as_str).collect();
        let mut s = match self.container {
            Container::MpegTs => "MPEG-TS".to_string(),
            Container::Mp4 => "MP4".to_string(),
            Container::Unknown => {
                return "neither MPEG-TS nor MP4: browsers cannot play it; VLC and mpv may".into()
            }
        };
        if !codecs.is_empty() {
            s += &format!(", {}", codecs.join(" + "));
        }
        if let Some(d) = self.duration {
            s += &format!(", {:.1} s", d.as_secs_f64());
        }
        s += if self.plays_in_browsers() {
            ": plays in browsers (the player page) and in VLC and mpv"
        } else {
            ": browsers play H.264 with AAC only; VLC and mpv play it"
        };
        s
    }
}

const TS: usize = 188;
/// Bytes read from each end of an MPEG-TS file.
const TS_PROBE: u64 = 2 << 20;

fn video_name(stream_type: u8) -> Option<&'static str> {
    Some(match stream_type {
        0x1b => "H.264",
        0x24 => "H.265",
        0x01 | 0x02 => "MPEG-2 video",
        0x10 => "MPEG-4 video",
        _ => return None,
    })
}

fn audio_name(stream_type: u8) -> Option<&'static str> {
    Some(match stream_type {
        0x0f | 0x11 => "AAC",
        0x03 | 0x04 => "MPEG audio",
        0x81 => "AC-3",
        _ => return None,
    })
}

/// The first packet boundary (three sync bytes 188 apart).
fn sync(b: &[u8]) -> Option<usize> {
    (0..TS.min(b.len())).find(|&i| {
        b.get(i) == Some(&0x47) && b.get(i + TS) == Some(&0x47) && b.get(i + 2 * TS) == Some(&0x47)
    })
}

/// A packet's payload, and whether it starts a unit.
fn payload(p: &[u8]) -> Option<(u16, bool, &[u8])> {
    if p.len() < TS || p[0] != 0x47 {
        return None;
    }
    let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    let start = p[1] & 0x40 != 0;
    let adaptation = (p[3] >> 4) & 3;
    let mut off = 4;
    if adaptation & 2 != 0 {
        off += 1 + usize::from(p[4]);
    }
    if adaptation & 1 == 0 || off >= TS {
        return Some((pid, start, &[]));
    }
    Some((pid, start, &p[off..TS]))
}

/// A section (PAT or PMT) starting in a unit-start payload.
fn section(pl: &[u8]) -> Option<&[u8]> {
    let t = pl.get(1 + usize::from(*pl.first()?)..)?;
    let len = (usize::from(t.get(1)? & 0x0f) << 8) | usize::from(*t.get(2)?);
    t.get(..(3 + len).checked_sub(4)?)
}

/// The program's streams: (pid, stream type).
fn program(b: &[u8]) -> Option<Vec<(u16, u8)>> {
    let mut pmt = None;
    for p in b.chunks_exact(TS) {
        let Some((pid, true, pl)) = payload(p) else { continue };
        if pid == 0 && pmt.is_none() {
            let t = section(pl)?;
            pmt = t.get(8..)?.chunks_exact(4).find_map(|e| {
                let number = (u16::from(e[0]) << 8) | u16::from(e[1]);
                (number != 0).then_some((u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]))
            });
        } else if Some(pid) == pmt {
            let t = section(pl)?;
            if t.first() != Some(&0x02) {
                continue;
            }
            let info = (usize::from(*t.get(10)? & 0x0f) << 8) | usize::from(*t.get(11)?);
            let mut at = 12 + info;
            let mut streams = Vec::new();
            while let Some(s) = t.get(at..at + 5) {
                streams.push(((u16::from(s[1] & 0x1f) << 8) | u16::from(s[2]), s[0]));
                at += 5 + ((usize::from(s[3] & 0x0f) << 8) | usize::from(s[4]));
            }
            return Some(streams);
        }
    }
    None
}

/// The presentation timestamps (90 kHz) of `pid`'s units in `b`.
fn timestamps(b: &[u8], pid: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for p in b.chunks_exact(TS) {
        let Some((id, true, pl)) = payload(p) else { continue };
        if id != pid || pl.len() < 14 || pl[..3] != [0, 0, 1] || pl[7] & 0x80 == 0 {
            continue;
        }
        let t = &pl[9..14];
        let pts = (u64::from(t[0] >> 1) & 0x07) << 30
            | u64::from(t[1]) << 22
            | u64::from(t[2] >> 1) << 15
            | u64::from(t[3]) << 7
            | u64::from(t[4] >> 1);
        out.push(pts);
    }
    out
}

/// What an MPEG-TS file holds, from its first and last bytes.
pub fn mpegts(head: &[u8], tail: &[u8]) -> Option<Found> {
    let head = &head[sync(head)?..];
    let streams = program(head).unwrap_or_default();
    let video = streams.iter().find_map(|&(pid, t)| video_name(t).map(|n| (pid, n)));
    let audio = streams.iter().find_map(|&(_, t)| audio_name(t));
    let duration = video.or(streams.first().map(|&(pid, _)| (pid, ""))).and_then(|(pid, _)| {
        let first = timestamps(head, pid).into_iter().min()?;
        let tail = &tail[sync(tail)?..];
        let last = timestamps(tail, pid).into_iter().max()?;
        (last > first).then(|| Duration::from_secs_f64((last - first) as f64 / 90_000.0))
    });
    Some(Found {
        container: Container::MpegTs,
        video: video.map(|(_, n)| n.to_string()),
        audio: audio.map(str::to_string),
        duration,
    })
}

/// What an MP4 file holds, from its headers.
fn mp4_file(f: std::fs::File, size: u64) -> Option<Found> {
    let r = mp4::Mp4Reader::read_header(std::io::BufReader::new(f), size).ok()?;
    let (mut video, mut audio) = (None, None);
    for t in r.tracks().values() {
        let Ok(fourcc) = t.box_type() else { continue };
        let name = match fourcc.to_string().as_str() {
            "avc1" | "avc3" => "H.264".to_string(),
            "hev1" | "hvc1" => "H.265".to_string(),
            "vp09" => "VP9".to_string(),
            "mp4a" => "AAC".to_string(),
            other => other.to_string(),
        };
        match t.track_type() {
            Ok(mp4::TrackType::Video) if video.is_none() => video = Some(name),
            Ok(mp4::TrackType::Audio) if audio.is_none() => audio = Some(name),
            _ => {}
        }
    }
    let duration = Some(r.duration()).filter(|d| !d.is_zero());
    Some(Found { container: Container::Mp4, video, audio, duration })
}

/// What the file at `path` holds.
pub fn probe(path: &Path) -> std::io::Result<Found> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut head = vec![0u8; size.min(TS_PROBE) as usize];
    f.read_exact(&mut head)?;
    if head.get(4..8) == Some(b"ftyp") {
        f.seek(SeekFrom::Start(0))?;
        if let Some(found) = mp4_file(f, size) {
            return Ok(found);
        }
    } else if sync(&head).is_some() {
        let mut tail = vec![0u8; size.min(TS_PROBE) as usize];
        f.seek(SeekFrom::Start(size - tail.len() as u64))?;
        f.read_exact(&mut tail)?;
        if let Some(found) = mpegts(&head, &tail) {
            return Ok(found);
        }
    }
    Ok(Found { container: Container::Unknown, video: None, audio: None, duration: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet of `pid` carrying `payload` (a unit start if `start`).
    fn packet(pid: u16, start: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x47, (if start { 0x40 } else { 0 }) | (pid >> 8) as u8, pid as u8, 0x10];
        p.extend_from_slice(payload);
        p.resize(TS, 0xff);
        p
    }

    fn pes_with_pts(pts: u64) -> Vec<u8> {
        let t = [
            0x21 | (((pts >> 30) & 0x07) << 1) as u8,
            (pts >> 22) as u8,
            0x01 | ((pts >> 15) << 1) as u8,
            (pts >> 7) as u8,
            0x01 | (pts << 1) as u8,
        ];
        let mut v = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        v.extend_from_slice(&t);
        v
    }

    fn tables() -> Vec<u8> {
        // PAT: program 1 at PID 0x1000; PMT: H.264 at 0x100, AAC at 0x101.
        let pat = [0, 0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00, 0, 0, 0, 0];
        let pmt = [
            0, 0x02, 0xb0, 23, 0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0, 0x1b, 0xe1, 0x00, 0xf0, 0,
            0x0f, 0xe1, 0x01, 0xf0, 0, 0, 0, 0, 0,
        ];
        let mut b = packet(0, true, &pat);
        b.extend(packet(0x1000, true, &pmt));
        b
    }

    #[test]
    fn an_mpegts_program_its_codecs_and_duration_are_read() {
        let mut head = tables();
        head.extend(packet(0x100, true, &pes_with_pts(126_000)));
        head.extend(packet(0x101, true, &[0; 20]));
        let mut tail = packet(0x100, false, &[0; 100]);
        tail.extend(packet(0x100, true, &pes_with_pts(126_000 + 12 * 90_000)));
        tail.extend(packet(0x101, false, &[0; 100]));
        let found = mpegts(&head, &tail).unwrap();
        assert_eq!(found.container, Container::MpegTs);
        assert_eq!((found.video.as_deref(), found.audio.as_deref()), (Some("H.264"), Some("AAC")));
        assert_eq!(found.duration, Some(Duration::from_secs(12)));
        assert!(found.plays_in_browsers());
        assert!(found.describe().contains("MPEG-TS, H.264 + AAC, 12.0 s: plays in browsers"));
    }

    #[test]
    fn garbage_and_other_codecs_are_named() {
        assert_eq!(mpegts(&[0u8; 1000], &[]), None);
        let unknown =
            Found { container: Container::Unknown, video: None, audio: None, duration: None };
        assert!(!unknown.plays_in_browsers());
        assert!(unknown.describe().contains("neither MPEG-TS nor MP4"));
        let hevc = Found {
            container: Container::Mp4,
            video: Some("H.265".into()),
            audio: Some("AAC".into()),
            duration: None,
        };
        assert!(!hevc.plays_in_browsers());
        assert!(hevc.describe().contains("browsers play H.264 with AAC only"));
        // Sync bytes and nothing else: MPEG-TS framing, no program.
        let found = mpegts(&[0x47; 188 * 4], &[0x47; 188 * 4]).unwrap();
        assert!(!found.plays_in_browsers());
    }
}
