//! Cutting a live byte stream into chunks (pure: no clocks read, no I/O).
//!
//! A chunk ends at [`Cutter`]'s size limit or age limit. MPEG-TS input is
//! cut on packet boundaries only, and a new chunk starts at every start of
//! a group of pictures (or at the PAT just before it), marked *key*: a
//! viewer that starts playing at a key chunk decodes from its first byte.
//! Other input is carried as it is, cut by size and age; every chunk of it
//! is marked key, since no point in it is a better start than another.

use crate::ts;
use std::time::{Duration, Instant};

/// A chunk's worth of stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The bytes.
    pub data: Vec<u8>,
    /// Playback can start at its first byte.
    pub key: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Not enough bytes yet to tell.
    Unknown,
    Ts,
    Bytes,
}

/// Cuts a stream into chunks.
#[derive(Debug)]
pub struct Cutter {
    max_bytes: usize,
    max_age: Duration,
    mode: Mode,
    /// Bytes not yet placed in a chunk (undecided input, or part of a packet).
    pending: Vec<u8>,
    cur: Vec<u8>,
    cur_key: bool,
    started: Option<Instant>,
    /// Where in `cur` the last PAT since the last cut starts.
    last_pat: Option<usize>,
    /// No chunk made yet.
    first: bool,
}

impl Cutter {
    /// Chunks of at most `max_bytes` (TS: rounded down to whole packets),
    /// ended once `max_age` old.
    pub fn new(max_bytes: usize, max_age: Duration) -> Self {
        Cutter {
            max_bytes: max_bytes.max(ts::PACKET),
            max_age,
            mode: Mode::Unknown,
            pending: Vec::new(),
            cur: Vec::new(),
            cur_key: false,
            started: None,
            last_pat: None,
            first: true,
        }
    }

    /// Whether the input turned out to be MPEG-TS (`None`: not known yet).
    pub fn is_ts(&self) -> Option<bool> {
        match self.mode {
            Mode::Unknown => None,
            m => Some(m == Mode::Ts),
        }
    }

    /// Takes `bytes` read at `now`; returns the chunks they complete.
    pub fn push(&mut self, bytes: &[u8], now: Instant) -> Vec<Cut> {
        self.pending.extend_from_slice(bytes);
        if self.mode == Mode::Unknown {
            if self.pending.len() < 5 * ts::PACKET {
                return Vec::new();
            }
            self.mode = if ts::looks_like_ts(&self.pending) { Mode::Ts } else { Mode::Bytes };
        }
        let mut out = Vec::new();
        match self.mode {
            Mode::Ts => {
                let whole = self.pending.len() / ts::PACKET * ts::PACKET;
                let input: Vec<u8> = self.pending.drain(..whole).collect();
                for p in input.chunks_exact(ts::PACKET) {
                    self.packet(p, now, &mut out);
                }
            }
            _ => {
                let input = std::mem::take(&mut self.pending);
                let mut rest = &input[..];
                while !rest.is_empty() {
                    self.begin(now);
                    let take = (self.max_bytes - self.cur.len()).min(rest.len());
                    self.cur.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.cur.len() >= self.max_bytes {
                        out.extend(self.cut());
                    }
                }
            }
        }
        out
    }

    /// The current chunk if it is `max_age` old at `now`.
    pub fn tick(&mut self, now: Instant) -> Option<Cut> {
        let old = self.started.is_some_and(|t| now.duration_since(t) >= self.max_age);
        if old {
            self.cut()
        } else {
            None
        }
    }

    /// When [`Cutter::tick`] should next be called.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|t| t + self.max_age)
    }

    /// The end of input: whatever is left, as a last chunk.
    pub fn finish(mut self) -> Option<Cut> {
        let rest = std::mem::take(&mut self.pending);
        self.cur.extend_from_slice(&rest);
        if self.first && !self.cur.is_empty() {
            self.cur_key = true;
        }
        self.cut()
    }

    fn begin(&mut self, now: Instant) {
        if self.cur.is_empty() {
            self.started = Some(now);
            if self.first {
                self.cur_key = true;
            }
        }
    }

    /// Ends the current chunk.
    fn cut(&mut self) -> Option<Cut> {
        self.started = None;
        self.last_pat = None;
        if self.cur.is_empty() {
            return None;
        }
        self.first = false;
        // Opaque input has no better place to start than any chunk.
        let key = std::mem::take(&mut self.cur_key) || self.mode == Mode::Bytes;
        Some(Cut { data: std::mem::take(&mut self.cur), key })
    }

    fn packet(&mut self, p: &[u8], now: Instant, out: &mut Vec<Cut>) {
        if ts::starts_picture_group(p) {
            // Start a key chunk here, or at the PAT just before.
            let at = self.last_pat.unwrap_or(self.cur.len());
            if at > 0 {
                let tail = self.cur.split_off(at);
                out.extend(self.cut());
                self.cur = tail;
                self.started = Some(now);
            }
            self.cur_key = true;
            self.last_pat = None;
        }
        self.begin(now);
        if ts::is_pat(p) {
            self.last_pat = Some(self.cur.len());
        }
        self.cur.extend_from_slice(p);
        if self.cur.len() + ts::PACKET > self.max_bytes {
            out.extend(self.cut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet;

    fn stream(packets: &[(u16, bool)]) -> Vec<u8> {
        packets.iter().enumerate().flat_map(|(i, (pid, key))| packet(*pid, *key, i as u8)).collect()
    }

    fn cut_all(c: &mut Cutter, input: &[u8], step: usize) -> Vec<Cut> {
        let now = Instant::now();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            out.extend(c.push(piece, now));
        }
        out
    }

    #[test]
    fn ts_is_cut_on_packets_and_at_each_picture_group_from_its_pat() {
        // PAT, PMT, keyframe, 20 video packets, PAT, PMT, keyframe, 5 more.
        let mut plan = vec![(0, false), (4096, false), (256, true)];
        plan.extend(std::iter::repeat_n((256, false), 20));
        plan.extend([(0, false), (4096, false), (256, true)]);
        plan.extend(std::iter::repeat_n((256, false), 5));
        let input = stream(&plan);
        let mut c = Cutter::new(10 * ts::PACKET, Duration::from_secs(60));
        // Fed in odd pieces, so packets arrive split.
        let mut cuts = cut_all(&mut c, &input, 1000);
        assert_eq!(c.is_ts(), Some(true));
        cuts.extend(c.finish());
        assert_eq!(cuts.concat_data(), input, "byte-exact");
        assert!(cuts.iter().all(|k| k.data.len() % ts::PACKET == 0), "whole packets only");
        let keys: Vec<usize> =
            cuts.iter().enumerate().filter(|(_, k)| k.key).map(|(i, _)| i).collect();
        assert_eq!(keys.len(), 2);
        for i in keys {
            assert!(
                ts::is_pat(&cuts[i].data[..ts::PACKET]),
                "a key chunk starts with the program table"
            );
            assert!(ts::starts_picture_group(&cuts[i].data[2 * ts::PACKET..3 * ts::PACKET]));
        }
        assert!(cuts.iter().all(|k| k.data.len() <= 10 * ts::PACKET));
    }

    #[test]
    fn audio_frames_do_not_cut_and_a_keyframe_without_pat_cuts_right_there() {
        let mut audio = packet(257, false, 9);
        audio[3] = 0x30;
        audio[4] = 1;
        audio[5] = 0x40; // random access, no clock: an audio frame
        let mut input =
            stream(&[(256, false), (256, false), (256, false), (256, false), (256, false)]);
        input.extend(audio.repeat(3));
        let gop = input.len();
        input.extend(stream(&[(256, true), (256, false)]));
        let mut c = Cutter::new(1 << 20, Duration::from_secs(60));
        let mut cuts = cut_all(&mut c, &input, 188 * 3);
        cuts.extend(c.finish());
        assert_eq!(cuts.len(), 2);
        assert_eq!(cuts[0].data.len(), gop);
        assert!(cuts[0].key && cuts[1].key, "the first chunk, and the picture group");
    }

    #[test]
    fn other_input_is_carried_exactly_by_size_and_age() {
        let input: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = Cutter::new(4096, Duration::from_millis(250));
        let t0 = Instant::now();
        let mut cuts = c.push(&input[..3000], t0);
        assert_eq!(c.is_ts(), Some(false));
        assert!(cuts.is_empty());
        assert_eq!(c.tick(t0 + Duration::from_millis(100)), None, "not old yet");
        cuts.extend(c.tick(t0 + Duration::from_millis(260)));
        assert_eq!(cuts.len(), 1, "cut by age");
        cuts.extend(c.push(&input[3000..], t0 + Duration::from_millis(300)));
        cuts.extend(c.finish());
        assert_eq!(cuts.concat_data(), input);
        assert!(
            cuts.iter().all(|k| k.key),
            "any chunk of opaque input is as good a start as any other"
        );
        assert!(cuts.iter().all(|k| k.data.len() <= 4096));
        // Tiny input still comes out.
        let mut c = Cutter::new(4096, Duration::from_millis(250));
        assert!(c.push(b"hi", t0).is_empty());
        assert_eq!(c.finish(), Some(Cut { data: b"hi".to_vec(), key: true }));
    }

    trait Concat {
        fn concat_data(&self) -> Vec<u8>;
    }

    impl Concat for Vec<Cut> {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|c| c.data.clone()).collect()
        }
    }
}
