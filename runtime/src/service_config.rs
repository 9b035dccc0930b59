//! Service config: gRPC's JSON for a channel's policies (doc/service_config.md, gRFC A6):
//! the load-balancing policy, per-method settings (timeout, wait-for-ready, message size
//! limits, retry or hedging policy) and retry throttling.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::status::{Code, Status};

/// gRFC A6: attempts are capped at 5 whatever the config says.
const MAX_ATTEMPTS_CAP: u32 = 5;

/// A parsed service config.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ServiceConfig {
    /// The first supported policy of `loadBalancingConfig` (or the older
    /// `loadBalancingPolicy`), with its configuration.
    pub(crate) load_balancing: Option<(String, Option<Value>)>,
    /// `methodConfig` for single methods, by `service/method`.
    methods: BTreeMap<String, Arc<MethodConfig>>,
    /// `methodConfig` for whole services, by service name.
    services: BTreeMap<String, Arc<MethodConfig>>,
    /// `methodConfig` for every method (`[{}]`).
    default_method: Option<Arc<MethodConfig>>,
    /// `retryThrottling`.
    pub(crate) throttling: Option<RetryThrottling>,
    /// `healthCheckConfig.serviceName`: the service whose health subchannels watch (gRFC
    /// A17), when their balancer asks for health checking.
    pub(crate) health_check_service: Option<String>,
}

/// The settings of the methods one `methodConfig` entry names.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MethodConfig {
    pub(crate) timeout: Option<Duration>,
    pub(crate) wait_for_ready: Option<bool>,
    pub(crate) max_request_bytes: Option<usize>,
    pub(crate) max_response_bytes: Option<usize>,
    pub(crate) retry: Option<Arc<RetryPolicy>>,
    pub(crate) hedging: Option<Arc<HedgingPolicy>>,
}

/// `retryPolicy` (gRFC A6).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) multiplier: f64,
    pub(crate) retryable: Vec<Code>,
}

/// `hedgingPolicy` (gRFC A6).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HedgingPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) delay: Duration,
    pub(crate) non_fatal: Vec<Code>,
}

/// `retryThrottling` (gRFC A6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RetryThrottling {
    pub(crate) max_tokens: u32,
    pub(crate) token_ratio: f64,
}

fn bad(what: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid service config: {what}"))
}

impl ServiceConfig {
    /// Parses gRPC's JSON form.
    ///
    /// # Errors
    ///
    /// If it is not JSON, or a field has the wrong shape or value; the message names it.
    pub(crate) fn parse(json: &str) -> Result<ServiceConfig, Status> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Status::invalid_argument(format!("service config is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| Status::invalid_argument("service config is not a JSON object"))?;
        let mut config = ServiceConfig::default();
        if let Some(list) = object.get("loadBalancingConfig") {
            let list = list
                .as_array()
                .ok_or_else(|| Status::invalid_argument("loadBalancingConfig must be a list"))?;
            for entry in list {
                let entry = entry.as_object().filter(|e| e.len() == 1).ok_or_else(|| {
                    Status::invalid_argument(
                        "each loadBalancingConfig entry must be an object with one policy",
                    )
                })?;
                let (name, inner) = entry.iter().next().expect("one entry");
                // The first policy this process knows wins (gRPC's rule).
                if crate::balancer::lookup(name).is_some() {
                    let inner = (!inner.is_null()).then(|| inner.clone());
                    config.load_balancing = Some((name.clone(), inner));
                    break;
                }
            }
            if config.load_balancing.is_none() && !list.is_empty() {
                return Err(Status::invalid_argument(
                    "no policy in loadBalancingConfig is supported",
                ));
            }
        } else if let Some(policy) = object.get("loadBalancingPolicy") {
            let policy = policy
                .as_str()
                .ok_or_else(|| Status::invalid_argument("loadBalancingPolicy must be a string"))?;
            // The older field names a policy in upper snake case ("ROUND_ROBIN").
            config.load_balancing = Some((policy.to_ascii_lowercase(), None));
        }
        if let Some(methods) = object.get("methodConfig") {
            let methods = methods
                .as_array()
                .ok_or_else(|| bad("methodConfig must be a list"))?;
            for (i, entry) in methods.iter().enumerate() {
                let entry = entry
                    .as_object()
                    .ok_or_else(|| bad(format_args!("methodConfig[{i}] must be an object")))?;
                let (names, method) = parse_method_config(entry)
                    .map_err(|e| bad(format_args!("methodConfig[{i}].{e}")))?;
                let method = Arc::new(method);
                for name in names {
                    let twice = match name.split_once('/') {
                        Some(("", _)) => {
                            config.default_method.replace(Arc::clone(&method)).is_some()
                        }
                        Some((service, "")) => config
                            .services
                            .insert(service.to_owned(), Arc::clone(&method))
                            .is_some(),
                        _ => config
                            .methods
                            .insert(name.clone(), Arc::clone(&method))
                            .is_some(),
                    };
                    if twice {
                        return Err(bad(format_args!(
                            "methodConfig[{i}]: the name {name:?} is configured twice"
                        )));
                    }
                }
            }
        }
        if let Some(health) = object.get("healthCheckConfig") {
            let name = health
                .as_object()
                .ok_or_else(|| bad(format_args!("healthCheckConfig: must be an object")))?
                .get("serviceName");
            config.health_check_service = match name {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) => Some(name.clone()),
                Some(_) => {
                    return Err(bad(format_args!(
                        "healthCheckConfig.serviceName: must be a string"
                    )));
                }
            };
        }
        if let Some(throttling) = object.get("retryThrottling") {
            config.throttling = Some(
                parse_throttling(throttling)
                    .map_err(|e| bad(format_args!("retryThrottling.{e}")))?,
            );
        }
        Ok(config)
    }

    /// The settings for the method at `path` (`/package.Service/Method`): the method's own,
    /// else its service's, else the default.
    pub(crate) fn method(&self, path: &str) -> Option<&Arc<MethodConfig>> {
        // Lookups by slices of the path: nothing is allocated per call. The maps are B-trees:
        // for the handful of names a config holds, a few string compares cost less than
        // hashing the path (measured: about 400 instructions a call less than SipHash).
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let service = trimmed.rsplit_once('/').map_or(trimmed, |(s, _)| s);
        self.methods
            .get(trimmed)
            .or_else(|| self.services.get(service))
            .or(self.default_method.as_ref())
    }
}

/// One `methodConfig` entry: the names it applies to (as lookup keys) and its settings.
fn parse_method_config(entry: &Map<String, Value>) -> Result<(Vec<String>, MethodConfig), String> {
    let names = entry
        .get("name")
        .and_then(Value::as_array)
        .ok_or("name: must be a list")?;
    let mut keys = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = name
            .as_object()
            .ok_or(format!("name[{i}]: must be an object"))?;
        let service = match name.get("service") {
            None => "",
            Some(s) => s
                .as_str()
                .ok_or(format!("name[{i}].service: must be a string"))?,
        };
        let method = match name.get("method") {
            None => "",
            Some(m) => m
                .as_str()
                .ok_or(format!("name[{i}].method: must be a string"))?,
        };
        if service.is_empty() && !method.is_empty() {
            return Err(format!("name[{i}]: a method needs its service"));
        }
        keys.push(match (service, method) {
            ("", _) => "/".to_owned(),
            (service, "") => format!("{service}/"),
            (service, method) => format!("{service}/{method}"),
        });
    }
    let mut config = MethodConfig::default();
    if let Some(timeout) = entry.get("timeout") {
        config.timeout = Some(duration(timeout).map_err(|e| format!("timeout: {e}"))?);
    }
    if let Some(wait) = entry.get("waitForReady") {
        config.wait_for_ready = Some(wait.as_bool().ok_or("waitForReady: must be a boolean")?);
    }
    if let Some(limit) = entry.get("maxRequestMessageBytes") {
        config.max_request_bytes =
            Some(count(limit).map_err(|e| format!("maxRequestMessageBytes: {e}"))?);
    }
    if let Some(limit) = entry.get("maxResponseMessageBytes") {
        config.max_response_bytes =
            Some(count(limit).map_err(|e| format!("maxResponseMessageBytes: {e}"))?);
    }
    if let Some(retry) = entry.get("retryPolicy") {
        config.retry = Some(Arc::new(
            parse_retry(retry).map_err(|e| format!("retryPolicy.{e}"))?,
        ));
    }
    if let Some(hedging) = entry.get("hedgingPolicy") {
        config.hedging = Some(Arc::new(
            parse_hedging(hedging).map_err(|e| format!("hedgingPolicy.{e}"))?,
        ));
    }
    if config.retry.is_some() && config.hedging.is_some() {
        return Err("retryPolicy and hedgingPolicy: only one may be set".to_owned());
    }
    Ok((keys, config))
}

fn parse_retry(value: &Value) -> Result<RetryPolicy, String> {
    let object = value.as_object().ok_or("must be an object")?;
    let max_attempts = attempts(object)?;
    let initial_backoff = positive_duration(object, "initialBackoff")?;
    let max_backoff = positive_duration(object, "maxBackoff")?;
    let multiplier = object
        .get("backoffMultiplier")
        .and_then(Value::as_f64)
        .ok_or("backoffMultiplier: required, a number")?;
    if multiplier <= 0.0 || !multiplier.is_finite() {
        return Err("backoffMultiplier: must be above 0".to_owned());
    }
    let retryable = codes(object.get("retryableStatusCodes"))
        .map_err(|e| format!("retryableStatusCodes: {e}"))?;
    if retryable.is_empty() {
        return Err("retryableStatusCodes: required, not empty".to_owned());
    }
    Ok(RetryPolicy {
        max_attempts,
        initial_backoff,
        max_backoff,
        multiplier,
        retryable,
    })
}

fn parse_hedging(value: &Value) -> Result<HedgingPolicy, String> {
    let object = value.as_object().ok_or("must be an object")?;
    let max_attempts = attempts(object)?;
    let delay = match object.get("hedgingDelay") {
        None => Duration::ZERO,
        Some(delay) => duration(delay).map_err(|e| format!("hedgingDelay: {e}"))?,
    };
    let non_fatal = match object.get("nonFatalStatusCodes") {
        None => Vec::new(),
        Some(list) => codes(Some(list)).map_err(|e| format!("nonFatalStatusCodes: {e}"))?,
    };
    Ok(HedgingPolicy {
        max_attempts,
        delay,
        non_fatal,
    })
}

fn parse_throttling(value: &Value) -> Result<RetryThrottling, String> {
    let object = value.as_object().ok_or("must be an object")?;
    let max_tokens = object
        .get("maxTokens")
        .and_then(Value::as_u64)
        .filter(|t| (1..=1000).contains(t))
        .ok_or("maxTokens: required, from 1 to 1000")?;
    let token_ratio = object
        .get("tokenRatio")
        .and_then(Value::as_f64)
        .filter(|r| *r > 0.0 && r.is_finite())
        .ok_or("tokenRatio: required, above 0")?;
    Ok(RetryThrottling {
        max_tokens: max_tokens as u32,
        // gRFC A6: three decimal places are kept.
        token_ratio: (token_ratio * 1000.0).trunc() / 1000.0,
    })
}

/// `maxAttempts`: above 1, capped at 5.
fn attempts(object: &Map<String, Value>) -> Result<u32, String> {
    let n = object
        .get("maxAttempts")
        .and_then(Value::as_u64)
        .ok_or("maxAttempts: required, an integer")?;
    if n < 2 {
        return Err("maxAttempts: must be 2 or more".to_owned());
    }
    Ok((n as u32).min(MAX_ATTEMPTS_CAP))
}

fn positive_duration(object: &Map<String, Value>, name: &str) -> Result<Duration, String> {
    let value = object.get(name).ok_or(format!("{name}: required"))?;
    let d = duration(value).map_err(|e| format!("{name}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{name}: must be above 0"));
    }
    Ok(d)
}

/// A protobuf JSON duration: `"1.5s"`.
fn duration(value: &Value) -> Result<Duration, String> {
    let text = value.as_str().ok_or("must be a string like \"1.5s\"")?;
    let seconds = text
        .strip_suffix('s')
        .ok_or("must end in \"s\" (\"1.5s\")")?;
    let parsed: f64 = seconds
        .parse()
        .map_err(|_| format!("{text:?} is not a duration"))?;
    if !(0.0..=315_576_000_000.0).contains(&parsed) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(parsed))
}

/// A non-negative integer, as a number or (protobuf JSON's 64-bit form) a string.
fn count(value: &Value) -> Result<usize, String> {
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| "must be a non-negative integer".to_owned())
}

/// Status codes by name (`"UNAVAILABLE"`) or number.
fn codes(value: Option<&Value>) -> Result<Vec<Code>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value.as_array().ok_or("must be a list")?;
    list.iter()
        .map(|code| match code {
            Value::String(name) => {
                code_by_name(name).ok_or(format!("unknown status code {name:?}"))
            }
            Value::Number(n) => n
                .as_i64()
                .filter(|n| (0..=16).contains(n))
                .map(|n| Code::from_i32(n as i32))
                .ok_or(format!("unknown status code {n}")),
            _ => Err("codes are names or numbers".to_owned()),
        })
        .collect()
}

fn code_by_name(name: &str) -> Option<Code> {
    (0..=16)
        .map(Code::from_i32)
        .find(|code| code.as_str().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancing() {
        let c =
            ServiceConfig::parse(r#"{"loadBalancingConfig":[{"unknown":{}},{"round_robin":{}}]}"#)
                .unwrap();
        assert_eq!(c.load_balancing.unwrap().0, "round_robin");
        let c = ServiceConfig::parse(
            r#"{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}"#,
        )
        .unwrap();
        let (name, inner) = c.load_balancing.unwrap();
        assert_eq!(name, "pick_first");
        assert_eq!(inner.unwrap()["shuffleAddressList"], true);
        let c = ServiceConfig::parse(r#"{"loadBalancingPolicy":"ROUND_ROBIN"}"#).unwrap();
        assert_eq!(c.load_balancing.unwrap().0, "round_robin");
        assert!(ServiceConfig::parse("{").is_err());
        assert!(ServiceConfig::parse(r#"{"loadBalancingConfig":[{"nope":{}}]}"#).is_err());
        assert!(ServiceConfig::parse("{}").unwrap().load_balancing.is_none());
    }

    #[test]
    fn method_configs_and_name_matching() {
        let c = ServiceConfig::parse(
            r#"{"methodConfig": [
                {"name": [{"service": "pkg.Svc", "method": "Get"}], "timeout": "1.5s",
                 "retryPolicy": {"maxAttempts": 9, "initialBackoff": "0.1s", "maxBackoff": "1s",
                                 "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 10]}},
                {"name": [{"service": "pkg.Svc"}], "waitForReady": true,
                 "maxRequestMessageBytes": "1024", "maxResponseMessageBytes": 2048},
                {"name": [{}], "timeout": "10s",
                 "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.5s",
                                   "nonFatalStatusCodes": ["UNAVAILABLE"]}}
            ],
            "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1234}}"#,
        )
        .unwrap();
        let get = c.method("/pkg.Svc/Get").unwrap();
        assert_eq!(get.timeout, Some(Duration::from_millis(1500)));
        let retry = get.retry.as_ref().unwrap();
        assert_eq!(retry.max_attempts, 5, "capped");
        assert_eq!(retry.retryable, [Code::Unavailable, Code::Aborted]);
        let put = c.method("/pkg.Svc/Put").unwrap();
        assert_eq!(put.wait_for_ready, Some(true));
        assert_eq!(
            (put.max_request_bytes, put.max_response_bytes),
            (Some(1024), Some(2048))
        );
        let other = c.method("/other.Svc/X").unwrap();
        assert_eq!(other.timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            other.hedging.as_ref().unwrap().delay,
            Duration::from_millis(500)
        );
        assert_eq!(c.throttling.unwrap().token_ratio, 0.123);
    }

    /// Regression (fuzz target `service_config`): a huge `tokenRatio` (4.3e6 and up) overflowed
    /// the token count on a success: a panic in debug builds and, in release, a count that
    /// went down by a thousandth of a token on each success instead of refilling.
    #[test]
    fn huge_token_ratio_refills() {
        let config =
            ServiceConfig::parse(r#"{"retryThrottling": {"maxTokens": 10, "tokenRatio": 1e10}}"#)
                .unwrap();
        let throttle = Throttle::new(config.throttling.unwrap());
        throttle.success();
        for _ in 0..10 {
            throttle.failure();
        }
        assert!(!throttle.allows());
        throttle.success();
        throttle.success();
        assert!(throttle.allows());
    }

    #[test]
    fn errors_name_the_field() {
        for (json, field) in [
            (
                r#"{"methodConfig": [{"name": [{}], "timeout": "1"}]}"#,
                "methodConfig[0].timeout",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 1}}]}"#,
                "retryPolicy.maxAttempts",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2,
                   "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2,
                   "retryableStatusCodes": ["NOPE"]}}]}"#,
                "retryableStatusCodes",
            ),
            (
                r#"{"methodConfig": [{"name": [{"method": "X"}]}]}"#,
                "name[0]",
            ),
            (
                r#"{"methodConfig": [{"name": [{}]}, {"name": [{}]}]}"#,
                "configured twice",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}"#,
                "maxTokens",
            ),
        ] {
            let err = ServiceConfig::parse(json).unwrap_err();
            assert!(err.message().contains(field), "{json}: {err}");
        }
    }
}

/// A channel's retry throttle (gRFC A6): a token count in thousandths; failures take a
/// token, successes give back `token_ratio`; retries and hedges go out only while more than
/// half the tokens are left.
#[derive(Debug)]
pub(crate) struct Throttle {
    max: u32,
    ratio: u32,
    tokens: std::sync::atomic::AtomicU32,
}

impl Throttle {
    pub(crate) fn new(config: RetryThrottling) -> Throttle {
        let max = config.max_tokens * 1000;
        Throttle {
            max,
            // At most a full refill, so that `tokens + ratio` cannot overflow.
            ratio: ((config.token_ratio * 1000.0) as u32).min(max),
            tokens: std::sync::atomic::AtomicU32::new(max),
        }
    }

    /// Whether a retry (or a hedge) may go out.
    pub(crate) fn allows(&self) -> bool {
        self.tokens.load(std::sync::atomic::Ordering::Relaxed) > self.max / 2
    }

    /// An attempt failed with a retryable (or non-fatal) code, or pushback.
    pub(crate) fn failure(&self) {
        let _ = self.tokens.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |t| Some(t.saturating_sub(1000)),
        );
    }

    /// A call succeeded.
    pub(crate) fn success(&self) {
        let (max, ratio) = (self.max, self.ratio);
        let _ = self.tokens.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |t| Some((t + ratio).min(max)),
        );
    }
}

/// A channel's service config in effect, and the throttle that goes with it.
#[derive(Debug)]
pub(crate) struct Effective {
    pub(crate) config: ServiceConfig,
    pub(crate) throttle: Option<Arc<Throttle>>,
}

/// Where a channel keeps its service config: the default, then the resolver's. Calls read it
/// (a load when there is none, a read lock and an `Arc` clone when there is).
#[derive(Debug, Default)]
pub(crate) struct ConfigCell {
    set: std::sync::atomic::AtomicBool,
    current: std::sync::RwLock<Option<Arc<Effective>>>,
    /// The resolver has answered once (with or without a config, or with an error): calls
    /// choose their method config only after that (gRPC-Go's `waitForResolvedAddrs`).
    resolved: std::sync::atomic::AtomicBool,
    resolved_now: tokio::sync::Notify,
}

impl ConfigCell {
    /// The resolver answered: calls waiting for it go on.
    pub(crate) fn mark_resolved(&self) {
        if !self
            .resolved
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.resolved_now.notify_waiters();
        }
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.resolved.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits for the resolver's first answer.
    pub(crate) async fn wait_resolved(&self) {
        loop {
            let notified = self.resolved_now.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_resolved() {
                return;
            }
            notified.await;
        }
    }

    /// Makes `config` the one in effect.
    pub(crate) fn store(&self, config: ServiceConfig) {
        let throttle = config.throttling.map(|t| Arc::new(Throttle::new(t)));
        let effective = Arc::new(Effective { config, throttle });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(effective);
        self.set.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The config in effect, if any.
    pub(crate) fn load(&self) -> Option<Arc<Effective>> {
        if !self.set.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `config` is the one in effect already.
    pub(crate) fn holds(&self, config: &ServiceConfig) -> bool {
        self.load().is_some_and(|e| e.config == *config)
    }
}
