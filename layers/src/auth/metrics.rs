//! Metrics of the auth concern.

/// Inbound requests refused by [`RequireJwt`](super::RequireJwt), by reason
/// (`missing`, `malformed`, `bad_signature`, `missing_iat`, `stale`, `future`, `expired`).
pub(crate) const AUTH_FAILURES: &str = "switchyard_auth_failures_total";

/// Registers the descriptions of this concern's metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        AUTH_FAILURES,
        "Inbound requests refused with 401, by reason"
    );
}
