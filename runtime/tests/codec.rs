//! Codecs other than rust-protobuf's over real sockets: a service written against prost
//! messages, prost messages talking to a rust-protobuf service (same wire bytes), and a
//! proxy that forwards raw messages of services it does not know.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::codec::{BytesCodec, ProstCodec};
use grpc_runtime::server::{Server, ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, MethodRef, ServiceDescriptor};
use grpc_runtime::{Code, Request, Response, ResponseSender, Status, Streaming};
use protobuf::well_known_types::wrappers::StringValue;

#[derive(Clone, PartialEq, prost::Message)]
struct Point {
    #[prost(int32, tag = "1")]
    x: i32,
    #[prost(int32, tag = "2")]
    y: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Total {
    #[prost(int64, tag = "1")]
    sum: i64,
    #[prost(string, tag = "2")]
    label: String,
}

/// Wire-identical to `google.protobuf.StringValue`.
#[derive(Clone, PartialEq, prost::Message)]
struct Text {
    #[prost(string, tag = "1")]
    value: String,
}

const M_ADD: MethodDescriptor = MethodDescriptor::new("Add", "/prost.Adder/Add", MethodKind::Unary);
const M_EXPAND: MethodDescriptor =
    MethodDescriptor::new("Expand", "/prost.Adder/Expand", MethodKind::ServerStreaming);
const M_SUM: MethodDescriptor =
    MethodDescriptor::new("Sum", "/prost.Adder/Sum", MethodKind::ClientStreaming);
const M_RUNNING: MethodDescriptor =
    MethodDescriptor::new("Running", "/prost.Adder/Running", MethodKind::BidiStreaming);
static ADDER: ServiceDescriptor =
    ServiceDescriptor::new("prost.Adder", &[M_ADD, M_EXPAND, M_SUM, M_RUNNING]);
const ADD: &MethodDescriptor = &ADDER.methods[0];
const EXPAND: &MethodDescriptor = &ADDER.methods[1];
const SUM: &MethodDescriptor = &ADDER.methods[2];
const RUNNING: &MethodDescriptor = &ADDER.methods[3];

fn codec() -> ProstCodec<Total, Point> {
    ProstCodec::new()
}

fn client_codec() -> ProstCodec<Point, Total> {
    ProstCodec::new()
}

fn total(sum: i64, label: &str) -> Total {
    Total {
        sum,
        label: label.to_owned(),
    }
}

/// A service whose messages are prost types, served through `ProstCodec`.
struct Adder;

impl Service for Adder {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &ADDER
    }

    fn call(&self, method: &str, call: ServerCall) {
        match method {
            "Add" => call.unary(ADD, codec(), |r: Request<Point>| async move {
                let p = r.into_inner();
                Ok(Response::new(total(i64::from(p.x) + i64::from(p.y), "add")))
            }),
            "Expand" => call.server_streaming(
                EXPAND,
                codec(),
                |r: Request<Point>, mut tx: ResponseSender<Total>| async move {
                    let p = r.into_inner();
                    for i in 0..p.x {
                        tx.send(total(i64::from(i * p.y), "expand")).await?;
                    }
                    Ok(())
                },
            ),
            "Sum" => {
                call.client_streaming(SUM, codec(), |r: Request<Streaming<Point>>| async move {
                    let mut points = r.into_inner();
                    let mut sum = 0i64;
                    while let Some(p) = points.message().await? {
                        sum += i64::from(p.x) + i64::from(p.y);
                    }
                    Ok(Response::new(total(sum, "sum")))
                })
            }
            "Running" => call.bidi_streaming(
                RUNNING,
                codec(),
                |r: Request<Streaming<Point>>, mut tx: ResponseSender<Total>| async move {
                    let mut points = r.into_inner();
                    let mut sum = 0i64;
                    while let Some(p) = points.message().await? {
                        sum += i64::from(p.x) + i64::from(p.y);
                        tx.send(total(sum, "running")).await?;
                    }
                    Ok(())
                },
            ),
            _ => call.unimplemented(),
        }
    }
}

async fn serve(server: Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_tcp(listener));
    format!("http://{addr}")
}

#[tokio::test]
async fn prost_service_all_four_kinds_over_tcp() {
    let addr = serve(Server::builder().add_service(Adder).build()).await;
    let client = Client::new(Channel::new(&addr).unwrap());

    let reply = client
        .unary(ADD, Request::new(Point { x: 2, y: 40 }), client_codec())
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), total(42, "add"));

    let stream = client
        .server_streaming(EXPAND, Request::new(Point { x: 4, y: 10 }), client_codec())
        .await
        .unwrap();
    let sums: Vec<i64> = stream.map(|t| t.unwrap().sum).collect().await;
    assert_eq!(sums, [0, 10, 20, 30]);

    let points = futures_util::stream::iter((1..=3).map(|i| Point { x: i, y: i }));
    let reply = client
        .client_streaming(SUM, Request::new(points), client_codec())
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), total(12, "sum"));

    let (mut tx, mut rx) = client
        .bidi_streaming(RUNNING, Request::new(()), client_codec())
        .await
        .unwrap();
    for (i, want) in [(1, 2), (2, 6), (3, 12)] {
        tx.send(Point { x: i, y: i }).await.unwrap();
        assert_eq!(rx.message().await.unwrap().unwrap().sum, want);
    }
    tx.close();
    assert!(rx.message().await.unwrap().is_none());
}

/// A prost client and a rust-protobuf server agree on the bytes.
#[tokio::test]
async fn prost_client_calls_a_protobuf_service() {
    let srv = start().await;
    let client = Client::new(srv.channel());
    let reply = client
        .unary(
            UNARY,
            Request::new(Text {
                value: "from prost".into(),
            }),
            ProstCodec::<Text, Text>::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "from prost");
}

/// Forwards every call it does not know to `backend`, as raw bytes: gRPC-Go's
/// `UnknownServiceHandler` with a raw codec, the base of a proxy.
fn proxy(backend: Client) -> Server {
    Server::builder()
        .unknown_service_handler(move |path, request, mut responses| {
            let backend = backend.clone();
            async move {
                let method = MethodRef::from_path(&path)
                    .ok_or_else(|| Status::unimplemented(format!("bad path {path}")))?;
                let mut out = Request::new(()).propagate(&request);
                *out.metadata_mut() = request.metadata().clone();
                let (mut tx, mut rx) = backend.bidi_streaming(method, out, BytesCodec).await?;
                let mut requests = request.into_inner();
                let forward = async move {
                    while let Some(message) = requests.message().await? {
                        tx.send(message).await?;
                    }
                    tx.close();
                    Ok::<_, Status>(())
                };
                let back = async move {
                    let headers = rx.headers().await?.clone();
                    responses.set_headers(headers)?;
                    while let Some(message) = rx.message().await? {
                        responses.send(message).await?;
                    }
                    responses.set_trailers(rx.trailers().cloned().unwrap_or_default());
                    Ok::<_, Status>(())
                };
                let (forwarded, answered) = tokio::join!(forward, back);
                answered?;
                forwarded.or_else(|s| {
                    if s.code() == Code::Cancelled {
                        Ok(())
                    } else {
                        Err(s)
                    }
                })
            }
        })
        .build()
}

#[tokio::test]
async fn unknown_service_handler_proxies_raw_messages() {
    let backend = start().await;
    let front = serve(proxy(Client::new(backend.channel()))).await;
    let client = Client::new(Channel::new(&front).unwrap());

    // Unary, with header and trailer metadata passing through both ways.
    let mut request = Request::new(s("through the proxy"));
    request.metadata_mut().insert("x-echo", "h").unwrap();
    request
        .metadata_mut()
        .insert("x-echo-trailer", "t")
        .unwrap();
    let reply = client
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "through the proxy");
    assert_eq!(reply.metadata().get("x-echo"), Some("h"));
    assert_eq!(reply.trailers().get("x-echo-trailer"), Some("t"));

    // Server streaming.
    let stream = client
        .server_streaming(
            COUNT,
            Request::new(n(3)),
            pb::<_, protobuf::well_known_types::wrappers::UInt32Value>(),
        )
        .await
        .unwrap();
    let got: Vec<u32> = stream.map(|m| m.unwrap().value).collect().await;
    assert_eq!(got, [0, 1, 2]);

    // Client streaming.
    let words = futures_util::stream::iter(["a", "b"].map(s));
    let reply = client
        .client_streaming(
            CONCAT,
            Request::new(words),
            pb::<StringValue, StringValue>(),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "a,b");

    // Bidi.
    let (mut tx, mut rx) = client
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    tx.send(s("ping")).await.unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().value, "ping");
    tx.close();
    assert!(rx.message().await.unwrap().is_none());

    // An error status, with its message, passes through.
    let err = client
        .unary(
            UNARY,
            Request::new(s("fail:5:nothing here")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "nothing here");

    // A service neither side knows: the backend's UNIMPLEMENTED comes back.
    const NOPE: &MethodDescriptor = &MethodDescriptor::new("X", "/nope.Nope/X", MethodKind::Unary);
    let err = client
        .unary(NOPE, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

/// Raw bytes in, raw bytes out: `BytesCodec` sends exactly what it is given.
#[tokio::test]
async fn bytes_codec_is_byte_exact() {
    let srv = start().await;
    let client = Client::new(srv.channel());
    // StringValue{value: "raw"}: field 1, length 3.
    let reply = client
        .unary(
            UNARY,
            Request::new(Bytes::from_static(b"\x0a\x03raw")),
            BytesCodec,
        )
        .await
        .unwrap();
    assert_eq!(&reply.get_ref()[..], b"\x0a\x03raw");
}
