//! [`Client`]: issues the four kinds of calls on a [`Channel`]; generated clients wrap it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use h2::SendStream;
use h2::client::ResponseFuture;
use http::HeaderValue;
use protobuf::Message;
use tokio::time::Instant;

use super::Channel;
use crate::codec::{self, Encodable, MessageCompressed};
use crate::compression::{self, CompressionEncoding};
use crate::headers::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_TIMEOUT};
use crate::interceptor::{CallInfo, EndGuard};
use crate::request::{Request, RequestHead, Response};
use crate::service::MethodKind;
use crate::status::Status;
use crate::streaming::{ClientTail, PendingHeaders, ResponseHead, Streaming};
use crate::timeout;
use crate::transport;

/// Default options for the calls of one client. Per-call settings on the [`Request`] win.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::client::CallOptions;
/// use grpc_runtime::CompressionEncoding;
///
/// let options = CallOptions::new()
///     .timeout(Duration::from_secs(2))
///     .send_compressed(CompressionEncoding::Gzip)
///     .max_recv_message_size(16 << 20);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
#[non_exhaustive]
pub struct CallOptions {
    timeout: Option<Duration>,
    send_compressed: Option<CompressionEncoding>,
    max_recv_message_size: Option<usize>,
    max_send_message_size: Option<usize>,
}

impl CallOptions {
    /// No defaults beyond the channel's.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Timeout of each call. Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Compresses request messages with `encoding`. Default: no compression.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.send_compressed = Some(encoding);
        self
    }

    /// Largest response message accepted. Default: the channel's (4 MiB).
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.max_recv_message_size = Some(limit);
        self
    }

    /// Largest request message sent. Default: the channel's.
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.max_send_message_size = Some(limit);
        self
    }
}

/// Issues calls on a [`Channel`]. Generated clients (`GreeterClient`) wrap one; it can also
/// call methods without generated code.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::client::{Channel, Client};
/// use protobuf::well_known_types::wrappers::StringValue;
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new(Channel::new("localhost:50051")?);
/// let reply: grpc_runtime::Response<StringValue> = client
///     .unary("/echo.Echo/Say", grpc_runtime::Request::new(StringValue::new()))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    options: CallOptions,
}

/// A call whose request headers are ready to go.
struct Call {
    end: EndGuard,
    deadline: Option<Instant>,
    compression: Option<CompressionEncoding>,
    max_recv: usize,
    max_send: usize,
}

impl Client {
    /// A client with default options.
    pub fn new(channel: Channel) -> Client {
        Client {
            channel,
            options: CallOptions::default(),
        }
    }

    /// Replaces the default call options.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Client {
        self.options = options;
        self
    }

    /// The channel calls go out on.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Runs interceptors and opens the HTTP/2 stream.
    async fn open(
        &self,
        path: &'static str,
        kind: MethodKind,
        head: RequestHead,
    ) -> Result<(Call, ResponseFuture, SendStream<Bytes>), Status> {
        let config = self.channel.config();
        let chain = &config.interceptors;
        let mut timeout = head.timeout.or(self.options.timeout);
        let mut end = EndGuard::none();
        // Without interceptors the metadata's header map becomes the request's headers as is;
        // with them, they see (and may change) it first and keep a copy for `on_end`.
        let metadata = if chain.is_empty() {
            head.metadata
        } else {
            let mut info = CallInfo {
                path: path.to_owned(),
                kind,
                metadata: head.metadata,
                extensions: head.extensions,
                timeout,
                remote_addr: None,
            };
            chain.start(&mut info).await?;
            timeout = info.timeout;
            let metadata = info.metadata.clone();
            end = EndGuard::new(chain.clone(), info);
            metadata
        };
        let mut call = Call {
            deadline: timeout.map(|t| Instant::now() + t),
            compression: head.compression.or(self.options.send_compressed),
            max_recv: head
                .max_recv_message_size
                .or(self.options.max_recv_message_size)
                .unwrap_or(config.max_recv_message_size),
            max_send: head
                .max_send_message_size
                .or(self.options.max_send_message_size)
                .unwrap_or(config.max_send_message_size),
            end,
        };

        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.channel.uri(path);
        *request.headers_mut() = metadata.into_headers();
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        headers.insert(http::header::USER_AGENT, config.user_agent.clone());
        if let Some(t) = timeout {
            headers.insert(
                GRPC_TIMEOUT,
                HeaderValue::try_from(timeout::encode(t)).expect("ASCII"),
            );
        }
        if let Some(enc) = call.compression {
            headers.insert(GRPC_ENCODING, enc.header_value());
        }
        headers.insert(
            GRPC_ACCEPT_ENCODING,
            HeaderValue::from_static("identity,gzip,deflate"),
        );
        debug_assert_eq!(
            compression::accept_list(&CompressionEncoding::ALL),
            "identity,gzip,deflate"
        );

        let opened = with_deadline(call.deadline, async {
            // A connection found dead since the last call is replaced once, transparently:
            // the request has not been sent anywhere yet.
            let mut sender = self.channel.sender().await?;
            sender = match sender.ready().await {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::debug!("connection not usable ({e}); reconnecting");
                    self.channel.reset_connection();
                    self.channel
                        .sender()
                        .await?
                        .ready()
                        .await
                        .map_err(|e| Status::from_h2(&e))?
                }
            };
            sender.send_request(request, false).map_err(|e| {
                self.channel.reset_connection();
                Status::from_h2(&e)
            })
        })
        .await;
        match opened {
            Ok((response, send)) => Ok((call, response, send)),
            Err(status) => {
                call.end.finish(&status);
                Err(status)
            }
        }
    }

    /// Calls a unary method.
    ///
    /// # Errors
    ///
    /// The call's status when it is not OK: from the server, or from the client (`UNAVAILABLE`
    /// when no connection can be made, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` for a
    /// message over a limit, ...).
    pub async fn unary<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message,
    {
        let (head, message) = request.into_parts();
        let (mut call, response, mut send) = self.open(path, MethodKind::Unary, head).await?;
        let result = with_deadline(call.deadline, async {
            let frame = codec::encode(
                &message,
                call.compression,
                call.max_send,
                &mut BytesMut::new(),
            );
            let frame = match frame {
                Ok(frame) => frame,
                Err(status) => {
                    send.send_reset(h2::Reason::CANCEL);
                    return Err(status);
                }
            };
            let sent = transport::send_data(&mut send, frame, true).await;
            single_response(response, call.max_recv, sent.err()).await
        })
        .await;
        call.end.finish(status_of(&result));
        result
    }

    /// Calls a server-streaming method.
    ///
    /// # Errors
    ///
    /// As [`unary`](Client::unary), for failures before the response headers; later ones come
    /// from the [`Streaming`].
    pub async fn server_streaming<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        Req: Message,
        Resp: Message,
    {
        let (head, message) = request.into_parts();
        let (mut call, response, mut send) =
            self.open(path, MethodKind::ServerStreaming, head).await?;
        let headers = with_deadline(call.deadline, async {
            let frame = codec::encode(
                &message,
                call.compression,
                call.max_send,
                &mut BytesMut::new(),
            )?;
            let sent = transport::send_data(&mut send, frame, true).await;
            read_headers(response, call.max_recv, sent.err()).await
        })
        .await;
        let head = match headers {
            Ok(head) => head,
            Err(status) => {
                call.end.finish(&status);
                return Err(status);
            }
        };
        let tail = ClientTail {
            headers: None,
            deadline: call.deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            trailers: None,
            preset: head.preset,
            end: std::mem::replace(&mut call.end, EndGuard::none()),
            send_task: None,
            send_error: None,
        };
        let stream = Streaming::new(head.body, head.decoder).with_client_tail(tail);
        Ok(Response::from_parts(
            head.metadata,
            stream,
            Default::default(),
        ))
    }

    /// Calls a client-streaming method: sends every message of `request`, then waits for the
    /// one response.
    ///
    /// # Errors
    ///
    /// As [`unary`](Client::unary).
    pub async fn client_streaming<S, Req, Resp>(
        &self,
        path: &'static str,
        request: Request<S>,
    ) -> Result<Response<Resp>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        Req: Encodable,
        Resp: Message,
    {
        let (head, messages) = request.into_parts();
        let (mut call, response, send) = self.open(path, MethodKind::ClientStreaming, head).await?;
        let send_error = Arc::new(Mutex::new(None));
        // Aborted however this future ends, dropped mid-call included: the sender holds the
        // stream open, so a detached sender would keep the call alive on the server.
        let _sender = AbortOnDrop(spawn_sender(messages, send, &call, Arc::clone(&send_error)));
        let result = with_deadline(call.deadline, async {
            let result = single_response(response, call.max_recv, None).await;
            // A failure of our own sending (an oversized message, say) explains the reset.
            match result {
                Err(status) => Err(take(&send_error).unwrap_or(status)),
                ok => ok,
            }
        })
        .await;
        call.end.finish(status_of(&result));
        result
    }

    /// Calls a bidi-streaming method. Returns once the call is open, without waiting for
    /// the server's response headers (the server may wait for requests before it answers);
    /// they are available from [`Streaming::headers`] once the first response arrives.
    ///
    /// # Errors
    ///
    /// As [`unary`](Client::unary), for failures opening the call.
    pub async fn streaming<S, Req, Resp>(
        &self,
        path: &'static str,
        request: Request<S>,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        Req: Encodable,
        Resp: Message,
    {
        let (head, messages) = request.into_parts();
        let (mut call, response, send) = self.open(path, MethodKind::BidiStreaming, head).await?;
        let send_error = Arc::new(Mutex::new(None));
        let task = spawn_sender(messages, send, &call, Arc::clone(&send_error));
        let tail = ClientTail {
            headers: None,
            deadline: call.deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            trailers: None,
            preset: None,
            end: std::mem::replace(&mut call.end, EndGuard::none()),
            send_task: Some(task),
            send_error: Some(send_error),
        };
        let stream = Streaming::pending(
            PendingHeaders {
                future: response,
                max_recv: call.max_recv,
            },
            tail,
        );
        Ok(Response::new(stream))
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn take(slot: &Mutex<Option<Status>>) -> Option<Status> {
    slot.lock().ok()?.take()
}

fn status_of<T>(result: &Result<T, Status>) -> &Status {
    static OK: std::sync::OnceLock<Status> = std::sync::OnceLock::new();
    match result {
        Ok(_) => OK.get_or_init(|| Status::ok("")),
        Err(status) => status,
    }
}

/// Runs `fut`, failing with `DEADLINE_EXCEEDED` when `deadline` passes (dropping `fut`
/// resets the stream with CANCEL).
async fn with_deadline<T>(
    deadline: Option<Instant>,
    fut: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => fut.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, fut).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
        },
    }
}

/// Awaits and checks the response headers. `send_error` is a failure while sending the
/// request: the response (say, an early error status) explains it better when there is one.
async fn read_headers(
    response: ResponseFuture,
    max_recv: usize,
    send_error: Option<h2::Error>,
) -> Result<ResponseHead, Status> {
    match response.await {
        Ok(response) => ResponseHead::parse(response, max_recv),
        Err(e) => Err(Status::from_h2(send_error.as_ref().unwrap_or(&e))),
    }
}

/// Reads a response that must hold exactly one message, then its status.
async fn single_response<Resp: Message>(
    response: ResponseFuture,
    max_recv: usize,
    send_error: Option<h2::Error>,
) -> Result<Response<Resp>, Status> {
    let head = read_headers(response, max_recv, send_error).await?;
    let tail = ClientTail {
        headers: None,
        deadline: None,
        trailers: None,
        preset: head.preset,
        end: EndGuard::none(),
        send_task: None,
        send_error: None,
    };
    let mut stream = Streaming::<Resp>::new(head.body, head.decoder).with_client_tail(tail);
    let Some(message) = stream.message().await? else {
        return Err(Status::internal(
            "server sent OK without a response message to a unary call",
        ));
    };
    let compressed = stream.last_message_compressed();
    if stream.message().await?.is_some() {
        return Err(Status::internal(
            "server sent more than one response message to a unary call",
        ));
    }
    let trailers = stream.trailers().cloned().unwrap_or_default();
    let mut response = Response::from_parts(head.metadata, message, trailers);
    if compressed {
        response.extensions_mut().insert(MessageCompressed);
    }
    Ok(response)
}

/// Sends every message of `messages`, then ends the stream. On failure (an encoding error,
/// a message over the limit) the stream is reset and the reason left in `send_error`.
fn spawn_sender<S, Req>(
    messages: S,
    mut send: SendStream<Bytes>,
    call: &Call,
    send_error: Arc<Mutex<Option<Status>>>,
) -> tokio::task::JoinHandle<()>
where
    S: Stream<Item = Req> + Send + 'static,
    Req: Encodable,
{
    let compression = call.compression;
    let max_send = call.max_send;
    tokio::spawn(async move {
        let mut messages = std::pin::pin!(messages);
        let mut scratch = BytesMut::new();
        while let Some(message) = messages.next().await {
            let frame = match message.encode_frame(compression, max_send, &mut scratch) {
                Ok(frame) => frame,
                Err(status) => {
                    *send_error.lock().expect("send error lock") = Some(status);
                    send.send_reset(h2::Reason::CANCEL);
                    return;
                }
            };
            if transport::send_data(&mut send, frame, false).await.is_err() {
                // The stream is gone (the server answered or reset it); the response says why.
                return;
            }
        }
        let _ = send.send_data(Bytes::new(), true);
    })
}
