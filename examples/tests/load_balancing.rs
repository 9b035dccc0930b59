//! The load-balancing demo spreads calls as it says.

#[tokio::test]
async fn load_balancing_demo() {
    let outcome = examples::load_balancing::run().await.unwrap();
    let even: Vec<usize> = outcome.round_robin.values().copied().collect();
    assert_eq!(even, [3, 3, 3], "{:?}", outcome.round_robin);
    assert_eq!(outcome.manual_before.keys().collect::<Vec<_>>(), ["alpha"]);
    assert_eq!(
        outcome.manual_after.keys().collect::<Vec<_>>(),
        ["beta", "gamma"],
        "{:?}",
        outcome.manual_after
    );
    assert_eq!(outcome.manual_after.values().sum::<usize>(), 4);
    assert_eq!(outcome.random_ready.len(), 3, "{:?}", outcome.random_ready);
    assert_eq!(outcome.random_ready.values().sum::<usize>(), 30);
}
