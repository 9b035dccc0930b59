//! Client-side health checking (gRFC A17): the `grpc.health.v1.Health/Watch` stream a
//! subchannel opens on its own connection. It goes around the channel (no interceptors, no
//! picker, not counted as a call for idleness), as gRPC-Go's health client does.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::HeaderValue;

use super::response::H2Response;
use crate::codec::framing::{self, Kind};
use crate::codec::{Codec, Decoder, ProtobufCodec};
use crate::generated::health_v1::health::health_check_response::ServingStatus;
use crate::generated::health_v1::health::{HealthCheckRequest, HealthCheckResponse};
use crate::status::Status;
use crate::streaming::ResponseSource;
use crate::subchannel::{Connection, Health, HealthStream};
use crate::transport;

const WATCH: &str = "/grpc.health.v1.Health/Watch";

/// The largest health message taken (a status: a few bytes).
const MAX_MESSAGE: usize = 64 * 1024;

/// Opens a `Watch` stream for `service` on `connection`.
pub(crate) fn open_watch(
    connection: Connection,
    authority: http::uri::Authority,
    service: String,
) -> HealthStream {
    enum Step {
        Start(Connection, http::uri::Authority, String),
        Reading(Box<H2Response>),
        Done,
    }
    let codec = ProtobufCodec::<HealthCheckRequest, HealthCheckResponse>::new();
    let stream = futures_util::stream::unfold(
        Step::Start(connection, authority, service),
        move |step| async move {
            let mut response = match step {
                Step::Done => return None,
                Step::Reading(response) => response,
                Step::Start(connection, authority, service) => {
                    match start(connection, authority, service, codec).await {
                        Ok(response) => Box::new(response),
                        Err(status) => return Some((Err(status), Step::Done)),
                    }
                }
            };
            let message = std::future::poll_fn(|cx| response.poll_message(cx)).await;
            match message {
                Ok(Some(bytes)) => {
                    let health = decode(codec, bytes);
                    let next = match health {
                        Ok(_) => Step::Reading(response),
                        Err(_) => Step::Done,
                    };
                    Some((health, next))
                }
                Ok(None) => None,
                Err(status) => Some((Err(status), Step::Done)),
            }
        },
    );
    stream.boxed()
}

/// Sends the request: headers and the one message.
async fn start(
    connection: Connection,
    authority: http::uri::Authority,
    service: String,
    mut codec: ProtobufCodec<HealthCheckRequest, HealthCheckResponse>,
) -> Result<H2Response, Status> {
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(WATCH)
        .build()
        .map_err(|e| Status::internal(format!("health check request URI: {e}")))?;
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let mut message = HealthCheckRequest::new();
    message.service = service;
    let frame = framing::encode(
        &mut codec.encoder(),
        &message,
        None,
        MAX_MESSAGE,
        Kind::Request,
        &mut BytesMut::new(),
    )?;
    let mut sender = connection
        .sender
        .ready()
        .await
        .map_err(|e| transport::status_from_h2(&e))?;
    let (response, mut send) = sender
        .send_request(request, false)
        .map_err(|e| transport::status_from_h2(&e))?;
    let _ = transport::send_whole(&mut send, frame).await;
    Ok(H2Response::new(response, MAX_MESSAGE))
}

fn decode(
    mut codec: ProtobufCodec<HealthCheckRequest, HealthCheckResponse>,
    bytes: Bytes,
) -> Result<Health, Status> {
    let response = codec.decoder().decode(bytes)?;
    Ok(match response.status.enum_value() {
        Ok(ServingStatus::SERVING) => Health::Serving,
        Ok(other) => Health::NotServing(format!("{other:?}")),
        Err(value) => Health::NotServing(value.to_string()),
    })
}
