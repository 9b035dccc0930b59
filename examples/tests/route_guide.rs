//! The route guide through generated stubs over loopback TCP, with values checked.

use examples::proto::helloworld::HelloRequest;
use examples::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};
use examples::proto::route_guide::{Rectangle, RouteNote};
use examples::proto::route_guide_grpc::{self, RouteGuideClient, RouteGuideServer};
use examples::route_guide::{RouteGuideService, point};
use grpc_runtime::Code;
use grpc_runtime::client::Channel;
use grpc_runtime::server::Server;
use grpc_runtime::service::MethodKind;

async fn serve(server: Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { server.serve_tcp(listener).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn all_four_kinds_through_generated_code() {
    let server = Server::builder()
        .add_service(RouteGuideServer::new(RouteGuideService::default()))
        .build();
    let client = RouteGuideClient::new(Channel::new(&serve(server).await).unwrap());
    all_four_kinds(client).await;
}

/// The same calls through an in-process channel: no socket, same stack.
#[tokio::test]
async fn all_four_kinds_in_process() {
    let server = Server::builder()
        .add_service(RouteGuideServer::new(RouteGuideService::default()))
        .build();
    let client = RouteGuideClient::new(grpc_runtime::inprocess::channel(&server));
    all_four_kinds(client).await;
}

async fn all_four_kinds(client: RouteGuideClient) {
    let f = client
        .get_feature(point(40.7838, -74.6144))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.name, "Patriots Path, Mendham, NJ 07945, USA");
    let unnamed = client
        .get_feature(point(0.0, 0.0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unnamed.name, "");

    let mut rect = Rectangle::new();
    rect.lo = protobuf::MessageField::some(point(40.0, -75.0));
    rect.hi = protobuf::MessageField::some(point(41.0, -74.0));
    let mut stream = client.list_features(rect).await.unwrap();
    let mut names = Vec::new();
    while let Some(f) = stream.message().await.unwrap() {
        names.push(f.name);
    }
    assert_eq!(names.len(), 2, "{names:?}");

    let route = vec![
        point(40.7838, -74.6144),
        point(40.8123, -74.3999),
        point(0.0, 0.0),
    ];
    let summary = client
        .record_route(futures_util::stream::iter(route))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.point_count, 3);
    assert_eq!(summary.feature_count, 2);
    assert!(
        summary.distance > 18_000 && summary.distance < 20_000_000,
        "{}",
        summary.distance
    );

    let notes: Vec<RouteNote> = ["a", "b", "c"]
        .iter()
        .map(|m| {
            let mut n = RouteNote::new();
            n.location = protobuf::MessageField::some(point(1.0, 1.0));
            n.message = (*m).to_owned();
            n
        })
        .collect();
    let (mut requests, mut replies) = client.route_chat(()).await.unwrap();
    for note in notes {
        requests.send(note).await.unwrap();
    }
    requests.close();
    let mut got = Vec::new();
    while let Some(n) = replies.message().await.unwrap() {
        got.push(n.message);
    }
    // Each note is answered with the notes left at the same point before it.
    assert_eq!(got, ["a", "a", "b"]);
}

#[tokio::test]
async fn default_methods_answer_unimplemented() {
    struct Nothing;
    impl Greeter for Nothing {}
    let server = Server::builder()
        .add_service(GreeterServer::new(Nothing))
        .build();
    let channel = Channel::new(&serve(server).await).unwrap();
    let client = GreeterClient::new(channel.clone());
    let err = client.say_hello(HelloRequest::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("SayHello"), "{err}");
    // A service the server does not host.
    let other = RouteGuideClient::new(channel);
    let err = other.get_feature(point(0.0, 0.0)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[test]
fn descriptors_name_methods_and_kinds() {
    let d = &route_guide_grpc::route_guide::DESCRIPTOR;
    assert_eq!(d.name, "routeguide.RouteGuide");
    let kinds: Vec<_> = d.methods.iter().map(|m| (m.name, m.path, m.kind)).collect();
    assert_eq!(
        kinds,
        [
            (
                "GetFeature",
                "/routeguide.RouteGuide/GetFeature",
                MethodKind::Unary
            ),
            (
                "ListFeatures",
                "/routeguide.RouteGuide/ListFeatures",
                MethodKind::ServerStreaming
            ),
            (
                "RecordRoute",
                "/routeguide.RouteGuide/RecordRoute",
                MethodKind::ClientStreaming
            ),
            (
                "RouteChat",
                "/routeguide.RouteGuide/RouteChat",
                MethodKind::BidiStreaming
            ),
        ]
    );
}
