//! Feeding a publisher's input into its channel: cut, sign, hand to the
//! channel task, and end the channel when the input ends.

use super::task::{unix_ms, Command};
use crate::chunk::{Channel, END, KEY};
use crate::cutter::Cutter;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// A chunk ends at this size…
pub const CHUNK_BYTES: usize = 32 * 1024;
/// …or this age.
pub const CHUNK_AGE: Duration = Duration::from_millis(250);

/// What a publisher's input amounted to.
#[derive(Clone, Debug, Default)]
pub struct FeedSummary {
    /// Chunks published (the end chunk included).
    pub chunks: u64,
    /// Input bytes.
    pub bytes: u64,
    /// The input was MPEG-TS (cut at picture groups).
    pub mpeg_ts: bool,
    /// The input broke off instead of ending (the channel was ended anyway).
    pub error: Option<String>,
}

/// Reads `input` to its end, publishing chunks numbered from `first_seq`,
/// then the end chunk.
pub async fn feed<R: AsyncRead + Unpin>(
    mut input: R,
    channel: &Channel,
    first_seq: u64,
    tx: &mpsc::Sender<Command>,
) -> FeedSummary {
    let mut cutter = Cutter::new(CHUNK_BYTES, CHUNK_AGE);
    let mut sum = FeedSummary::default();
    let mut seq = first_seq;
    let mut buf = vec![0u8; 64 * 1024];
    let mut send = |data: Vec<u8>, flags: u8, sum: &mut FeedSummary| {
        let c = channel.sign(seq, unix_ms(), flags, data);
        seq += 1;
        sum.chunks += 1;
        c
    };
    loop {
        let deadline = cutter.deadline();
        let wait = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let cuts = tokio::select! {
            r = input.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => {
                    sum.bytes += n as u64;
                    cutter.push(&buf[..n], Instant::now())
                }
                Err(e) => {
                    sum.error = Some(e.to_string());
                    break;
                }
            },
            _ = wait => cutter.tick(Instant::now()).into_iter().collect(),
        };
        for cut in cuts {
            let c = send(cut.data, if cut.key { KEY } else { 0 }, &mut sum);
            if tx.send(Command::Publish(c)).await.is_err() {
                sum.error = Some("the channel stopped".into());
                return sum;
            }
        }
    }
    sum.mpeg_ts = cutter.is_ts() == Some(true);
    let last = cutter.finish();
    for (data, flags) in
        last.map(|c| (c.data, if c.key { KEY } else { 0 })).into_iter().chain([(Vec::new(), END)])
    {
        let c = send(data, flags, &mut sum);
        let _ = tx.send(Command::Publish(c)).await;
    }
    sum
}
