//! The health and reflection demo sees the status change and the greeter's types.

use grpc_runtime::health::ServingStatus;

#[tokio::test]
async fn health_and_reflection_demo() {
    let outcome = examples::health_reflection::run().await.unwrap();
    assert_eq!(
        outcome.watched,
        [ServingStatus::NOT_SERVING, ServingStatus::SERVING]
    );
    assert_eq!(
        outcome.services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "helloworld.Greeter",
        ]
    );
    assert_eq!(
        outcome.say_hello,
        (
            ".helloworld.HelloRequest".to_owned(),
            ".helloworld.HelloReply".to_owned()
        )
    );
}
