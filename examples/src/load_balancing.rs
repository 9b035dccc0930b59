//! Name resolution and load balancing (`cargo run -p examples --bin load-balancing`): three
//! greeters on loopback, reached through one channel three ways:
//!
//! 1. an `ipv4:` target listing them, with `round_robin`;
//! 2. a [`ManualResolver`] whose addresses the program changes while calls go on;
//! 3. a custom policy, `random_ready`, registered by name and chosen by service config.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use grpc_runtime::balancer::{
    self, Balancer, BalancerBuilder, ChannelController, ConnectivityState, JsonValue, Pick,
    PickInfo, Picker, Subchannel,
};
use grpc_runtime::client::Channel;
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::resolver::manual::ManualResolver;
use grpc_runtime::resolver::{Address, ResolverState};
use grpc_runtime::server::Server;
use grpc_runtime::{Request, Response, Status};

use crate::proto::helloworld::{HelloReply, HelloRequest};
use crate::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};

/// A greeter that says which server it is.
struct Named(String);

impl Greeter for Named {
    async fn say_hello(&self, _: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let mut reply = HelloReply::new();
        reply.message = self.0.clone();
        Ok(Response::new(reply))
    }
}

/// `random_ready`: a connection to every address, each call on a READY one at random. The
/// smallest useful policy: what a balancer does (subchannels in, picker out) without
/// round_robin's bookkeeping.
#[derive(Debug)]
pub struct RandomReadyBuilder;

impl BalancerBuilder for RandomReadyBuilder {
    fn name(&self) -> &str {
        "random_ready"
    }

    fn build(&self, _: Option<&JsonValue>) -> Result<Box<dyn Balancer>, Status> {
        Ok(Box::new(RandomReady::default()))
    }
}

#[derive(Default)]
struct RandomReady {
    subchannels: Vec<Subchannel>,
}

struct RandomPicker {
    ready: Vec<Subchannel>,
    seed: AtomicU64,
}

impl Picker for RandomPicker {
    fn pick(&self, _: &PickInfo<'_>) -> Pick {
        // A tiny xorshift: good enough to spread calls.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        Pick::Subchannel(self.ready[(x % self.ready.len() as u64) as usize].clone())
    }
}

impl RandomReady {
    fn publish(&self, channel: &mut dyn ChannelController) {
        let ready: Vec<Subchannel> = self
            .subchannels
            .iter()
            .filter(|s| s.state() == ConnectivityState::Ready)
            .cloned()
            .collect();
        if ready.is_empty() {
            channel.update_picker(ConnectivityState::Connecting, balancer::queue_picker());
        } else {
            let picker = RandomPicker {
                ready,
                seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            };
            channel.update_picker(ConnectivityState::Ready, Arc::new(picker));
        }
    }
}

impl Balancer for RandomReady {
    fn resolver_update(
        &mut self,
        state: &ResolverState,
        channel: &mut dyn ChannelController,
    ) -> Result<(), Status> {
        for old in self.subchannels.drain(..) {
            old.shutdown();
        }
        for address in &state.addresses {
            let subchannel = channel.new_subchannel(address);
            subchannel.connect();
            self.subchannels.push(subchannel);
        }
        self.publish(channel);
        Ok(())
    }

    fn subchannel_update(
        &mut self,
        subchannel: &Subchannel,
        state: ConnectivityState,
        channel: &mut dyn ChannelController,
    ) {
        if state == ConnectivityState::Idle {
            subchannel.connect();
        }
        self.publish(channel);
    }
}

impl Drop for RandomReady {
    fn drop(&mut self) {
        for subchannel in &self.subchannels {
            subchannel.shutdown();
        }
    }
}

/// How many of `calls` calls each server answered.
async fn tally(channel: &Channel, calls: usize) -> Result<BTreeMap<String, usize>, Status> {
    let client = GreeterClient::new(channel.clone());
    let mut counts = BTreeMap::new();
    for _ in 0..calls {
        let reply = client.say_hello(HelloRequest::new()).await?;
        *counts.entry(reply.into_inner().message).or_default() += 1;
    }
    Ok(counts)
}

/// Calls until every one of `servers` servers has answered (connections come up one by
/// one), within a bound.
async fn until_all_answer(
    channel: &Channel,
    servers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..1000 {
        if tally(channel, servers).await?.len() >= servers {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    Err(format!("not all {servers} servers answered").into())
}

/// What each part of the demo saw: server name → calls answered.
#[derive(Debug)]
pub struct Outcome {
    /// `round_robin` over an `ipv4:` list of the three.
    pub round_robin: BTreeMap<String, usize>,
    /// The manual resolver's first address only.
    pub manual_before: BTreeMap<String, usize>,
    /// After the manual resolver moved the channel to the other two.
    pub manual_after: BTreeMap<String, usize>,
    /// The custom `random_ready` policy over the three.
    pub random_ready: BTreeMap<String, usize>,
}

/// Runs the three parts.
///
/// # Errors
///
/// If a server cannot be started or a call fails.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let server = Server::builder()
            .add_service(GreeterServer::new(Named(name.to_owned())))
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        tokio::spawn(server.serve_tcp(listener));
        servers.push(server);
    }
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();

    // 1. A fixed list, round robin.
    let channel = Channel::builder(&format!("ipv4:{}", list.join(",")))
        .credentials(ChannelCredentials::insecure())
        .load_balancing_policy("round_robin")
        .build()?;
    // Wait for every server's connection, so the count is even.
    channel.connect().await?;
    until_all_answer(&channel, 3).await?;
    let round_robin = tally(&channel, 9).await?;

    // 2. Addresses the program pushes.
    let resolver = ManualResolver::new("example");
    resolver.update_state(ResolverState::new(vec![Address::Tcp(addrs[0])]));
    let channel = Channel::builder("example:///greeters")
        .credentials(ChannelCredentials::insecure())
        .resolver(resolver.clone())
        .default_service_config(r#"{"loadBalancingConfig": [{"round_robin": {}}]}"#)
        .build()?;
    let manual_before = tally(&channel, 4).await?;
    resolver.update_state(ResolverState::new(vec![
        Address::Tcp(addrs[1]),
        Address::Tcp(addrs[2]),
    ]));
    for _ in 0..1000 {
        if !tally(&channel, 1).await?.contains_key("alpha") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    until_all_answer(&channel, 2).await?;
    let manual_after = tally(&channel, 4).await?;

    // 3. A policy of our own, by name, from the service config.
    balancer::register(RandomReadyBuilder);
    let channel = Channel::builder(&format!("ipv4:{}", list.join(",")))
        .credentials(ChannelCredentials::insecure())
        .default_service_config(r#"{"loadBalancingConfig": [{"random_ready": {}}]}"#)
        .build()?;
    channel.connect().await?;
    until_all_answer(&channel, 3).await?;
    let random_ready = tally(&channel, 30).await?;

    for server in servers {
        server.graceful_stop().await;
    }
    Ok(Outcome {
        round_robin,
        manual_before,
        manual_after,
        random_ready,
    })
}
