//! `cargo run -p examples --bin helloworld-client [-- TARGET [NAME]]`.

use examples::proto::helloworld::HelloRequest;
use examples::proto::helloworld_grpc::GreeterClient;
use grpc_runtime::client::Channel;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("warn");
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let name = args.next().unwrap_or_else(|| "world".to_owned());
    let client = GreeterClient::new(Channel::new(&target)?);
    let mut request = HelloRequest::new();
    request.name = name;
    let reply = client.say_hello(request).await?;
    println!("{}", reply.get_ref().message);
    Ok(())
}
