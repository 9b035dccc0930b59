//! The public handles and futures can cross threads: tasks spawned on a multi-thread runtime
//! hold them. Compile-time checks (a failure here is a build error).
#![allow(dead_code, clippy::let_underscore_future)]

use std::future::Future;

use bytes::Bytes;
use grpc_runtime::client::{CallOptions, Channel, ChannelBuilder, Client};
use grpc_runtime::codec::{BytesCodec, ProtobufCodec};
use grpc_runtime::server::{Server, ServerBuilder, ServerCall};
use grpc_runtime::service::{MethodDescriptor, MethodKind, MethodRef};
use grpc_runtime::{
    CancellationToken, Error, MetadataMap, Peer, Request, RequestSender, Response, ResponseSender,
    Status, Streaming,
};
use protobuf::well_known_types::wrappers::StringValue;

fn send<T: Send>(_: &T) {}
fn send_sync<T: Send + Sync>(_: &T) {}
fn send_static<T: Send + 'static>(_: &T) {}
fn is_send<T: Send>() {}
fn is_send_sync<T: Send + Sync>() {}

static M: MethodDescriptor = MethodDescriptor::new("M", "/s.S/M", MethodKind::Unary);

#[test]
fn types() {
    is_send_sync::<Channel>();
    is_send_sync::<Client>();
    is_send_sync::<Server>();
    is_send_sync::<Status>();
    is_send_sync::<Error>();
    is_send_sync::<MetadataMap>();
    is_send_sync::<Peer>();
    is_send_sync::<CallOptions>();
    is_send_sync::<MethodRef>();
    is_send_sync::<CancellationToken>();
    is_send::<ChannelBuilder>();
    is_send::<ServerBuilder>();
    is_send::<ServerCall>();
    is_send::<Streaming<StringValue>>();
    is_send::<RequestSender<StringValue>>();
    is_send::<ResponseSender<StringValue>>();
    is_send::<Request<StringValue>>();
    is_send::<Response<Bytes>>();
}

/// Built, never polled: only the types matter.
fn futures(client: Client, server: Server, mut stream: Streaming<StringValue>) {
    let unary = client.unary(
        &M,
        Request::new(StringValue::new()),
        ProtobufCodec::<_, StringValue>::new(),
    );
    send(&unary);
    let raw = client.bidi_streaming(&M, Request::new(()), BytesCodec);
    send(&raw);
    let streaming = client.server_streaming(
        &M,
        Request::new(StringValue::new()),
        ProtobufCodec::<_, StringValue>::new(),
    );
    send(&streaming);
    let message = stream.message();
    send(&message);
    // `serve*` borrow nothing: `tokio::spawn(server.serve(addr))` compiles.
    let serve = server.serve("127.0.0.1:0");
    send_static(&serve);
    let graceful = server.graceful_stop();
    send(&graceful);
    let connect = client.invoker().connect();
    send(&connect);
    let _ = spawnable(server.serve("127.0.0.1:0"));
    send_sync(&client);
}

fn spawnable<F: Future + Send + 'static>(f: F) -> F {
    f
}
