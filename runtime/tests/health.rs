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

mod client_side {
    //! gRFC A17: round_robin picks only subchannels whose server says SERVING.

    use super::*;
    use grpc_runtime::client::{Channel, Client};
    use grpc_runtime::credentials::ChannelCredentials;
    use grpc_runtime::{Request, Response};
    use protobuf::well_known_types::wrappers::StringValue;
    use std::sync::atomic::Ordering;

    const CONFIG: &str = r#"{"loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": "test.Echo"}}"#;

    fn started(server: &Running) -> usize {
        server.echo.observed.started.load(Ordering::SeqCst)
    }

    async fn calls(channel: &Channel, n: usize) {
        for _ in 0..n {
            let mut request = Request::new(s("hi"));
            request.set_timeout(Duration::from_secs(5));
            let _: Response<StringValue> = Client::new(channel.clone())
                .unary(UNARY, request, pb())
                .await
                .unwrap();
        }
    }

    /// Calls until `cond` holds of the two servers' counts (the balancer hears of health
    /// changes asynchronously), then returns the counts.
    async fn settle(
        channel: &Channel,
        a: &Running,
        b: &Running,
        cond: impl Fn(usize, usize) -> bool,
    ) {
        for _ in 0..200 {
            let (a0, b0) = (started(a), started(b));
            calls(channel, 6).await;
            if cond(started(a) - a0, started(b) - b0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the balancer never settled");
    }

    #[tokio::test]
    async fn round_robin_skips_servers_that_are_not_serving() {
        let (health_a, health_b) = (HealthReporter::new(), HealthReporter::new());
        health_a.set_serving_status("test.Echo", ServingStatus::SERVING);
        health_b.set_serving_status("test.Echo", ServingStatus::NOT_SERVING);
        let a = start_with(|b| b.add_service(health_a.service())).await;
        let b = start_with(|b| b.add_service(health_b.service())).await;
        let channel = Channel::builder(&format!("ipv4:{},{}", a.addr, b.addr))
            .credentials(ChannelCredentials::insecure())
            .default_service_config(CONFIG)
            .build()
            .unwrap();
        // B's connection is up, but its server says NOT_SERVING: every call goes to A.
        calls(&channel, 10).await;
        assert_eq!((started(&a), started(&b)), (10, 0));

        // B turns SERVING: both take calls.
        health_b.set_serving_status("test.Echo", ServingStatus::SERVING);
        settle(&channel, &a, &b, |da, db| da == 3 && db == 3).await;

        // A turns NOT_SERVING (the whole server's status does not matter): B only.
        health_a.set_serving_status("test.Echo", ServingStatus::NOT_SERVING);
        settle(&channel, &a, &b, |da, db| da == 0 && db == 6).await;

        // A forgets the service: SERVICE_UNKNOWN is not SERVING either.
        health_a.clear("test.Echo");
        calls(&channel, 4).await;
        health_a.set_serving_status("test.Echo", ServingStatus::SERVING);
        settle(&channel, &a, &b, |da, db| da == 3 && db == 3).await;
    }

    #[tokio::test]
    async fn a_server_without_the_health_service_counts_as_healthy() {
        let a = start().await;
        let channel = Channel::builder(&format!("ipv4:{}", a.addr))
            .credentials(ChannelCredentials::insecure())
            .default_service_config(CONFIG)
            .build()
            .unwrap();
        calls(&channel, 3).await;
        assert_eq!(started(&a), 3);
    }

    #[tokio::test]
    async fn pick_first_does_not_check_health() {
        let health = HealthReporter::new();
        health.set_serving_status("test.Echo", ServingStatus::NOT_SERVING);
        let a = start_with(|b| b.add_service(health.service())).await;
        let config = r#"{"healthCheckConfig": {"serviceName": "test.Echo"}}"#;
        let channel = Channel::builder(&format!("ipv4:{}", a.addr))
            .credentials(ChannelCredentials::insecure())
            .default_service_config(config)
            .build()
            .unwrap();
        calls(&channel, 2).await;
        assert_eq!(started(&a), 2);
    }
}
