//! The admin endpoint: JSON-RPC on its own address, behind its own JWT secret.
//!
//! | Method | Params | Result |
//! |---|---|---|
//! | `switchyard_getExecutionMode` (`debug_getExecutionMode`) | none | `{"execution_mode": "enabled"}` |
//! | `switchyard_setExecutionMode` (`debug_setExecutionMode`) | `[{"execution_mode": "dry-run"}]` or `["dry-run"]` | the new mode, as above |
//! | `switchyard_builders` | none | each builder: name, health, circuit breaker, queue depths, transactions held while it is not synced |
//! | `switchyard_status` | none | the mode, the payload jobs in flight, and the builders as above |
//!
//! The `debug_` names and `dry_run` spelling are rollup-boost's, so its tooling works unchanged.

use std::{convert::Infallible, sync::Arc};

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_layers::{
    RequireJwtLayer, RpcMethodLayer,
    body::RpcBody,
    builder::{Builder, ExecutionMode, ModeSwitch},
    jsonrpc::{self, RpcCall, code},
};
use tower::{Service, ServiceBuilder, service_fn};

/// What the admin endpoint can see and change.
#[derive(Clone, Debug)]
pub struct Control {
    /// The execution mode.
    pub mode: ModeSwitch,
    /// The builders.
    pub builders: Vec<Arc<Builder>>,
    /// The payload jobs in flight.
    pub jobs: Arc<switchyard_layers::fcu_mux::PayloadJobs>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ModeParam {
    Object { execution_mode: String },
    Bare(String),
}

fn mode_json(mode: ExecutionMode, rollup_boost: bool) -> Value {
    let name = match (mode, rollup_boost) {
        (ExecutionMode::DryRun, true) => "dry_run",
        (mode, _) => mode.as_str(),
    };
    json!({ "execution_mode": name })
}

fn answer(control: &Control, call: &RpcCall) -> Result<Value, (i32, String)> {
    let rollup_boost = call.method().starts_with("debug_");
    match call.method() {
        "switchyard_getExecutionMode" | "debug_getExecutionMode" => {
            Ok(mode_json(control.mode.get(), rollup_boost))
        }
        "switchyard_setExecutionMode" | "debug_setExecutionMode" => {
            let (param,): (ModeParam,) = serde_json::from_slice(call.params().unwrap_or(b"[]"))
                .map_err(|e| {
                    (
                        code::INVALID_PARAMS,
                        format!("expected [{{\"execution_mode\": ...}}]: {e}"),
                    )
                })?;
            let name = match param {
                ModeParam::Object { execution_mode } | ModeParam::Bare(execution_mode) => {
                    execution_mode
                }
            };
            let mode: ExecutionMode =
                name.parse()
                    .map_err(|e: switchyard_layers::builder::UnknownMode| {
                        (code::INVALID_PARAMS, e.to_string())
                    })?;
            control.mode.set(mode);
            Ok(mode_json(mode, rollup_boost))
        }
        "switchyard_status" => Ok(json!({
            "execution_mode": control.mode.get().as_str(),
            "payload_jobs": control.jobs.len(),
            "builders": builders(control),
        })),
        "switchyard_builders" => Ok(builders(control)),
        other => Err((
            code::METHOD_NOT_FOUND,
            format!("the method {other} does not exist/is not available"),
        )),
    }
}

fn builders(control: &Control) -> Value {
    Value::Array(
        control
            .builders
            .iter()
            .map(|b| {
                let (engine_queue, transaction_queue) = b.queue_depths();
                json!({
                    "name": b.name().as_ref(),
                    "health": b.health().state().label(),
                    "synced": b.health().is_synced(),
                    "circuit_open": b.breaker().is_open(),
                    "engine_queue": engine_queue,
                    "transaction_queue": transaction_queue,
                    "held_transactions": b.held_transactions(),
                })
            })
            .collect(),
    )
}

/// The admin service: its own JWT, then the methods above.
pub fn service(
    secret: switchyard_layers::JwtSecret,
    control: Control,
) -> impl Service<Request<Incoming>, Response = Response<RpcBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(RequireJwtLayer::new(secret))
        .layer(RpcMethodLayer::new().with_limit(64 * 1024).claim_all())
        .service(service_fn(move |req: Request<RpcBody>| {
            let control = control.clone();
            async move {
                let body = match req.extensions().get::<RpcCall>() {
                    Some(call) => match answer(&control, call) {
                        Ok(result) => {
                            jsonrpc::result_response(call.id(), result.to_string().as_bytes())
                        }
                        Err((code, message)) => jsonrpc::error_response(call.id(), code, &message),
                    },
                    None => {
                        jsonrpc::error_response(b"", code::INVALID_REQUEST, "one call at a time")
                    }
                };
                let mut response = Response::new(RpcBody::new(body));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            }
        }))
}
