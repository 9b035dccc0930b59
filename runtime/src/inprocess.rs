//! A server and a channel connected in memory, without a socket (gRPC-Go's `bufconn`).
//!
//! Calls go through the whole stack, HTTP/2 included, over an in-memory byte pipe: what a
//! test sees is what a network peer would, minus the network. Each connection the channel
//! makes is a fresh pipe, served by the server like any accepted connection (interceptors,
//! limits and graceful stop included).
//!
//! # Examples
//!
//! ```
//! use grpc_runtime::{inprocess, server::Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = Server::builder().build(); // .add_service(GreeterServer::new(MyGreeter))
//! let channel = inprocess::channel(&server);
//! // let client = GreeterClient::new(channel);
//! channel.connect().await.unwrap();
//! # }
//! ```

use crate::client::Channel;
use crate::server::Server;

/// Bytes each direction of a pipe buffers before a writer waits for its reader.
const PIPE_BUFFER: usize = 256 * 1024;

/// A channel whose connections are in-memory pipes to `server`. Connecting needs a tokio
/// runtime (the server's end of each pipe is served in a task).
pub fn channel(server: &Server) -> Channel {
    let server = server.clone();
    Channel::builder("inprocess")
        .credentials(crate::credentials::ChannelCredentials::insecure())
        .dialer(move || {
            let (client, served) = tokio::io::duplex(PIPE_BUFFER);
            server.spawn_connection(served);
            async move { Ok(client) }
        })
        .build()
        .expect("an in-process channel has no target to parse")
}
