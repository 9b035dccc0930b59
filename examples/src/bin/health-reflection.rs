//! `cargo run -p examples --bin health-reflection`: a server with health checking and
//! reflection; a client that watches the health change and asks reflection about it.

use examples::health_reflection::run;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    let outcome = run().await?;
    println!(
        "health of helloworld.Greeter, as watched: {:?}",
        outcome.watched
    );
    println!("services, from reflection: {:?}", outcome.services);
    let (request, response) = &outcome.say_hello;
    println!("helloworld.Greeter.SayHello takes {request} and returns {response}");
    Ok(())
}
