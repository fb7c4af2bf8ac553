//! A foreign libp2p peer sends garbage and a forged heartbeat on the
//! membership topic: both are rejected, the node keeps working, and the
//! peer's own well-formed heartbeat is accepted.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::membership::wire::{Alive, Message};
use cloudy_overlay::protocols::MEMBERSHIP_TOPIC;
use cloudy_overlay::testing::{fast_config, wait_until, TestNode};
use cloudy_overlay::{MemberState, PeerId};
use futures::StreamExt;
use libp2p::{gossipsub, swarm::SwarmEvent};
use std::time::Duration;

fn heartbeat(peer: PeerId) -> Vec<u8> {
    let alive = Alive {
        peer,
        incarnation: 1,
        seq: 1,
        addrs: vec![],
        zone: "rogue".into(),
        coord: None,
        services: [("rogue-svc".to_string(), Default::default())].into(),
    };
    Message::Alive(alive).encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_forgeries_on_the_membership_topic_are_rejected() {
    let node = TestNode::start(fast_config()).await.unwrap();
    let mut rogue = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| {
            let cfg = gossipsub::ConfigBuilder::default().build().expect("config");
            let auth = gossipsub::MessageAuthenticity::Signed(key.clone());
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(auth, cfg)
            .expect("behaviour")
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = gossipsub::IdentTopic::new(MEMBERSHIP_TOPIC);
    rogue.behaviour_mut().subscribe(&topic).unwrap();
    rogue.dial(node.addr()).unwrap();
    let subscribed = async {
        loop {
            if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) =
                rogue.select_next_some().await
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), subscribed).await.expect("node never subscribed");

    let me = *rogue.local_peer_id();
    let victim = PeerId::random();
    for data in [b"\x00\xffnot json at all".to_vec(), heartbeat(victim), heartbeat(me)] {
        rogue.behaviour_mut().publish(topic.clone(), data).unwrap();
    }
    tokio::spawn(async move {
        loop {
            rogue.select_next_some().await;
        }
    });

    // Messages on one connection arrive in order: once the honest heartbeat
    // is in, the garbage and the forgery have been judged.
    let s = wait_until(&node.handle, "the rogue's own heartbeat", |s| s.peers.contains_key(&me))
        .await
        .unwrap();
    assert_eq!(s.peers[&me].state, MemberState::Alive);
    assert!(!s.peers.contains_key(&victim), "a heartbeat signed by someone else must be rejected");
    assert_eq!(s.providers(Some("rogue-svc")).len(), 1);
    // The node still serves its API.
    node.handle.announce("still-here", Default::default()).await.unwrap();
}
