//! A message encoded once and sent on many streams: every stream gets the same message,
//! compressed where the call compresses with the encoding it was prepared with.

mod common;

use std::sync::{Arc, Mutex};

use common::pb;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::codec::{Codec, PreparedMessage, ProtobufCodec};
use grpc_runtime::server::{Server, ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::stats::{Handler, RpcEvent, RpcInfo};
use grpc_runtime::{Code, CompressionEncoding, Request, ResponseSender, Status, Streaming};
use protobuf::Message;
use protobuf::well_known_types::wrappers::StringValue;

const M_WATCH: MethodDescriptor =
    MethodDescriptor::new("Watch", "/fan.News/Watch", MethodKind::ServerStreaming);
static NEWS: ServiceDescriptor = ServiceDescriptor::new("fan.News", &[M_WATCH]);

fn text(value: &str) -> StringValue {
    let mut m = StringValue::new();
    m.value = value.to_owned();
    m
}

/// Sends the one prepared message three times; compresses with gzip if the request asks.
#[derive(Clone)]
struct News(PreparedMessage);

impl Service for News {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &NEWS
    }

    fn call(&self, _: &str, call: ServerCall) {
        let prepared = self.0.clone();
        call.server_streaming(
            &NEWS.methods[0],
            pb(),
            move |request: Request<StringValue>, mut tx: ResponseSender<StringValue>| async move {
                if request.get_ref().value == "gzip" {
                    tx.set_send_compressed(Some(CompressionEncoding::Gzip))?;
                }
                for _ in 0..3 {
                    tx.send_prepared(&prepared).await?;
                }
                Ok::<_, Status>(())
            },
        );
    }
}

/// Whether a sent message went compressed, and its bytes (uncompressed).
type Seen = (bool, Vec<u8>);

/// Records every message sent.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<Seen>>>);

impl Handler for Sent {
    type Call = ();

    fn tag_rpc(&self, _: &RpcInfo<'_>) {}

    fn handle_rpc(&self, (): &(), event: &RpcEvent<'_>) {
        if let RpcEvent::OutPayload(p) = event {
            let bytes = p.message().unwrap().into_owned();
            self.0.lock().unwrap().push((p.is_compressed(), bytes));
        }
    }
}

#[tokio::test]
async fn one_encoding_many_streams() {
    let story = text(&"news ".repeat(200));
    let mut codec = ProtobufCodec::<StringValue, StringValue>::new();
    let prepared = PreparedMessage::encode(&mut codec.encoder(), &story)
        .unwrap()
        .compressed(CompressionEncoding::Gzip)
        .unwrap();
    assert_eq!(prepared.message(), story.write_to_bytes().unwrap());

    let sent = Sent::default();
    let server = Server::builder()
        .add_service(News(prepared))
        .stats_handler(sent.clone())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_tcp(listener));
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());

    for (ask, compressed) in [("plain", false), ("gzip", true)] {
        // Two streams at once, each reading the same three messages.
        let mut streams = Vec::new();
        for _ in 0..2 {
            let stream: Streaming<StringValue> = client
                .server_streaming(&NEWS.methods[0], Request::new(text(ask)), pb())
                .await
                .unwrap();
            streams.push(stream);
        }
        for mut stream in streams {
            for _ in 0..3 {
                assert_eq!(stream.message().await.unwrap().unwrap(), story);
                assert_eq!(stream.last_message_compressed(), compressed, "{ask}");
            }
            assert!(stream.message().await.unwrap().is_none());
        }
        let sent = std::mem::take(&mut *sent.0.lock().unwrap());
        assert_eq!(sent.len(), 6);
        for (was_compressed, bytes) in sent {
            assert_eq!(was_compressed, compressed, "{ask}");
            assert_eq!(bytes, story.write_to_bytes().unwrap());
        }
    }
}

#[tokio::test]
async fn a_prepared_message_over_the_send_limit_is_refused() {
    let big = text(&"x".repeat(2000));
    let prepared = PreparedMessage::encode(
        &mut ProtobufCodec::<StringValue, StringValue>::new().encoder(),
        &big,
    )
    .unwrap();
    let server = Server::builder()
        .add_service(News(prepared))
        .max_send_message_size(1000)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_tcp(listener));
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let mut stream: Streaming<StringValue> = client
        .server_streaming(&NEWS.methods[0], Request::new(text("plain")), pb())
        .await
        .unwrap();
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
}
