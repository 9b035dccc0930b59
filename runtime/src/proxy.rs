//! HTTP CONNECT proxies (gRFC A1): a channel's TCP connections tunnelled through a proxy
//! named in code or by `HTTPS_PROXY`, except for hosts `NO_PROXY` lists.

use std::fmt;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::transport::BoxedIo;

/// The longest CONNECT response head read from a proxy.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Which proxy a channel's connections go through.
///
/// Default: [`Proxy::from_env`], as gRPC-Go does: `HTTPS_PROXY` (or `https_proxy`) names the
/// proxy, `NO_PROXY` (or `no_proxy`) the hosts reached directly; `localhost` and loopback
/// addresses never go through a proxy. Only `dns:` and `passthrough:` targets (host names)
/// are proxied; the proxy resolves the name (the channel skips DNS, per gRFC A1).
///
/// # Examples
///
/// ```
/// use grpc_runtime::client::{Channel, Proxy};
///
/// let channel = Channel::builder("http://api.internal:50051")
///     .proxy(Proxy::http("http://user:secret@proxy.corp:3128")?)
///     .build()?;
/// let direct = Channel::builder("http://api.internal:50051")
///     .proxy(Proxy::none())
///     .build()?;
/// # let _ = (channel, direct);
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Proxy {
    kind: Kind,
}

#[derive(Clone, Default)]
enum Kind {
    #[default]
    FromEnv,
    None,
    Http(HttpProxy),
}

#[derive(Clone)]
pub(crate) struct HttpProxy {
    /// `host:port` of the proxy.
    address: String,
    /// `Basic <base64(user:password)>`, from the URL's user info.
    authorization: Option<String>,
    /// Hosts reached directly (from `NO_PROXY`).
    no_proxy: Vec<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::FromEnv => f.write_str("Proxy::FromEnv"),
            Kind::None => f.write_str("Proxy::None"),
            // Never the credentials.
            Kind::Http(p) => write!(f, "Proxy::Http({})", p.address),
        }
    }
}

impl Proxy {
    /// The proxy the environment names (`HTTPS_PROXY`, `NO_PROXY`): the default.
    pub fn from_env() -> Proxy {
        Proxy {
            kind: Kind::FromEnv,
        }
    }

    /// No proxy: connect directly.
    pub fn none() -> Proxy {
        Proxy { kind: Kind::None }
    }

    /// The HTTP CONNECT proxy at `url` (`http://[user:password@]host[:port]`, port 80 by
    /// default), for every host.
    ///
    /// # Errors
    ///
    /// If the URL is not of that form.
    pub fn http(url: &str) -> Result<Proxy, Error> {
        Ok(Proxy {
            kind: Kind::Http(parse_url(url, Vec::new())?),
        })
    }

    /// The proxy to use for connections to `host`, if any.
    pub(crate) fn for_host(&self, host: &str) -> Result<Option<HttpProxy>, Error> {
        let proxy = match &self.kind {
            Kind::None => return Ok(None),
            Kind::Http(proxy) => proxy.clone(),
            Kind::FromEnv => {
                // Local hosts first: a malformed HTTPS_PROXY never stops a local channel.
                if is_local(host) {
                    return Ok(None);
                }
                let Some(url) = env("HTTPS_PROXY") else {
                    return Ok(None);
                };
                let no_proxy = env("NO_PROXY")
                    .map(|list| {
                        list.split(',')
                            .map(|h| h.trim().to_ascii_lowercase())
                            .filter(|h| !h.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                parse_url(&url, no_proxy)
                    .map_err(|e| Error::invalid_config(&format!("HTTPS_PROXY: {e}")))?
            }
        };
        Ok((!proxy.bypassed(host)).then_some(proxy))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| std::env::var(name.to_ascii_lowercase()).ok())
        .filter(|v| !v.is_empty())
}

fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_url(url: &str, no_proxy: Vec<String>) -> Result<HttpProxy, Error> {
    let bad = |why: &str| Error::invalid_config(&format!("invalid proxy URL {url:?}: {why}"));
    let rest = url
        .strip_prefix("http://")
        .or_else(|| (!url.contains("://")).then_some(url))
        .ok_or_else(|| bad("only http:// proxies are supported"))?;
    let rest = rest.trim_end_matches('/');
    let (user_info, host_port) = match rest.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, rest),
    };
    if host_port.is_empty() || host_port.contains('/') {
        return Err(bad("expected host[:port]"));
    }
    let has_port = match host_port.rsplit_once(':') {
        Some((host, port)) => !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    } && !host_port.ends_with(']');
    let address = if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:80")
    };
    let authorization = user_info.map(|user| {
        let decoded = percent_encoding::percent_decode_str(user).decode_utf8_lossy();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes())
        )
    });
    Ok(HttpProxy {
        address,
        authorization,
        no_proxy,
    })
}

impl HttpProxy {
    /// Whether `NO_PROXY` sends `host` direct: `*`, the host itself, or a domain it is in.
    fn bypassed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.no_proxy.iter().any(|rule| {
            let rule = rule.trim_start_matches('.');
            rule == "*"
                || host == rule
                || host
                    .strip_suffix(rule)
                    .is_some_and(|prefix| prefix.ends_with('.'))
        })
    }

    /// A tunnel to `target` (`host:port`) through the proxy.
    pub(crate) async fn connect(&self, target: &str) -> std::io::Result<BoxedIo> {
        let mut stream = tokio::net::TcpStream::connect(self.address.as_str())
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("proxy {}: {e}", self.address)))?;
        crate::transport::set_nodelay(&stream);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        // Byte by byte up to the blank line: whatever follows is the server's, and must stay
        // in the stream (once per connection, so the syscalls do not matter).
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_RESPONSE_HEAD {
                return Err(std::io::Error::other(format!(
                    "proxy {}: CONNECT response head over {MAX_RESPONSE_HEAD} bytes",
                    self.address
                )));
            }
            let byte = stream.read_u8().await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("proxy {}: no CONNECT response: {e}", self.address),
                )
            })?;
            head.push(byte);
        }
        let head = String::from_utf8_lossy(&head);
        let status_line = head.lines().next().unwrap_or_default();
        let code = status_line.split_whitespace().nth(1).unwrap_or_default();
        if !code.starts_with('2') || code.len() != 3 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!(
                    "proxy {} refused CONNECT {target}: {status_line}",
                    self.address
                ),
            ));
        }
        Ok(Box::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_no_proxy() {
        let p = parse_url("http://u%40x:p@proxy:3128", vec![]).unwrap();
        assert_eq!(p.address, "proxy:3128");
        assert_eq!(
            p.authorization.as_deref(),
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("u@x:p")
                )
                .as_str()
            )
        );
        assert_eq!(
            parse_url("proxy.corp", vec![]).unwrap().address,
            "proxy.corp:80"
        );
        assert_eq!(
            parse_url("http://[::1]", vec![]).unwrap().address,
            "[::1]:80"
        );
        assert_eq!(
            parse_url("http://[::1]:8", vec![]).unwrap().address,
            "[::1]:8"
        );
        assert!(parse_url("https://proxy:1", vec![]).is_err());
        let p = parse_url(
            "http://p:1",
            vec!["internal.corp".into(), ".svc".into(), "10.0.0.1".into()],
        )
        .unwrap();
        assert!(p.bypassed("internal.corp"));
        assert!(p.bypassed("api.internal.corp"));
        assert!(p.bypassed("a.b.svc"));
        assert!(p.bypassed("10.0.0.1"));
        assert!(!p.bypassed("xinternal.corp"));
        assert!(!p.bypassed("example.com"));
        assert!(is_local("localhost") && is_local("127.0.0.1") && is_local("[::1]"));
        assert!(!is_local("10.0.0.1"));
    }
}
