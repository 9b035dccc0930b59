//! References every generated client and server: one overridden method per service, the
//! default methods answer `UNIMPLEMENTED`, clients type-check their calls.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use grpc_runtime::codegen::{Channel, Service, Stream};
use grpc_runtime::{Code, Request, Response, ResponseSender, Status};

/// Polls a future that completes without waiting (the default methods do).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future did not complete at once"),
    }
}

fn assert_unimplemented<T>(result: Result<T, Status>, method: &str) {
    match result {
        Ok(_) => panic!("{method}: expected UNIMPLEMENTED, got a response"),
        Err(status) => {
            assert_eq!(status.code(), Code::Unimplemented, "{method}");
            assert!(status.message().contains(method), "{}", status.message());
        }
    }
}

fn assert_service<S: Service + Clone + std::fmt::Debug>(service: &S, name: &str, methods: usize) {
    let descriptor = service.clone().descriptor();
    assert_eq!(descriptor.name, name);
    assert_eq!(descriptor.methods.len(), methods);
    for m in descriptor.methods {
        assert_eq!(m.path, format!("/{name}/{}", m.name));
    }
}

/// A request stream for client-streaming calls that only need to type-check.
struct NoMessages<T>(PhantomData<fn() -> T>);

impl<T> NoMessages<T> {
    fn new() -> Self {
        NoMessages(PhantomData)
    }
}

impl<T> Stream for NoMessages<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
        Poll::Ready(None)
    }
}

mod helloworld_tests {
    use super::*;
    use crate::helloworld::{HelloReply, HelloRequest};
    use crate::helloworld_grpc::{Greeter, GreeterClient, GreeterServer, greeter};

    struct MyGreeter;

    impl Greeter for MyGreeter {
        async fn lots_of_replies(
            &self,
            request: Request<HelloRequest>,
            responses: ResponseSender<HelloReply>,
        ) -> Result<(), Status> {
            let _ = (request, responses);
            Ok(())
        }
    }

    struct Overridden;

    impl Greeter for Overridden {
        async fn say_hello(
            &self,
            request: Request<HelloRequest>,
        ) -> Result<Response<HelloReply>, Status> {
            let mut reply = HelloReply::new();
            reply.message = format!("Hello {}", request.get_ref().name);
            Ok(Response::new(reply))
        }
    }

    #[test]
    fn server() {
        assert_unimplemented(
            block_on(MyGreeter.say_hello(Request::new(HelloRequest::new()))),
            "SayHello",
        );
        let mut request = HelloRequest::new();
        request.name = "world".into();
        let reply = block_on(Overridden.say_hello(Request::new(request))).unwrap();
        assert_eq!(reply.get_ref().message, "Hello world");

        let server = GreeterServer::new(MyGreeter);
        assert_service(&server, "helloworld.Greeter", 4);
        assert_eq!(format!("{server:?}"), "GreeterServer");
        let _ = GreeterServer::from_arc(std::sync::Arc::new(Overridden));
        assert_eq!(greeter::SERVICE_NAME, "helloworld.Greeter");
        assert_eq!(greeter::SAY_HELLO, "/helloworld.Greeter/SayHello");
        assert_eq!(greeter::BIDI_HELLO, "/helloworld.Greeter/BidiHello");
        assert_eq!(
            greeter::DESCRIPTOR.methods[2].kind,
            grpc_runtime::codegen::MethodKind::ClientStreaming
        );
        // The golden copy (made by protoc) describes the same service.
        assert_eq!(
            crate::golden::helloworld_grpc::greeter::DESCRIPTOR,
            greeter::DESCRIPTOR
        );
    }

    #[allow(dead_code)]
    async fn client_calls(channel: Channel) -> Result<(), Status> {
        let client = GreeterClient::new(channel).with_options(Default::default());
        let _ = client.say_hello(HelloRequest::new()).await?;
        let mut replies = client
            .lots_of_replies(Request::new(HelloRequest::new()))
            .await?;
        let _ = replies.message().await?;
        let _ = client.lots_of_greetings(NoMessages::new()).await?;
        // A bidi call takes call options (metadata, timeout) and gives a sender and a stream.
        let (mut tx, mut rx) = client.bidi_hello(Request::new(())).await?;
        tx.send(HelloRequest::new()).await?;
        let _ = rx.message().await?;
        Ok(())
    }

    /// Generated clients run over any `CallInvoker`, not only a `Channel`.
    #[allow(dead_code)]
    fn generic_client<C: grpc_runtime::client::CallInvoker>(invoker: C) -> GreeterClient<C> {
        GreeterClient::new(invoker)
    }
}

mod cross_tests {
    use super::*;
    use crate::common::HTTPRequest;
    use crate::common::httprequest::HTTPHeader;
    use crate::cross::summary::Part;
    use crate::cross_grpc::{CrossPackage, CrossPackageClient, CrossPackageServer};

    struct Impl;

    impl CrossPackage for Impl {
        async fn fetch_http_request(
            &self,
            request: Request<HTTPRequest>,
        ) -> Result<Response<HTTPHeader>, Status> {
            let mut header = HTTPHeader::new();
            header.name = request.into_inner().method;
            Ok(Response::new(header))
        }
    }

    #[test]
    fn server() {
        let mut request = HTTPRequest::new();
        request.method = "GET".into();
        let header = block_on(Impl.fetch_http_request(Request::new(request))).unwrap();
        assert_eq!(header.into_inner().name, "GET");
        assert_service(
            &CrossPackageServer::new(Impl),
            "test.services.CrossPackage",
            4,
        );
    }

    #[allow(dead_code)]
    async fn client_calls(client: CrossPackageClient) -> Result<(), Status> {
        let _ = client.fetch_http_request(HTTPRequest::new()).await?;
        let _ = client.stream_inner(crate::common::Outer::new()).await?;
        let _ = client
            .collect(NoMessages::<crate::common::outer::Inner>::new())
            .await?;
        let (tx, _rx) = client.exchange(()).await?;
        drop::<grpc_runtime::RequestSender<Part>>(tx);
        Ok(())
    }
}

mod multi_tests {
    use super::*;
    use crate::multi::Item;
    use crate::multi_grpc::*;

    struct A;
    impl Alpha for A {
        async fn get(&self, request: Request<Item>) -> Result<Response<Item>, Status> {
            Ok(Response::new(request.into_inner()))
        }
    }

    struct B;
    impl Beta for B {}

    struct N;
    impl Nothing for N {}

    struct L;
    #[allow(deprecated)]
    impl Legacy for L {
        async fn still_fine(&self, request: Request<Item>) -> Result<Response<Item>, Status> {
            Ok(Response::new(request.into_inner()))
        }
    }

    #[test]
    #[allow(deprecated)]
    fn servers() {
        let mut item = Item::new();
        item.id = "x".into();
        assert_eq!(
            block_on(A.get(Request::new(item))).unwrap().get_ref().id,
            "x"
        );
        assert_unimplemented(block_on(B.get(Request::new(Item::new()))), "Get");
        assert_unimplemented(block_on(L.old_get(Request::new(Item::new()))), "OldGet");
        assert_service(&AlphaServer::new(A), "test.multi.Alpha", 2);
        assert_service(&BetaServer::new(B), "test.multi.Beta", 2);
        assert_service(&NothingServer::new(N), "test.multi.Nothing", 0);
        assert_service(&LegacyServer::new(L), "test.multi.Legacy", 2);
        assert_ne!(alpha::GET, beta::GET);
    }

    #[allow(dead_code, deprecated)]
    async fn client_calls(channel: Channel) -> Result<(), Status> {
        let _ = AlphaClient::new(channel.clone()).get(Item::new()).await?;
        let _ = BetaClient::new(channel.clone()).list(Item::new()).await?;
        let _ = NothingClient::new(channel.clone());
        let _ = LegacyClient::new(channel).old_get(Item::new()).await?;
        Ok(())
    }
}

mod wkt_tests {
    use super::*;
    use crate::wkt_grpc::{WellKnown, WellKnownClient, WellKnownServer};
    use protobuf::well_known_types::empty::Empty;
    use protobuf::well_known_types::timestamp::Timestamp;

    struct Impl;
    impl WellKnown for Impl {
        async fn now(&self, _: Request<Empty>) -> Result<Response<Timestamp>, Status> {
            Ok(Response::new(Timestamp::new()))
        }
    }

    #[test]
    fn server() {
        assert!(block_on(Impl.now(Request::new(Empty::new()))).is_ok());
        assert_unimplemented(block_on(Impl.ping(Request::new(Empty::new()))), "Ping");
        assert_unimplemented(
            block_on(Impl.describe(Request::new(protobuf::well_known_types::type_::Type::new()))),
            "Describe",
        );
        assert_service(&WellKnownServer::new(Impl), "test.wkt.WellKnown", 8);
    }

    #[allow(dead_code)]
    async fn client_calls(client: WellKnownClient) -> Result<(), Status> {
        let _: Response<protobuf::descriptor::FileDescriptorProto> = client
            .describe(protobuf::well_known_types::type_::Type::new())
            .await?;
        let _: Response<crate::wkt::Holder> = client
            .nested(protobuf::descriptor::descriptor_proto::ExtensionRange::new())
            .await?;
        let _ = client
            .values(NoMessages::<protobuf::well_known_types::struct_::Value>::new())
            .await?;
        Ok(())
    }
}

mod keyword_tests {
    use super::*;
    use crate::self__grpc;
    use crate::type_::{Self_, Type};
    use crate::type__grpc::{Keywords, KeywordsClient, KeywordsServer, keywords};

    struct Impl;
    impl Keywords for Impl {
        async fn r#type(
            &self,
            request: Request<Type>,
        ) -> Result<Response<crate::type_::type_::Inner>, Status> {
            let _ = request;
            Ok(Response::new(crate::type_::type_::Inner::new()))
        }
    }

    #[test]
    fn keyword_methods() {
        assert!(block_on(Impl.r#type(Request::new(Type::new()))).is_ok());
        assert_unimplemented(block_on(Impl.r#match(Request::new(Type::new()))), "Match");
        assert_unimplemented(block_on(Impl.new_(Request::new(Type::new()))), "new");
        assert_unimplemented(block_on(Impl.clone(Request::new(Type::new()))), "Clone");
        assert_unimplemented(
            block_on(Impl.option(Request::new(crate::type_::Option::new()))),
            "Option",
        );
        assert_service(&KeywordsServer::new(Impl), "test.keywords.Keywords", 14);
        assert_eq!(
            keywords::DESCRIPTOR_METHOD,
            "/test.keywords.Keywords/Descriptor"
        );
        assert_eq!(
            keywords::SERVICE_NAME_METHOD,
            "/test.keywords.Keywords/ServiceName"
        );
        assert_eq!(keywords::SERVICE_NAME, "test.keywords.Keywords");
    }

    #[allow(dead_code)]
    async fn client_calls(client: KeywordsClient) -> Result<(), Status> {
        let _ = client.r#type(Type::new()).await?;
        let _ = client.self_(Self_::new()).await?;
        let _ = client
            .result(NoMessages::<crate::type_::Result>::new())
            .await?;
        let (tx, _rx) = client.r#box(()).await?;
        drop::<grpc_runtime::RequestSender<crate::type_::Box>>(tx);
        let _ = client.string(crate::type_::String::new()).await?;
        let _ = client.connect(Type::new()).await?;
        let _ = client.new_(Type::new()).await?;
        let _ = client.with_options_(Type::new()).await?;
        let _ = client.clone(Type::new()).await?;
        let _ = client.r#async(Type::new()).await?;
        let _ = client.descriptor(Type::new()).await?;
        let _ = client.service_name(Type::new()).await?;
        Ok(())
    }

    struct S;
    impl self__grpc::Self_ for S {
        async fn super_(&self, request: Request<Self_>) -> Result<Response<Self_>, Status> {
            Ok(Response::new(request.into_inner()))
        }
    }
    struct R;
    impl self__grpc::Result for R {}
    struct Bx;
    impl self__grpc::Box for Bx {}
    struct Ty;
    impl self__grpc::Type for Ty {}
    struct Tt;
    impl self__grpc::T for Tt {}

    #[test]
    fn keyword_services() {
        assert!(block_on(self__grpc::Self_::super_(&S, Request::new(Self_::new()))).is_ok());
        assert_unimplemented(
            block_on(self__grpc::Result::ok(
                &R,
                Request::new(crate::type_::Result::new()),
            )),
            "Ok",
        );
        assert_service(
            &self__grpc::SelfServer::new(S),
            "test.keywords.services.Self",
            1,
        );
        assert_service(
            &self__grpc::ResultServer::new(R),
            "test.keywords.services.Result",
            1,
        );
        assert_service(
            &self__grpc::BoxServer::new(Bx),
            "test.keywords.services.Box",
            1,
        );
        assert_service(
            &self__grpc::TypeServer::new(Ty),
            "test.keywords.services.Type",
            1,
        );
        assert_service(&self__grpc::TServer::new(Tt), "test.keywords.services.T", 1);
        let _: fn(Channel) -> self__grpc::SelfClient = self__grpc::SelfClient::new;
        assert_eq!(
            self__grpc::self_::SERVICE_NAME,
            "test.keywords.services.Self"
        );
    }
}

mod proto2_tests {
    use super::*;
    use crate::proto2::{Request as LookupRequest, Response as LookupResponse};
    use crate::proto2_grpc::{Legacy2, Legacy2Client, Legacy2Server};

    struct Impl;
    impl Legacy2 for Impl {
        async fn lookup(
            &self,
            request: Request<LookupRequest>,
        ) -> Result<Response<LookupResponse>, Status> {
            let mut response = LookupResponse::new();
            response.values.push(request.get_ref().key().to_owned());
            Ok(Response::new(response))
        }
    }

    #[test]
    fn server() {
        let mut request = LookupRequest::new();
        request.set_key("k".into());
        assert_eq!(request.limit(), 10);
        let response = block_on(Impl.lookup(Request::new(request))).unwrap();
        assert_eq!(response.get_ref().values, ["k"]);
        assert_service(&Legacy2Server::new(Impl), "test.legacy.Legacy2", 1);
        let _: fn(Channel) -> Legacy2Client = Legacy2Client::new;
    }
}

mod collide_tests {
    use super::*;
    use crate::collide::cloud_speech_v1_resource::{CustomClass, PhraseSet};
    use crate::collide::google_api_resource::ResourceDescriptor;
    use crate::collide::google_api_resource::resource_descriptor::History;
    use crate::collide::speech::RecognizeRequest;
    use crate::collide::speech_grpc::{Speech, SpeechClient, SpeechServer};
    use crate::collide::{udpa_annotations_status, xds_annotations_v3_status};
    use protobuf::Message;

    #[derive(Clone, Debug)]
    struct Recognizer;

    impl Speech for Recognizer {
        async fn recognize(
            &self,
            request: Request<RecognizeRequest>,
        ) -> Result<Response<CustomClass>, Status> {
            let phrases = request.into_inner().phrases.unwrap_or_default();
            Ok(Response::new(phrases.classes[0].clone()))
        }
    }

    #[test]
    fn files_of_one_basename_get_modules_of_their_own() {
        let mut request = RecognizeRequest::new();
        let mut phrases = PhraseSet::new();
        let mut class = CustomClass::new();
        class.name = "c".into();
        class.descriptor.mut_or_insert_default().type_ = "t".into();
        phrases.classes.push(class);
        request.phrases = Some(phrases).into();
        request.history = History::ORIGINALLY_SINGLE_PATTERN.into();
        request.udpa_status = Some(udpa_annotations_status::StatusAnnotation::new()).into();
        let mut xds = xds_annotations_v3_status::StatusAnnotation::new();
        xds.package_version_status = 3;
        request.xds_status = Some(xds).into();
        let bytes = request.write_to_bytes().unwrap();
        assert_eq!(RecognizeRequest::parse_from_bytes(&bytes).unwrap(), request);
        let reply = block_on(Recognizer.recognize(Request::new(request))).unwrap();
        assert_eq!(reply.get_ref().name, "c");
        assert_service(
            &SpeechServer::new(Recognizer),
            "collide.speech.v1.Speech",
            2,
        );
        let _: fn(Channel) -> SpeechClient = SpeechClient::new;
        let _ = ResourceDescriptor::new();
    }

    #[test]
    fn the_embedded_descriptors_keep_the_real_names() {
        let resource = crate::collide::cloud_speech_v1_resource::file_descriptor();
        assert_eq!(resource.proto().name(), "cloud/speech/v1/resource.proto");
        assert_eq!(
            resource.proto().dependency,
            ["google/api/resource.proto"],
            "imports as written"
        );
        let speech = crate::collide::speech::file_descriptor();
        assert_eq!(speech.proto().name(), "cloud/speech/v1/speech.proto");
        let deps: Vec<_> = speech
            .deps()
            .iter()
            .map(|d| d.proto().name().to_owned())
            .collect();
        assert_eq!(
            deps,
            [
                "google/api/resource.proto",
                "cloud/speech/v1/resource.proto",
                "udpa/annotations/status.proto",
                "xds/annotations/v3/status.proto"
            ]
        );
        // Reflection finds the message by its full name in the right file.
        let message = speech
            .message_by_package_relative_name("RecognizeRequest")
            .unwrap();
        let field = message.field_by_name("xds_status").unwrap();
        let protobuf::reflect::RuntimeFieldType::Singular(protobuf::reflect::RuntimeType::Message(
            m,
        )) = field.runtime_field_type()
        else {
            panic!("a message field");
        };
        assert_eq!(m.full_name(), "xds.annotations.v3.StatusAnnotation");
        assert_eq!(
            m.file_descriptor().proto().name(),
            "xds/annotations/v3/status.proto"
        );
        // The renamed file's service stubs are in the renamed module.
        let _: fn(Channel) -> crate::collide::xds_annotations_v3_status_grpc::StatusReporterClient =
            crate::collide::xds_annotations_v3_status_grpc::StatusReporterClient::new;
    }
}

mod colliding_names_tests {
    use super::*;
    use crate::collide::names::Ping;
    use crate::collide::names_grpc::{Names, NamesServer, names, names_2};

    #[derive(Clone, Debug)]
    struct Impl;

    impl Names for Impl {
        async fn get_2(&self, request: Request<Ping>) -> Result<Response<Ping>, Status> {
            Ok(Response::new(request.into_inner()))
        }
    }

    #[test]
    fn rpcs_and_services_of_one_rust_name_are_numbered() {
        // `Get` is `get`, `get` is `get_2`, `GET` is `get_3`; each keeps its path.
        assert_eq!(names::GET, "/collide.names.Names/Get");
        assert_eq!(names::GET_2, "/collide.names.Names/get");
        assert_eq!(names::GET_3, "/collide.names.Names/GET");
        assert_eq!(names_2::GET, "/collide.names.names/Get");
        let mut ping = Ping::new();
        ping.text = "x".into();
        let reply = block_on(Impl.get_2(Request::new(ping))).unwrap();
        assert_eq!(reply.get_ref().text, "x");
        assert_unimplemented(block_on(Impl.get(Request::new(Ping::new()))), "Get");
        assert_service(&NamesServer::new(Impl), "collide.names.Names", 3);
        let _: fn(Channel) -> crate::collide::names_grpc::names2Client =
            crate::collide::names_grpc::names2Client::new;
    }
}

mod plugin_collide_tests {
    use crate::golden_collide as g;

    #[test]
    fn the_plugin_path_names_modules_like_grpc_build() {
        let speech = g::speech::file_descriptor();
        assert_eq!(speech.proto().name(), "cloud/speech/v1/speech.proto");
        let resource = g::cloud_speech_v1_resource::file_descriptor();
        assert_eq!(resource.proto().dependency, ["google/api/resource.proto"]);
        let mut request = g::speech::RecognizeRequest::new();
        request.xds_status = Some(g::xds_annotations_v3_status::StatusAnnotation::new()).into();
        request.history =
            g::google_api_resource::resource_descriptor::History::ORIGINALLY_SINGLE_PATTERN.into();
        let _: fn(grpc_runtime::codegen::Channel) -> g::speech_grpc::SpeechClient =
            g::speech_grpc::SpeechClient::new;
        assert_eq!(g::names_grpc::names::GET_2, "/collide.names.Names/get");
    }
}

mod extern_path_tests {
    use crate::extern_paths::cross::Summary;
    use crate::extern_paths::cross_grpc::{CrossPackage, CrossPackageClient};
    use grpc_runtime::{Request, Response, Status};

    #[derive(Clone, Debug)]
    struct Impl;

    impl CrossPackage for Impl {
        // The extern package's types are the crate root's `common` module's.
        async fn fetch_http_request(
            &self,
            request: Request<crate::common::HTTPRequest>,
        ) -> Result<Response<crate::common::httprequest::HTTPHeader>, Status> {
            let _ = request;
            Ok(Response::new(crate::common::httprequest::HTTPHeader::new()))
        }
    }

    #[test]
    fn extern_types_and_attributes() {
        // Not generated again: the extern file has no module here.
        assert!(!include_str!(concat!(env!("OUT_DIR"), "/extern/_protos.rs")).contains("common"));
        let reply = super::block_on(
            Impl.fetch_http_request(Request::new(crate::common::HTTPRequest::new())),
        )
        .unwrap();
        let _: crate::common::httprequest::HTTPHeader = reply.into_inner();
        let _ = Summary::new();
        let cross = include_str!(concat!(env!("OUT_DIR"), "/extern/cross.rs"));
        assert!(
            cross.contains("#[must_use = \"a summary\"]"),
            "type attribute"
        );
        assert_eq!(
            cross.matches("#[doc(alias = \"tagged\")]").count(),
            2,
            "Summary, Part"
        );
        assert!(
            cross.contains("EnumOrUnknown<crate::common::Color>"),
            "extern type: {cross}"
        );
        assert!(cross.contains("deps.push(crate::common::file_descriptor().clone())"));
        let stubs = include_str!(concat!(env!("OUT_DIR"), "/extern/cross_grpc.rs"));
        assert_eq!(
            stubs.matches("#[cfg(all())]").count(),
            2,
            "client struct and impl"
        );
        assert!(stubs.contains("#[allow(clippy::pedantic)]"));
        assert!(stubs.contains("crate::common::HTTPRequest"));
        let _: fn(grpc_runtime::codegen::Channel) -> CrossPackageClient = CrossPackageClient::new;
    }
}
