//! A test service written against the runtime's public API directly (no generated code), with
//! well-known types as messages, and helpers to run it on loopback.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_runtime::client::{Channel, Client};
use grpc_runtime::codec::{MessageCompressed, ProtobufCodec};
use grpc_runtime::server::Service;
use grpc_runtime::server::{Server, ServerBuilder, ServerCall};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::{
    Code, CompressionEncoding, MetadataMap, Request, Response, ResponseSender, Status, Streaming,
};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

const M_UNARY: MethodDescriptor =
    MethodDescriptor::new("Unary", "/test.Echo/Unary", MethodKind::Unary);
const M_COUNT: MethodDescriptor =
    MethodDescriptor::new("Count", "/test.Echo/Count", MethodKind::ServerStreaming);
const M_CONCAT: MethodDescriptor =
    MethodDescriptor::new("Concat", "/test.Echo/Concat", MethodKind::ClientStreaming);
const M_CHAT: MethodDescriptor =
    MethodDescriptor::new("Chat", "/test.Echo/Chat", MethodKind::BidiStreaming);

pub static DESCRIPTOR: ServiceDescriptor =
    ServiceDescriptor::new("test.Echo", &[M_UNARY, M_COUNT, M_CONCAT, M_CHAT]);

pub const UNARY: &MethodDescriptor = &DESCRIPTOR.methods[0];
pub const COUNT: &MethodDescriptor = &DESCRIPTOR.methods[1];
pub const CONCAT: &MethodDescriptor = &DESCRIPTOR.methods[2];
pub const CHAT: &MethodDescriptor = &DESCRIPTOR.methods[3];
/// A method the service does not have.
pub const MISSING: &MethodDescriptor =
    &MethodDescriptor::new("Missing", "/test.Echo/Missing", MethodKind::Unary);

/// The protobuf codec, its message types inferred.
pub fn pb<E, D>() -> ProtobufCodec<E, D> {
    ProtobufCodec::new()
}

/// Opens the echo service's bidi call and feeds it `request`'s stream from a task of its own
/// (what a stream-taking bidi call did before the sender-based API).
pub async fn chat<S>(client: &Client, request: Request<S>) -> Result<Streaming<StringValue>, Status>
where
    S: futures_core::Stream<Item = StringValue> + Send + 'static,
{
    let (head, messages) = {
        let mut messages = None;
        let head = request.map(|m| messages = Some(m));
        (head, messages.unwrap())
    };
    let (mut tx, rx) = client.bidi_streaming(CHAT, head, pb()).await?;
    tokio::spawn(async move {
        let mut messages = std::pin::pin!(messages);
        while let Some(m) = futures_util::StreamExt::next(&mut messages).await {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

pub fn s(value: &str) -> StringValue {
    let mut m = StringValue::new();
    m.value = value.to_owned();
    m
}

pub fn n(value: u32) -> UInt32Value {
    let mut m = UInt32Value::new();
    m.value = value;
    m
}

/// What the service saw, for tests to assert on.
#[derive(Default)]
pub struct Observed {
    /// Handlers dropped before they finished (deadline or cancellation).
    pub dropped: AtomicUsize,
    /// Handlers that ran to the end.
    pub finished: AtomicUsize,
    pub started: AtomicUsize,
    pub notify: tokio::sync::Notify,
    /// Times a Chat handler's wait for its next request found none yet.
    pub waits: AtomicUsize,
}

struct DropFlag(Arc<Observed>, bool);
impl Drop for DropFlag {
    fn drop(&mut self) {
        if self.1 {
            self.0.finished.fetch_add(1, Ordering::SeqCst);
        } else {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
        self.0.notify.notify_waiters();
    }
}

/// The echo service. The request text drives its behaviour:
/// - `sleep:<ms>`: sleeps, then echoes;
/// - `fail:<code>:<message>`: fails with that status;
/// - `big:<bytes>`: answers with a string of that many bytes;
/// - anything else: echoed back.
///
/// Metadata `x-echo` is echoed as a response header and `x-echo-trailer` as a trailer.
#[derive(Clone, Default)]
pub struct Echo {
    pub observed: Arc<Observed>,
}

fn behave(text: &str) -> Result<Option<Duration>, Status> {
    if let Some(rest) = text.strip_prefix("fail:") {
        let (code, message) = rest.split_once(':').unwrap_or((rest, ""));
        return Err(Status::new(Code::from_i32(code.parse().unwrap()), message));
    }
    if text == "panic" {
        panic!("the handler panics, as asked");
    }
    if let Some(ms) = text.strip_prefix("sleep:") {
        return Ok(Some(Duration::from_millis(ms.parse().unwrap())));
    }
    Ok(None)
}

fn reply(text: &str) -> StringValue {
    match text.strip_prefix("big:") {
        Some(len) => s(&"x".repeat(len.parse().unwrap())),
        None => s(text),
    }
}

fn echo_metadata(request: &MetadataMap) -> (MetadataMap, MetadataMap) {
    let mut headers = MetadataMap::new();
    let mut trailers = MetadataMap::new();
    if let Some(v) = request.get("x-echo") {
        headers.insert("x-echo", v).unwrap();
    }
    if let Some(v) = request.get_bin("x-echo-bin") {
        headers.insert_bin("x-echo-bin", &v).unwrap();
    }
    if let Some(v) = request.get("x-echo-trailer") {
        trailers.insert("x-echo-trailer", v).unwrap();
    }
    (headers, trailers)
}

impl Echo {
    async fn unary(self, request: Request<StringValue>) -> Result<Response<StringValue>, Status> {
        self.observed.started.fetch_add(1, Ordering::SeqCst);
        let mut flag = DropFlag(self.observed.clone(), false);
        let text = request.get_ref().value.clone();
        if let Some(pause) = behave(&text)? {
            tokio::time::sleep(pause).await;
        }
        let (headers, trailers) = echo_metadata(request.metadata());
        let text = if request.metadata().contains_key("x-report-compression") {
            let compressed = request.extensions().get::<MessageCompressed>().is_some();
            (if compressed { "compressed" } else { "plain" }).to_owned()
        } else {
            text
        };
        let mut response = Response::new(reply(&text));
        if request.metadata().contains_key("x-compress-response") {
            response.set_send_compressed(CompressionEncoding::Gzip);
        }
        *response.metadata_mut() = headers;
        *response.trailers_mut() = trailers;
        flag.1 = true;
        Ok(response)
    }

    async fn count(
        self,
        request: Request<UInt32Value>,
        mut tx: ResponseSender<UInt32Value>,
    ) -> Result<(), Status> {
        self.observed.started.fetch_add(1, Ordering::SeqCst);
        let mut flag = DropFlag(self.observed.clone(), false);
        let (headers, trailers) = echo_metadata(request.metadata());
        tx.set_headers(headers)?;
        tx.set_trailers(trailers);
        let total = request.get_ref().value;
        if request.metadata().contains_key("x-compress-response") {
            tx.set_send_compressed(Some(CompressionEncoding::Gzip))?;
        }
        let alternate = request.metadata().contains_key("x-alternate");
        let by_ref = request.metadata().contains_key("x-by-ref");
        for i in 0..total {
            if alternate && i % 2 == 1 {
                tx.send_uncompressed(n(i)).await?;
            } else if by_ref {
                let message = n(i);
                tx.send_ref(&message).await?;
                // Still the handler's, unchanged.
                assert_eq!(message.value, i);
            } else {
                tx.send(n(i)).await?;
            }
        }
        if request.metadata().get("x-fail-after").is_some() {
            return Err(Status::aborted("failed after the messages"));
        }
        if request.metadata().get("x-hang").is_some() {
            std::future::pending::<()>().await;
        }
        flag.1 = true;
        Ok(())
    }

    async fn concat(
        self,
        request: Request<Streaming<StringValue>>,
    ) -> Result<Response<StringValue>, Status> {
        self.observed.started.fetch_add(1, Ordering::SeqCst);
        let mut flag = DropFlag(self.observed.clone(), false);
        let report = request.metadata().contains_key("x-report-compression");
        let mut stream = request.into_inner();
        let mut all = Vec::new();
        while let Some(m) = stream.message().await? {
            behave(&m.value)?;
            if report {
                let flag = if stream.last_message_compressed() {
                    "z"
                } else {
                    "p"
                };
                all.push(format!("{}:{flag}", m.value));
            } else {
                all.push(m.value);
            }
        }
        flag.1 = true;
        Ok(Response::new(s(&all.join(","))))
    }

    async fn chat(
        self,
        request: Request<Streaming<StringValue>>,
        mut tx: ResponseSender<StringValue>,
    ) -> Result<(), Status> {
        self.observed.started.fetch_add(1, Ordering::SeqCst);
        let mut flag = DropFlag(self.observed.clone(), false);
        let (headers, trailers) = echo_metadata(request.metadata());
        tx.set_headers(headers)?;
        tx.set_trailers(trailers);
        let mut stream = request.into_inner();
        loop {
            let mut next = std::pin::pin!(stream.message());
            let m = std::future::poll_fn(|cx| {
                let polled = next.as_mut().poll(cx);
                if polled.is_pending() {
                    self.observed.waits.fetch_add(1, Ordering::SeqCst);
                }
                polled
            })
            .await?;
            let Some(m) = m else { break };
            if let Some(pause) = behave(&m.value)? {
                tokio::time::sleep(pause).await;
            }
            tx.send(reply(&m.value)).await?;
        }
        flag.1 = true;
        Ok(())
    }
}

impl Service for Echo {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &DESCRIPTOR
    }

    fn call(&self, method: &str, call: ServerCall) {
        let this = self.clone();
        match method {
            "Unary" => call.unary(UNARY, pb(), move |r| this.unary(r)),
            "Count" => call.server_streaming(COUNT, pb(), move |r, tx| this.count(r, tx)),
            "Concat" => call.client_streaming(CONCAT, pb(), move |r| this.concat(r)),
            "Chat" => call.bidi_streaming(CHAT, pb(), move |r, tx| this.chat(r, tx)),
            _ => call.unimplemented(),
        }
    }
}

/// A running server on an ephemeral loopback port.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Server,
    pub echo: Echo,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn channel(&self) -> Channel {
        Channel::new(&format!("http://{}", self.addr)).unwrap()
    }

    pub fn client(&self) -> Client {
        Client::new(self.channel())
    }
}

pub async fn start() -> Running {
    start_with(|b| b).await
}

pub async fn start_with(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Running {
    let echo = Echo::default();
    let server = configure(Server::builder().add_service(echo.clone())).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    let task = tokio::spawn(async move { s.serve_tcp(listener).await.unwrap() });
    Running {
        addr,
        server,
        echo,
        task,
    }
}

/// A channel whose connections are in-memory pipes to `server` (deterministic on the paused
/// clock), plaintext, with `configure`d settings.
pub fn memory_channel(
    server: &Server,
    configure: impl FnOnce(grpc_runtime::client::ChannelBuilder) -> grpc_runtime::client::ChannelBuilder,
) -> Channel {
    let server = server.clone();
    configure(
        Channel::builder("memory.test:1")
            .credentials(grpc_runtime::credentials::ChannelCredentials::insecure())
            .dialer(move || {
                let (client, served) = tokio::io::duplex(256 * 1024);
                tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
                async move { Ok(client) }
            }),
    )
    .build()
    .unwrap()
}

/// Waits (bounded) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
