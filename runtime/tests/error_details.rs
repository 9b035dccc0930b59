//! The richer error model over a socket: a handler fails with `google.rpc` error details in
//! `grpc-status-details-bin`, the client decodes them; unknown details survive; details that
//! are not a `google.rpc.Status` give a clear error, never a panic.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use grpc_runtime::error_details::{DetailsErrorKind, ErrorDetails, pb};
use grpc_runtime::server::{ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::{Code, Request, Response, ResponseSender, Status};
use protobuf::Message;
use protobuf::well_known_types::wrappers::StringValue;

const M_FAIL: MethodDescriptor =
    MethodDescriptor::new("Fail", "/test.Details/Fail", MethodKind::Unary);
const M_FAIL_LATE: MethodDescriptor = MethodDescriptor::new(
    "FailLate",
    "/test.Details/FailLate",
    MethodKind::ServerStreaming,
);
static DETAILS_SERVICE: ServiceDescriptor =
    ServiceDescriptor::new("test.Details", &[M_FAIL, M_FAIL_LATE]);
const FAIL: &MethodDescriptor = &DETAILS_SERVICE.methods[0];
const FAIL_LATE: &MethodDescriptor = &DETAILS_SERVICE.methods[1];

/// A custom detail type of "our own", unknown to `ErrorDetails`.
const CUSTOM_URL: &str = "type.googleapis.com/example.Custom";

/// Every standard detail, and one of our own.
fn sent() -> ErrorDetails {
    let mut custom = pb::Any::new();
    custom.type_url = CUSTOM_URL.to_owned();
    custom.value = b"\x08\x2a opaque".to_vec();
    ErrorDetails::new()
        .with_bad_request_violation("name", "must not be empty")
        .with_bad_request_violation("page_size", "must be at most 100 ☺")
        .with_error_info(
            "PAGE_TOO_LARGE",
            "test.example.com",
            [("max", "100"), ("got", "250")],
        )
        .with_retry_info(Duration::from_millis(1500))
        .with_debug_info(["main.rs:1", "lib.rs:2"], "while paging")
        .with_quota_failure_violation("project:p", "reads per minute")
        .with_precondition_failure_violation("TOS", "example.com/terms", "not accepted")
        .with_request_info("req-42", "shard=3")
        .with_resource_info("book", "shelves/1/books/2", "user:me", "not found")
        .with_help_link("paging", "https://example.com/paging")
        .with_localized_message("fr-CH", "taille de page trop grande")
        .with_any(custom)
}

/// The status the request text asks for.
fn failure(text: &str) -> Status {
    match text {
        "details" => Status::with_error_details(Code::InvalidArgument, "bad page ☺", sent()),
        // Not a protobuf message: a length-delimited field running past the end.
        "garbage" => Status::with_details(
            Code::Internal,
            "garbage details",
            Bytes::from_static(b"\x1a\xff\x01abc"),
        ),
        "mismatch" => {
            let mut rpc = pb::Status::new();
            rpc.code = Code::NotFound as i32;
            rpc.message = "other".into();
            let bytes = Bytes::from(rpc.write_to_bytes().unwrap());
            Status::with_details(Code::InvalidArgument, "mismatched", bytes)
        }
        "bad-detail" => {
            let mut bad = pb::Any::new();
            bad.type_url = "type.googleapis.com/google.rpc.RetryInfo".into();
            bad.value = vec![0x0a, 0x05, 0x08];
            let mut rpc = pb::Status::new();
            rpc.code = Code::Unavailable as i32;
            rpc.details.push(bad);
            Status::from_rpc_status(&rpc)
        }
        _ => Status::not_found("plain"),
    }
}

#[derive(Clone)]
struct Details;

impl Service for Details {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &DETAILS_SERVICE
    }

    fn call(&self, method: &str, call: ServerCall) {
        match method {
            "Fail" => call.unary(FAIL, pb(), |r: Request<StringValue>| async move {
                Err::<Response<StringValue>, _>(failure(&r.get_ref().value))
            }),
            "FailLate" => call.server_streaming(
                FAIL_LATE,
                pb(),
                |r: Request<StringValue>, mut tx: ResponseSender<StringValue>| async move {
                    tx.send(s("first")).await?;
                    Err(failure(&r.get_ref().value))
                },
            ),
            _ => call.unimplemented(),
        }
    }
}

async fn fail(srv: &Running, text: &str) -> Status {
    srv.client()
        .unary(FAIL, Request::new(s(text)), pb::<_, StringValue>())
        .await
        .unwrap_err()
}

fn check_sent(status: &Status) {
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "bad page ☺");
    let got = status.error_details().unwrap();
    assert_eq!(got, sent());

    let bad = got.bad_request().unwrap();
    let fields: Vec<(&str, &str)> = bad
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("name", "must not be empty"),
            ("page_size", "must be at most 100 ☺")
        ]
    );
    let info = got.error_info().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("PAGE_TOO_LARGE", "test.example.com")
    );
    assert_eq!(info.metadata["got"], "250");
    assert_eq!(got.retry_delay(), Some(Duration::from_millis(1500)));
    assert_eq!(
        got.debug_info().unwrap().stack_entries,
        ["main.rs:1", "lib.rs:2"]
    );
    assert_eq!(
        got.quota_failure().unwrap().violations[0].subject,
        "project:p"
    );
    assert_eq!(
        got.precondition_failure().unwrap().violations[0].type_,
        "TOS"
    );
    assert_eq!(got.request_info().unwrap().request_id, "req-42");
    assert_eq!(
        got.resource_info().unwrap().resource_name,
        "shelves/1/books/2"
    );
    assert_eq!(
        got.help().unwrap().links[0].url,
        "https://example.com/paging"
    );
    assert_eq!(got.localized_message().unwrap().locale, "fr-CH");

    // The detail of our own arrives as it was sent.
    assert_eq!(got.others().len(), 1);
    assert_eq!(got.others()[0].type_url, CUSTOM_URL);
    assert_eq!(got.others()[0].value, b"\x08\x2a opaque");

    let rpc = status.rpc_status().unwrap();
    assert_eq!(rpc.code, Code::InvalidArgument as i32);
    assert_eq!(rpc.message, "bad page ☺");
    assert_eq!(rpc.details.len(), 11);
}

#[tokio::test]
async fn details_round_trip_in_a_trailers_only_response() {
    let srv = start_with(|b| b.add_service(Details)).await;
    check_sent(&fail(&srv, "details").await);
}

#[tokio::test]
async fn details_round_trip_after_messages() {
    let srv = start_with(|b| b.add_service(Details)).await;
    let mut stream = srv
        .client()
        .server_streaming(
            FAIL_LATE,
            Request::new(s("details")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().value, "first");
    check_sent(&stream.message().await.unwrap_err());
}

#[tokio::test]
async fn a_status_without_details_has_none() {
    let srv = start_with(|b| b.add_service(Details)).await;
    let status = fail(&srv, "plain").await;
    assert!(status.details().is_empty());
    assert!(status.error_details().unwrap().is_empty());
    let rpc = status.rpc_status().unwrap();
    assert_eq!((rpc.code, rpc.message.as_str()), (5, "plain"));
}

#[tokio::test]
async fn details_that_are_not_a_google_rpc_status_are_a_clear_error() {
    let srv = start_with(|b| b.add_service(Details)).await;
    let status = fail(&srv, "garbage").await;
    // The call's own status is intact; only its details cannot be read.
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "garbage details");
    assert_eq!(&status.details()[..], b"\x1a\xff\x01abc");
    let err = status.error_details().unwrap_err();
    assert_eq!(err.kind(), DetailsErrorKind::MalformedStatus);
    assert!(
        err.to_string()
            .starts_with("grpc-status-details-bin (6 bytes) is not a google.rpc.Status: "),
        "{err}"
    );
    assert_eq!(
        status.rpc_status().unwrap_err().kind(),
        DetailsErrorKind::MalformedStatus
    );
}

#[tokio::test]
async fn a_code_that_disagrees_with_grpc_status_is_an_error() {
    let srv = start_with(|b| b.add_service(Details)).await;
    let status = fail(&srv, "mismatch").await;
    let err = status.error_details().unwrap_err();
    assert_eq!(err.kind(), DetailsErrorKind::CodeMismatch);
    assert_eq!(
        err.to_string(),
        "grpc-status-details-bin has google.rpc.Status code 5 (NOT_FOUND), \
         but grpc-status is 3 (INVALID_ARGUMENT)"
    );
    // The raw message is still there for whoever wants it.
    assert_eq!(status.rpc_status().unwrap().message, "other");
}

#[tokio::test]
async fn a_standard_detail_that_does_not_decode_is_an_error() {
    let srv = start_with(|b| b.add_service(Details)).await;
    let status = fail(&srv, "bad-detail").await;
    assert_eq!(status.code(), Code::Unavailable);
    let err = status.error_details().unwrap_err();
    assert_eq!(err.kind(), DetailsErrorKind::MalformedDetail);
    assert!(
        err.to_string().starts_with(
            "detail 0 of the google.rpc.Status (type.googleapis.com/google.rpc.RetryInfo) \
             does not decode as google.rpc.RetryInfo: "
        ),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}
