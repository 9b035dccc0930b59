//! Service config: gRPC's JSON for a channel's policies (doc/service_config.md). This
//! version reads the load-balancing part.

use crate::status::Status;

/// A parsed service config.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceConfig {
    /// The first supported policy of `loadBalancingConfig` (or the older
    /// `loadBalancingPolicy`), with its configuration.
    pub(crate) load_balancing: Option<(String, Option<serde_json::Value>)>,
}

impl ServiceConfig {
    /// Parses gRPC's JSON form.
    ///
    /// # Errors
    ///
    /// If it is not JSON, or a field this version reads has the wrong shape.
    pub(crate) fn parse(json: &str) -> Result<ServiceConfig, Status> {
        let value: serde_json::Value = serde_json::from_str(json)
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
        Ok(config)
    }
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
}
