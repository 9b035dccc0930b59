//! The channelz example: channelz, asked over gRPC, counts the calls the example made.

#[tokio::test]
async fn channelz_counts_the_example_calls() {
    let outcome = examples::channelz::run().await.unwrap();
    // Three greetings (one refused), and the GetServers call whose answer this is, started
    // and not yet ended.
    assert_eq!(outcome.server_calls, (4, 2, 1));
    // Read by the fourth channelz call (GetServers, GetSocket for the one listen socket,
    // GetServerSockets, then this GetSocket): seven requests in, five answers out.
    assert_eq!(outcome.socket_messages, (7, 5));
    // Three greetings and four channelz calls done, GetTopChannels in flight.
    let (target, started, succeeded, failed) = outcome.channel;
    assert!(target.starts_with("http://127.0.0.1:"));
    assert_eq!((started, succeeded, failed), (8, 6, 1));
}
