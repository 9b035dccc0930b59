//! The interop test cases, as gRPC's interop test descriptions specify the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_runtime::client::{Channel, ChannelBuilder, Client};
use grpc_runtime::codec::{MessageCompressed, Outbound, ProtobufCodec};
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::interceptor::{CallInfo, InterceptFuture, Interceptor};
use grpc_runtime::{Code, CompressionEncoding, MetadataMap, Request, Response, Status, Streaming};

use crate::proto::empty::Empty;
use crate::proto::messages::{
    BoolValue, EchoStatus, ResponseParameters, SimpleRequest, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest,
};
use crate::proto::test_grpc::{TestServiceClient, UnimplementedServiceClient, test_service};
use crate::zeros;

/// Every case, in the order `all` runs them.
pub const ALL_CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "custom_metadata",
    "very_large_request",
    "very_large_response",
    "rpc_soak",
    "channel_soak",
];

type Outcome = Result<(), String>;

/// Records each call's final status as the client library saw it (cancellations included).
#[derive(Debug, Default)]
struct Outcomes(Mutex<Vec<(String, Code)>>);

impl Interceptor for Outcomes {
    fn on_call<'a>(&'a self, _: &'a mut CallInfo) -> InterceptFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_end(&self, call: &CallInfo, status: &Status) {
        if let Ok(mut all) = self.0.lock() {
            all.push((call.path().to_owned(), status.code()));
        }
    }
}

/// Where the cases run and with what.
#[derive(Debug)]
pub struct Cases {
    target: String,
    credentials: ChannelCredentials,
    service_config: Option<String>,
    channel: Channel,
    outcomes: Arc<Outcomes>,
    soak_iterations: usize,
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(what()) }
}

fn status_err(what: &str, status: Status) -> String {
    format!("{what}: {status}")
}

fn expect_code<T>(result: Result<T, Status>, code: Code, what: &str) -> Result<Status, String> {
    match result {
        Ok(_) => Err(format!("{what}: succeeded, expected {code}")),
        Err(status) if status.code() == code => Ok(status),
        Err(status) => Err(format!("{what}: got {status}, expected {code}")),
    }
}

fn bool_value(value: bool) -> protobuf::MessageField<BoolValue> {
    let mut b = BoolValue::new();
    b.value = value;
    protobuf::MessageField::some(b)
}

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|size| {
            let mut p = ResponseParameters::new();
            p.size = *size;
            p
        })
        .collect()
}

fn large_request() -> SimpleRequest {
    let mut request = SimpleRequest::new();
    request.response_size = 314_159;
    request.payload = zeros(271_828);
    request
}

fn body_len_and_zero(body: &[u8], len: usize, what: &str) -> Outcome {
    check(body.len() == len, || {
        format!("{what}: payload of {} bytes, expected {len}", body.len())
    })?;
    check(body.iter().all(|b| *b == 0), || {
        format!("{what}: payload not all zeros")
    })
}

async fn read_all<T: protobuf::Message>(stream: &mut Streaming<T>) -> Result<Vec<T>, Status> {
    let mut all = Vec::new();
    while let Some(message) = stream.message().await? {
        all.push(message);
    }
    Ok(all)
}

/// A channel builder for `target` with the flags' settings.
fn builder(
    target: &str,
    credentials: &ChannelCredentials,
    service_config: Option<&str>,
) -> ChannelBuilder {
    let builder = Channel::builder(target).credentials(credentials.clone());
    match service_config {
        Some(json) => builder.default_service_config(json),
        None => builder,
    }
}

impl Cases {
    /// Cases against `host:port`, secured by `credentials`.
    ///
    /// # Errors
    ///
    /// If the target is invalid.
    pub fn new(
        target: &str,
        credentials: ChannelCredentials,
        service_config: Option<String>,
        soak_iterations: usize,
    ) -> Result<Cases, String> {
        let outcomes = Arc::new(Outcomes::default());
        let channel = builder(target, &credentials, service_config.as_deref())
            .interceptor(Arc::clone(&outcomes))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Cases {
            target: target.to_owned(),
            credentials,
            service_config,
            channel,
            outcomes,
            soak_iterations,
        })
    }

    fn client(&self) -> TestServiceClient {
        TestServiceClient::new(self.channel.clone())
    }

    /// Runs one case by name, bounded in time.
    pub async fn run(&self, name: &str) -> Outcome {
        let case: Pin<Box<dyn Future<Output = Outcome> + Send + '_>> = match name {
            "empty_unary" => Box::pin(self.empty_unary()),
            "large_unary" => Box::pin(self.large_unary()),
            "client_compressed_unary" => Box::pin(self.client_compressed_unary()),
            "server_compressed_unary" => Box::pin(self.server_compressed_unary()),
            "client_streaming" => Box::pin(self.client_streaming()),
            "client_compressed_streaming" => Box::pin(self.client_compressed_streaming()),
            "server_streaming" => Box::pin(self.server_streaming()),
            "server_compressed_streaming" => Box::pin(self.server_compressed_streaming()),
            "ping_pong" => Box::pin(self.ping_pong()),
            "empty_stream" => Box::pin(self.empty_stream()),
            "timeout_on_sleeping_server" => Box::pin(self.timeout_on_sleeping_server()),
            "cancel_after_begin" => Box::pin(self.cancel_after_begin()),
            "cancel_after_first_response" => Box::pin(self.cancel_after_first_response()),
            "status_code_and_message" => Box::pin(self.status_code_and_message()),
            "special_status_message" => Box::pin(self.special_status_message()),
            "unimplemented_method" => Box::pin(self.unimplemented_method()),
            "unimplemented_service" => Box::pin(self.unimplemented_service()),
            "custom_metadata" => Box::pin(self.custom_metadata()),
            "very_large_request" => Box::pin(self.very_large_request()),
            "very_large_response" => Box::pin(self.very_large_response()),
            "rpc_soak" => Box::pin(self.rpc_soak()),
            "channel_soak" => Box::pin(self.channel_soak()),
            "retry_on_unavailable" => Box::pin(self.retry_on_unavailable()),
            "retry_bidi_on_unavailable" => Box::pin(self.retry_bidi_on_unavailable()),
            "hedging_past_a_stall" => Box::pin(self.hedging_past_a_stall()),
            "error_details" => Box::pin(self.error_details()),
            other => return Err(format!("unknown test case {other:?}")),
        };
        match tokio::time::timeout(Duration::from_secs(60), case).await {
            Ok(outcome) => outcome,
            Err(_) => Err("timed out after 60 s".to_owned()),
        }
    }

    /// Our own case, not the interop spec's: a server following our retry convention
    /// (interop/peers/python/server.py: `x-retry-id`, `x-fail-first`) fails the first two
    /// attempts with UNAVAILABLE; a channel whose service config retries UNAVAILABLE
    /// succeeds on the third, and the server saw `grpc-previous-rpc-attempts: 2`.
    async fn retry_on_unavailable(&self) -> Outcome {
        let channel = builder(&self.target, &self.credentials, Some(RETRY_UNAVAILABLE))
            .build()
            .map_err(|e| e.to_string())?;
        let request = convention_request(SimpleRequest::new(), &[("x-fail-first", "2")])?;
        let reply = TestServiceClient::new(channel)
            .unary_call(request)
            .await
            .map_err(|s| status_err("UnaryCall", s))?;
        attempts_seen(reply.trailers(), "3", "2")
    }

    /// Our own case: as `retry_on_unavailable`, for a bidi call that sends two requests
    /// before reading: both are replayed on each attempt, and the third attempt answers both.
    async fn retry_bidi_on_unavailable(&self) -> Outcome {
        let channel = builder(&self.target, &self.credentials, Some(RETRY_UNAVAILABLE))
            .build()
            .map_err(|e| e.to_string())?;
        let request = convention_request((), &[("x-fail-first", "2")])?;
        let (mut tx, mut stream) = TestServiceClient::new(channel)
            .full_duplex_call(request)
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        for size in [3, 5] {
            let mut request = StreamingOutputCallRequest::new();
            request.response_parameters = params(&[size]);
            tx.send(request)
                .await
                .map_err(|s| status_err("FullDuplexCall send", s))?;
        }
        tx.close();
        let got = read_all(&mut stream)
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        let sizes: Vec<usize> = got.iter().map(|r| r.payload.body.len()).collect();
        check(sizes == [3, 5], || {
            format!("responses of {sizes:?} bytes, expected [3, 5]: both requests replayed")
        })?;
        let trailers = stream.trailers().cloned().unwrap_or_default();
        attempts_seen(&trailers, "3", "2")
    }

    /// Our own case: a hedging policy against a server whose first attempt stalls for 5 s
    /// (the convention's `x-stall-first-ms`): the hedge sent after 200 ms answers, well before
    /// the stall ends.
    async fn hedging_past_a_stall(&self) -> Outcome {
        let config = r#"{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
            "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.2s",
                              "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}"#;
        let channel = builder(&self.target, &self.credentials, Some(config))
            .build()
            .map_err(|e| e.to_string())?;
        let request = convention_request(SimpleRequest::new(), &[("x-stall-first-ms", "5000")])?;
        let started = std::time::Instant::now();
        let reply = TestServiceClient::new(channel)
            .unary_call(request)
            .await
            .map_err(|s| status_err("UnaryCall", s))?;
        let took = started.elapsed();
        check(took < Duration::from_secs(3), || {
            format!("answered after {took:?}: not by the hedge")
        })?;
        attempts_seen(reply.trailers(), "2", "1")
    }

    /// Our own case: a server following the error-details convention (crate::details:
    /// `x-fail-with-details`) fails the call with BadRequest, ErrorInfo and RetryInfo in
    /// `grpc-status-details-bin`; they decode to what the convention says.
    async fn error_details(&self) -> Outcome {
        let mut request = Request::new(SimpleRequest::new());
        request
            .metadata_mut()
            .insert(crate::details::HEADER, "1")
            .map_err(|e| e.to_string())?;
        match self.client().unary_call(request).await {
            Ok(_) => Err("UnaryCall succeeded, expected it to fail with details".to_owned()),
            Err(status) => crate::details::check(&status),
        }
    }

    async fn empty_unary(&self) -> Outcome {
        let reply = self
            .client()
            .empty_call(Empty::new())
            .await
            .map_err(|s| status_err("EmptyCall", s))?;
        check(*reply.get_ref() == Empty::new(), || {
            "non-empty reply".to_owned()
        })
    }

    async fn large_unary_on(&self, client: &TestServiceClient) -> Outcome {
        let reply = client
            .unary_call(large_request())
            .await
            .map_err(|s| status_err("UnaryCall", s))?;
        body_len_and_zero(&reply.get_ref().payload.body, 314_159, "UnaryCall")
    }

    async fn large_unary(&self) -> Outcome {
        self.large_unary_on(&self.client()).await
    }

    async fn client_compressed_unary(&self) -> Outcome {
        let client = self.client();
        let mut probe = large_request();
        probe.expect_compressed = bool_value(true);
        expect_code(
            client.unary_call(probe.clone()).await,
            Code::InvalidArgument,
            "uncompressed probe with expect_compressed",
        )?;
        let mut compressed = Request::new(probe);
        compressed.set_send_compressed(CompressionEncoding::Gzip);
        let reply = client
            .unary_call(compressed)
            .await
            .map_err(|s| status_err("compressed UnaryCall", s))?;
        body_len_and_zero(
            &reply.get_ref().payload.body,
            314_159,
            "compressed UnaryCall",
        )?;
        let mut plain = large_request();
        plain.expect_compressed = bool_value(false);
        let reply = client
            .unary_call(plain)
            .await
            .map_err(|s| status_err("uncompressed UnaryCall", s))?;
        body_len_and_zero(
            &reply.get_ref().payload.body,
            314_159,
            "uncompressed UnaryCall",
        )
    }

    async fn server_compressed_unary(&self) -> Outcome {
        let client = self.client();
        for compress in [true, false] {
            let mut request = large_request();
            request.response_compressed = bool_value(compress);
            let reply = client
                .unary_call(request)
                .await
                .map_err(|s| status_err("UnaryCall", s))?;
            let compressed = reply.extensions().get::<MessageCompressed>().is_some();
            check(compressed == compress, || {
                format!("response_compressed={compress} but the compressed flag was {compressed}")
            })?;
            body_len_and_zero(&reply.get_ref().payload.body, 314_159, "UnaryCall")?;
        }
        Ok(())
    }

    async fn client_streaming(&self) -> Outcome {
        let requests: Vec<_> = [27_182, 8, 1_828, 45_904]
            .into_iter()
            .map(|size| {
                let mut r = StreamingInputCallRequest::new();
                r.payload = zeros(size);
                r
            })
            .collect();
        let reply = self
            .client()
            .streaming_input_call(futures_util::stream::iter(requests))
            .await
            .map_err(|s| status_err("StreamingInputCall", s))?;
        let size = reply.get_ref().aggregated_payload_size;
        check(size == 74_922, || {
            format!("aggregated_payload_size {size}, expected 74922")
        })
    }

    async fn client_compressed_streaming(&self) -> Outcome {
        let input = |expect: bool, size: i32| {
            let mut r = StreamingInputCallRequest::new();
            r.expect_compressed = bool_value(expect);
            r.payload = zeros(size);
            r
        };
        let probe = futures_util::stream::iter(vec![input(true, 27_182)]);
        expect_code(
            self.client().streaming_input_call(probe).await,
            Code::InvalidArgument,
            "uncompressed probe with expect_compressed",
        )?;
        // Per-message compression needs the untyped client: the first message compressed,
        // the second not, on one call sent with gzip.
        let messages = vec![
            Outbound::new(input(true, 27_182)),
            Outbound::uncompressed(input(false, 45_904)),
        ];
        let mut request = Request::new(futures_util::stream::iter(messages));
        request.set_send_compressed(CompressionEncoding::Gzip);
        let reply: Response<StreamingInputCallResponse> = Client::new(self.channel.clone())
            .client_streaming(
                test_service::DESCRIPTOR
                    .method("StreamingInputCall")
                    .expect("declared method"),
                request,
                ProtobufCodec::<StreamingInputCallRequest, StreamingInputCallResponse>::new(),
            )
            .await
            .map_err(|s| status_err("StreamingInputCall", s))?;
        let size = reply.get_ref().aggregated_payload_size;
        check(size == 73_086, || {
            format!("aggregated_payload_size {size}, expected 73086")
        })
    }

    async fn server_streaming(&self) -> Outcome {
        let sizes = [31_415, 9, 2_653, 58_979];
        let mut request = StreamingOutputCallRequest::new();
        request.response_parameters = params(&sizes);
        let mut stream = self
            .client()
            .streaming_output_call(request)
            .await
            .map_err(|s| status_err("StreamingOutputCall", s))?;
        let got = read_all(&mut stream)
            .await
            .map_err(|s| status_err("StreamingOutputCall", s))?;
        check(got.len() == sizes.len(), || {
            format!("{} responses, expected 4", got.len())
        })?;
        for (response, size) in got.iter().zip(sizes) {
            body_len_and_zero(&response.payload.body, size as usize, "response")?;
        }
        Ok(())
    }

    async fn server_compressed_streaming(&self) -> Outcome {
        let mut request = StreamingOutputCallRequest::new();
        request.response_parameters = params(&[31_415, 92_653]);
        request.response_parameters[0].compressed = bool_value(true);
        request.response_parameters[1].compressed = bool_value(false);
        let mut stream = self
            .client()
            .streaming_output_call(request)
            .await
            .map_err(|s| status_err("StreamingOutputCall", s))?;
        for (size, compressed) in [(31_415, true), (92_653, false)] {
            let response = stream
                .message()
                .await
                .map_err(|s| status_err("StreamingOutputCall", s))?
                .ok_or("fewer than two responses")?;
            body_len_and_zero(&response.payload.body, size, "response")?;
            let flag = stream.last_message_compressed();
            check(flag == compressed, || {
                format!("response of {size} bytes: compressed flag {flag}, expected {compressed}")
            })?;
        }
        let rest = read_all(&mut stream)
            .await
            .map_err(|s| status_err("StreamingOutputCall", s))?;
        check(rest.is_empty(), || "more than two responses".to_owned())
    }

    async fn ping_pong(&self) -> Outcome {
        let (mut tx, mut stream) = self
            .client()
            .full_duplex_call(())
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        for (response_size, payload_size) in
            [(31_415, 27_182), (9, 8), (2_653, 1_828), (58_979, 45_904)]
        {
            let mut request = StreamingOutputCallRequest::new();
            request.response_parameters = params(&[response_size]);
            request.payload = zeros(payload_size);
            tx.send(request)
                .await
                .map_err(|s| status_err("FullDuplexCall send", s))?;
            let response = stream
                .message()
                .await
                .map_err(|s| status_err("FullDuplexCall", s))?
                .ok_or("stream ended before the response")?;
            body_len_and_zero(&response.payload.body, response_size as usize, "response")?;
        }
        drop(tx);
        let rest = read_all(&mut stream)
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        check(rest.is_empty(), || {
            "responses after the last ping".to_owned()
        })
    }

    async fn empty_stream(&self) -> Outcome {
        let (tx, mut stream) = self
            .client()
            .full_duplex_call(())
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        drop(tx);
        let got = read_all(&mut stream)
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        check(got.is_empty(), || {
            format!("{} responses, expected none", got.len())
        })
    }

    async fn timeout_on_sleeping_server(&self) -> Outcome {
        let mut first = StreamingOutputCallRequest::new();
        first.payload = zeros(27_182);
        let mut request = Request::new(());
        request.set_timeout(Duration::from_millis(1));
        let result = match self.client().full_duplex_call(request).await {
            Ok((mut tx, mut stream)) => {
                // The deadline may pass before the request goes out; the stream says so.
                let _ = tx.send(first).await;
                let result = stream.message().await.map(drop);
                drop(tx);
                result
            }
            Err(status) => Err(status),
        };
        expect_code(
            result,
            Code::DeadlineExceeded,
            "FullDuplexCall with a 1 ms timeout",
        )
        .map(drop)
    }

    /// The code the client library reported for the last call to `path`.
    fn last_outcome(&self, path: &str) -> Option<Code> {
        let all = self.outcomes.0.lock().ok()?;
        all.iter().rev().find(|(p, _)| p == path).map(|(_, c)| *c)
    }

    async fn cancel_after_begin(&self) -> Outcome {
        // A request stream that never yields: the call has sent its headers only.
        let requests = futures_util::stream::pending::<StreamingInputCallRequest>();
        let client = self.client();
        let call = client.streaming_input_call(requests);
        // Cancelling a call in Rust is dropping it: let it start, then drop it.
        let result = tokio::time::timeout(Duration::from_millis(100), call).await;
        check(result.is_err(), || "the call ended by itself".to_owned())?;
        let code = self.last_outcome(test_service::STREAMING_INPUT_CALL);
        check(code == Some(Code::Cancelled), || {
            format!("call ended with {code:?}, expected Cancelled")
        })
    }

    async fn cancel_after_first_response(&self) -> Outcome {
        let (mut tx, mut stream) = self
            .client()
            .full_duplex_call(())
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        let mut request = StreamingOutputCallRequest::new();
        request.response_parameters = params(&[31_415]);
        request.payload = zeros(27_182);
        tx.send(request)
            .await
            .map_err(|s| status_err("FullDuplexCall send", s))?;
        let first = stream
            .message()
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?
            .ok_or("no first response")?;
        body_len_and_zero(&first.payload.body, 31_415, "first response")?;
        drop(stream);
        drop(tx);
        let code = self.last_outcome(test_service::FULL_DUPLEX_CALL);
        check(code == Some(Code::Cancelled), || {
            format!("call ended with {code:?}, expected Cancelled")
        })
    }

    async fn echo_status(&self, code: i32, message: &str) -> Outcome {
        let mut status = EchoStatus::new();
        status.code = code;
        status.message = message.to_owned();
        let mut unary = SimpleRequest::new();
        unary.response_status = protobuf::MessageField::some(status.clone());
        let got = expect_code(
            self.client().unary_call(unary).await,
            Code::from_i32(code),
            "UnaryCall",
        )?;
        check(got.message() == message, || {
            format!(
                "UnaryCall message {:?}, expected {message:?}",
                got.message()
            )
        })?;
        let mut duplex = StreamingOutputCallRequest::new();
        duplex.response_status = protobuf::MessageField::some(status);
        let result = match self.client().full_duplex_call(()).await {
            Ok((mut tx, mut stream)) => {
                let _ = tx.send(duplex).await;
                tx.close();
                read_all(&mut stream).await.map(drop)
            }
            Err(status) => Err(status),
        };
        let got = expect_code(result, Code::from_i32(code), "FullDuplexCall")?;
        check(got.message() == message, || {
            format!(
                "FullDuplexCall message {:?}, expected {message:?}",
                got.message()
            )
        })
    }

    async fn status_code_and_message(&self) -> Outcome {
        self.echo_status(2, "test status message").await
    }

    async fn special_status_message(&self) -> Outcome {
        self.echo_status(
            2,
            "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n",
        )
        .await
    }

    async fn unimplemented_method(&self) -> Outcome {
        expect_code(
            self.client().unimplemented_call(Empty::new()).await,
            Code::Unimplemented,
            "UnimplementedCall",
        )
        .map(drop)
    }

    async fn unimplemented_service(&self) -> Outcome {
        expect_code(
            UnimplementedServiceClient::new(self.channel.clone())
                .unimplemented_call(Empty::new())
                .await,
            Code::Unimplemented,
            "UnimplementedService/UnimplementedCall",
        )
        .map(drop)
    }

    async fn custom_metadata(&self) -> Outcome {
        const INITIAL: &str = "x-grpc-test-echo-initial";
        const TRAILING: &str = "x-grpc-test-echo-trailing-bin";
        const VALUE: &str = "test_initial_metadata_value";
        const BIN: [u8; 3] = [0xab, 0xab, 0xab];
        let attach = |md: &mut MetadataMap| {
            md.insert(INITIAL, VALUE).expect("valid metadata");
            md.insert_bin(TRAILING, &BIN).expect("valid metadata");
        };
        let check_md =
            |what: &str, headers: Option<&MetadataMap>, trailers: Option<&MetadataMap>| {
                let initial = headers.and_then(|h| h.get(INITIAL));
                check(initial == Some(VALUE), || {
                    format!("{what}: initial metadata {initial:?}, expected {VALUE:?}")
                })?;
                let trailing = trailers.and_then(|t| t.get_bin(TRAILING));
                check(trailing.as_deref() == Some(&BIN[..]), || {
                    format!("{what}: trailing metadata {trailing:?}, expected {BIN:?}")
                })
            };

        let mut request = Request::new(large_request());
        attach(request.metadata_mut());
        let reply = self
            .client()
            .unary_call(request)
            .await
            .map_err(|s| status_err("UnaryCall", s))?;
        check_md("UnaryCall", Some(reply.metadata()), Some(reply.trailers()))?;

        let mut duplex = StreamingOutputCallRequest::new();
        duplex.response_parameters = params(&[314_159]);
        duplex.payload = zeros(271_828);
        let mut request = Request::new(());
        attach(request.metadata_mut());
        let (mut tx, mut stream) = self
            .client()
            .full_duplex_call(request)
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        tx.send(duplex)
            .await
            .map_err(|s| status_err("FullDuplexCall send", s))?;
        tx.close();
        let got = read_all(&mut stream)
            .await
            .map_err(|s| status_err("FullDuplexCall", s))?;
        check(got.len() == 1, || {
            format!("{} responses, expected 1", got.len())
        })?;
        check_md("FullDuplexCall", stream.headers_now(), stream.trailers())
    }

    /// One unary call with a `req`-byte request payload and a `resp`-byte response.
    async fn sized_unary(&self, req: i32, resp: i32) -> Outcome {
        let mut request = SimpleRequest::new();
        request.response_size = resp;
        request.payload = zeros(req);
        let what = format!("UnaryCall with {req} request and {resp} response bytes");
        let reply = self
            .client()
            .unary_call(request)
            .await
            .map_err(|s| status_err(&what, s))?;
        body_len_and_zero(&reply.get_ref().payload.body, resp as usize, &what)
    }

    async fn very_large_request(&self) -> Outcome {
        self.sized_unary(4_000_000, 10).await
    }

    async fn very_large_response(&self) -> Outcome {
        self.sized_unary(10, 4_000_000).await
    }

    async fn rpc_soak(&self) -> Outcome {
        let client = self.client();
        for i in 0..self.soak_iterations {
            self.large_unary_on(&client)
                .await
                .map_err(|e| format!("iteration {i}: {e}"))?;
        }
        Ok(())
    }

    async fn channel_soak(&self) -> Outcome {
        for i in 0..self.soak_iterations {
            // A new channel, so a new connection, every iteration.
            let channel = builder(
                &self.target,
                &self.credentials,
                self.service_config.as_deref(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            self.large_unary_on(&TestServiceClient::new(channel))
                .await
                .map_err(|e| format!("iteration {i}: {e}"))?;
        }
        Ok(())
    }
}

/// Cases of our own, beside the interop spec's; run only when named.
pub const OWN_CASES: &[&str] = &[
    "retry_on_unavailable",
    "retry_bidi_on_unavailable",
    "hedging_past_a_stall",
    "error_details",
];

/// Expands `--test_case`: a name, a comma list, or `all` (the spec's cases).
///
/// # Errors
///
/// An unknown name.
pub fn select(spec: &str) -> Result<Vec<&'static str>, String> {
    if spec == "all" {
        return Ok(ALL_CASES.to_vec());
    }
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            ALL_CASES
                .iter()
                .chain(OWN_CASES)
                .find(|c| **c == name)
                .copied()
                .ok_or_else(|| format!("unknown test case {name:?}"))
        })
        .collect()
}

/// The own retry cases' service config: UNAVAILABLE retried, up to 4 attempts.
const RETRY_UNAVAILABLE: &str = r#"{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
    "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#;

/// A request following the retry convention of `interop/peers/python/server.py`: a fresh
/// `x-retry-id` and the given headers.
fn convention_request<T>(message: T, headers: &[(&str, &str)]) -> Result<Request<T>, String> {
    let id = format!(
        "retry-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-retry-id", &id)
        .map_err(|e| e.to_string())?;
    for (key, value) in headers {
        request
            .metadata_mut()
            .insert(key, value)
            .map_err(|e| e.to_string())?;
    }
    Ok(request)
}

/// Checks the convention's trailers: the attempts the server saw, and the
/// `grpc-previous-rpc-attempts` of the one that answered.
fn attempts_seen(trailers: &MetadataMap, attempts: &str, previous: &str) -> Outcome {
    let seen = trailers.get("x-attempts");
    check(seen == Some(attempts), || {
        format!("the server saw attempts {seen:?}, expected {attempts}")
    })?;
    let got = trailers.get("x-previous-attempts");
    check(got == Some(previous), || {
        format!(
            "the answering attempt carried grpc-previous-rpc-attempts {got:?}, expected {previous}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_cases() {
        assert_eq!(select("all").unwrap().len(), ALL_CASES.len());
        assert_eq!(
            select("empty_unary, ping_pong").unwrap(),
            ["empty_unary", "ping_pong"]
        );
        assert!(select("nope").is_err());
    }
}
