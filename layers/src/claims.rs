//! Which methods the Engine API layers handle: one predicate, given both to
//! [`RpcMethodLayer::claim_with`](crate::RpcMethodLayer::claim_with) (a batch holding one of
//! them is split, so that each call meets the layer that handles it) and to
//! [`BypassLayer`](crate::BypassLayer) (every other call goes around those layers).
//!
//! # Example
//!
//! ```
//! use switchyard_layers::{BypassLayer, RpcMethodLayer, claims::handled_by_engine_layers};
//! # let l2 = tower::service_fn(|_: http::Request<switchyard_layers::body::RpcBody>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(switchyard_layers::body::RpcBody::new(bytes::Bytes::new())))
//! # });
//!
//! assert!(handled_by_engine_layers("engine_getPayloadV4"));
//! assert!(handled_by_engine_layers("miner_setMaxDASize"));
//! assert!(!handled_by_engine_layers("eth_call"));
//! let split = RpcMethodLayer::new().claim_with(handled_by_engine_layers);
//! let around = BypassLayer::new(handled_by_engine_layers, l2);
//! # let _ = (split, around);
//! ```

use crate::engine::EngineMethod;

/// Whether any Engine API layer acts on `method`: a forkchoice update, getPayload or newPayload
/// of any version, a mirrored transaction or a `miner_*` setting. The rest pass every other
/// call untouched, so a [`BypassLayer`](crate::BypassLayer) may send it around them.
pub fn handled_by_engine_layers(method: &str) -> bool {
    EngineMethod::parse(method).is_some()
        || crate::tx_mirror::MIRRORED.contains(&method)
        || crate::miner_mirror::MIRRORED.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::handled_by_engine_layers;
    use crate::engine::EngineMethod;

    #[test]
    fn the_engine_layers_handle_these_methods_and_no_other() {
        let mut handled: Vec<String> = Vec::new();
        handled.extend((1..=3).map(|v| EngineMethod::ForkchoiceUpdated(v).name()));
        handled.extend((1..=5).map(|v| EngineMethod::GetPayload(v).name()));
        handled.extend((1..=4).map(|v| EngineMethod::NewPayload(v).name()));
        handled.extend(crate::tx_mirror::MIRRORED.map(str::to_owned));
        handled.extend(crate::miner_mirror::MIRRORED.map(str::to_owned));
        for method in [
            "engine_forkchoiceUpdatedV3",
            "engine_getPayloadV4",
            "engine_newPayloadV4",
        ] {
            assert!(handled.iter().any(|m| m == method), "{method}");
        }
        for method in handled {
            assert!(handled_by_engine_layers(&method), "{method}");
        }
        for method in [
            "eth_chainId",
            "eth_getBlockByNumber",
            "eth_call",
            "engine_exchangeCapabilities",
            "engine_getClientVersionV1",
            "engine_getPayloadBodiesByHashV1",
            "miner_setGasPrice2",
            "",
        ] {
            assert!(!handled_by_engine_layers(method), "{method}");
        }
    }
}
