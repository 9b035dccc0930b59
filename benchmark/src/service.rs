//! The BenchmarkService implementation the server hosts.

use grpc_runtime::{Code, Request, Response, ResponseSender, Status, Streaming};

use crate::proto::benchmark_service_grpc::BenchmarkService;
use crate::proto::messages::{Payload, SimpleRequest, SimpleResponse};

/// Answers UnaryCall and StreamingCall with `response_size` zero bytes per request,
/// StreamingFromClient with one such response once the requests end (the last one's size),
/// and StreamingFromServer with such responses until the client cancels.
#[derive(Debug, Default)]
pub struct Bench;

/// The response to `request`: a payload of `response_size` zero bytes.
pub fn response_for(request: &SimpleRequest) -> Result<SimpleResponse, Status> {
    let size = usize::try_from(request.response_size)
        .map_err(|_| Status::invalid_argument("negative response_size"))?;
    let mut payload = Payload::new();
    payload.body = vec![0; size].into();
    let mut response = SimpleResponse::new();
    response.payload = protobuf::MessageField::some(payload);
    Ok(response)
}

impl BenchmarkService for Bench {
    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        Ok(Response::new(response_for(request.get_ref())?))
    }

    async fn streaming_call(
        &self,
        request: Request<Streaming<SimpleRequest>>,
        mut responses: ResponseSender<SimpleResponse>,
    ) -> Result<(), Status> {
        // One response kept across messages and sent by reference, built again only when a
        // request asks for another size: gRPC-Go's benchmark server keeps its response the
        // same way (tonic's API takes each message by value: its server builds one a
        // message). Saves two allocations a ping-pong (the payload's box and its bytes).
        let mut requests = request.into_inner();
        let mut response = SimpleResponse::new();
        while let Some(request) = requests.message().await? {
            let asked = u64::try_from(request.response_size).ok();
            if response.payload.is_none() || Some(response.payload.body.len() as u64) != asked {
                response = response_for(&request)?;
            }
            responses.send_ref(&response).await?;
        }
        Ok(())
    }

    async fn streaming_from_client(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<SimpleResponse>, Status> {
        // Only the last request's response_size matters: each is read and dropped (its
        // payload a slice of the received buffer).
        let mut requests = request.into_inner();
        let mut response_size = 0;
        while let Some(request) = requests.message().await? {
            response_size = request.response_size;
        }
        let mut last = SimpleRequest::new();
        last.response_size = response_size;
        Ok(Response::new(response_for(&last)?))
    }

    async fn streaming_from_server(
        &self,
        request: Request<SimpleRequest>,
        mut responses: ResponseSender<SimpleResponse>,
    ) -> Result<(), Status> {
        // Built once and sent by reference, as gRPC-Go's benchmark server sends one message
        // again and again (tonic's API takes each message by value: its server clones).
        let response = response_for(request.get_ref())?;
        loop {
            match responses.send_ref(&response).await {
                Ok(()) => {}
                // The client cancelled: how every such call ends.
                Err(s) if s.code() == Code::Cancelled => return Ok(()),
                Err(s) => return Err(s),
            }
        }
    }
}
