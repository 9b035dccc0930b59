//! Load balancing: which connection each call goes out on (gRPC-Go's `balancer` package).
//!
//! A channel's [`Balancer`] receives the resolver's addresses, makes a [`Subchannel`] (one
//! connection) for the ones it wants, watches their states, and publishes a [`Picker`]: a
//! snapshot that each call asks for its subchannel. Publishing a new picker never blocks
//! calls in flight; calls the old one told to wait try the new one.
//!
//! Built in: [`pick_first`](PickFirstBuilder) (the default: one connection, addresses tried in
//! order, optionally shuffled per gRFC A62) and [`round_robin`](RoundRobinBuilder) (a
//! connection to every address, calls spread over the READY ones). Policies are chosen by
//! name: [`ChannelBuilder::load_balancing_policy`](crate::client::ChannelBuilder::load_balancing_policy)
//! or a service config's `loadBalancingConfig`; [`register`] adds your own.
//!
//! The balancer's methods run one at a time, on the channel's control task: they must not
//! block.

mod pick_first;
mod registry;
mod round_robin;

use std::fmt;
use std::sync::Arc;

pub use crate::connectivity::ConnectivityState;
pub use crate::subchannel::Subchannel;
pub use pick_first::PickFirstBuilder;
pub(crate) use registry::lookup;
pub use registry::register;
pub use round_robin::RoundRobinBuilder;
/// A policy's configuration: JSON, as service configs carry it.
pub use serde_json::Value as JsonValue;

use crate::resolver::{Address, ResolverState};
use crate::status::Status;

/// Makes a balancer of one policy (gRPC-Go's `balancer.Builder`).
pub trait BalancerBuilder: Send + Sync + 'static {
    /// The policy's name, as service configs name it (`"round_robin"`).
    fn name(&self) -> &str;

    /// A balancer for one channel, with the policy's configuration from the service config
    /// (`{"round_robin": {...}}`'s inner object), if any.
    ///
    /// # Errors
    ///
    /// If the configuration is invalid.
    fn build(&self, config: Option<&JsonValue>) -> Result<Box<dyn Balancer>, Status>;
}

/// One channel's load-balancing policy (gRPC-Go's `balancer.Balancer`).
///
/// # Examples
///
/// A policy that always uses the last address the resolver gave (see
/// `examples/src/load_balancing.rs` for a fuller one):
///
/// ```
/// use std::sync::Arc;
/// use grpc_runtime::balancer::{
///     Balancer, ChannelController, ConnectivityState, Pick, PickInfo, Picker, Subchannel,
/// };
/// use grpc_runtime::resolver::ResolverState;
/// use grpc_runtime::Status;
///
/// #[derive(Default)]
/// struct LastAddress {
///     current: Option<Subchannel>,
/// }
///
/// struct Always(Subchannel);
/// impl Picker for Always {
///     fn pick(&self, _: &PickInfo<'_>) -> Pick {
///         Pick::Subchannel(self.0.clone())
///     }
/// }
///
/// impl Balancer for LastAddress {
///     fn resolver_update(
///         &mut self,
///         state: &ResolverState,
///         channel: &mut dyn ChannelController,
///     ) -> Result<(), Status> {
///         let address = state.addresses.last().ok_or_else(|| Status::unavailable("no addresses"))?;
///         if let Some(old) = self.current.take() {
///             old.shutdown();
///         }
///         let subchannel = channel.new_subchannel(address);
///         subchannel.connect();
///         self.current = Some(subchannel);
///         Ok(())
///     }
///
///     fn subchannel_update(
///         &mut self,
///         subchannel: &Subchannel,
///         state: ConnectivityState,
///         channel: &mut dyn ChannelController,
///     ) {
///         if self.current.as_ref() != Some(subchannel) {
///             return;
///         }
///         match state {
///             ConnectivityState::Ready => {
///                 channel.update_picker(state, Arc::new(Always(subchannel.clone())))
///             }
///             ConnectivityState::Idle => subchannel.connect(),
///             _ => channel.update_picker(state, grpc_runtime::balancer::queue_picker()),
///         }
///     }
/// }
/// ```
pub trait Balancer: Send + 'static {
    /// The resolver found `state`. Returning `Err` (no usable address, say) asks the
    /// resolver to try again.
    ///
    /// # Errors
    ///
    /// If the state is unusable.
    fn resolver_update(
        &mut self,
        state: &ResolverState,
        channel: &mut dyn ChannelController,
    ) -> Result<(), Status>;

    /// The resolver failed. Default: if nothing was ever resolved, calls fail with `error`.
    fn resolver_error(&mut self, error: &Status, channel: &mut dyn ChannelController) {
        let _ = (error, channel);
    }

    /// A subchannel this balancer made changed state.
    fn subchannel_update(
        &mut self,
        subchannel: &Subchannel,
        state: ConnectivityState,
        channel: &mut dyn ChannelController,
    );

    /// The channel wants to leave IDLE (`connect()`, or a call): connect what is idle.
    /// Default: nothing.
    fn exit_idle(&mut self, channel: &mut dyn ChannelController) {
        let _ = channel;
    }
}

/// What a balancer can ask of its channel (gRPC-Go's `balancer.ClientConn`).
pub trait ChannelController {
    /// A new subchannel to `address`, IDLE until [`Subchannel::connect`]. The balancer owns
    /// it: [`Subchannel::shutdown`] it when it is no longer wanted.
    fn new_subchannel(&mut self, address: &Address) -> Subchannel;

    /// As [`new_subchannel`](Self::new_subchannel), with client-side health checking (gRFC
    /// A17) when the service config names a service (`healthCheckConfig.serviceName`): the
    /// subchannel is READY only while its server reports that service SERVING, and
    /// TRANSIENT_FAILURE while it reports anything else. `round_robin` asks for it;
    /// `pick_first` does not (as in gRPC-Go).
    fn new_health_checked_subchannel(&mut self, address: &Address) -> Subchannel {
        self.new_subchannel(address)
    }

    /// Publishes the channel's state and the picker calls use from now on.
    fn update_picker(&mut self, state: ConnectivityState, picker: Arc<dyn Picker>);

    /// Asks the resolver to resolve again (a connection failed).
    fn resolve_now(&mut self);
}

/// What a call asks a [`Picker`] with.
#[derive(Debug)]
#[non_exhaustive]
pub struct PickInfo<'a> {
    /// The method's path, `/package.Service/Method`.
    pub method: &'a str,
}

/// A picker's answer for one call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Pick {
    /// Send the call on this subchannel (if it is READY; if not, the call waits for the
    /// next picker).
    Subchannel(Subchannel),
    /// Nothing usable yet: the call waits for the next picker.
    Queue,
    /// Fail the call with this status, unless it is wait-for-ready (then it waits).
    Fail(Status),
}

/// Chooses a subchannel for each call: a snapshot of the balancer's view, called
/// concurrently by every call, so it must be quick and must not block.
pub trait Picker: Send + Sync + 'static {
    /// The subchannel for one call.
    fn pick(&self, info: &PickInfo<'_>) -> Pick;
}

impl fmt::Debug for dyn Picker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Picker")
    }
}

/// A picker that makes every call wait for the next one (while connecting).
pub fn queue_picker() -> Arc<dyn Picker> {
    struct Queue;
    impl Picker for Queue {
        fn pick(&self, _: &PickInfo<'_>) -> Pick {
            Pick::Queue
        }
    }
    Arc::new(Queue)
}

/// A picker that fails every call with `status` (wait-for-ready calls wait instead).
pub fn failing_picker(status: Status) -> Arc<dyn Picker> {
    struct Failing(Status);
    impl Picker for Failing {
        fn pick(&self, _: &PickInfo<'_>) -> Pick {
            Pick::Fail(self.0.clone())
        }
    }
    Arc::new(Failing(status))
}
