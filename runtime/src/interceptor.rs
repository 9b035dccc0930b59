//! Interceptors: code that runs around every call, on the client or the server.
//!
//! An [`Interceptor`] sees each call before it starts ([`Interceptor::on_call`], async): it
//! can read and change the metadata, attach extensions, or reject the call with a
//! [`Status`]. It sees the outcome when the call ends ([`Interceptor::on_end`]). The same
//! trait serves unary and streaming calls ([`CallInfo::kind`] tells them apart) on both
//! sides: on a [`Channel`](crate::client::Channel) the metadata is what will be sent; on a
//! [`Server`](crate::server::Server) it is what the handler will see.
//!
//! On a client it is also told of each attempt ([`Interceptor::on_attempt`]): the first, each
//! retry or hedge of a service config's policy, each transparent retry.
//!
//! Interceptors run in the order they were added: the first added is the outermost, so its
//! `on_call` runs first and its `on_end` last (gRPC-Go's chaining order).
//!
//! An [`Around`] interceptor wraps the call instead (gRPC-Go's interceptors with their
//! `invoker` / `handler` argument): it runs code before and after [`Next::run`], which runs
//! the rest of the chain and then the call, so it can time the call, hold a `tracing` span
//! around it, retry it, or answer without it. What it wraps:
//!
//! | side | kind | [`Next::run`] runs | and resolves to |
//! | --- | --- | --- | --- |
//! | server | all four | the handler | the handler's result (`Ok` if it returned a response) |
//! | client | unary | one attempt: send the request, read the response | the call's status |
//! | client | streaming | opening the call | whether it opened |
//!
//! On the client, a unary call's `run` may be called again (a retry sends the same encoded
//! request anew); elsewhere a second `run` fails with `INTERNAL`. An `Around` that returns
//! `Err` fails the call with that status. Observing interceptors' `on_call` run before any
//! `Around`, and their `on_end` after the call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::metadata::MetadataMap;
use crate::peer::Peer;
use crate::service::{MethodDescriptor, MethodKind, MethodRef};
use crate::status::Status;

/// The future an [`Interceptor::on_call`] returns.
pub type InterceptFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Status>> + Send + 'a>>;

/// What an interceptor sees of a call.
#[derive(Debug)]
pub struct CallInfo {
    pub(crate) method: MethodRef,
    pub(crate) kind: MethodKind,
    pub(crate) metadata: MetadataMap,
    pub(crate) extensions: http::Extensions,
    pub(crate) timeout: Option<Duration>,
    pub(crate) peer: Option<Arc<Peer>>,
}

impl CallInfo {
    /// The method's descriptor (`None` for a call to a method the server does not know,
    /// handed to its unknown-service handler).
    pub fn method(&self) -> Option<&'static MethodDescriptor> {
        self.method.descriptor()
    }

    /// The method, declared or known by its path only.
    pub fn method_ref(&self) -> &MethodRef {
        &self.method
    }

    /// The method path (`"/helloworld.Greeter/SayHello"`).
    pub fn path(&self) -> &str {
        self.method.path()
    }

    /// The call's streaming kind (on a server, [`MethodKind::BidiStreaming`] for a call to
    /// an unknown method: that is how unknown-service handlers see every call).
    pub fn kind(&self) -> MethodKind {
        self.kind
    }

    /// The request metadata.
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// The request metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// Typed values: on the server, passed on to the handler's request; on the client, kept
    /// with the call. Whatever `on_call` puts here is visible to `on_end`.
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Typed values, mutably.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    /// The call's timeout: the one that will be sent (client) or the one received (server).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Client: changes the call's timeout.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Server: the other end of the connection.
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_deref()
    }
}

/// Runs around calls. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use grpc_runtime::interceptor::{CallInfo, InterceptFuture, Interceptor};
/// use grpc_runtime::Status;
///
/// /// Rejects calls without a token; logs every outcome.
/// struct Auth;
///
/// impl Interceptor for Auth {
///     fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
///         Box::pin(async move {
///             match call.metadata().get("authorization") {
///                 Some("Bearer secret") => Ok(()),
///                 _ => Err(Status::unauthenticated("missing or bad token")),
///             }
///         })
///     }
///
///     fn on_end(&self, call: &CallInfo, status: &Status) {
///         println!("{} -> {}", call.path(), status.code());
///     }
/// }
/// ```
pub trait Interceptor: Send + Sync + 'static {
    /// Runs before the call starts. Returning `Err` fails the call with that status.
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a>;

    /// Runs once when the call ends, with its final status (OK included). A call rejected by
    /// an interceptor's `on_call` reaches `on_end` of the interceptors that ran before it.
    fn on_end(&self, call: &CallInfo, status: &Status) {
        let _ = (call, status);
    }

    /// Runs on a client as each attempt of the call goes out: the first, each retry or hedge
    /// of a retry or hedging policy (gRFC A6), and each transparent retry of a stream the
    /// server never processed. Never called on a server.
    fn on_attempt(&self, call: &CallInfo, attempt: &AttemptInfo) {
        let _ = (call, attempt);
    }
}

/// One attempt of a client call, as [`Interceptor::on_attempt`] sees it.
///
/// # Examples
///
/// ```
/// use grpc_runtime::interceptor::{AttemptInfo, CallInfo, InterceptFuture, Interceptor};
///
/// /// Logs every attempt after the first.
/// struct Attempts;
///
/// impl Interceptor for Attempts {
///     fn on_call<'a>(&'a self, _: &'a mut CallInfo) -> InterceptFuture<'a> {
///         Box::pin(std::future::ready(Ok(())))
///     }
///
///     fn on_attempt(&self, call: &CallInfo, attempt: &AttemptInfo) {
///         if attempt.number() > 1 || attempt.is_transparent() {
///             println!("{}: attempt {} ({attempt:?})", call.path(), attempt.number());
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptInfo {
    pub(crate) number: u32,
    pub(crate) transparent: bool,
    pub(crate) hedge: bool,
}

impl AttemptInfo {
    pub(crate) const FIRST: AttemptInfo = AttemptInfo {
        number: 1,
        transparent: false,
        hedge: false,
    };

    /// Which attempt of the call's retry or hedging policy this is: 1 for the first, and one
    /// more than the `grpc-previous-rpc-attempts` it sends after that.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// A transparent retry: the attempt numbered [`number`](Self::number) went out once
    /// already and the server refused it unprocessed (REFUSED_STREAM, or a stream past a
    /// GOAWAY), so it is sent again without counting against the policy.
    pub fn is_transparent(&self) -> bool {
        self.transparent
    }

    /// Sent by a hedging policy while earlier attempts may still be in flight.
    pub fn is_hedge(&self) -> bool {
        self.hedge
    }
}

/// A shared interceptor: keep an `Arc` to read its state while it is installed.
impl<I: Interceptor> Interceptor for Arc<I> {
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
        (**self).on_call(call)
    }

    fn on_end(&self, call: &CallInfo, status: &Status) {
        (**self).on_end(call, status);
    }

    fn on_attempt(&self, call: &CallInfo, attempt: &AttemptInfo) {
        (**self).on_attempt(call, attempt);
    }
}

/// An interceptor from a synchronous closure run before each call.
///
/// # Examples
///
/// ```
/// use grpc_runtime::interceptor::from_fn;
///
/// let add_id = from_fn(|call| {
///     call.metadata_mut().insert("x-client", "docs").map_err(|e| {
///         grpc_runtime::Status::internal(e.to_string())
///     })
/// });
/// # let _ = add_id;
/// ```
pub fn from_fn<F>(f: F) -> FnInterceptor<F>
where
    F: Fn(&mut CallInfo) -> Result<(), Status> + Send + Sync + 'static,
{
    FnInterceptor(f)
}

/// The interceptor made by [`from_fn`].
pub struct FnInterceptor<F>(F);

impl<F> fmt::Debug for FnInterceptor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnInterceptor")
    }
}

impl<F> Interceptor for FnInterceptor<F>
where
    F: Fn(&mut CallInfo) -> Result<(), Status> + Send + Sync + 'static,
{
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
        let result = (self.0)(call);
        Box::pin(std::future::ready(result))
    }
}

/// The future an [`Around::around`] returns and [`Next::run`] gives.
pub type AroundFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Status>> + Send + 'a>>;

/// Wraps calls: see the [module docs](self).
///
/// # Examples
///
/// Times every call:
///
/// ```
/// use grpc_runtime::interceptor::{Around, AroundFuture, CallInfo, Next};
///
/// struct Timer;
///
/// impl Around for Timer {
///     fn around<'a>(&'a self, call: &'a CallInfo, mut next: Next<'a>) -> AroundFuture<'a> {
///         Box::pin(async move {
///             let started = std::time::Instant::now();
///             let result = next.run().await;
///             println!("{} took {:?}: {:?}", call.path(), started.elapsed(), result);
///             result
///         })
///     }
/// }
/// ```
pub trait Around: Send + Sync + 'static {
    /// Runs the call through `next`, with code of its own before and after.
    fn around<'a>(&'a self, call: &'a CallInfo, next: Next<'a>) -> AroundFuture<'a>;
}

impl<A: Around> Around for Arc<A> {
    fn around<'a>(&'a self, call: &'a CallInfo, next: Next<'a>) -> AroundFuture<'a> {
        (**self).around(call, next)
    }
}

/// What runs the rest of the call inside an [`Around`].
pub type NextFn = dyn FnMut() -> AroundFuture<'static> + Send;

/// The rest of the chain and the call, for an [`Around`] to run.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Around>],
    call: &'a CallInfo,
    core: &'a mut NextFn,
}

impl fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.rest.len())
            .finish_non_exhaustive()
    }
}

impl Next<'_> {
    /// Runs the rest of the chain, then the call.
    pub fn run(&mut self) -> AroundFuture<'_> {
        match self.rest.split_first() {
            Some((first, rest)) => first.around(
                self.call,
                Next {
                    rest,
                    call: self.call,
                    core: &mut *self.core,
                },
            ),
            None => (self.core)(),
        }
    }
}

/// Runs `fut` (a handler, or one client call) inside the chain's `Around`s. The typed
/// result of `fut` passes through a slot; the `Around`s see `Ok(())` or its error.
pub(crate) async fn wrap<T, F>(
    arounds: &[Arc<dyn Around>],
    call: &CallInfo,
    fut: F,
) -> Result<T, Status>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, Status>> + Send + 'static,
{
    let slot: Arc<std::sync::Mutex<Option<Result<T, Status>>>> = Arc::default();
    let mut fut = Some(fut);
    let out = Arc::clone(&slot);
    let mut core = move || -> AroundFuture<'static> {
        match fut.take() {
            Some(fut) => {
                let out = Arc::clone(&out);
                Box::pin(async move {
                    let result = fut.await;
                    let status = match &result {
                        Ok(_) => Ok(()),
                        Err(status) => Err(status.clone()),
                    };
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    status
                })
            }
            None => Box::pin(std::future::ready(Err(Status::internal(
                "an interceptor ran a call that runs only once a second time",
            )))),
        }
    };
    run_around(arounds, call, &mut core)
        .await
        .map(|()| {
            slot.lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| {
                    Status::internal("an interceptor returned OK without running the call")
                })
        })?
        .and_then(|result| result)
}

/// Runs `core` (which may run several times) inside the chain's `Around`s.
pub(crate) fn run_around<'a>(
    arounds: &'a [Arc<dyn Around>],
    call: &'a CallInfo,
    core: &'a mut NextFn,
) -> AroundFuture<'a> {
    Box::pin(async move {
        let mut next = Next {
            rest: arounds,
            call,
            core,
        };
        next.run().await
    })
}

/// An ordered list of interceptors: observers and wrappers.
#[derive(Clone, Default)]
pub(crate) struct Chain {
    observers: Arc<[Arc<dyn Interceptor>]>,
    arounds: Arc<[Arc<dyn Around>]>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Chain({} interceptors, {} around)",
            self.observers.len(),
            self.arounds.len()
        )
    }
}

impl Chain {
    pub(crate) fn new(list: Vec<Arc<dyn Interceptor>>, arounds: Vec<Arc<dyn Around>>) -> Chain {
        Chain {
            observers: list.into(),
            arounds: arounds.into(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.observers.is_empty() && self.arounds.is_empty()
    }

    /// The wrapping interceptors.
    pub(crate) fn arounds(&self) -> &[Arc<dyn Around>] {
        &self.arounds
    }

    /// Runs every `on_call` in order. On a rejection, the interceptors that already ran see
    /// `on_end` with the rejecting status, and the status is returned.
    pub(crate) async fn start(&self, call: &mut CallInfo) -> Result<(), Status> {
        for (i, interceptor) in self.observers.iter().enumerate() {
            if let Err(status) = interceptor.on_call(call).await {
                for earlier in self.observers[..i].iter().rev() {
                    earlier.on_end(call, &status);
                }
                return Err(status);
            }
        }
        Ok(())
    }

    /// Runs every `on_attempt` in order.
    pub(crate) fn attempt(&self, call: &CallInfo, attempt: &AttemptInfo) {
        for interceptor in self.observers.iter() {
            interceptor.on_attempt(call, attempt);
        }
    }

    /// Runs every `on_end` in reverse order.
    pub(crate) fn end(&self, call: &CallInfo, status: &Status) {
        for interceptor in self.observers.iter().rev() {
            interceptor.on_end(call, status);
        }
    }
}

/// Reports a call's outcome to the chain exactly once: explicitly, or as CANCELLED on drop.
/// One pointer wide, and `None` without interceptors: it sits in every call's task.
#[derive(Debug)]
pub(crate) struct EndGuard(Option<Arc<(Chain, CallInfo)>>);

impl EndGuard {
    pub(crate) fn new(chain: Chain, call: CallInfo) -> EndGuard {
        EndGuard(Some(Arc::new((chain, call))))
    }

    /// The chain and the call, for `on_attempt` (`None` without interceptors).
    pub(crate) fn observer(&self) -> Option<Arc<(Chain, CallInfo)>> {
        self.0.clone()
    }

    /// A guard that reports nothing (no interceptors).
    pub(crate) fn none() -> EndGuard {
        EndGuard(None)
    }

    /// Reports OK, building the status only if someone will see it.
    pub(crate) fn finish_ok(&mut self) {
        if self.0.is_some() {
            self.finish(&Status::ok(""));
        }
    }

    pub(crate) fn finish(&mut self, status: &Status) {
        if let Some(end) = self.0.take() {
            let (chain, call) = &*end;
            chain.end(call, status);
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.finish(&Status::cancelled("call dropped before it finished"));
        }
    }
}
