//! The methods the Engine API layers handle, for [`RpcMethodLayer::claim`](crate::RpcMethodLayer::claim):
//! a batch holding one of them is split, so that each call meets the layer that handles it.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::{RpcMethodLayer, claims::claimed_methods};
//!
//! let methods = claimed_methods();
//! assert!(methods.iter().any(|m| m == "engine_getPayloadV4"));
//! assert!(methods.iter().any(|m| m == "miner_setMaxDASize"));
//! let layer = RpcMethodLayer::new().claim(methods);
//! # let _ = layer;
//! ```

use crate::engine::EngineMethod;

/// Every method name the builder layers may claim: forkchoice updates, getPayload and
/// newPayload of every version, mirrored transactions and `miner_*` settings.
pub fn claimed_methods() -> Vec<String> {
    let mut methods = Vec::new();
    for v in 1..=3 {
        methods.push(EngineMethod::ForkchoiceUpdated(v).name());
    }
    for v in 2..=5 {
        methods.push(EngineMethod::GetPayload(v).name());
    }
    for v in 2..=4 {
        methods.push(EngineMethod::NewPayload(v).name());
    }
    methods.extend(crate::tx_mirror::MIRRORED.map(str::to_owned));
    methods.extend(crate::miner_mirror::MIRRORED.map(str::to_owned));
    methods
}

/// Whether any Engine API layer acts on `method`: a forkchoice update, getPayload or newPayload
/// of any version, a mirrored transaction or a `miner_*` setting. The rest passes every one of
/// them untouched, so a [`BypassLayer`](crate::BypassLayer) may send it around them.
pub fn handled_by_engine_layers(method: &str) -> bool {
    EngineMethod::parse(method).is_some()
        || crate::tx_mirror::MIRRORED.contains(&method)
        || crate::miner_mirror::MIRRORED.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::{claimed_methods, handled_by_engine_layers};

    #[test]
    fn every_claimed_method_goes_through_the_engine_layers_and_no_other() {
        for method in claimed_methods() {
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
