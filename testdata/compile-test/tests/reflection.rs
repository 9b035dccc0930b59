//! Server reflection over generated services with dependencies and extensions: a file comes
//! with the files it imports, each dependency once per stream; extensions are found by the
//! type they extend.

use compile_test::golden::cross_grpc::{CrossPackage, CrossPackageServer};
use compile_test::golden::proto2_grpc::{Legacy2, Legacy2Server};
use grpc_runtime::reflection::v1::server_reflection_request::Message_request as Req;
use grpc_runtime::reflection::v1::server_reflection_response::Message_response as Resp;
use grpc_runtime::reflection::v1::{
    ExtensionRequest, ServerReflectionClient, ServerReflectionRequest, ServerReflectionResponse,
};
use grpc_runtime::server::Server;
use grpc_runtime::{RequestSender, Streaming};
use protobuf::Message;
use protobuf::descriptor::FileDescriptorProto;

struct Cross;
impl CrossPackage for Cross {}
struct Legacy;
impl Legacy2 for Legacy {}

async fn ask(
    tx: &mut RequestSender<ServerReflectionRequest>,
    rx: &mut Streaming<ServerReflectionResponse>,
    request: Req,
) -> Resp {
    let mut message = ServerReflectionRequest::new();
    message.message_request = Some(request);
    tx.send(message).await.unwrap();
    let response = rx.message().await.unwrap().unwrap();
    response.message_response.unwrap()
}

/// The names of the files in a file descriptor response, in order.
fn files(response: Resp) -> Vec<String> {
    let Resp::FileDescriptorResponse(found) = response else {
        panic!("not a file descriptor response: {response:?}");
    };
    found
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            FileDescriptorProto::parse_from_bytes(bytes)
                .unwrap()
                .name()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn files_come_with_their_dependencies_once_per_stream() {
    let builder = Server::builder()
        .add_service(CrossPackageServer::new(Cross))
        .add_service(Legacy2Server::new(Legacy));
    let server = grpc_runtime::reflection::register(builder).build();
    let client = ServerReflectionClient::new(grpc_runtime::inprocess::channel(&server));
    let (mut tx, mut rx) = client.server_reflection_info(()).await.unwrap();

    let Resp::ListServicesResponse(list) =
        ask(&mut tx, &mut rx, Req::ListServices(String::new())).await
    else {
        panic!("not a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "test.legacy.Legacy2",
            "test.services.CrossPackage",
        ]
    );

    // A method: its file, then the file it imports.
    let found = ask(
        &mut tx,
        &mut rx,
        Req::FileContainingSymbol("test.services.CrossPackage.FetchHTTPRequest".into()),
    )
    .await;
    assert_eq!(
        files(found),
        ["services/cross.proto", "common/common.proto"]
    );
    // A nested message of the imported file: that file, asked for, comes again.
    let found = ask(
        &mut tx,
        &mut rx,
        Req::FileContainingSymbol("test.common.HTTPRequest.HTTPHeader".into()),
    )
    .await;
    assert_eq!(files(found), ["common/common.proto"]);
    // The service's file again: its dependency was sent on this stream already.
    let found = ask(
        &mut tx,
        &mut rx,
        Req::FileByFilename("services/cross.proto".into()),
    )
    .await;
    assert_eq!(files(found), ["services/cross.proto"]);

    // Extensions, top-level and declared in a message.
    let mut extension = ExtensionRequest::new();
    extension.containing_type = "test.legacy.Request".into();
    extension.extension_number = 101;
    let found = ask(&mut tx, &mut rx, Req::FileContainingExtension(extension)).await;
    assert_eq!(files(found), ["legacy/proto2.proto"]);
    let numbers = ask(
        &mut tx,
        &mut rx,
        Req::AllExtensionNumbersOfType("test.legacy.Request".into()),
    )
    .await;
    let Resp::AllExtensionNumbersResponse(numbers) = numbers else {
        panic!("not extension numbers: {numbers:?}");
    };
    assert_eq!(
        (
            numbers.base_type_name.as_str(),
            numbers.extension_number.as_slice()
        ),
        ("test.legacy.Request", &[100, 101][..])
    );

    // What it does not know: NOT_FOUND, and the stream goes on.
    let missing = ask(
        &mut tx,
        &mut rx,
        Req::FileContainingSymbol("no.Such".into()),
    )
    .await;
    let Resp::ErrorResponse(error) = missing else {
        panic!("not an error: {missing:?}");
    };
    assert_eq!(error.error_code, grpc_runtime::Code::NotFound as i32);
    let found = ask(
        &mut tx,
        &mut rx,
        Req::FileByFilename("legacy/proto2.proto".into()),
    )
    .await;
    assert_eq!(files(found), ["legacy/proto2.proto"]);
    tx.close();
    assert!(rx.message().await.unwrap().is_none());
}
