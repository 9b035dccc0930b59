//! `cargo run -p examples --bin routeguide-client [-- TARGET]`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("warn");
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:10000".to_owned());
    examples::route_guide::run_client(&target).await
}
