//! The retry demo's call succeeds on its third attempt.

#[tokio::test]
async fn retry_demo() {
    let outcome = examples::retry::run().await.unwrap();
    assert_eq!(outcome.reply, "Hello Ada (attempt 3)");
    assert_eq!(outcome.attempts, 3);
}
