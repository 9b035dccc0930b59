//! `grpc.testing.TestService` as gRPC's interop test descriptions specify the server.

use std::time::Duration;

use grpc_runtime::codec::MessageCompressed;
use grpc_runtime::{
    Code, CompressionEncoding, MetadataMap, Request, Response, ResponseSender, Status, Streaming,
};

use crate::proto::empty::Empty;
use crate::proto::messages::{
    EchoStatus, ResponseParameters, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use crate::proto::test_grpc::TestService;
use crate::zeros;

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// The interop test service.
#[derive(Debug, Default)]
pub struct TestServiceImpl;

/// Header and trailer metadata to echo back, per "Echo Metadata".
fn echoed(request: &MetadataMap) -> (MetadataMap, MetadataMap) {
    let mut headers = MetadataMap::new();
    let mut trailers = MetadataMap::new();
    for value in request.get_all(ECHO_INITIAL) {
        let _ = headers.append(ECHO_INITIAL, value);
    }
    for value in request.get_all_bin(ECHO_TRAILING) {
        let _ = trailers.append_bin(ECHO_TRAILING, &value);
    }
    (headers, trailers)
}

/// The status a request asks for with `response_status`, if any ("Echo Status"), carrying
/// `trailers` (a unary call's echoed trailers; streaming calls set theirs on the sender,
/// which sends them with any status, so they pass none here: once is enough).
fn requested_status(status: Option<&EchoStatus>, trailers: &MetadataMap) -> Option<Status> {
    let status = status?;
    if status.code == 0 {
        return None;
    }
    let mut status = Status::new(Code::from_i32(status.code), status.message.clone());
    status.metadata_mut().merge(trailers.clone());
    Some(status)
}

/// "CompressedRequest": a request that says it was compressed must have been.
fn check_compressed(expect: Option<bool>, compressed: bool) -> Result<(), Status> {
    match expect {
        Some(true) if !compressed => Err(Status::invalid_argument(
            "expected a compressed request message, got an uncompressed one",
        )),
        Some(false) if compressed => Err(Status::invalid_argument(
            "expected an uncompressed request message, got a compressed one",
        )),
        _ => Ok(()),
    }
}

/// A response size the server can send (its default send limit): checked before the
/// payload is made, so a 10-byte request cannot make the server build a 400 MiB answer.
fn sendable(size: i32) -> Result<i32, Status> {
    let limit = grpc_runtime::server::DEFAULT_MAX_SEND_MESSAGE_SIZE;
    if usize::try_from(size).is_ok_and(|size| size > limit) {
        return Err(Status::resource_exhausted(format!(
            "a {size}-byte response is over the server's {limit}-byte send limit"
        )));
    }
    Ok(size)
}

/// Sends one response per parameter, sleeping `interval_us` before each and compressing
/// the ones that ask for it.
async fn respond(
    parameters: &[ResponseParameters],
    responses: &mut ResponseSender<StreamingOutputCallResponse>,
) -> Result<(), Status> {
    for p in parameters {
        if p.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(p.interval_us as u64)).await;
        }
        let mut response = StreamingOutputCallResponse::new();
        response.payload = zeros(sendable(p.size)?);
        if p.compressed.as_ref().is_some_and(|c| c.value) {
            responses.send(response).await?;
        } else {
            responses.send_uncompressed(response).await?;
        }
    }
    Ok(())
}

fn wants_compression(parameters: &[ResponseParameters]) -> bool {
    parameters
        .iter()
        .any(|p| p.compressed.as_ref().is_some_and(|c| c.value))
}

impl TestService for TestServiceImpl {
    async fn empty_call(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty::new()))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        // Our own error-details convention (crate::details), not the interop spec's.
        if request.metadata().contains_key(crate::details::HEADER) {
            return Err(crate::details::status());
        }
        let (headers, trailers) = echoed(request.metadata());
        let compressed = request.extensions().get::<MessageCompressed>().is_some();
        let message = request.into_inner();
        check_compressed(
            message.expect_compressed.as_ref().map(|b| b.value),
            compressed,
        )?;
        if let Some(status) = requested_status(message.response_status.as_ref(), &trailers) {
            return Err(status);
        }
        let mut reply = SimpleResponse::new();
        reply.payload = zeros(sendable(message.response_size)?);
        let mut response = Response::new(reply);
        if message
            .response_compressed
            .as_ref()
            .is_some_and(|c| c.value)
        {
            response.set_send_compressed(CompressionEncoding::Gzip);
        }
        *response.metadata_mut() = headers;
        *response.trailers_mut() = trailers;
        Ok(response)
    }

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
        mut responses: ResponseSender<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let (headers, trailers) = echoed(request.metadata());
        responses.set_headers(headers)?;
        responses.set_trailers(trailers);
        let message = request.into_inner();
        if wants_compression(&message.response_parameters) {
            responses.set_send_compressed(Some(CompressionEncoding::Gzip))?;
        }
        respond(&message.response_parameters, &mut responses).await?;
        match requested_status(message.response_status.as_ref(), &MetadataMap::new()) {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut requests = request.into_inner();
        let mut total = 0;
        while let Some(message) = requests.message().await? {
            check_compressed(
                message.expect_compressed.as_ref().map(|b| b.value),
                requests.last_message_compressed(),
            )?;
            total += message.payload.body.len();
        }
        let mut reply = StreamingInputCallResponse::new();
        reply.aggregated_payload_size = i32::try_from(total).unwrap_or(i32::MAX);
        Ok(Response::new(reply))
    }

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
        mut responses: ResponseSender<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let (headers, trailers) = echoed(request.metadata());
        responses.set_headers(headers)?;
        responses.set_trailers(trailers);
        let mut requests = request.into_inner();
        let mut chose_compression = false;
        while let Some(message) = requests.message().await? {
            let status = requested_status(message.response_status.as_ref(), &MetadataMap::new());
            if let Some(status) = status {
                return Err(status);
            }
            if !chose_compression && wants_compression(&message.response_parameters) {
                // Only possible before the first response; later ones stay as they began.
                let _ = responses.set_send_compressed(Some(CompressionEncoding::Gzip));
            }
            chose_compression = true;
            respond(&message.response_parameters, &mut responses).await?;
        }
        Ok(())
    }

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
        mut responses: ResponseSender<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let mut requests = request.into_inner();
        let mut all = Vec::new();
        while let Some(message) = requests.message().await? {
            all.push(message);
        }
        for message in all {
            respond(&message.response_parameters, &mut responses).await?;
        }
        Ok(())
    }
}
