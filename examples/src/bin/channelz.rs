//! `cargo run -p examples --bin channelz`: a server with channelz; a client that makes a
//! few calls and asks channelz what it saw.

use examples::channelz::run;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    let outcome = run().await?;
    let (started, succeeded, failed) = outcome.server_calls;
    println!("server: {started} calls started, {succeeded} succeeded, {failed} failed");
    let (received, sent) = outcome.socket_messages;
    println!("its connection: {received} messages received, {sent} sent");
    let (target, started, succeeded, failed) = &outcome.channel;
    println!(
        "channel to {target}: {started} calls started, {succeeded} succeeded, {failed} failed"
    );
    Ok(())
}
