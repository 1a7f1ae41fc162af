//! The ssehub broker as a benchmark [`Fanout`], shared by `server-ssehub`
//! (axum) and `server-ssehub-lean` (`ssehub::server`).

use serde_json::{Value, json};
use ssehub::Event;
use ssehub::broker::{Broker, Channel};

use crate::control::Fanout;

/// A broker whose topics are channels.
#[derive(Clone)]
pub struct BrokerHub {
    /// The broker under test.
    pub broker: Broker,
}

impl Fanout for BrokerHub {
    type Topic = Channel;

    fn topic(&self, name: &str) -> Channel {
        self.broker
            .channel(name)
            .expect("the broker is never closed")
    }

    fn publish(&self, topic: &Channel, payloads: &[String]) {
        for p in payloads {
            if let Ok(frame) = Event::new(p.as_str()).encode() {
                let _ = topic.broadcast_frame(frame);
            }
        }
    }

    fn subscribers(&self) -> usize {
        self.broker.clients()
    }

    fn extra(&self) -> Value {
        let s = self.broker.stats();
        json!({
            "channels": s.channels,
            "published": s.published,
            "delivered": s.delivered,
            "dropped": s.dropped,
            "slow_disconnects": s.slow_disconnects,
        })
    }
}
