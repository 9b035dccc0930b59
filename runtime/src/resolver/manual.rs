//! [`ManualResolver`]: addresses pushed by the program (gRPC-Go's `resolver/manual`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Resolver, ResolverBuilder, ResolverChannel, ResolverState, Target};
use crate::status::Status;

/// A resolver whose addresses the program sets, for tests and for service discovery of
/// your own. Clones share the state: keep one to push updates through, give another to
/// [`ChannelBuilder::resolver`](crate::client::ChannelBuilder::resolver).
///
/// # Examples
///
/// ```
/// use grpc_runtime::client::Channel;
/// use grpc_runtime::credentials::ChannelCredentials;
/// use grpc_runtime::resolver::manual::ManualResolver;
/// use grpc_runtime::resolver::{Address, ResolverState};
///
/// let resolver = ManualResolver::new("manual");
/// resolver.update_state(ResolverState::new(vec![Address::Tcp("127.0.0.1:50051".parse()?)]));
/// let channel = Channel::builder("manual:///my-service")
///     .resolver(resolver.clone())
///     .credentials(ChannelCredentials::insecure())
///     .build()?;
/// // Later: move the channel's calls to other servers.
/// resolver.update_state(ResolverState::new(vec![Address::Tcp("127.0.0.1:50052".parse()?)]));
/// # let _ = channel;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualResolver {
    scheme: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<ManualState>,
    resolve_now: AtomicUsize,
}

#[derive(Debug, Default)]
struct ManualState {
    last: Option<Result<ResolverState, Status>>,
    /// The channels' resolvers alive now, by id.
    channels: Vec<(u64, ResolverChannel)>,
    next_id: u64,
}

impl ManualResolver {
    /// A resolver for targets of `scheme` (`"manual"` for `manual:///name`).
    pub fn new(scheme: &str) -> ManualResolver {
        ManualResolver {
            scheme: scheme.to_owned(),
            shared: Arc::default(),
        }
    }

    /// Sets the addresses (and service config) of every channel using this resolver, now
    /// and when they are built.
    pub fn update_state(&self, state: ResolverState) {
        self.push(Ok(state));
    }

    /// Reports a resolution failure to every channel using this resolver.
    pub fn report_error(&self, error: Status) {
        self.push(Err(error));
    }

    /// How many times channels asked for a new resolution.
    pub fn resolve_now_count(&self) -> usize {
        self.shared.resolve_now.load(Ordering::Relaxed)
    }

    fn push(&self, update: Result<ResolverState, Status>) {
        let mut state = self.shared.state.lock().expect("manual resolver");
        for (_, channel) in &state.channels {
            (channel.report)(update.clone());
        }
        state.last = Some(update);
    }
}

struct Built {
    shared: Arc<Shared>,
    id: u64,
}

impl Resolver for Built {
    fn resolve_now(&mut self) {
        self.shared.resolve_now.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Built {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().expect("manual resolver");
        state.channels.retain(|(id, _)| *id != self.id);
    }
}

impl ResolverBuilder for ManualResolver {
    fn scheme(&self) -> &str {
        &self.scheme
    }

    fn build(&self, _: &Target, channel: ResolverChannel) -> Result<Box<dyn Resolver>, Status> {
        let mut state = self.shared.state.lock().expect("manual resolver");
        if let Some(last) = &state.last {
            (channel.report)(last.clone());
        }
        let id = state.next_id;
        state.next_id += 1;
        state.channels.push((id, channel));
        Ok(Box::new(Built {
            shared: Arc::clone(&self.shared),
            id,
        }))
    }
}
