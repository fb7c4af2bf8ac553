//! The overlay's Prometheus metrics: libp2p's own (connections, identify,
//! ping, Kademlia, gossipsub, and bytes on the wire per transport), the
//! measured round trips, and members by state.

use crate::membership::MemberState;
use crate::scoring::PeerScores;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Label of the member gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// What the event loop records.
pub(crate) struct Metrics {
    pub libp2p: libp2p::metrics::Metrics,
    rtt: Histogram,
    members: Family<StateLabel, Gauge>,
    abusive: prometheus_client::metrics::counter::Counter,
}

impl Metrics {
    /// Registers the metrics in `registry`: libp2p's under `libp2p_`, ours
    /// under `cloudy_`.
    pub(crate) fn new(registry: &mut Registry) -> Metrics {
        let libp2p = libp2p::metrics::Metrics::new(registry);
        let ours = registry.sub_registry_with_prefix("cloudy");
        // 1 ms to about 4 s, doubling: loopback to a congested radio link.
        let rtt = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 13,
        ));
        ours.register(
            "rtt_seconds",
            "Round trips measured to members (pings and probes)",
            rtt.clone(),
        );
        let members = Family::<StateLabel, Gauge>::default();
        ours.register(
            "members",
            "Members known, by state (not counting this node)",
            members.clone(),
        );
        let abusive = prometheus_client::metrics::counter::Counter::default();
        ours.register(
            "abusive_peers",
            "Peers disconnected for going over a service's limits again and again",
            abusive.clone(),
        );
        Metrics { libp2p, rtt, members, abusive }
    }

    /// A peer was disconnected for abuse.
    pub(crate) fn abusive(&self) {
        self.abusive.inc();
    }

    /// A round trip measured to a member.
    pub(crate) fn rtt(&self, rtt: Duration) {
        self.rtt.observe(rtt.as_secs_f64());
    }

    /// Members by state, from a fresh snapshot.
    pub(crate) fn members(&self, snapshot: &PeerScores) {
        for state in
            [MemberState::Alive, MemberState::Suspect, MemberState::Failed, MemberState::Left]
        {
            self.members
                .get_or_create(&StateLabel { state: state.as_str() })
                .set(snapshot.count(state) as i64);
        }
    }
}
