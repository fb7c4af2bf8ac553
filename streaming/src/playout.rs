//! Putting a channel's chunks back in order for a player (pure: the caller
//! passes the time).
//!
//! A viewer starts at a key chunk: the newest one it has when it starts
//! playing, so it joins near the live edge. From there chunks are played
//! in sequence. A chunk still missing when its playout deadline passes is
//! skipped (and counted), so one lost chunk costs a glitch, not a stall;
//! after a skip, playback resumes at the next key chunk, where the player
//! can decode again. The end flag closes the output.

use crate::chunk::Chunk;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the player should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// Write these bytes.
    Bytes(Vec<u8>),
    /// The channel ended: close the output.
    End,
}

/// Playout of one channel.
#[derive(Debug)]
pub struct Playout {
    /// Time a chunk may arrive after the one before it was due.
    delay: Duration,
    /// Chunks held, by sequence.
    held: BTreeMap<u64, Chunk>,
    /// The next sequence to play, once started.
    next: Option<u64>,
    /// When `next` is due.
    due: Option<Instant>,
    /// After a skip: wait for a key chunk.
    resync: bool,
    ended: bool,
    /// Chunks played and skipped.
    pub played: u64,
    pub skipped: u64,
}

impl Playout {
    /// A playout that waits up to `delay` for a missing chunk.
    pub fn new(delay: Duration) -> Self {
        Playout {
            delay,
            held: BTreeMap::new(),
            next: None,
            due: None,
            resync: false,
            ended: false,
            played: 0,
            skipped: 0,
        }
    }

    /// The next sequence wanted (to ask neighbours for), once started.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// Takes a (verified) chunk; duplicates and chunks already played are
    /// ignored.
    pub fn add(&mut self, c: Chunk) {
        if self.next.is_some_and(|n| c.seq < n) || self.ended {
            return;
        }
        self.held.entry(c.seq).or_insert(c);
    }

    /// Starts at the newest key chunk held; false if there is none yet.
    pub fn start(&mut self, now: Instant) -> bool {
        if self.next.is_some() {
            return true;
        }
        let Some(seq) = self.held.iter().rev().find(|(_, c)| c.is_key()).map(|(s, _)| *s) else {
            return false;
        };
        self.held.retain(|s, _| *s >= seq);
        self.next = Some(seq);
        self.due = Some(now + self.delay);
        true
    }

    /// What to write now, in order.
    pub fn poll(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else { return out };
        loop {
            if self.ended {
                break;
            }
            if let Some(c) = self.held.remove(&next) {
                if self.resync && !c.is_key() {
                    // Not decodable yet: drop it like a lost one.
                    self.skipped += 1;
                } else {
                    self.resync = false;
                    self.played += 1;
                    if !c.data.is_empty() {
                        out.push(Out::Bytes(c.data));
                    }
                    if c.flags & crate::chunk::END != 0 {
                        self.ended = true;
                        out.push(Out::End);
                    }
                }
                next += 1;
                self.due = Some(now + self.delay);
                continue;
            }
            // Missing: wait until it is due, then skip it if something
            // later is here (else there is nothing to skip to yet).
            let late = self.due.is_some_and(|d| now >= d);
            if late && self.held.keys().next().is_some_and(|s| *s > next) {
                self.skipped += 1;
                self.resync = true;
                next += 1;
                continue;
            }
            break;
        }
        self.next = Some(next);
        out
    }

    /// Moves the deadline of the chunk awaited on by `by` (the node did
    /// not run for that long, so it could not take the chunk).
    pub fn postpone(&mut self, by: Duration) {
        if let Some(d) = self.due.as_mut() {
            *d += by;
        }
    }

    /// Whether the end was played.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{Channel, END, KEY};

    fn chunks(keys: &[u64], end: u64) -> Vec<Chunk> {
        let ch = Channel::generate();
        (0..=end)
            .map(|s| {
                let flags =
                    if keys.contains(&s) { KEY } else { 0 } | if s == end { END } else { 0 };
                ch.sign(s, 0, flags, vec![s as u8; 3])
            })
            .collect()
    }

    fn bytes(out: &[Out]) -> Vec<u8> {
        out.iter().flat_map(|o| if let Out::Bytes(b) = o { b.clone() } else { vec![] }).collect()
    }

    #[test]
    fn starts_at_the_newest_key_chunk_and_plays_in_order() {
        let c = chunks(&[0, 4, 8], 9);
        let t = Instant::now();
        let mut p = Playout::new(Duration::from_secs(3));
        for x in [&c[1], &c[0], &c[5], &c[4], &c[6]] {
            p.add(x.clone());
        }
        assert!(p.start(t));
        assert_eq!(p.next(), Some(4), "the newest key chunk");
        // Out of order and twice over.
        p.add(c[8].clone());
        p.add(c[7].clone());
        p.add(c[7].clone());
        let mut out = p.poll(t);
        p.add(c[9].clone());
        out.extend(p.poll(t));
        assert_eq!(bytes(&out), vec![4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9]);
        assert_eq!(out.last(), Some(&Out::End));
        assert!(p.ended() && p.skipped == 0 && p.played == 6);
    }

    #[test]
    fn a_chunk_missing_past_its_deadline_is_skipped_up_to_the_next_key_chunk() {
        let c = chunks(&[0, 3], 5);
        let t = Instant::now();
        let mut p = Playout::new(Duration::from_secs(3));
        p.add(c[0].clone());
        assert!(p.start(t));
        // 1 is lost; 2 (not key), 3 (key), 4 and 5 arrive.
        for x in &c[2..] {
            p.add(x.clone());
        }
        assert_eq!(
            bytes(&p.poll(t + Duration::from_secs(1))),
            vec![0, 0, 0],
            "waits for 1 until it is due"
        );
        let out = p.poll(t + Duration::from_secs(4));
        assert_eq!(
            bytes(&out),
            vec![3, 3, 3, 4, 4, 4, 5, 5, 5],
            "skips 1, drops 2 (undecodable), resumes at key chunk 3"
        );
        assert_eq!((p.skipped, p.played), (2, 4));
        assert!(p.ended());
    }

    #[test]
    fn nothing_plays_before_a_key_chunk() {
        let c = chunks(&[5], 6);
        let mut p = Playout::new(Duration::from_secs(3));
        p.add(c[2].clone());
        assert!(!p.start(Instant::now()));
        assert!(p.poll(Instant::now()).is_empty());
    }
}
