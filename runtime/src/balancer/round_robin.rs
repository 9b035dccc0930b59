//! `round_robin`: a connection to every address, calls spread over the READY ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    Balancer, BalancerBuilder, ChannelController, ConnectivityState, Pick, PickInfo, Picker,
    Subchannel, failing_picker, queue_picker,
};
use crate::resolver::{Address, ResolverState};
use crate::status::Status;

/// Builds `round_robin` balancers: one subchannel per address, each reconnected when it
/// drops, and each call on the next READY one in turn.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobinBuilder;

impl BalancerBuilder for RoundRobinBuilder {
    fn name(&self) -> &str {
        "round_robin"
    }

    fn build(&self, _: Option<&serde_json::Value>) -> Result<Box<dyn Balancer>, Status> {
        Ok(Box::new(RoundRobin::default()))
    }
}

#[derive(Default)]
struct RoundRobin {
    subchannels: Vec<Subchannel>,
    states: HashMap<Subchannel, ConnectivityState>,
    /// The state last published: TRANSIENT_FAILURE sticks until a subchannel is READY.
    published: Option<ConnectivityState>,
}

struct Rotate {
    ready: Vec<Subchannel>,
    next: AtomicUsize,
}

impl Picker for Rotate {
    fn pick(&self, _: &PickInfo<'_>) -> Pick {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.ready.len();
        Pick::Subchannel(self.ready[i].clone())
    }
}

impl RoundRobin {
    fn publish(&mut self, channel: &mut dyn ChannelController) {
        let ready: Vec<Subchannel> = self
            .subchannels
            .iter()
            .filter(|s| self.states.get(*s) == Some(&ConnectivityState::Ready))
            .cloned()
            .collect();
        if !ready.is_empty() {
            // A random start, so clients do not all begin on the same server.
            let start = (crate::backoff::random() * ready.len() as f64) as usize;
            self.published = Some(ConnectivityState::Ready);
            channel.update_picker(
                ConnectivityState::Ready,
                Arc::new(Rotate {
                    ready,
                    next: AtomicUsize::new(start),
                }),
            );
            return;
        }
        let all_failed = !self.subchannels.is_empty()
            && self
                .subchannels
                .iter()
                .all(|s| self.states.get(s) == Some(&ConnectivityState::TransientFailure));
        let sticky = self.published == Some(ConnectivityState::TransientFailure);
        if all_failed || sticky {
            let error = self
                .subchannels
                .iter()
                .rev()
                .find_map(Subchannel::last_error)
                .unwrap_or_else(|| Status::unavailable("no connection could be made"));
            self.published = Some(ConnectivityState::TransientFailure);
            channel.update_picker(ConnectivityState::TransientFailure, failing_picker(error));
        } else {
            self.published = Some(ConnectivityState::Connecting);
            channel.update_picker(ConnectivityState::Connecting, queue_picker());
        }
    }
}

impl Balancer for RoundRobin {
    fn resolver_update(
        &mut self,
        state: &ResolverState,
        channel: &mut dyn ChannelController,
    ) -> Result<(), Status> {
        let mut wanted: Vec<&Address> = Vec::new();
        for address in &state.addresses {
            if !wanted.contains(&address) {
                wanted.push(address);
            }
        }
        if wanted.is_empty() {
            let status = Status::unavailable("the resolver returned no addresses");
            for subchannel in self.subchannels.drain(..) {
                subchannel.shutdown();
            }
            self.states.clear();
            self.published = Some(ConnectivityState::TransientFailure);
            channel.update_picker(
                ConnectivityState::TransientFailure,
                failing_picker(status.clone()),
            );
            return Err(status);
        }
        let mut kept = Vec::with_capacity(wanted.len());
        for address in wanted {
            match self.subchannels.iter().position(|s| s.address() == address) {
                Some(i) => kept.push(self.subchannels.swap_remove(i)),
                None => {
                    let subchannel = channel.new_health_checked_subchannel(address);
                    subchannel.connect();
                    kept.push(subchannel);
                }
            }
        }
        for removed in std::mem::replace(&mut self.subchannels, kept) {
            self.states.remove(&removed);
            removed.shutdown();
        }
        for subchannel in &self.subchannels {
            self.states
                .entry(subchannel.clone())
                .or_insert(subchannel.state());
        }
        self.publish(channel);
        Ok(())
    }

    fn resolver_error(&mut self, error: &Status, channel: &mut dyn ChannelController) {
        if self.subchannels.is_empty() {
            self.published = Some(ConnectivityState::TransientFailure);
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
        let Some(known) = self.states.get_mut(subchannel) else {
            return;
        };
        let was_ready = *known == ConnectivityState::Ready;
        *known = state;
        match state {
            ConnectivityState::Idle => subchannel.connect(),
            ConnectivityState::TransientFailure => channel.resolve_now(),
            _ => {}
        }
        // While READY, a new picker only when the READY set changes (as gRPC-Go's base
        // balancer does): a subchannel that is down flaps between CONNECTING and
        // TRANSIENT_FAILURE at each backoff, and a new picker each time restarted the
        // rotation at a random place, so calls stopped alternating evenly.
        let ready_set_changed = was_ready != (state == ConnectivityState::Ready);
        if ready_set_changed || self.published != Some(ConnectivityState::Ready) {
            self.publish(channel);
        }
    }

    fn exit_idle(&mut self, _: &mut dyn ChannelController) {
        for subchannel in &self.subchannels {
            subchannel.connect();
        }
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        for subchannel in &self.subchannels {
            subchannel.shutdown();
        }
    }
}
