//! The process-wide registry of resolver builders, keyed by scheme.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::{
    DnsResolverBuilder, IpListResolverBuilder, PassthroughResolverBuilder, ResolverBuilder,
    UnixResolverBuilder,
};

type Registry = RwLock<HashMap<String, Arc<dyn ResolverBuilder>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let builtins: [Arc<dyn ResolverBuilder>; 6] = [
            Arc::new(DnsResolverBuilder::default()),
            Arc::new(IpListResolverBuilder::V4),
            Arc::new(IpListResolverBuilder::V6),
            Arc::new(UnixResolverBuilder::Path),
            Arc::new(UnixResolverBuilder::Abstract),
            Arc::new(PassthroughResolverBuilder),
        ];
        let map = builtins
            .into_iter()
            .map(|b| (b.scheme().to_ascii_lowercase(), b))
            .collect();
        RwLock::new(map)
    })
}

/// Registers `builder` for its scheme, for every channel made afterwards (replacing any
/// builder registered for that scheme, a built-in one included). gRPC-Go's
/// `resolver.Register`; a channel can also carry its own with
/// [`ChannelBuilder::resolver`](crate::client::ChannelBuilder::resolver).
pub fn register(builder: impl ResolverBuilder) {
    let scheme = builder.scheme().to_ascii_lowercase();
    registry()
        .write()
        .expect("resolver registry")
        .insert(scheme, Arc::new(builder));
}

/// The builder registered for `scheme`.
pub(crate) fn lookup(scheme: &str) -> Option<Arc<dyn ResolverBuilder>> {
    registry()
        .read()
        .expect("resolver registry")
        .get(&scheme.to_ascii_lowercase())
        .cloned()
}
