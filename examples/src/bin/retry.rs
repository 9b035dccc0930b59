//! `cargo run -p examples --bin retry`: a greeter that fails each call's first two attempts,
//! and a client whose service config retries them.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    println!("service config:\n{}", examples::retry::SERVICE_CONFIG);
    let outcome = examples::retry::run().await?;
    println!("reply: {}", outcome.reply);
    println!("attempts the server handled: {}", outcome.attempts);
    Ok(())
}
