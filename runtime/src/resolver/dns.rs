//! The `dns` resolver (the default): every address of a host name, through the system's
//! resolver (`getaddrinfo`, as gRPC-Go's native resolver uses Go's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Address, Resolver, ResolverBuilder, ResolverChannel, ResolverState, Target};
use crate::backoff::{self, BackoffConfig};
use crate::status::Status;

/// The port a DNS target without one gets: 443, as in gRPC-Go.
const DEFAULT_PORT: u16 = 443;

/// Builds `dns:` resolvers. Registered by default with gRPC-Go's behaviour: resolve once,
/// then again when the channel asks (a connection failed), at most every 30 s; failures are
/// retried with backoff. Register one with other settings to change them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::resolver::{self, DnsResolverBuilder};
///
/// // Re-resolve every minute too (a headless service that scales), and allow faster
/// // re-resolution on failures.
/// resolver::register(
///     DnsResolverBuilder::default()
///         .refresh_interval(Duration::from_secs(60))
///         .min_interval(Duration::from_secs(5)),
/// );
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct DnsResolverBuilder {
    min_interval: Duration,
    refresh_interval: Option<Duration>,
}

impl Default for DnsResolverBuilder {
    fn default() -> Self {
        DnsResolverBuilder {
            min_interval: Duration::from_secs(30),
            refresh_interval: None,
        }
    }
}

impl DnsResolverBuilder {
    /// The shortest time between two resolutions. Default: 30 s (gRPC-Go's).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// Resolves again this often even when nothing failed. Default: never.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval);
        self
    }
}

impl ResolverBuilder for DnsResolverBuilder {
    fn scheme(&self) -> &str {
        "dns"
    }

    fn build(
        &self,
        target: &Target,
        channel: ResolverChannel,
    ) -> Result<Box<dyn Resolver>, Status> {
        let (host, port) = split_host_port(target.endpoint(), Some(DEFAULT_PORT))
            .map_err(|why| Status::unavailable(format!("invalid target {target}: {why}")))?;
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(resolve_loop(
            host,
            port,
            self.clone(),
            channel,
            Arc::clone(&wake),
        ));
        Ok(Box::new(DnsResolver { wake, task }))
    }
}

struct DnsResolver {
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Resolver for DnsResolver {
    fn resolve_now(&mut self) {
        self.wake.notify_one();
    }
}

impl Drop for DnsResolver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn resolve_loop(
    host: String,
    port: u16,
    config: DnsResolverBuilder,
    channel: ResolverChannel,
    wake: Arc<Notify>,
) {
    let backoff = BackoffConfig::default();
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let found = tokio::net::lookup_host((host.as_str(), port)).await;
        let mut addresses: Vec<SocketAddr> = Vec::new();
        let failure = match found {
            Ok(found) => {
                for addr in found {
                    if !addresses.contains(&addr) {
                        addresses.push(addr);
                    }
                }
                addresses
                    .is_empty()
                    .then(|| format!("DNS resolution of {host:?} found no addresses"))
            }
            Err(e) => Some(format!("DNS resolution of {host:?} failed: {e}")),
        };
        match failure {
            None => {
                failures = 0;
                tracing::debug!(%host, ?addresses, "resolved");
                channel.update_state(ResolverState::new(
                    addresses.into_iter().map(Address::Tcp).collect(),
                ));
                match config.refresh_interval {
                    Some(every) => {
                        tokio::select! {
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(every) => {}
                        }
                    }
                    None => wake.notified().await,
                }
                tokio::time::sleep_until(started + config.min_interval).await;
            }
            Some(why) => {
                tracing::debug!(%host, "{why}");
                channel.report_error(Status::unavailable(why));
                tokio::time::sleep(backoff.delay(failures, backoff::random())).await;
                failures += 1;
            }
        }
    }
}

/// Splits `host[:port]` (IPv6 hosts in brackets); `default_port` when none is given.
pub(crate) fn split_host_port(
    endpoint: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), String> {
    if endpoint.contains(['/', ' ', '@', '?', '#']) {
        return Err("expected host:port".to_owned());
    }
    let (host, port) = if let Some(rest) = endpoint.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("expected host:port")?),
            ),
        }
    } else {
        match endpoint.rsplit_once(':') {
            // A bare IPv6 address without brackets has several colons and no port.
            Some((host, _)) if host.contains(':') => return Err("expected host:port".to_owned()),
            Some((host, port)) => (host, Some(port)),
            None => (endpoint, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".to_owned());
    }
    let port = match port {
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port {text:?} (must be 1 to 65535)"))?,
        None => default_port
            .ok_or("missing port: write host:port (or dns:///host for the default port 443)")?,
    };
    Ok((host.to_owned(), port))
}
