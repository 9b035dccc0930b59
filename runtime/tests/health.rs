//! The `grpc.health.v1.Health` service over TCP: Check, Watch and List, the reporter's
//! changes, and the graceful stop turning every status NOT_SERVING.

mod common;

use std::time::Duration;

use common::*;
use grpc_runtime::Code;
use grpc_runtime::health::pb::{HealthCheckRequest, HealthClient, HealthListRequest};
use grpc_runtime::health::{HealthReporter, ServingStatus};

fn ask(service: &str) -> HealthCheckRequest {
    let mut request = HealthCheckRequest::new();
    request.service = service.to_owned();
    request
}

fn status_of(response: &grpc_runtime::health::pb::HealthCheckResponse) -> ServingStatus {
    response.status.enum_value().unwrap()
}

#[tokio::test]
async fn check_and_list_answer_the_reporters_statuses() {
    let health = HealthReporter::new();
    let running = start_with(|b| b.add_service(health.service())).await;
    let client = HealthClient::new(running.channel());

    let whole = client.check(ask("")).await.unwrap();
    assert_eq!(status_of(whole.get_ref()), ServingStatus::SERVING);

    health.set_serving_status("test.Echo", ServingStatus::NOT_SERVING);
    let echo = client.check(ask("test.Echo")).await.unwrap();
    assert_eq!(status_of(echo.get_ref()), ServingStatus::NOT_SERVING);

    let err = client.check(ask("no.Such")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let list = client.list(HealthListRequest::new()).await.unwrap();
    let mut listed: Vec<(String, ServingStatus)> = list
        .get_ref()
        .statuses
        .iter()
        .map(|(name, r)| (name.clone(), status_of(r)))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        listed,
        [
            (String::new(), ServingStatus::SERVING),
            ("test.Echo".to_owned(), ServingStatus::NOT_SERVING)
        ]
    );
}

/// The next status a watch stream sends.
async fn next(
    watch: &mut grpc_runtime::Streaming<grpc_runtime::health::pb::HealthCheckResponse>,
) -> ServingStatus {
    let message = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a change in time")
        .unwrap();
    status_of(&message.expect("the stream goes on"))
}

#[tokio::test]
async fn watch_streams_every_change() {
    let health = HealthReporter::new();
    let running = start_with(|b| b.add_service(health.service())).await;
    let client = HealthClient::new(running.channel());
    let mut watch = client.watch(ask("test.Echo")).await.unwrap();
    assert_eq!(next(&mut watch).await, ServingStatus::SERVICE_UNKNOWN);
    health.set_serving_status("test.Echo", ServingStatus::SERVING);
    assert_eq!(next(&mut watch).await, ServingStatus::SERVING);
    // The same status again is no change.
    health.set_serving_status("test.Echo", ServingStatus::SERVING);
    health.set_serving_status("test.Echo", ServingStatus::NOT_SERVING);
    assert_eq!(next(&mut watch).await, ServingStatus::NOT_SERVING);
    health.clear("test.Echo");
    assert_eq!(next(&mut watch).await, ServingStatus::SERVICE_UNKNOWN);

    // shutdown and resume, as gRPC-Go's.
    health.set_serving_status("test.Echo", ServingStatus::SERVING);
    assert_eq!(next(&mut watch).await, ServingStatus::SERVING);
    health.shutdown();
    assert_eq!(next(&mut watch).await, ServingStatus::NOT_SERVING);
    health.set_serving_status("test.Echo", ServingStatus::SERVING);
    assert_eq!(health.status("test.Echo"), Some(ServingStatus::NOT_SERVING));
    health.resume();
    assert_eq!(next(&mut watch).await, ServingStatus::SERVING);
}

#[tokio::test]
async fn a_graceful_stop_turns_every_status_not_serving_first() {
    let health = HealthReporter::new();
    health.set_serving_status("test.Echo", ServingStatus::SERVING);
    let running = start_with(|b| b.add_service(health.service())).await;
    let client = HealthClient::new(running.channel());
    let mut watch = client.watch(ask("")).await.unwrap();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(status_of(&first), ServingStatus::SERVING);

    let stopped = tokio::time::timeout(Duration::from_secs(10), running.server.graceful_stop());
    let (stopped, last) = tokio::join!(stopped, watch.message());
    assert!(stopped.is_ok(), "the watch stream does not hold the stop");
    assert_eq!(
        status_of(&last.unwrap().unwrap()),
        ServingStatus::NOT_SERVING
    );
    assert!(
        watch.message().await.unwrap().is_none(),
        "then the stream ends"
    );
    assert_eq!(health.status("test.Echo"), Some(ServingStatus::NOT_SERVING));
}
