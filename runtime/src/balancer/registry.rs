//! The process-wide registry of balancer builders, keyed by policy name.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::{BalancerBuilder, PickFirstBuilder, RoundRobinBuilder};

type Registry = RwLock<HashMap<String, Arc<dyn BalancerBuilder>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let builtins: [Arc<dyn BalancerBuilder>; 2] =
            [Arc::new(PickFirstBuilder), Arc::new(RoundRobinBuilder)];
        RwLock::new(
            builtins
                .into_iter()
                .map(|b| (b.name().to_owned(), b))
                .collect(),
        )
    })
}

/// Registers `builder` under its name, for every channel made afterwards (gRPC-Go's
/// `balancer.Register`).
pub fn register(builder: impl BalancerBuilder) {
    registry()
        .write()
        .expect("balancer registry")
        .insert(builder.name().to_owned(), Arc::new(builder));
}

/// The builder registered as `name`.
pub(crate) fn lookup(name: &str) -> Option<Arc<dyn BalancerBuilder>> {
    registry()
        .read()
        .expect("balancer registry")
        .get(name)
        .cloned()
}
