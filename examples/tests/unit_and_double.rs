//! Testing without sockets: a streaming handler called directly with a `Streaming` built from
//! a stream and a `ResponseSender` built from a channel, and a generated client running on a
//! test double instead of a `Channel`.

use std::any::Any;

use examples::proto::helloworld::{HelloReply, HelloRequest};
use examples::proto::helloworld_grpc::GreeterClient;
use examples::proto::route_guide::{Point, RouteNote};
use examples::proto::route_guide_grpc::{RouteGuide, RouteGuideClient};
use examples::route_guide::{RouteGuideService, point};
use futures_core::Stream;
use grpc_runtime::client::CallInvoker;
use grpc_runtime::codec::{Codec, Outbound};
use grpc_runtime::service::MethodRef;
use grpc_runtime::{Code, Request, RequestSender, Response, ResponseSender, Status, Streaming};

fn note(message: &str, at: Point) -> RouteNote {
    let mut n = RouteNote::new();
    n.location = protobuf::MessageField::some(at);
    n.message = message.to_owned();
    n
}

/// The bidi handler, unit-tested: requests from a plain stream, responses into a channel.
#[tokio::test]
async fn route_chat_handler_without_a_server() {
    let service = RouteGuideService::default();
    let here = point(1.0, 1.0);
    let notes = vec![
        Ok(note("a", here.clone())),
        Ok(note("b", here.clone())),
        Ok(note("c", point(2.0, 2.0))),
    ];
    let requests = Request::new(Streaming::from_stream(futures_util::stream::iter(notes)));
    let (tx, mut sent) = ResponseSender::channel(16);
    service.route_chat(requests, tx).await.unwrap();
    let mut got = Vec::new();
    while let Some(n) = sent.message().await.unwrap() {
        got.push(n.message);
    }
    // "b" is answered with "a", left at the same point before it; "c" is alone.
    assert_eq!(got, ["a"]);
}

/// A request stream that fails mid-way fails the handler with that status.
#[tokio::test]
async fn route_chat_handler_sees_a_failing_stream() {
    let service = RouteGuideService::default();
    let items = vec![
        Ok(note("a", point(3.0, 3.0))),
        Err(Status::cancelled("client went away")),
    ];
    let requests = Request::new(Streaming::from_stream(futures_util::stream::iter(items)));
    let (tx, _sent) = ResponseSender::channel(16);
    let err = service.route_chat(requests, tx).await.unwrap_err();
    assert_eq!(err.code(), Code::Cancelled);
}

/// Answers `SayHello` itself, without a network: what a unit test of client code uses.
#[derive(Clone)]
struct FakeGreeter;

impl CallInvoker for FakeGreeter {
    async fn unary<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        _codec: C,
    ) -> Result<Response<C::Decode>, Status> {
        assert_eq!(method.path(), "/helloworld.Greeter/SayHello");
        let request: Box<dyn Any> = Box::new(request.into_inner());
        let request = request.downcast::<HelloRequest>().expect("a HelloRequest");
        let mut reply = HelloReply::new();
        reply.message = format!("fake hello, {}", request.name);
        let reply: Box<dyn Any> = Box::new(reply);
        Ok(Response::new(
            *reply.downcast::<C::Decode>().expect("a HelloReply"),
        ))
    }

    async fn server_streaming<C: Codec>(
        &self,
        _: MethodRef,
        _: Request<C::Encode>,
        _: C,
    ) -> Result<Streaming<C::Decode>, Status> {
        // A canned stream: no messages, then a status.
        Ok(Streaming::from_stream(futures_util::stream::iter(vec![
            Err(Status::unavailable("the fake has no stream")),
        ])))
    }

    async fn client_streaming<C, S>(
        &self,
        _: MethodRef,
        _: Request<S>,
        _: C,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec,
        S: Stream + Send + 'static,
        S::Item: Into<Outbound<C::Encode>> + Send,
    {
        Err(Status::unimplemented("not faked"))
    }

    async fn bidi_streaming<C: Codec>(
        &self,
        _: MethodRef,
        _: Request<()>,
        _: C,
    ) -> Result<(RequestSender<C::Encode>, Streaming<C::Decode>), Status> {
        // Requests go nowhere; responses are a stream of none.
        let (tx, _requests) = RequestSender::channel(1);
        Ok((tx, Streaming::from_stream(futures_util::stream::empty())))
    }
}

#[tokio::test]
async fn generated_client_on_a_test_double() {
    let client = GreeterClient::new(FakeGreeter);
    let mut request = HelloRequest::new();
    request.name = "test".into();
    let reply = client.say_hello(request).await.unwrap();
    assert_eq!(reply.get_ref().message, "fake hello, test");
    // Any generated client runs on the same double.
    let routes = RouteGuideClient::new(FakeGreeter);
    let mut features = routes
        .list_features(examples::proto::route_guide::Rectangle::new())
        .await
        .unwrap();
    assert_eq!(
        features.message().await.unwrap_err().code(),
        Code::Unavailable
    );
    let (_tx, mut rx) = routes.route_chat(()).await.unwrap();
    assert!(rx.message().await.unwrap().is_none());
}
