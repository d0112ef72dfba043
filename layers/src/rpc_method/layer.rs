use std::{collections::HashSet, sync::Arc, time::Duration};

use tower::Layer;

use super::{Claims, RpcMethod};

/// Default cap on a request body: 32 MiB. The largest Engine API message is a newPayload of a
/// block op-node can still gossip (10 MiB compressed), which as hex JSON stays well under this.
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Layer that parses the JSON-RPC envelope once. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct RpcMethodLayer {
    pub(super) config: Arc<Config>,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) limit: usize,
    pub(super) body_timeout: Option<Duration>,
    pub(super) claimed: Claimed,
}

/// What [`RpcMethodLayer::claim`], [`RpcMethodLayer::claim_with`] and
/// [`RpcMethodLayer::claim_all`] declared; a method is claimed if any of them holds it.
#[derive(Clone, Debug, Default)]
pub(super) struct Claimed {
    methods: HashSet<Box<str>>,
    matching: Option<Claims>,
    all: bool,
}

impl Claimed {
    pub(super) fn contains(&self, method: &str) -> bool {
        self.all
            || self.matching.is_some_and(|claims| claims(method))
            || self.methods.contains(method)
    }
}

impl Default for RpcMethodLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMethodLayer {
    /// Parses bodies up to [`DEFAULT_BODY_LIMIT`] with no read deadline, claiming no method.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                limit: DEFAULT_BODY_LIMIT,
                body_timeout: None,
                claimed: Claimed::default(),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Sets the body cap, in bytes.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.config_mut().limit = limit;
        self
    }

    /// Sets how long a client may take to send its whole body.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().body_timeout = Some(timeout);
        self
    }

    /// Declares methods that layers below handle themselves: a batch holding one of them is
    /// split into single calls, so that each call reaches the layer that claims it.
    pub fn claim<I, M>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<Box<str>>,
    {
        let claimed = &mut self.config_mut().claimed;
        claimed.methods.extend(methods.into_iter().map(Into::into));
        self
    }

    /// Declares, as a predicate, the methods that layers below handle themselves (the same
    /// predicate a [`BypassLayer`](crate::BypassLayer) takes, so a stack says it once): a batch
    /// holding one of them is split as with [`claim`](Self::claim). Replaces an earlier
    /// predicate; methods named with [`claim`](Self::claim) stay claimed.
    pub fn claim_with(mut self, claims: Claims) -> Self {
        self.config_mut().claimed.matching = Some(claims);
        self
    }

    /// Splits every batch into single calls (for routers that must see each call).
    pub fn claim_all(mut self) -> Self {
        self.config_mut().claimed.all = true;
        self
    }
}

impl<S> Layer<S> for RpcMethodLayer {
    type Service = RpcMethod<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMethod::new(inner, self.clone())
    }
}
