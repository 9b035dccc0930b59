//! Flow-control windows grow to the link (BDP estimation, as gRPC-Go's do) on both sides,
//! and stay put when the application fixes them. Over an in-memory link that holds every
//! byte for 25 ms each way, on the paused clock: a round trip is exactly 50 ms and the link
//! has no bandwidth limit, so how many round trips a transfer takes tells the windows apart.
//! A fixed 2 MiB stream window moves at most 2 MiB per round trip. The samples' PINGs go to
//! a server that polices pings by gRPC-Go's default policy (one per 5 minutes without data
//! sent), which must not take them for a flood.

use std::collections::VecDeque;
use std::time::Duration;

use grpc_runtime::client::{Channel, ChannelBuilder, Client};
use grpc_runtime::codec::ProtobufCodec;
use grpc_runtime::server::{Server, ServerBuilder, ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::{Request, Response, ResponseSender, Status, Streaming};
use protobuf::well_known_types::wrappers::{BytesValue, UInt64Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

const ONE_WAY: Duration = Duration::from_millis(25);
const RTT: Duration = Duration::from_millis(50);
const MIB: usize = 1024 * 1024;
/// Messages moved per call: 32 MiB, 16 round trips at least through a 2 MiB window.
const MESSAGES: u64 = 32;

static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new(
    "test.Bulk",
    &[
        MethodDescriptor::new(
            "Download",
            "/test.Bulk/Download",
            MethodKind::ServerStreaming,
        ),
        MethodDescriptor::new("Upload", "/test.Bulk/Upload", MethodKind::ClientStreaming),
    ],
);
const DOWNLOAD: &MethodDescriptor = &DESCRIPTOR.methods[0];
const UPLOAD: &MethodDescriptor = &DESCRIPTOR.methods[1];

fn pb<E, D>() -> ProtobufCodec<E, D> {
    ProtobufCodec::new()
}

/// A 1 MiB message whose bytes say which one it is.
fn chunk(i: u64) -> BytesValue {
    let mut m = BytesValue::new();
    m.value = vec![i as u8; MIB];
    m
}

/// Download: the number asked for of 1 MiB messages. Upload: the bytes received, checked.
#[derive(Clone)]
struct Bulk;

impl Service for Bulk {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &DESCRIPTOR
    }

    fn call(&self, method: &str, call: ServerCall) {
        match method {
            "Download" => call.server_streaming(DOWNLOAD, pb(), download),
            "Upload" => call.client_streaming(UPLOAD, pb(), upload),
            _ => call.unimplemented(),
        }
    }
}

async fn download(
    request: Request<UInt64Value>,
    mut tx: ResponseSender<BytesValue>,
) -> Result<(), Status> {
    for i in 0..request.get_ref().value {
        tx.send(chunk(i)).await?;
    }
    Ok(())
}

async fn upload(request: Request<Streaming<BytesValue>>) -> Result<Response<UInt64Value>, Status> {
    let mut stream = request.into_inner();
    let (mut i, mut total) = (0, 0);
    while let Some(m) = stream.message().await? {
        if m.value.len() != MIB || m.value.iter().any(|&b| b != i as u8) {
            return Err(Status::data_loss(format!(
                "message {i} is not what was sent"
            )));
        }
        total += m.value.len() as u64;
        i += 1;
    }
    let mut m = UInt64Value::new();
    m.value = total;
    Ok(Response::new(m))
}

/// Copies `from` to `to`, each read delivered [`ONE_WAY`] after it was read.
async fn delay(
    mut from: tokio::io::ReadHalf<DuplexStream>,
    mut to: tokio::io::WriteHalf<DuplexStream>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0; 256 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + ONE_WAY, buf[..n].to_vec()))
                    .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        let mut due = VecDeque::new();
        while let Some(first) = rx.recv().await {
            due.push_back(first);
            while let Some((at, bytes)) = due.pop_front() {
                tokio::time::sleep_until(at).await;
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
                while let Ok(next) = rx.try_recv() {
                    due.push_back(next);
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

/// A server with `server`'s settings, and a channel with `channel`'s whose connections reach
/// it over the delayed link.
fn connect(
    server: impl FnOnce(ServerBuilder) -> ServerBuilder,
    channel: impl FnOnce(ChannelBuilder) -> ChannelBuilder,
) -> Client {
    let server: Server = server(Server::builder().add_service(Bulk)).build();
    let builder = Channel::builder("delayed.test:1")
        .credentials(grpc_runtime::credentials::ChannelCredentials::insecure())
        .dialer(move || {
            // Big pipes: the link, not the pipe, is what holds bytes back.
            let (client, near) = tokio::io::duplex(64 * MIB);
            let (far, served) = tokio::io::duplex(64 * MIB);
            let (near_read, near_write) = tokio::io::split(near);
            let (far_read, far_write) = tokio::io::split(far);
            tokio::spawn(delay(near_read, far_write));
            tokio::spawn(delay(far_read, near_write));
            tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
            async move { Ok(client) }
        });
    Client::new(channel(builder).build().unwrap())
}

/// Round trips a 32 MiB download takes (after the call's first message is in).
async fn download_rtts(client: &Client) -> f64 {
    let mut ask = UInt64Value::new();
    ask.value = MESSAGES;
    let mut stream = client
        .server_streaming(DOWNLOAD, Request::new(ask), pb::<_, BytesValue>())
        .await
        .unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.value, vec![0; MIB]);
    let start = Instant::now();
    let mut i = 1;
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m.value.len(), MIB);
        assert!(
            m.value.iter().all(|&b| b == i as u8),
            "message {i} corrupted"
        );
        i += 1;
    }
    assert_eq!(i, MESSAGES);
    start.elapsed().as_secs_f64() / RTT.as_secs_f64()
}

/// Round trips a 32 MiB upload takes.
async fn upload_rtts(client: &Client) -> f64 {
    let start = Instant::now();
    let messages = futures_util::stream::iter((0..MESSAGES).map(chunk));
    let total = client
        .client_streaming(UPLOAD, Request::new(messages), pb::<_, UInt64Value>())
        .await
        .unwrap();
    assert_eq!(total.get_ref().value, MESSAGES * MIB as u64);
    start.elapsed().as_secs_f64() / RTT.as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn the_windows_grow_to_the_link_in_both_directions() {
    let client = connect(|s| s, |c| c);
    // Through a fixed 2 MiB window: 31 MiB after the first message, 15.5 round trips at
    // least. Grown 2 -> 4 -> 8 -> 16 MiB, one sample a round trip: 4 down and 5 up when
    // written.
    let down = download_rtts(&client).await;
    assert!(down < 8.0, "download took {down:.1} round trips");
    let up = upload_rtts(&client).await;
    assert!(up < 8.0, "upload took {up:.1} round trips");
}

#[tokio::test(start_paused = true)]
async fn windows_the_application_set_stay_put() {
    let client = connect(
        |s| s.initial_stream_window_size(2 * MIB as u32),
        |c| c.initial_stream_window_size(2 * MIB as u32),
    );
    let down = download_rtts(&client).await;
    assert!(down >= 15.0, "download took {down:.1} round trips");
    let up = upload_rtts(&client).await;
    assert!(up >= 16.0, "upload took {up:.1} round trips");
}
