//! Per-call credentials: request metadata (a token) fetched for each call, gRPC-Go's
//! `PerRPCCredentials`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::metadata::MetadataMap;
use crate::status::{Code, Status};

/// An error from a [`CallCredentials`] source: a [`Status`] to fail the call with as is, or
/// any other error, which fails it with `UNAVAILABLE`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`CallCredentials::request_metadata`] returns.
pub type CallCredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<MetadataMap, BoxError>> + Send + 'a>>;

/// A source of request metadata for every call: a bearer token, a refreshed OAuth access
/// token, a signature. gRPC-Go's `PerRPCCredentials`.
///
/// Set on a channel ([`ChannelBuilder::call_credentials`](crate::client::ChannelBuilder::call_credentials)),
/// on a client's [`CallOptions`](crate::client::CallOptions::call_credentials) or on one
/// [`Request`](crate::Request::set_call_credentials); the channel's run first, then the
/// call's. They run for every attempt, once the connection is chosen, within the call's
/// deadline.
///
/// If the source fails with a [`Status`], the call fails with it (but codes gRPC reserves
/// for the server's answers, like `INVALID_ARGUMENT` or `NOT_FOUND`, become `INTERNAL`, per
/// gRFC A54); any other error fails the call with `UNAVAILABLE`.
///
/// By default credentials are refused on a plaintext connection, failing the call with
/// `UNAUTHENTICATED`, so a token never crosses the network in clear:
/// [`requires_transport_security`](CallCredentials::requires_transport_security) returning
/// `false` is the explicit opt-in.
///
/// # Examples
///
/// An access token refreshed when it expires, shared by every call:
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use grpc_runtime::MetadataMap;
/// use grpc_runtime::credentials::{BoxError, call_credentials_fn};
/// use tokio::sync::Mutex;
///
/// async fn fetch_token() -> Result<(String, Duration), std::io::Error> {
///     Ok(("t0ken".to_owned(), Duration::from_secs(3600)))
/// }
///
/// let cache: Arc<Mutex<Option<(String, Instant)>>> = Arc::default();
/// let credentials = call_credentials_fn(move |_info| {
///     let cache = Arc::clone(&cache);
///     async move {
///         let mut cache = cache.lock().await;
///         let token = match &*cache {
///             Some((token, expires)) if *expires > Instant::now() => token.clone(),
///             _ => {
///                 let (token, lifetime) = fetch_token().await?;
///                 *cache = Some((token.clone(), Instant::now() + lifetime));
///                 token
///             }
///         };
///         let mut metadata = MetadataMap::new();
///         metadata.insert("authorization", &format!("Bearer {token}"))?;
///         Ok::<_, BoxError>(metadata)
///     }
/// });
/// # let _ = credentials;
/// ```
pub trait CallCredentials: Send + Sync + 'static {
    /// The metadata to add to a call's request headers.
    fn request_metadata<'a>(&'a self, info: &'a CallCredentialsInfo) -> CallCredentialsFuture<'a>;

    /// Whether these credentials may only be sent over a secure (TLS) connection. Default:
    /// `true`.
    fn requires_transport_security(&self) -> bool {
        true
    }
}

/// What a [`CallCredentials`] source is told about the call it serves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallCredentialsInfo {
    pub(crate) service_url: String,
    pub(crate) method: String,
    pub(crate) secure: bool,
}

impl CallCredentialsInfo {
    /// `https://<authority>/<package.Service>`: the audience gRPC uses for JWT credentials.
    pub fn service_url(&self) -> &str {
        &self.service_url
    }

    /// The method's path, `/<package.Service>/<Method>`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether the call's connection is secured (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}

/// A fixed token sent as `authorization: Bearer <token>` on every call.
///
/// # Examples
///
/// ```
/// use grpc_runtime::credentials::BearerToken;
///
/// let token = BearerToken::new("s3cret")?;
/// // Only for a plaintext connection you trust (a local socket, a test):
/// let local = BearerToken::new("s3cret")?.allow_insecure();
/// # let _ = (token, local);
/// # Ok::<(), grpc_runtime::metadata::InvalidMetadata>(())
/// ```
#[derive(Clone)]
pub struct BearerToken {
    metadata: MetadataMap,
    insecure_ok: bool,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.debug_struct("BearerToken")
            .field("allow_insecure", &self.insecure_ok)
            .finish_non_exhaustive()
    }
}

impl BearerToken {
    /// A token to send.
    ///
    /// # Errors
    ///
    /// If the token has characters a header value cannot carry.
    pub fn new(token: &str) -> Result<BearerToken, crate::metadata::InvalidMetadata> {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", &format!("Bearer {token}"))?;
        Ok(BearerToken {
            metadata,
            insecure_ok: false,
        })
    }

    /// Sends the token over plaintext connections too.
    #[must_use]
    pub fn allow_insecure(mut self) -> BearerToken {
        self.insecure_ok = true;
        self
    }
}

impl CallCredentials for BearerToken {
    fn request_metadata<'a>(&'a self, _: &'a CallCredentialsInfo) -> CallCredentialsFuture<'a> {
        Box::pin(std::future::ready(Ok(self.metadata.clone())))
    }

    fn requires_transport_security(&self) -> bool {
        !self.insecure_ok
    }
}

/// Call credentials from an async function of the call's [`CallCredentialsInfo`]; see
/// [`CallCredentials`] for an example. They require a secure connection unless
/// [`allow_insecure`](FnCallCredentials::allow_insecure) is called.
pub fn call_credentials_fn<F, Fut, E>(f: F) -> FnCallCredentials<F>
where
    F: Fn(CallCredentialsInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<MetadataMap, E>> + Send + 'static,
    E: Into<BoxError>,
{
    FnCallCredentials {
        f,
        insecure_ok: false,
    }
}

/// Call credentials made by [`call_credentials_fn`].
#[derive(Clone)]
pub struct FnCallCredentials<F> {
    f: F,
    insecure_ok: bool,
}

impl<F> fmt::Debug for FnCallCredentials<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCallCredentials")
            .field("allow_insecure", &self.insecure_ok)
            .finish_non_exhaustive()
    }
}

impl<F> FnCallCredentials<F> {
    /// Sends the credentials over plaintext connections too.
    #[must_use]
    pub fn allow_insecure(mut self) -> Self {
        self.insecure_ok = true;
        self
    }
}

impl<F, Fut, E> CallCredentials for FnCallCredentials<F>
where
    F: Fn(CallCredentialsInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<MetadataMap, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn request_metadata<'a>(&'a self, info: &'a CallCredentialsInfo) -> CallCredentialsFuture<'a> {
        let fut = (self.f)(info.clone());
        Box::pin(async move { fut.await.map_err(Into::into) })
    }

    fn requires_transport_security(&self) -> bool {
        !self.insecure_ok
    }
}

/// Runs `credentials` for a call, adding their metadata to `headers`.
pub(crate) async fn apply(
    credentials: &dyn CallCredentials,
    info: &CallCredentialsInfo,
    headers: &mut http::HeaderMap,
) -> Result<(), Status> {
    if !info.secure && credentials.requires_transport_security() {
        return Err(Status::unauthenticated(
            "call credentials require transport security, and the connection is plaintext \
             (use TLS, or allow_insecure() on credentials meant for plaintext)",
        ));
    }
    match credentials.request_metadata(info).await {
        Ok(metadata) => {
            // A name comes once, before all its values.
            let mut name = None;
            for (next, value) in metadata.into_headers() {
                if next.is_some() {
                    name = next;
                }
                if let Some(name) = &name {
                    headers.append(name.clone(), value);
                }
            }
            Ok(())
        }
        Err(e) => Err(match e.downcast::<Status>() {
            Ok(status) if is_control_plane_only(status.code()) => Status::internal(format!(
                "call credentials failed with a status code only a server may send ({:?}): {}",
                status.code(),
                status.message()
            )),
            Ok(status) => *status,
            Err(e) => Status::unavailable(format!("call credentials failed: {e}")),
        }),
    }
}

/// The codes gRFC A54 reserves for servers: a client library must not make them up.
fn is_control_plane_only(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
    )
}

impl fmt::Debug for dyn CallCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallCredentials")
    }
}
