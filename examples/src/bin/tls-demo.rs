//! `cargo run -p examples --bin tls-demo`: a greeter over mutual TLS with a bearer token;
//! one client allowed by its certificate, one refused by the server's interceptor, one
//! refused in the TLS handshake for having no certificate.

use grpc_runtime::Status;

fn show(who: &str, outcome: &Result<String, Status>) {
    match outcome {
        Ok(reply) => println!("{who}: {reply}"),
        Err(status) => println!("{who}: refused, {status}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    let outcome = examples::tls::run().await?;
    show("alice (allowed certificate)", &outcome.allowed);
    show(
        "mallory (certificate not on the list)",
        &outcome.other_client,
    );
    show("anonymous (no certificate)", &outcome.no_certificate);
    Ok(())
}
