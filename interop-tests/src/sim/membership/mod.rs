//! Membership and failure detection at community scale, simulated with the
//! project's own code (issue 21). Every simulated node runs the node's
//! [`MemberTable`](cloudy_overlay::membership::MemberTable) (gossip,
//! suspicion timeouts, anti-entropy through `hello`/`answer`/`take`) and
//! [`Detector`](cloudy_overlay::membership::detector::Detector) (monitor
//! targets, accusations, confirmations) with the node's default
//! [`Config`](cloudy_overlay::Config). Gossipsub (libp2p's code, not ours)
//! is modelled: each message floods a mesh of degree 4–6 built from each
//! node's connections (its monitors, its monitor targets and three random
//! links). Time is simulated; links follow [`super::wire::Links`].
//!
//! A full table per node costs N entries, so N tables cost N² (about 40 GB
//! at N = 10,000). Up to 2,000 nodes every node holds the full table;
//! beyond, a sample of *observers* (the scenario's actors and 300 random
//! nodes) does, and every other node holds the entries of its ring
//! neighbourhood only: the members its detector needs (its nine
//! successors), and applies only the gossip about them. Those nodes' own
//! anti-entropy exchanges are counted as the converged case (a hash and
//! `Equal`), and an observer with no observer among its connections
//! exchanges with a random observer. A test checks that the sample sees
//! what every node sees. A node that gets its links runs one exchange
//! then: the node compares tables with every member it dials, which is
//! how it catches what was broadcast while it was joining.
//!
//! The scenario, in simulated time: a converged community; at 2 s a
//! newcomer starts; at 10 s a member announces a service; at 15 s another
//! is killed; from 30 s an idle window. With `churn_secs`, a second phase
//! follows in which members go down and come back as the Guifi
//! availability model says ([`churn`]). The model, its sources and the
//! results are in DESIGN/simulation.md.

mod alone;
mod churn;
mod engine;

pub use alone::idle_second;
use engine::Sim;

/// The service the announcement scenario announces.
pub const SVC: &str = "sim-svc";

/// One simulation's settings.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Nodes in the community (one of them joins during the run).
    pub nodes: usize,
    /// Nodes holding a full member table besides the scenario's actors;
    /// `None`: all.
    pub observers: Option<usize>,
    /// The seed: one seed, one result.
    pub seed: u64,
    /// Share of packets lost.
    pub loss: f64,
    /// Length of the idle window, simulated seconds.
    pub idle_secs: u64,
    /// Length of the churn phase after it, simulated seconds (0: none).
    pub churn_secs: u64,
    /// Probe and suspicion timeouts instead of the defaults' (to compare
    /// with real processes run with the same `config.toml` settings).
    pub timeouts: Option<(std::time::Duration, std::time::Duration)>,
    /// Disseminate over the broadcast tree (`cloudy_overlay::broadcast`)
    /// instead of gossipsub's mesh.
    pub tree: bool,
}

impl Setup {
    /// The default scenario for `nodes`: full tables everywhere up to
    /// 2,000 nodes, 300 observers beyond; no churn phase.
    pub fn community(nodes: usize, seed: u64) -> Setup {
        let observers = (nodes > 2000).then_some(300);
        Setup {
            nodes,
            observers,
            seed,
            loss: 0.01,
            idle_secs: 60,
            churn_secs: 0,
            timeouts: None,
            tree: true,
        }
    }
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Nodes holding a full member table.
    pub observers: usize,
    /// A newcomer knows every member and every observer holds it alive,
    /// s after its start.
    pub join: Option<f64>,
    /// A service announcement seen by every observer, s.
    pub announce: Option<f64>,
    /// Gossip hops the announcement needed to reach the last node.
    pub announce_hops: u32,
    /// A killed member seen failed by every observer, s.
    pub detect: Option<f64>,
    /// Live members some observer held failed (whole run).
    pub false_failures: usize,
    /// Live members some observer suspected (whole run).
    pub false_suspicions: usize,
    /// Idle bytes sent per node per second: gossip, probes, anti-entropy.
    pub idle_bytes: [f64; 3],
    /// CPU time of the membership code per observer, share of one core,
    /// idle: gossip, detector, anti-entropy.
    pub idle_cpu: [f64; 3],
    /// Mean gossip mesh degree.
    pub mesh_degree: f64,
    /// Whether every observer's table summary agrees at the end of the idle window.
    pub converged: bool,
    /// The churn phase, if one ran.
    pub churn: Option<Churned>,
}

/// What the churn phase found.
#[derive(Clone, Debug, Default)]
pub struct Churned {
    /// Members that went down.
    pub failures: usize,
    /// Members that came back.
    pub returns: usize,
    /// A member that went down seen failed by every observer, s: mean, max.
    pub detect: Option<(f64, f64)>,
    /// Failures not seen by every observer by the end.
    pub undetected: usize,
    /// A member that came back seen alive by every observer, s: mean, max.
    pub rejoin: Option<(f64, f64)>,
    /// Returns not seen by every observer by the end.
    pub unseen: usize,
    /// Bytes sent per up node per second: gossip, probes, anti-entropy.
    pub bytes: [f64; 3],
    /// CPU time of the membership code per observer, share of one core:
    /// gossip, detector, anti-entropy.
    pub cpu: [f64; 3],
    /// Messages new to it that an observer took, per second.
    pub taken: f64,
    /// Anti-entropy bytes an observer sent per second (the others' are
    /// counted as between agreeing tables).
    pub table_sync: f64,
}

/// Runs one simulation.
pub fn run(s: &Setup) -> Outcome {
    let mut sim = Sim::new(s);
    sim.scenario();
    sim.until_secs(engine::T_IDLE);
    let before = sim.counters();
    sim.until_secs(engine::T_IDLE + s.idle_secs);
    let mut out = sim.outcome(s.idle_secs, &before);
    if s.churn_secs > 0 {
        let start = engine::T_IDLE + s.idle_secs;
        let before = sim.counters();
        sim.churn(start, s.churn_secs);
        sim.until_secs(start + s.churn_secs);
        out.churn = Some(sim.churned(s.churn_secs, &before));
    }
    let (ff, fs) = sim.false_alarms();
    (out.false_failures, out.false_suspicions) = (ff, fs);
    out
}

#[cfg(test)]
mod tests;
