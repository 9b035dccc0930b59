//! `cargo run -p examples --bin load-balancing`: one channel over three greeters, balanced by
//! round_robin over an `ipv4:` list, by addresses a manual resolver pushes, and by a policy
//! of our own (`random_ready`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    let outcome = examples::load_balancing::run().await?;
    println!(
        "round_robin over ipv4:alpha,beta,gamma: {:?}",
        outcome.round_robin
    );
    println!("manual resolver, [alpha]: {:?}", outcome.manual_before);
    println!(
        "manual resolver, moved to [beta, gamma]: {:?}",
        outcome.manual_after
    );
    println!("custom policy random_ready: {:?}", outcome.random_ready);
    Ok(())
}
