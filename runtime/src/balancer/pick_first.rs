//! `pick_first`: one connection, to the first address that answers (gRPC-Go's default).

use std::sync::Arc;

use super::{
    Balancer, BalancerBuilder, ChannelController, ConnectivityState, Pick, PickInfo, Picker,
    Subchannel, failing_picker, queue_picker,
};
use crate::resolver::{Address, ResolverState};
use crate::status::Status;

/// Builds `pick_first` balancers: addresses are tried in order until one connects, and all
/// calls use that connection; when it closes, the addresses are tried again. Its config
/// `{"shuffleAddressList": true}` shuffles the addresses first (gRFC A62), so clients given
/// the same list spread over it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PickFirstBuilder;

impl BalancerBuilder for PickFirstBuilder {
    fn name(&self) -> &str {
        "pick_first"
    }

    fn build(&self, config: Option<&serde_json::Value>) -> Result<Box<dyn Balancer>, Status> {
        let shuffle = match config.and_then(|c| c.get("shuffleAddressList")) {
            None => false,
            Some(serde_json::Value::Bool(shuffle)) => *shuffle,
            Some(other) => {
                return Err(Status::unavailable(format!(
                    "pick_first: shuffleAddressList must be a boolean, not {other}"
                )));
            }
        };
        let mut balancer = PickFirst::default();
        balancer.shuffle = shuffle;
        Ok(Box::new(balancer))
    }
}

#[derive(Default)]
struct PickFirst {
    shuffle: bool,
    addresses: Vec<Address>,
    /// One per address, in the order tried.
    subchannels: Vec<Subchannel>,
    /// The one being tried in the current pass.
    next: usize,
    selected: Option<Subchannel>,
    /// Every address failed once: TRANSIENT_FAILURE until one connects; each is retried
    /// as its backoff ends.
    failed_pass: bool,
    /// The selected connection closed: IDLE, without subchannels, until a call asks for a
    /// connection (gRFC A62; reconnecting at once would answer a server's
    /// `max_connection_idle` GOAWAY with a new idle connection).
    idle: bool,
}

struct Always(Subchannel);

impl Picker for Always {
    fn pick(&self, _: &PickInfo<'_>) -> Pick {
        Pick::Subchannel(self.0.clone())
    }
}

impl PickFirst {
    /// Drops every subchannel and starts a pass over the addresses.
    fn restart(&mut self, channel: &mut dyn ChannelController) {
        for subchannel in self.subchannels.drain(..) {
            subchannel.shutdown();
        }
        if let Some(selected) = self.selected.take() {
            selected.shutdown();
        }
        self.subchannels = self
            .addresses
            .iter()
            .map(|address| channel.new_subchannel(address))
            .collect();
        self.next = 0;
        self.failed_pass = false;
        if let Some(first) = self.subchannels.first() {
            first.connect();
            channel.update_picker(ConnectivityState::Connecting, queue_picker());
        }
    }
}

impl Balancer for PickFirst {
    fn resolver_update(
        &mut self,
        state: &ResolverState,
        channel: &mut dyn ChannelController,
    ) -> Result<(), Status> {
        let mut addresses: Vec<Address> = Vec::with_capacity(state.addresses.len());
        for address in &state.addresses {
            if !addresses.contains(address) {
                addresses.push(address.clone());
            }
        }
        if addresses.is_empty() {
            let status = Status::unavailable("the resolver returned no addresses");
            if self.selected.is_none() {
                channel.update_picker(
                    ConnectivityState::TransientFailure,
                    failing_picker(status.clone()),
                );
            }
            return Err(status);
        }
        if self.shuffle {
            shuffle(&mut addresses);
        }
        if addresses == self.addresses && !self.subchannels.is_empty() {
            return Ok(());
        }
        self.addresses = addresses;
        if self.idle {
            // Used when a call needs a connection.
            return Ok(());
        }
        // A connection to an address still listed stays.
        if let Some(selected) = &self.selected
            && self.addresses.contains(selected.address())
        {
            return Ok(());
        }
        self.restart(channel);
        Ok(())
    }

    fn resolver_error(&mut self, error: &Status, channel: &mut dyn ChannelController) {
        if self.subchannels.is_empty() {
            channel.update_picker(
                ConnectivityState::TransientFailure,
                failing_picker(error.clone()),
            );
        }
    }

    fn subchannel_update(
        &mut self,
        subchannel: &Subchannel,
        state: ConnectivityState,
        channel: &mut dyn ChannelController,
    ) {
        let Some(index) = self.subchannels.iter().position(|s| s == subchannel) else {
            return;
        };
        match state {
            ConnectivityState::Ready => {
                for (i, other) in self.subchannels.iter().enumerate() {
                    if i != index {
                        other.shutdown();
                    }
                }
                self.subchannels = vec![subchannel.clone()];
                self.next = 0;
                self.failed_pass = false;
                self.selected = Some(subchannel.clone());
                channel.update_picker(
                    ConnectivityState::Ready,
                    Arc::new(Always(subchannel.clone())),
                );
            }
            ConnectivityState::TransientFailure => {
                if self.failed_pass || index != self.next {
                    if self.failed_pass {
                        let error = subchannel
                            .last_error()
                            .unwrap_or_else(|| Status::unavailable("connection failed"));
                        channel.update_picker(
                            ConnectivityState::TransientFailure,
                            failing_picker(error),
                        );
                    }
                    return;
                }
                self.next += 1;
                if let Some(next) = self.subchannels.get(self.next) {
                    next.connect();
                    return;
                }
                self.failed_pass = true;
                let error = subchannel
                    .last_error()
                    .unwrap_or_else(|| Status::unavailable("connection failed"));
                channel.update_picker(ConnectivityState::TransientFailure, failing_picker(error));
                channel.resolve_now();
            }
            ConnectivityState::Idle => {
                if self.selected.as_ref() == Some(subchannel) {
                    // The connection closed: IDLE until a call needs one; fresh addresses
                    // meanwhile.
                    for subchannel in self.subchannels.drain(..) {
                        subchannel.shutdown();
                    }
                    if let Some(selected) = self.selected.take() {
                        selected.shutdown();
                    }
                    self.idle = true;
                    channel.resolve_now();
                    channel.update_picker(ConnectivityState::Idle, queue_picker());
                } else if self.failed_pass {
                    // Its backoff is over: try it again.
                    subchannel.connect();
                }
            }
            ConnectivityState::Connecting | ConnectivityState::Shutdown => {}
        }
    }

    fn exit_idle(&mut self, channel: &mut dyn ChannelController) {
        self.idle = false;
        if self.subchannels.is_empty() && !self.addresses.is_empty() {
            self.restart(channel);
        } else if let Some(current) = self.subchannels.get(self.next) {
            current.connect();
        }
    }
}

impl Drop for PickFirst {
    fn drop(&mut self) {
        for subchannel in &self.subchannels {
            subchannel.shutdown();
        }
        if let Some(selected) = &self.selected {
            selected.shutdown();
        }
    }
}

/// Fisher-Yates with the backoff's jitter source: spreading clients is all it needs.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (crate::backoff::random() * (i + 1) as f64) as usize;
        items.swap(i, j.min(i));
    }
}
