//! Resolvers that need no lookup: `ipv4:`/`ipv6:` address lists, `unix:`/`unix-abstract:`
//! sockets, and `passthrough:`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::{Address, Resolver, ResolverBuilder, ResolverChannel, ResolverState, Target};
use crate::status::Status;

/// The port gRPC's naming spec gives an address list entry without one.
const DEFAULT_PORT: u16 = 443;

/// Resolves once, with what the target says; nothing to redo.
struct Done;

impl Resolver for Done {}

/// `ipv4:a.b.c.d[:port][,...]` and `ipv6:[addr][:port][,...]` (gRPC's naming spec).
#[derive(Clone, Copy, Debug)]
pub(crate) enum IpListResolverBuilder {
    V4,
    V6,
}

impl ResolverBuilder for IpListResolverBuilder {
    fn scheme(&self) -> &str {
        match self {
            IpListResolverBuilder::V4 => "ipv4",
            IpListResolverBuilder::V6 => "ipv6",
        }
    }

    fn build(
        &self,
        target: &Target,
        channel: ResolverChannel,
    ) -> Result<Box<dyn Resolver>, Status> {
        let mut addresses = Vec::new();
        for entry in target.endpoint().split(',') {
            let addr = parse_ip_entry(entry, *self).ok_or_else(|| {
                Status::unavailable(format!(
                    "invalid {} address {entry:?} in target {target}",
                    self.scheme()
                ))
            })?;
            addresses.push(Address::Tcp(addr));
        }
        channel.update_state(ResolverState::new(addresses));
        Ok(Box::new(Done))
    }

    fn default_authority(&self, _: &Target) -> String {
        "localhost".to_owned()
    }
}

fn parse_ip_entry(entry: &str, family: IpListResolverBuilder) -> Option<SocketAddr> {
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return matches!(
            (family, addr),
            (IpListResolverBuilder::V4, SocketAddr::V4(_))
                | (IpListResolverBuilder::V6, SocketAddr::V6(_))
        )
        .then_some(addr);
    }
    let host = entry
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(entry);
    let ip: IpAddr = host.parse().ok()?;
    let fits = matches!(
        (family, ip),
        (IpListResolverBuilder::V4, IpAddr::V4(_)) | (IpListResolverBuilder::V6, IpAddr::V6(_))
    );
    fits.then_some(SocketAddr::new(ip, DEFAULT_PORT))
}

/// `unix:path`, `unix:///absolute/path` and `unix-abstract:name`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UnixResolverBuilder {
    Path,
    Abstract,
}

impl ResolverBuilder for UnixResolverBuilder {
    fn scheme(&self) -> &str {
        match self {
            UnixResolverBuilder::Path => "unix",
            UnixResolverBuilder::Abstract => "unix-abstract",
        }
    }

    fn build(
        &self,
        target: &Target,
        channel: ResolverChannel,
    ) -> Result<Box<dyn Resolver>, Status> {
        let endpoint = target.endpoint();
        if endpoint.is_empty() {
            return Err(Status::unavailable(format!(
                "empty socket path in target {target}"
            )));
        }
        let address = match self {
            UnixResolverBuilder::Path => Address::Unix(PathBuf::from(endpoint)),
            UnixResolverBuilder::Abstract => Address::UnixAbstract(endpoint.as_bytes().to_vec()),
        };
        channel.update_state(ResolverState::new(vec![address]));
        Ok(Box::new(Done))
    }

    fn default_authority(&self, _: &Target) -> String {
        "localhost".to_owned()
    }
}

/// One address, whatever the target: for a channel whose dialer makes its connections.
#[derive(Clone, Debug)]
pub(crate) struct SingleResolverBuilder(Address);

impl SingleResolverBuilder {
    pub(crate) fn dialer() -> SingleResolverBuilder {
        SingleResolverBuilder(Address::HostPort("dialer".to_owned(), 0))
    }
}

impl ResolverBuilder for SingleResolverBuilder {
    fn scheme(&self) -> &str {
        "passthrough"
    }

    fn build(&self, _: &Target, channel: ResolverChannel) -> Result<Box<dyn Resolver>, Status> {
        channel.update_state(ResolverState::new(vec![self.0.clone()]));
        Ok(Box::new(Done))
    }
}

/// `passthrough:///host:port`: the name is handed to the connection unresolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassthroughResolverBuilder;

impl ResolverBuilder for PassthroughResolverBuilder {
    fn scheme(&self) -> &str {
        "passthrough"
    }

    fn build(
        &self,
        target: &Target,
        channel: ResolverChannel,
    ) -> Result<Box<dyn Resolver>, Status> {
        let (host, port) = super::dns::split_host_port(target.endpoint(), None)
            .map_err(|why| Status::unavailable(format!("invalid target {target}: {why}")))?;
        let address = match host.parse::<IpAddr>() {
            Ok(ip) => Address::Tcp(SocketAddr::new(ip, port)),
            Err(_) => Address::HostPort(host, port),
        };
        channel.update_state(ResolverState::new(vec![address]));
        Ok(Box::new(Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_lists() {
        use IpListResolverBuilder::{V4, V6};
        assert_eq!(
            parse_ip_entry("10.0.0.1:80", V4),
            Some("10.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_ip_entry("10.0.0.1", V4),
            Some("10.0.0.1:443".parse().unwrap())
        );
        assert_eq!(
            parse_ip_entry("[::1]:80", V6),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_ip_entry("::1", V6),
            Some("[::1]:443".parse().unwrap())
        );
        assert_eq!(
            parse_ip_entry("[::1]", V6),
            Some("[::1]:443".parse().unwrap())
        );
        assert_eq!(parse_ip_entry("::1", V4), None);
        assert_eq!(parse_ip_entry("10.0.0.1", V6), None);
        assert_eq!(parse_ip_entry("example.com:80", V4), None);
    }
}
