//! Parsing a channel's target: `host:port`, `dns:[//authority/]host[:port]`,
//! `passthrough:///host:port`, `http://host[:port]`, `https://host[:port]`, `unix:path`,
//! `unix:///absolute/path`.

use http::uri::Authority;

use crate::error::Error;
use crate::resolver::{self, ResolverBuilder, Target, split_host_port};

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
pub(crate) struct Parsed {
    /// What the resolver gets.
    pub(crate) target: Target,
    /// The `:authority` calls carry.
    pub(crate) authority: Authority,
    pub(crate) implied: Implied,
    /// The host name, for TLS and the proxy decision (none for sockets and lists).
    pub(crate) host: Option<String>,
}

impl Parsed {
    /// A target that only names a channel whose dialer makes its connections.
    pub(crate) fn named(name: &str) -> Parsed {
        Parsed {
            target: Target::new("passthrough", "", name),
            authority: Authority::from_static("localhost"),
            implied: Implied::Nothing,
            host: None,
        }
    }
}

/// gRPC-Go's DNS resolver's port when the target names none.
const DNS_DEFAULT_PORT: u16 = 443;
/// The port `http://` implies.
const HTTP_DEFAULT_PORT: u16 = 80;
/// The port `https://` implies.
const HTTPS_DEFAULT_PORT: u16 = 443;

/// Parses a gRPC target (gRPC's naming spec, plus `http://` and `https://`): the resolver's
/// target, the `:authority`, the security the scheme implies. `custom` is a resolver the
/// channel carries (its scheme counts as registered).
pub(crate) fn parse(target: &str, custom: Option<&dyn ResolverBuilder>) -> Result<Parsed, Error> {
    let bad = |why: &str| Error::invalid_target(target, why);
    for (prefix, scheme) in [("unix-abstract:", "unix-abstract"), ("unix:", "unix")] {
        if let Some(rest) = target.strip_prefix(prefix) {
            // unix:///abs/path and unix:/abs/path are absolute; unix:rel/path is relative.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Parsed {
                target: Target::new(scheme, "", path),
                authority: Authority::from_static("localhost"),
                implied: Implied::Local,
                host: None,
            });
        }
    }
    for (prefix, port, implied) in [
        ("http://", HTTP_DEFAULT_PORT, Implied::Plaintext),
        ("https://", HTTPS_DEFAULT_PORT, Implied::Tls),
    ] {
        if let Some(rest) = target.strip_prefix(prefix) {
            let mut parsed = dns(target, rest.trim_end_matches('/'), Some(port))?;
            parsed.implied = implied;
            return Ok(parsed);
        }
    }
    if let Some((scheme, rest)) = target.split_once(':') {
        let known = custom.is_some_and(|c| c.scheme().eq_ignore_ascii_case(scheme))
            || (is_scheme(scheme) && resolver::lookup(scheme).is_some());
        if known {
            let (uri_authority, endpoint) = match rest.strip_prefix("//") {
                Some(after) => after.split_once('/').unwrap_or((after, "")),
                None => ("", rest),
            };
            let scheme = scheme.to_ascii_lowercase();
            return match scheme.as_str() {
                // The resolver's authority (a DNS server) is not used: the system's is.
                "dns" => dns(target, endpoint, Some(DNS_DEFAULT_PORT)),
                "passthrough" => {
                    let mut parsed = dns(target, endpoint, None)?;
                    parsed.target = Target::new("passthrough", uri_authority, endpoint);
                    Ok(parsed)
                }
                _ => {
                    let resolver_target = Target::new(&scheme, uri_authority, endpoint);
                    let builder = match custom.filter(|c| c.scheme().eq_ignore_ascii_case(&scheme))
                    {
                        Some(custom) => custom.default_authority(&resolver_target),
                        None => resolver::lookup(&scheme)
                            .map(|b| b.default_authority(&resolver_target))
                            .unwrap_or_default(),
                    };
                    let authority = Authority::try_from(builder.as_str())
                        .unwrap_or(Authority::from_static("localhost"));
                    let host = Some(authority.host().to_owned());
                    Ok(Parsed {
                        target: resolver_target,
                        authority,
                        implied: Implied::Nothing,
                        host,
                    })
                }
            };
        }
    }
    // No known scheme: a DNS name, `host:port` (gRPC-Go's default scheme). A port is
    // required here: a bare host is more likely a mistake than a wish for port 443.
    dns(target, target, None)
}

/// RFC 3986's scheme: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A `dns:` target for `host[:port]`.
fn dns(target: &str, endpoint: &str, default_port: Option<u16>) -> Result<Parsed, Error> {
    let (host, port) = split_host_port(endpoint, default_port)
        .map_err(|why| Error::invalid_target(target, &why))?;
    let authority_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let host_port = format!("{authority_host}:{port}");
    let authority: Authority = host_port
        .parse()
        .map_err(|_| Error::invalid_target(target, "expected host:port"))?;
    Ok(Parsed {
        target: Target::new("dns", "", &host_port),
        authority,
        implied: Implied::Nothing,
        host: Some(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (resolver scheme, endpoint, authority).
    fn parts(target: &str) -> (String, String, String) {
        let p = parse(target, None).unwrap();
        (
            p.target.scheme().to_owned(),
            p.target.endpoint().to_owned(),
            p.authority.to_string(),
        )
    }

    #[test]
    fn targets() {
        let dns = |e: &str, a: &str| ("dns".to_owned(), e.to_owned(), a.to_owned());
        for t in [
            "localhost:50051",
            "dns:///localhost:50051",
            "dns:localhost:50051",
            "dns://8.8.8.8/localhost:50051",
            "http://localhost:50051",
            "http://localhost:50051/",
            "https://localhost:50051",
        ] {
            assert_eq!(parts(t), dns("localhost:50051", "localhost:50051"), "{t}");
        }
        assert_eq!(
            parts("passthrough:///localhost:50051"),
            (
                "passthrough".into(),
                "localhost:50051".into(),
                "localhost:50051".into()
            )
        );
        assert_eq!(parts("[::1]:80"), dns("[::1]:80", "[::1]:80"));
        assert_eq!(
            parts("unix:///tmp/s.sock"),
            ("unix".into(), "/tmp/s.sock".into(), "localhost".into())
        );
        assert_eq!(parts("unix:rel.sock").1, "rel.sock");
        assert_eq!(parts("unix-abstract:name").0, "unix-abstract");
        assert_eq!(
            parts("ipv4:127.0.0.1:1,127.0.0.1:2"),
            (
                "ipv4".into(),
                "127.0.0.1:1,127.0.0.1:2".into(),
                "localhost".into()
            )
        );
        for bad in ["", "unix:", "https://", "a b:1", ":80", "::1"] {
            assert!(parse(bad, None).is_err(), "{bad}");
        }
    }

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
            assert_eq!(parse(target, None).unwrap().implied, implied, "{target}");
        }
    }

    /// Regression: `127.0.0.1:99999` was accepted and dialed port 443; a target without a
    /// port silently used 443.
    #[test]
    fn ports() {
        for bad in [
            "127.0.0.1:99999",
            "localhost:0",
            "localhost:x",
            "localhost:-1",
        ] {
            let err = parse(bad, None).unwrap_err();
            assert!(err.is_invalid_target(), "{bad}");
            assert!(err.to_string().contains("invalid port"), "{bad}: {err}");
        }
        let err = parse("localhost", None).unwrap_err();
        assert!(err.to_string().contains("missing port"), "{err}");
        assert!(parse("passthrough:///localhost", None).is_err());
        assert_eq!(parts("dns:///example.com").2, "example.com:443");
        assert_eq!(parts("http://example.com").2, "example.com:80");
        assert_eq!(parts("https://example.com").2, "example.com:443");
        assert_eq!(parts("https://example.com:8443/").2, "example.com:8443");
        assert_eq!(parts("localhost:65535").2, "localhost:65535");
    }
}
