//! [`CallInvoker`]: the seam generated clients run on, and [`Client`], which adds per-client
//! call options to one.

use std::future::Future;

use futures_core::Stream;

use super::{CallOptions, Channel, RequestSender};
use crate::codec::{Codec, Outbound};
use crate::request::{Request, Response};
use crate::service::MethodRef;
use crate::status::Status;
use crate::streaming::Streaming;

/// What issues calls: the seam generated clients run on (gRPC-Go's `ClientConnInterface`).
///
/// [`Channel`] implements it over HTTP/2; so can a channel of another shape (a load-balanced
/// one, an in-process one), a layer that wraps one (retries, a recording proxy), or a test
/// double that answers without a network. Generated clients are generic over it
/// (`GreeterClient<C: CallInvoker = Channel>`), so none of this costs a box or a virtual call
/// per message: each message is encoded and decoded by the call's [`Codec`], in place.
///
/// Implementations honour the request's options (timeout, deadline, compression, size
/// limits) and report failures as a [`Status`].
///
/// # Examples
///
/// A test double answering every unary call with the request it got (for methods whose
/// request and response types are the same):
///
/// ```
/// use std::any::Any;
/// use futures_core::Stream;
/// use grpc_runtime::client::{CallInvoker, RequestSender};
/// use grpc_runtime::codec::{Codec, Outbound};
/// use grpc_runtime::service::MethodRef;
/// use grpc_runtime::{Request, Response, Status, Streaming};
///
/// #[derive(Clone)]
/// struct Echo;
///
/// impl CallInvoker for Echo {
///     async fn unary<C: Codec>(
///         &self,
///         _method: MethodRef,
///         request: Request<C::Encode>,
///         _codec: C,
///     ) -> Result<Response<C::Decode>, Status> {
///         let message: Box<dyn Any> = Box::new(request.into_inner());
///         match message.downcast::<C::Decode>() {
///             Ok(message) => Ok(Response::new(*message)),
///             Err(_) => Err(Status::unimplemented("not an echo method")),
///         }
///     }
///
///     async fn server_streaming<C: Codec>(
///         &self,
///         _: MethodRef,
///         _: Request<C::Encode>,
///         _: C,
///     ) -> Result<Streaming<C::Decode>, Status> {
///         Err(Status::unimplemented("unary only"))
///     }
///
///     async fn client_streaming<C, S>(
///         &self,
///         _: MethodRef,
///         _: Request<S>,
///         _: C,
///     ) -> Result<Response<C::Decode>, Status>
///     where
///         C: Codec,
///         S: Stream + Send + 'static,
///         S::Item: Into<Outbound<C::Encode>> + Send,
///     {
///         Err(Status::unimplemented("unary only"))
///     }
///
///     async fn bidi_streaming<C: Codec>(
///         &self,
///         _: MethodRef,
///         _: Request<()>,
///         _: C,
///     ) -> Result<(RequestSender<C::Encode>, Streaming<C::Decode>), Status> {
///         Err(Status::unimplemented("unary only"))
///     }
/// }
/// ```
pub trait CallInvoker: Clone + Send + Sync + 'static {
    /// Calls a unary method.
    fn unary<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        codec: C,
    ) -> impl Future<Output = Result<Response<C::Decode>, Status>> + Send;

    /// Calls a server-streaming method; ready once the response headers have arrived.
    fn server_streaming<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        codec: C,
    ) -> impl Future<Output = Result<Streaming<C::Decode>, Status>> + Send;

    /// Calls a client-streaming method: sends every message of the request's stream, then
    /// waits for the one response.
    fn client_streaming<C, S>(
        &self,
        method: MethodRef,
        request: Request<S>,
        codec: C,
    ) -> impl Future<Output = Result<Response<C::Decode>, Status>> + Send
    where
        C: Codec,
        S: Stream + Send + 'static,
        S::Item: Into<Outbound<C::Encode>> + Send;

    /// Opens a bidi-streaming call: ready once the call is open, without waiting for the
    /// server's response headers. Requests go out through the [`RequestSender`]; responses
    /// come in on the [`Streaming`].
    fn bidi_streaming<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<()>,
        codec: C,
    ) -> impl Future<Output = Result<BidiCall<C::Encode, C::Decode>, Status>> + Send;
}

/// An open bidi-streaming call: the request sender and the response stream.
pub type BidiCall<Req, Resp> = (RequestSender<Req>, Streaming<Resp>);

/// Issues calls on a [`CallInvoker`] (a [`Channel`] by default), with default
/// [`CallOptions`]. Calls name their method by its `&'static MethodDescriptor` (what
/// generated code passes) or a [`MethodRef`] made at run time (a proxy). Generated clients (`GreeterClient`) wrap one; it also calls methods
/// without generated code, with any [`Codec`].
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::client::{Channel, Client};
/// use grpc_runtime::codec::ProtobufCodec;
/// use grpc_runtime::service::{MethodDescriptor, MethodKind};
/// use protobuf::well_known_types::wrappers::StringValue;
///
/// static SAY: MethodDescriptor = MethodDescriptor::new("Say", "/echo.Echo/Say", MethodKind::Unary);
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new(Channel::new("http://localhost:50051")?);
/// let reply = client
///     .unary(&SAY, grpc_runtime::Request::new(StringValue::new()), ProtobufCodec::<_, StringValue>::new())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client<C = Channel> {
    invoker: C,
    options: CallOptions,
}

impl<C: CallInvoker> Client<C> {
    /// A client with default options.
    pub fn new(invoker: C) -> Client<C> {
        Client {
            invoker,
            options: CallOptions::default(),
        }
    }

    /// Replaces the default call options.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Client<C> {
        self.options = options;
        self
    }

    /// What the calls go out on.
    pub fn invoker(&self) -> &C {
        &self.invoker
    }

    /// Calls a unary method.
    ///
    /// # Errors
    ///
    /// The call's status when it is not OK: from the server, or from the client (`UNAVAILABLE`
    /// when no connection can be made, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` for a
    /// message over a limit, ...).
    pub async fn unary<K: Codec>(
        &self,
        method: impl Into<MethodRef>,
        mut request: Request<K::Encode>,
        codec: K,
    ) -> Result<Response<K::Decode>, Status> {
        self.options.apply(&mut request);
        self.invoker.unary(method.into(), request, codec).await
    }

    /// Calls a server-streaming method; the stream carries the response headers, messages
    /// and trailers.
    ///
    /// # Errors
    ///
    /// As [`unary`](Client::unary), for failures before the response headers; later ones come
    /// from the [`Streaming`].
    pub async fn server_streaming<K: Codec>(
        &self,
        method: impl Into<MethodRef>,
        mut request: Request<K::Encode>,
        codec: K,
    ) -> Result<Streaming<K::Decode>, Status> {
        self.options.apply(&mut request);
        self.invoker
            .server_streaming(method.into(), request, codec)
            .await
    }

    /// Calls a client-streaming method: sends every message of `request`, then waits for the
    /// one response.
    ///
    /// # Errors
    ///
    /// As [`unary`](Client::unary).
    pub async fn client_streaming<K, S>(
        &self,
        method: impl Into<MethodRef>,
        mut request: Request<S>,
        codec: K,
    ) -> Result<Response<K::Decode>, Status>
    where
        K: Codec,
        S: Stream + Send + 'static,
        S::Item: Into<Outbound<K::Encode>> + Send,
    {
        self.options.apply(&mut request);
        self.invoker
            .client_streaming(method.into(), request, codec)
            .await
    }

    /// Opens a bidi-streaming call: requests go out through the [`RequestSender`]
    /// (`send(..).await`, flow-controlled), responses come in on the [`Streaming`], whose
    /// [`headers`](Streaming::headers) wait for the server's answer. Returns once the call
    /// is open, without waiting for the server (which may wait for requests first).
    ///
    /// # Errors
    ///
    /// As [`unary`](Client::unary), for failures opening the call.
    pub async fn bidi_streaming<K: Codec>(
        &self,
        method: impl Into<MethodRef>,
        mut request: Request<()>,
        codec: K,
    ) -> Result<BidiCall<K::Encode, K::Decode>, Status> {
        self.options.apply(&mut request);
        self.invoker
            .bidi_streaming(method.into(), request, codec)
            .await
    }
}
