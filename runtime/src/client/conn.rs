//! The channel's control task: resolver → balancer → subchannels → picker, one event at a
//! time (gRPC-Go's `ClientConn` with its serializer), and idleness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::balancer::{
    self, Balancer, BalancerBuilder, ChannelController, ConnectivityState, Picker, Subchannel,
    failing_picker, queue_picker,
};
use crate::resolver::{Address, Resolver, ResolverBuilder, ResolverChannel, ResolverState, Target};
use crate::service_config::{ConfigCell, ServiceConfig};
use crate::status::Status;
use crate::subchannel::{ActiveCall, Connection, Connector, StateListener};

/// What the control task acts on.
pub(crate) enum Control {
    Resolved {
        generation: u64,
        result: Result<ResolverState, Status>,
    },
    Subchannel {
        generation: u64,
        subchannel: Subchannel,
        state: ConnectivityState,
    },
    /// A call or `connect()` wants the channel out of IDLE.
    ExitIdle,
    Shutdown,
}

/// What calls and the control task share for idleness.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Calls in flight on the channel.
    active: AtomicUsize,
    /// A call started since the idle check last looked. A flag, not a timestamp, so a call
    /// reads no clock: the channel goes IDLE between one and two idle timeouts after its
    /// last call, as gRPC-Go's idleness manager does.
    recent: AtomicBool,
    /// Whether the channel is IDLE (no resolver, no balancer); the first call to see it
    /// asks the control task to leave it.
    idle: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            active: AtomicUsize::new(0),
            recent: AtomicBool::new(false),
            idle: AtomicBool::new(true),
        }
    }

    /// A call starts: note the time; leave IDLE if the channel is.
    pub(crate) fn call_started(&self, control: &mpsc::UnboundedSender<Control>) {
        // A load first: on a busy channel the flag is already set, and the store would
        // bounce its cache line between cores for nothing.
        if !self.recent.load(Ordering::Relaxed) {
            self.recent.store(true, Ordering::Relaxed);
        }
        self.exit_idle(control);
    }

    pub(crate) fn exit_idle(&self, control: &mpsc::UnboundedSender<Control>) {
        // Cheap when busy: a load, not a swap, on the hot path.
        if self.idle.load(Ordering::Relaxed) && self.idle.swap(false, Ordering::AcqRel) {
            let _ = control.send(Control::ExitIdle);
        }
    }
}

/// Counts a call on its channel and its connection while it lives.
#[derive(Debug)]
pub(crate) struct CallGuard {
    activity: Arc<Activity>,
    _connection: ActiveCall,
}

impl CallGuard {
    pub(crate) fn new(activity: &Arc<Activity>, connection: &Connection) -> CallGuard {
        activity.active.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            activity: Arc::clone(activity),
            _connection: ActiveCall::new(connection),
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.activity.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the control task picks its resolver and balancer.
pub(crate) struct Plan {
    pub(crate) target: Target,
    pub(crate) resolver: Arc<dyn ResolverBuilder>,
    pub(crate) balancer: Arc<dyn BalancerBuilder>,
    pub(crate) policy: String,
    pub(crate) balancer_config: Option<serde_json::Value>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) service_config: Arc<ConfigCell>,
    /// Whether the resolver's service configs are used (else only the default).
    pub(crate) resolver_service_config: bool,
}

/// The ends of the control task that the channel keeps.
pub(crate) struct Handles {
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) picker: watch::Receiver<Arc<dyn Picker>>,
    pub(crate) state: watch::Receiver<ConnectivityState>,
}

/// A control task not started yet: a channel built outside a tokio runtime starts it on
/// first use.
pub(crate) struct Pending {
    task: Task,
    events: mpsc::UnboundedReceiver<Control>,
}

impl Pending {
    /// Starts the task on the current runtime.
    pub(crate) fn start(self) {
        tokio::spawn(self.task.run(self.events));
    }
}

/// Makes the control task of a channel (IDLE until the first call). The task holds no
/// handle to the channel; it ends on `Shutdown`, which the channel sends when its last clone
/// is dropped.
pub(crate) fn prepare(
    plan: Plan,
    connector: Arc<Connector>,
    activity: Arc<Activity>,
) -> (Handles, Pending) {
    let (control, events) = mpsc::unbounded_channel();
    let (picker_tx, picker) = watch::channel(queue_picker());
    let (state_tx, state) = watch::channel(ConnectivityState::Idle);
    let task = Task {
        plan,
        connector,
        activity,
        control: control.clone(),
        picker: picker_tx,
        state: state_tx,
        generation: 0,
        resolver: None,
        balancer: None,
    };
    let handles = Handles {
        control,
        picker,
        state,
    };
    (handles, Pending { task, events })
}

struct Task {
    plan: Plan,
    connector: Arc<Connector>,
    activity: Arc<Activity>,
    control: mpsc::UnboundedSender<Control>,
    picker: watch::Sender<Arc<dyn Picker>>,
    state: watch::Sender<ConnectivityState>,
    /// Bumped on leaving IDLE: events from a previous resolver or balancer are dropped.
    generation: u64,
    resolver: Option<Box<dyn Resolver>>,
    balancer: Option<Box<dyn Balancer>>,
}

impl Task {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Control>) {
        // When to look at idleness next: re-armed for a whole timeout while calls are in
        // flight, for what is left of it after the last call otherwise.
        let mut idle_check = None;
        loop {
            if idle_check.is_none() {
                idle_check = self.idle_deadline();
            }
            let event = tokio::select! {
                event = events.recv() => event,
                _ = sleep_until(idle_check) => {
                    idle_check = self.maybe_enter_idle();
                    continue;
                }
            };
            match event {
                None | Some(Control::Shutdown) => break,
                Some(Control::ExitIdle) => self.exit_idle(),
                Some(Control::Resolved { generation, result }) if generation == self.generation => {
                    self.resolved(result);
                }
                Some(Control::Subchannel {
                    generation,
                    subchannel,
                    state,
                }) if generation == self.generation => {
                    self.with_balancer(|balancer, controller| {
                        balancer.subchannel_update(&subchannel, state, controller);
                    });
                }
                // From a resolver or balancer of before the last IDLE.
                Some(Control::Resolved { .. } | Control::Subchannel { .. }) => {}
            }
        }
        self.balancer = None;
        self.resolver = None;
        self.state.send_replace(ConnectivityState::Shutdown);
        self.connector
            .channelz
            .set_state(ConnectivityState::Shutdown);
        self.picker.send_replace(failing_picker(Status::unavailable(
            "the channel was closed",
        )));
    }

    /// When to check for idleness next, if the channel is active and has an idle timeout.
    fn idle_deadline(&self) -> Option<Instant> {
        let timeout = self.plan.idle_timeout?;
        self.balancer.as_ref()?;
        Some(Instant::now() + timeout)
    }

    /// Enters IDLE if no call is in flight and none started since the last check, a timeout
    /// ago; else says when to look again.
    fn maybe_enter_idle(&mut self) -> Option<Instant> {
        let next = self.idle_deadline()?;
        let recent = self.activity.recent.swap(false, Ordering::Relaxed);
        if recent || self.activity.active.load(Ordering::Relaxed) != 0 {
            return Some(next);
        }
        tracing::debug!(target = %self.connector.target, "idle: closing connections");
        self.generation += 1;
        // Dropping them shuts the subchannels down; their connections drain and close.
        self.balancer = None;
        self.resolver = None;
        self.activity.idle.store(true, Ordering::Release);
        self.picker.send_replace(queue_picker());
        self.state.send_replace(ConnectivityState::Idle);
        self.connector.channelz.set_state(ConnectivityState::Idle);
        None
    }

    fn exit_idle(&mut self) {
        if self.balancer.is_some() {
            self.with_balancer(|balancer, controller| balancer.exit_idle(controller));
            return;
        }
        self.activity.idle.store(false, Ordering::Release);
        self.generation += 1;
        let balancer = match self.plan.balancer.build(self.plan.balancer_config.as_ref()) {
            Ok(balancer) => balancer,
            Err(status) => {
                self.fail(status);
                return;
            }
        };
        self.balancer = Some(balancer);
        self.state.send_replace(ConnectivityState::Connecting);
        self.connector
            .channelz
            .set_state(ConnectivityState::Connecting);
        let generation = self.generation;
        let control = self.control.clone();
        let channel = ResolverChannel::new(move |result| {
            let _ = control.send(Control::Resolved { generation, result });
        });
        match self.plan.resolver.build(&self.plan.target, channel) {
            Ok(resolver) => self.resolver = Some(resolver),
            Err(status) => self.fail(status),
        }
    }

    fn fail(&mut self, status: Status) {
        tracing::debug!(target = %self.connector.target, "channel failed: {status}");
        // Calls waiting for the resolver go on to the failing picker.
        self.plan.service_config.mark_resolved();
        self.picker.send_replace(failing_picker(status));
        self.state.send_replace(ConnectivityState::TransientFailure);
        self.connector
            .channelz
            .set_state(ConnectivityState::TransientFailure);
    }

    /// A service config from the resolver: its load-balancing policy replaces the current
    /// one if it differs (the new balancer starts from this update). An invalid config is
    /// logged and the previous one kept.
    fn apply_service_config(&mut self, json: &str) {
        let config = match ServiceConfig::parse(json) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(
                    target = %self.connector.target,
                    "invalid service config from the resolver, keeping the previous one: {}",
                    e.message()
                );
                return;
            }
        };
        if !self.plan.service_config.holds(&config) {
            tracing::debug!(target = %self.connector.target, "service config from the resolver");
            self.plan.service_config.store(config.clone());
        }
        let Some((policy, balancer_config)) = config.load_balancing else {
            return;
        };
        if policy == self.plan.policy && balancer_config == self.plan.balancer_config {
            return;
        }
        let Some(builder) = balancer::lookup(&policy) else {
            return;
        };
        match builder.build(balancer_config.as_ref()) {
            Ok(balancer) => {
                tracing::debug!(target = %self.connector.target, %policy, "switching balancer");
                // The old one shuts its subchannels down as it drops; its connections drain.
                self.balancer = Some(balancer);
                self.plan.balancer = builder;
                self.plan.policy = policy;
                self.plan.balancer_config = balancer_config;
            }
            Err(e) => tracing::warn!(
                target = %self.connector.target,
                "the resolver's service config names an invalid {policy} config: {}",
                e.message()
            ),
        }
    }

    fn resolved(&mut self, result: Result<ResolverState, Status>) {
        match result {
            Ok(state) => {
                if let Some(json) = &state.service_config
                    && self.plan.resolver_service_config
                {
                    self.apply_service_config(json);
                }
                self.plan.service_config.mark_resolved();
                let mut refused = None;
                self.with_balancer(|balancer, controller| {
                    refused = balancer.resolver_update(&state, controller).err();
                });
                if let Some(status) = refused {
                    tracing::debug!(target = %self.connector.target, "resolver update refused: {status}");
                }
            }
            Err(error) => {
                self.plan.service_config.mark_resolved();
                self.with_balancer(|balancer, controller| {
                    balancer.resolver_error(&error, controller)
                });
            }
        }
    }

    fn with_balancer(&mut self, f: impl FnOnce(&mut dyn Balancer, &mut dyn ChannelController)) {
        let Some(mut balancer) = self.balancer.take() else {
            return;
        };
        let mut controller = Controller { task: self };
        f(&mut *balancer, &mut controller);
        self.balancer = Some(balancer);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The control task as its balancer sees it.
struct Controller<'a> {
    task: &'a mut Task,
}

impl ChannelController for Controller<'_> {
    fn new_subchannel(&mut self, address: &Address) -> Subchannel {
        self.subchannel(address, false)
    }

    fn new_health_checked_subchannel(&mut self, address: &Address) -> Subchannel {
        self.subchannel(address, true)
    }

    fn update_picker(&mut self, state: ConnectivityState, picker: Arc<dyn Picker>) {
        self.task.picker.send_replace(picker);
        let changed = self.task.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        if changed {
            self.task.connector.channelz.set_state(state);
        }
    }

    fn resolve_now(&mut self) {
        if let Some(resolver) = &mut self.task.resolver {
            resolver.resolve_now();
        }
    }
}

impl Controller<'_> {
    fn subchannel(&mut self, address: &Address, health_checked: bool) -> Subchannel {
        let generation = self.task.generation;
        let control = self.task.control.clone();
        let channelz = self
            .task
            .connector
            .channelz
            .register_subchannel(&address.to_string());
        let entry = channelz.clone();
        let listener: StateListener = Arc::new(move |subchannel, state| {
            entry.set_state(state);
            let _ = control.send(Control::Subchannel {
                generation,
                subchannel: subchannel.clone(),
                state,
            });
        });
        Subchannel::new(
            address.clone(),
            Arc::clone(&self.task.connector),
            listener,
            health_checked,
            channelz,
        )
    }
}

/// The builder of the balancer named `name`.
pub(crate) fn balancer_builder(name: &str) -> Option<Arc<dyn BalancerBuilder>> {
    balancer::lookup(name)
}
