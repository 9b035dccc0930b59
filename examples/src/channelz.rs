//! Channelz (`cargo run -p examples --bin channelz`): a greeter server that also serves
//! `grpc.channelz.v1.Channelz`; a client makes a few calls, then asks the server's channelz
//! over gRPC what it has seen: its servers with their call counts, the connection the calls
//! came on, and the client's own channel (channelz is process-wide, and both live here).

use grpc_runtime::channelz::pb::{
    ChannelzClient, GetServerSocketsRequest, GetServersRequest, GetSocketRequest,
    GetTopChannelsRequest,
};
use grpc_runtime::client::Channel;
use grpc_runtime::server::Server;
use grpc_runtime::{Request, Response, Status};

use crate::proto::helloworld::{HelloReply, HelloRequest};
use crate::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};

struct Hello;

impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = &request.get_ref().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("a name, please"));
        }
        let mut reply = HelloReply::new();
        reply.message = format!("Hello {name}");
        Ok(Response::new(reply))
    }
}

/// What channelz said.
#[derive(Debug)]
pub struct Outcome {
    /// The server's calls: started, succeeded, failed.
    pub server_calls: (i64, i64, i64),
    /// The messages received and sent on the connection the calls came on.
    pub socket_messages: (i64, i64),
    /// The client's channel: its target and calls started, succeeded, failed.
    pub channel: (String, i64, i64, i64),
}

/// Runs the server and the client, then the channelz queries.
///
/// # Errors
///
/// If the server cannot start, a call fails in a way not asked for, or channelz does not
/// list what the calls made.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let server = Server::builder()
        .add_service(GreeterServer::new(Hello))
        .add_service(grpc_runtime::channelz::service())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.clone().serve_tcp(listener));
    let target = format!("http://{addr}");
    let channel = Channel::new(&target)?;

    // Three greetings, one of them refused.
    let greeter = GreeterClient::new(channel.clone());
    for name in ["Ada", "Grace", ""] {
        let mut request = HelloRequest::new();
        request.name = name.to_owned();
        match greeter.say_hello(request).await {
            Ok(reply) => tracing::info!("{}", reply.get_ref().message),
            Err(status) => tracing::info!("refused: {status}"),
        }
    }

    // Channelz, over gRPC: the server listening on our port, and its connections.
    let channelz = ChannelzClient::new(channel);
    let servers = channelz
        .get_servers(GetServersRequest::new())
        .await?
        .into_inner();
    let mut ours = None;
    for server in &servers.server {
        for listen in &server.listen_socket {
            let mut ask = GetSocketRequest::new();
            ask.socket_id = listen.socket_id;
            let socket = channelz.get_socket(ask).await?.into_inner();
            let port = socket.socket.local.tcpip_address().port;
            if port == i32::from(addr.port()) {
                ours = Some(server.clone());
            }
        }
    }
    let server = ours.ok_or("channelz lists no server on our port")?;
    let data = &server.data;
    // The channelz calls so far count too: the server counts each call as it starts.
    let server_calls = (data.calls_started, data.calls_succeeded, data.calls_failed);

    let mut ask = GetServerSocketsRequest::new();
    ask.server_id = server.ref_.server_id;
    let sockets = channelz.get_server_sockets(ask).await?.into_inner();
    let first = sockets.socket_ref.first().ok_or("no connection listed")?;
    let mut ask = GetSocketRequest::new();
    ask.socket_id = first.socket_id;
    let socket = channelz.get_socket(ask).await?.into_inner().socket;
    let socket_messages = (socket.data.messages_received, socket.data.messages_sent);

    let channels = channelz
        .get_top_channels(GetTopChannelsRequest::new())
        .await?
        .into_inner();
    let channel = channels
        .channel
        .iter()
        .find(|c| c.data.target == target)
        .ok_or("channelz lists no channel to our server")?;
    let data = &channel.data;
    Ok(Outcome {
        server_calls,
        socket_messages,
        channel: (
            data.target.clone(),
            data.calls_started,
            data.calls_succeeded,
            data.calls_failed,
        ),
    })
}
