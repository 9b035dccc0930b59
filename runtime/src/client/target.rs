//! Parsing a channel's target: `host:port`, `dns:[//authority/]host[:port]`,
//! `passthrough:///host:port`, `http://host[:port]`, `https://host[:port]`, `unix:path`,
//! `unix:///absolute/path`.

use std::path::PathBuf;

use http::uri::Authority;

use crate::error::Error;

/// Where a channel connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// A host (name or IP) and port, resolved at connect time.
    Tcp { host: String, port: u16 },
    /// A Unix domain socket path.
    Unix(PathBuf),
}

/// The security a target's scheme implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Implied {
    /// `http://`.
    Plaintext,
    /// `unix:`: a local socket, plaintext unless the credentials say otherwise.
    Local,
    /// `https://`.
    Tls,
    /// Any other form: the channel's credentials must say.
    Nothing,
}

/// A parsed target.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) address: Address,
    pub(crate) authority: Authority,
    pub(crate) implied: Implied,
}

/// gRPC-Go's DNS resolver's port when the target names none.
const DNS_DEFAULT_PORT: u16 = 443;
/// The port `http://` implies.
const HTTP_DEFAULT_PORT: u16 = 80;
/// The port `https://` implies.
const HTTPS_DEFAULT_PORT: u16 = 443;

/// Parses a gRPC target into an address, the `:authority` to send and the security its
/// scheme implies.
pub(crate) fn parse(target: &str) -> Result<Target, Error> {
    let bad = |why: &str| Error::invalid_target(target, why);
    if let Some(rest) = target.strip_prefix("unix:") {
        // unix:///abs/path and unix:/abs/path are absolute; unix:rel/path is relative.
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(bad("empty socket path"));
        }
        return Ok(Target {
            address: Address::Unix(PathBuf::from(path)),
            authority: Authority::from_static("localhost"),
            implied: Implied::Local,
        });
    }
    // The scheme decides the port a target without one gets: DNS names default to 443 as
    // in gRPC-Go's resolver, `http://` to 80; a bare `host` or `passthrough:` has none
    // (gRPC-Go's dialer fails on it too).
    let mut implied = Implied::Nothing;
    let (host_port, default_port) = if let Some(rest) = target.strip_prefix("dns:") {
        // dns:///host:port, or dns://resolver-authority/host:port (the resolver is ignored).
        let rest = match rest.strip_prefix("//") {
            Some(after) => after.split_once('/').map_or(after, |(_, name)| name),
            None => rest,
        };
        (rest, Some(DNS_DEFAULT_PORT))
    } else if let Some(rest) = target.strip_prefix("passthrough:///") {
        (rest, None)
    } else if let Some(rest) = target.strip_prefix("http://") {
        implied = Implied::Plaintext;
        (rest.trim_end_matches('/'), Some(HTTP_DEFAULT_PORT))
    } else if let Some(rest) = target.strip_prefix("https://") {
        implied = Implied::Tls;
        (rest.trim_end_matches('/'), Some(HTTPS_DEFAULT_PORT))
    } else {
        (target, None)
    };
    let (host, port) = split_host_port(host_port).ok_or_else(|| bad("expected host:port"))?;
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = match port {
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("invalid port {text:?} (must be 1 to 65535)")))?,
        None => default_port.ok_or_else(|| {
            bad("missing port: write host:port (or dns:///host for the default port 443)")
        })?,
    };
    let authority_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let authority: Authority = format!("{authority_host}:{port}")
        .parse()
        .map_err(|_| bad("expected host:port"))?;
    Ok(Target {
        address: Address::Tcp {
            host: host.to_owned(),
            port,
        },
        authority,
        implied,
    })
}

/// Splits `host[:port]` (with `[v6]` hosts); `None` if malformed.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.contains(['/', ' ', '@', '?', '#']) {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address without brackets has several colons and no port.
        Some((host, _)) if host.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(target: &str) -> (String, u16, String) {
        match parse(target).unwrap() {
            Target {
                address: Address::Tcp { host, port },
                authority,
                ..
            } => (host, port, authority.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn targets() {
        let expect = ("localhost".to_owned(), 50051, "localhost:50051".to_owned());
        for t in [
            "localhost:50051",
            "dns:///localhost:50051",
            "dns:localhost:50051",
            "dns://8.8.8.8/localhost:50051",
            "passthrough:///localhost:50051",
            "http://localhost:50051",
            "http://localhost:50051/",
        ] {
            assert_eq!(tcp(t), expect, "{t}");
        }
        assert_eq!(
            tcp("[::1]:80"),
            ("::1".to_owned(), 80, "[::1]:80".to_owned())
        );
        assert_eq!(
            parse("unix:///tmp/s.sock").unwrap().address,
            Address::Unix("/tmp/s.sock".into())
        );
        assert_eq!(
            parse("unix:rel.sock").unwrap().address,
            Address::Unix("rel.sock".into())
        );
        for bad in ["", "unix:", "https://", "a b:1", ":80", "::1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// Regression: `127.0.0.1:99999` was accepted and dialed port 443; a target without a
    /// port silently used 443.
    #[test]
    fn implied_security() {
        for (target, implied) in [
            ("http://h:1", Implied::Plaintext),
            ("unix:/s", Implied::Local),
            ("https://h:1", Implied::Tls),
            ("h:1", Implied::Nothing),
            ("dns:///h:1", Implied::Nothing),
            ("passthrough:///h:1", Implied::Nothing),
        ] {
            assert_eq!(parse(target).unwrap().implied, implied, "{target}");
        }
    }

    #[test]
    fn ports() {
        for bad in [
            "127.0.0.1:99999",
            "localhost:0",
            "localhost:x",
            "localhost:-1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.is_invalid_target(), "{bad}");
            assert!(err.to_string().contains("invalid port"), "{bad}: {err}");
        }
        let err = parse("localhost").unwrap_err();
        assert!(err.to_string().contains("missing port"), "{err}");
        assert!(parse("passthrough:///localhost").is_err());
        assert_eq!(tcp("dns:///example.com").1, 443);
        assert_eq!(tcp("dns:///example.com").2, "example.com:443");
        assert_eq!(tcp("http://example.com").1, 80);
        assert_eq!(tcp("https://example.com").1, 443);
        assert_eq!(tcp("https://example.com:8443/").2, "example.com:8443");
        assert_eq!(tcp("localhost:65535").1, 65535);
    }
}
