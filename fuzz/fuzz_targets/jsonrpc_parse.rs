//! Any bytes through the JSON-RPC envelope and batch parser: never a panic; every id we would
//! echo back is valid JSON; whatever we accept, serde reads the same way.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;
use switchyard_layers::jsonrpc::{self, Parsed, RpcCall, RpcError};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let parsed = match jsonrpc::parse(&body) {
        Ok(parsed) => parsed,
        Err(error) => return answerable(&error),
    };
    match parsed {
        Parsed::Single(Ok(call)) => {
            accepted(&call);
            agrees_with_serde(data, &call);
        }
        Parsed::Single(Err(error)) => answerable(&error),
        Parsed::Batch(calls) => {
            assert!(!calls.is_empty(), "a batch is never empty");
            for call in &calls {
                match call {
                    Ok(call) => accepted(call),
                    Err(error) => answerable(error),
                }
            }
        }
    }
});

/// The error we would send is one valid JSON text. (Syntax only: an id such as `1e999` is
/// valid JSON that serde cannot hold as a float, and we echo ids verbatim.)
fn answerable(error: &RpcError) {
    is_json(&error.to_bytes());
}

fn is_json(text: &[u8]) {
    let parsed = serde_json::from_slice::<IgnoredAny>(text);
    assert!(
        parsed.is_ok(),
        "not JSON: {}",
        String::from_utf8_lossy(text)
    );
}

/// An accepted call can be answered, and its params are one JSON value's text.
fn accepted(call: &RpcCall) {
    is_json(&jsonrpc::error_response(call.id(), -32000, "x"));
    if let Some(params) = call.params() {
        assert!(
            matches!(
                params.first(),
                Some(b'[' | b'{' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
            ),
            "params start a JSON value"
        );
    }
}

/// Where serde reads the same bytes as one object, it sees our method, id and params. (We
/// refuse duplicate members, so an accepted object has one of each.)
fn agrees_with_serde(data: &[u8], call: &RpcCall) {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    assert_eq!(
        object.get("method").and_then(Value::as_str),
        Some(call.method())
    );
    let params = call
        .params()
        .map(|p| serde_json::from_slice::<Value>(p).expect("params are JSON"));
    assert_eq!(object.get("params"), params.as_ref());
    match object.get("id") {
        None => assert!(call.is_notification()),
        Some(id) => {
            let ours: Value = serde_json::from_slice(call.id()).expect("the id is JSON");
            assert_eq!(&ours, id);
        }
    }
}
