//! JSON-RPC 2.0 envelopes: parse a body once, keep its bytes, answer errors with the caller's id.
//!
//! # Behaviour
//!
//! [`parse`] reads only the envelope of a request: `method`, `id` and the *raw* `params`. The
//! parameters stay unparsed JSON text, sliced out of the request body without copying, so a
//! 1 MiB `engine_newPayload` costs one validating scan and no allocation of its payload.
//!
//! The rules follow geth, which is what op-node talks to:
//!
//! - text that is not JSON is a parse error ([`code::PARSE_ERROR`], id `null`);
//! - JSON that is not a call (no string `method`, an object or array `id`, not an object at all)
//!   is an invalid request ([`code::INVALID_REQUEST`]) answered with the call's id when it has one;
//! - an empty batch is one invalid-request error; in a non-empty batch each element stands alone,
//!   so one bad element does not spoil the others.
//!
//! Responses are built by [`error_response`] and [`join_batch`], which write bytes directly: the
//! id is echoed exactly as the caller sent it (`1`, `"1"` and `1.0` stay distinct).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use switchyard_layers::jsonrpc::{self, Parsed};
//!
//! let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}"#);
//! let Ok(Parsed::Single(Ok(call))) = jsonrpc::parse(&body) else { panic!("a valid call") };
//! assert_eq!(call.method(), "eth_chainId");
//! assert_eq!(call.id(), b"7");
//! assert_eq!(call.params(), Some(&b"[]"[..]));
//! ```

use std::{borrow::Cow, fmt, ops::Range, sync::OnceLock};

use bytes::{BufMut, Bytes, BytesMut};

use crate::scan::{self, ScanError};
use serde::Deserialize;
use serde_json::value::RawValue;

/// JSON-RPC and Engine API error codes.
///
/// The first block is JSON-RPC 2.0 itself; the `-380xx` block is the Engine API's
/// (`execution-apis/src/engine/common.md`). **Keep names and values in sync with those specs.**
/// The `-3201x` block is ours, inside the range JSON-RPC reserves for implementation-defined
/// server errors, so that op-node's logs say which upstream failed and how.
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Generic client error while processing the request.
    pub const SERVER_ERROR: i32 = -32000;
    /// Engine API: payload does not exist or is not available.
    pub const UNKNOWN_PAYLOAD: i32 = -38001;
    /// Engine API: forkchoice state is invalid or inconsistent.
    pub const INVALID_FORKCHOICE_STATE: i32 = -38002;
    /// Engine API: payload attributes are invalid or inconsistent.
    pub const INVALID_PAYLOAD_ATTRIBUTES: i32 = -38003;
    /// Engine API: number of requested entities is too large.
    pub const TOO_LARGE_REQUEST: i32 = -38004;
    /// Engine API: payload belongs to a fork that this method version does not support.
    pub const UNSUPPORTED_FORK: i32 = -38005;
    /// Engine API: the reorg is deeper than the client allows.
    pub const TOO_DEEP_REORG: i32 = -38006;
    /// switchyard: the upstream did not answer within its timeout.
    pub const UPSTREAM_TIMEOUT: i32 = -32010;
    /// switchyard: the upstream could not be reached (connect failed, connection reset).
    pub const UPSTREAM_UNREACHABLE: i32 = -32011;
    /// switchyard: the upstream answered, but not with a usable HTTP response.
    pub const UPSTREAM_BAD_RESPONSE: i32 = -32012;
    /// switchyard: the request body was larger than the configured cap.
    pub const REQUEST_TOO_LARGE: i32 = -32013;
    /// switchyard: the request body did not arrive within the configured time.
    pub const REQUEST_TIMEOUT: i32 = -32014;
}

/// One JSON-RPC call, parsed once: its method, its raw id and params, and the bytes it came in.
///
/// Everything is a zero-copy slice of the request body. Layers read this from the request
/// extensions (see [`RpcMethod`](crate::RpcMethod)) instead of parsing the body again.
#[derive(Clone)]
pub struct RpcCall {
    method: Box<str>,
    id: Bytes,
    params: Option<Bytes>,
    bytes: Bytes,
    /// The params split by [`RpcCall::params_first_and_rest`], once asked for.
    split: OnceLock<Option<ParamsSplit>>,
}

/// Spans in the params: the first element, and everything after its comma.
type ParamsSplit = (Range<usize>, Option<Range<usize>>);

impl RpcCall {
    /// The method name, unescaped.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The id as raw JSON text (`7`, `"abc"`, `null`), or empty for a notification.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Whether the call has no id, i.e. is a notification that expects no answer.
    pub fn is_notification(&self) -> bool {
        self.id.is_empty()
    }

    /// The `params` member as raw JSON text, if present.
    pub fn params(&self) -> Option<&[u8]> {
        self.params.as_deref()
    }

    /// The `params` member as a shared, zero-copy slice of the body, if present.
    pub fn params_bytes(&self) -> Option<&Bytes> {
        self.params.as_ref()
    }

    /// The params' first element, and everything after its comma up to the closing bracket
    /// (trimmed; `None` when the first is the only element); `None` if the params are not an
    /// array with a first element. The rest is not scanned. Found on the first ask and kept:
    /// boost sync and the forkchoice multiplexer both read a forkchoice update's state.
    pub fn params_first_and_rest(&self) -> Option<(&[u8], Option<&[u8]>)> {
        let params = self.params.as_deref()?;
        let (first, rest) = self
            .split
            .get_or_init(|| scan::head_and_rest(params).ok())
            .clone()?;
        Some((&params[first], rest.map(|rest| &params[rest])))
    }

    /// The call's own JSON text: the whole body for a single call, the element for a batch member.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The head of a call whose body is written separately, in parts (see
    /// [`Written::new_payload_request`](crate::engine::Written::new_payload_request)): its method
    /// and id, for the layers that count it and answer for it. It has no params, and its
    /// [`bytes`](Self::bytes) are the head alone, not the body sent.
    pub fn head(method: &str, id: &[u8]) -> Self {
        let mut call = Self::build(method, id, 2, |out| out.extend_from_slice(b"[]"));
        call.params = None;
        call
    }

    /// Builds a call from its parts, for layers that originate requests of their own.
    ///
    /// `id` is raw JSON text; `params` is raw JSON text (usually an array).
    pub fn new(method: &str, id: &[u8], params: &[u8]) -> Self {
        Self::build(method, id, params.len(), |out| {
            out.extend_from_slice(params)
        })
    }

    /// As [`RpcCall::new`], with the params written by `write_params` straight into the call's
    /// buffer (`params_len` is a capacity hint), so that big params are not copied twice.
    /// `write_params` must write one JSON value.
    pub fn build(
        method: &str,
        id: &[u8],
        params_len: usize,
        write_params: impl FnOnce(&mut Vec<u8>),
    ) -> Self {
        let mut out = Vec::with_capacity(48 + method.len() + id.len() + params_len);
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(id);
        out.extend_from_slice(b",\"method\":");
        let mut name = BytesMut::with_capacity(method.len() + 2);
        write_json_string(&mut name, method);
        out.extend_from_slice(&name);
        out.extend_from_slice(b",\"params\":");
        let params_start = out.len();
        write_params(&mut out);
        let params_end = out.len();
        out.push(b'}');
        let bytes = Bytes::from(out);
        // The layout above is fixed, so the parts are found by their known offsets.
        let id_start = 22;
        Self {
            method: method.into(),
            id: bytes.slice(id_start..id_start + id.len()),
            params: Some(bytes.slice(params_start..params_end)),
            bytes,
            split: OnceLock::new(),
        }
    }
}

impl fmt::Debug for RpcCall {
    // Bodies can be megabytes and may carry transactions: show the envelope only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcCall")
            .field("method", &self.method)
            .field("id", &String::from_utf8_lossy(&self.id))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The calls of a batch that travels to the upstream as one request.
///
/// Inserted in the request extensions in place of [`RpcCall`] when a batch is forwarded whole.
#[derive(Clone, Debug)]
pub struct RpcBatch(pub Vec<RpcCall>);

/// What a request body holds.
#[derive(Debug)]
pub enum Parsed {
    /// A single call, or the error to answer it with.
    Single(Result<RpcCall, RpcError>),
    /// A non-empty batch: each element is a call or the error to answer that element with.
    Batch(Vec<Result<RpcCall, RpcError>>),
}

/// A JSON-RPC error to send back, with the id it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// The id as raw JSON text; empty means `null`.
    pub id: Bytes,
    /// The JSON-RPC error code (see [`code`]).
    pub code: i32,
    /// A short human-readable message.
    pub message: Cow<'static, str>,
}

impl RpcError {
    /// An error answering the call with raw id `id`.
    pub fn new(id: Bytes, code: i32, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
        }
    }

    /// This error as a complete JSON-RPC response body.
    pub fn to_bytes(&self) -> Bytes {
        error_response(&self.id, self.code, &self.message)
    }
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    // `"id": null` is a call with a null id, not a notification: keep absent and null apart.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses a request body: a single call or a batch.
///
/// # Errors
///
/// Returns the one error that answers the whole body: a parse error for text that is not JSON,
/// an invalid request for an empty batch. Errors of individual calls are inside [`Parsed`].
pub fn parse(body: &Bytes) -> Result<Parsed, RpcError> {
    let parse_error = || RpcError::new(Bytes::new(), code::PARSE_ERROR, "parse error");
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let spans = scan::array(body).map_err(|_| parse_error())?;
            if spans.is_empty() {
                return Err(RpcError::new(
                    Bytes::new(),
                    code::INVALID_REQUEST,
                    "empty batch",
                ));
            }
            let mut calls = Vec::with_capacity(spans.len());
            for span in spans {
                // Any element that is not JSON makes the whole body not JSON.
                calls.push(parse_call(body.slice(span)).map_err(|_| parse_error())?);
            }
            Ok(Parsed::Batch(calls))
        }
        _ => parse_call(body.clone())
            .map(Parsed::Single)
            .map_err(|_| parse_error()),
    }
}

/// Parses one call: `Err` only for text that is not JSON; a well-formed call that is not a
/// valid request is `Ok(Err(..))`.
fn parse_call(bytes: Bytes) -> Result<Result<RpcCall, RpcError>, ()> {
    let members = match scan::object(&bytes) {
        Ok(members) => members,
        Err(ScanError::Syntax) => return Err(()),
        Err(ScanError::NotAnObject) => {
            return Ok(Err(RpcError::new(
                Bytes::new(),
                code::INVALID_REQUEST,
                "invalid request: not an object",
            )));
        }
        Err(ScanError::DuplicateMember) => {
            return Ok(Err(RpcError::new(
                Bytes::new(),
                code::INVALID_REQUEST,
                "invalid request: duplicate member",
            )));
        }
        Err(ScanError::NeedsDecoder) => return decode_call(bytes),
    };
    let id = match members.id {
        None => Bytes::new(),
        Some(span) if matches!(bytes[span.start], b'{' | b'[') => {
            return Ok(Err(RpcError::new(
                Bytes::new(),
                code::INVALID_REQUEST,
                "invalid request: id must be a string, number or null",
            )));
        }
        Some(span) => bytes.slice(span),
    };
    let method = members.method.and_then(|span| {
        let raw = &bytes[span];
        let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if inner.contains(&b'\\') {
            serde_json::from_slice::<String>(raw)
                .ok()
                .map(String::into_boxed_str)
        } else {
            std::str::from_utf8(inner).ok().map(Box::from)
        }
    });
    let Some(method) = method else {
        return Ok(Err(RpcError::new(
            id,
            code::INVALID_REQUEST,
            "invalid request: method must be a string",
        )));
    };
    Ok(Ok(RpcCall {
        method,
        params: members.params.map(|span| bytes.slice(span)),
        id,
        bytes,
        split: OnceLock::new(),
    }))
}

/// The exact (slower) path, for envelopes with escaped keys.
fn decode_call(bytes: Bytes) -> Result<Result<RpcCall, RpcError>, ()> {
    let envelope: RawEnvelope<'_> = match serde_json::from_slice(&bytes) {
        Ok(envelope) => envelope,
        Err(e) if e.is_syntax() || e.is_eof() => return Err(()),
        Err(e) => {
            return Ok(Err(RpcError::new(
                Bytes::new(),
                code::INVALID_REQUEST,
                format!("invalid request: {e}"),
            )));
        }
    };
    let id = match envelope.id {
        None => Bytes::new(),
        Some(raw) if matches!(raw.get().as_bytes().first(), Some(b'{' | b'[')) => {
            return Ok(Err(RpcError::new(
                Bytes::new(),
                code::INVALID_REQUEST,
                "invalid request: id must be a string, number or null",
            )));
        }
        Some(raw) => bytes.slice_ref(raw.get().as_bytes()),
    };
    let method = match envelope
        .method
        .map(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()))
    {
        Some(Ok(method)) => method,
        _ => {
            return Ok(Err(RpcError::new(
                id,
                code::INVALID_REQUEST,
                "invalid request: method must be a string",
            )));
        }
    };
    Ok(Ok(RpcCall {
        method: method.into(),
        params: envelope
            .params
            .map(|raw| bytes.slice_ref(raw.get().as_bytes())),
        id,
        bytes: bytes.clone(),
        split: OnceLock::new(),
    }))
}

/// A JSON-RPC error response answering raw id `id` (empty means `null`).
pub fn error_response(id: &[u8], code: i32, message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + id.len() + message.len());
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(if id.is_empty() { b"null" } else { id });
    out.put_slice(b",\"error\":{\"code\":");
    out.put_slice(code.to_string().as_bytes());
    out.put_slice(b",\"message\":");
    write_json_string(&mut out, message);
    out.put_slice(b"}}");
    out.freeze()
}

/// A JSON-RPC success response answering raw id `id` with raw JSON `result`.
pub fn result_response(id: &[u8], result: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(40 + id.len() + result.len());
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(if id.is_empty() { b"null" } else { id });
    out.put_slice(b",\"result\":");
    out.put_slice(result);
    out.put_u8(b'}');
    out.freeze()
}

/// Joins single responses into one batch response, in the given order, skipping empty ones
/// (answers to notifications).
pub fn join_batch<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b'[');
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        if out.len() > 1 {
            out.put_u8(b',');
        }
        out.put_slice(trim_ascii(part));
    }
    out.put_u8(b']');
    out.freeze()
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn write_json_string(out: &mut BytesMut, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let encoded = serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec());
    out.put_slice(&encoded);
}

/// A JSON-RPC response, read without copying or decoding its result.
#[derive(Debug)]
pub struct RpcResponse<'a> {
    /// The id as raw JSON text.
    pub id: Option<&'a [u8]>,
    /// The raw JSON text of the `result` member, if the call succeeded (`null` counts as
    /// absent). Delimited, not checked: whoever reads it decodes it.
    pub result: Option<&'a [u8]>,
    /// The `error` member, if the call failed.
    pub error: Option<ErrorObject>,
}

/// The `error` member of a JSON-RPC response.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ErrorObject {
    /// The error code.
    pub code: i32,
    /// The error message.
    #[serde(default)]
    pub message: String,
}

/// Why an answer is not a JSON-RPC response.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// Not a JSON object, or a member appears twice.
    #[error("not a JSON-RPC response: {0}")]
    Envelope(&'static str),
    /// The `error` member is not an error object.
    #[error("malformed error member: {0}")]
    Error(#[source] serde_json::Error),
}

impl<'a> RpcResponse<'a> {
    /// Reads a single (non-batch) response. Its members are found by a scan that does not
    /// walk the result's text more than to find its end (an answer's result can be megabytes);
    /// only an `error` member is decoded.
    ///
    /// # Errors
    ///
    /// Fails when `body` is not a JSON object with the members above.
    pub fn from_slice(body: &'a [u8]) -> Result<Self, ResponseError> {
        let [id, result, error] = match scan::members_loosely(body, [b"id", b"result", b"error"]) {
            Ok(spans) => spans,
            Err(ScanError::NeedsDecoder) => return Self::decode(body),
            Err(ScanError::Syntax) => return Err(ResponseError::Envelope("not JSON")),
            Err(ScanError::NotAnObject) => return Err(ResponseError::Envelope("not an object")),
            Err(ScanError::DuplicateMember) => {
                return Err(ResponseError::Envelope("duplicate member"));
            }
        };
        let present = |span: Option<std::ops::Range<usize>>| {
            span.map(|span| &body[span])
                .filter(|raw| *raw != b"null".as_slice())
        };
        let error = present(error)
            .map(serde_json::from_slice::<ErrorObject>)
            .transpose()
            .map_err(ResponseError::Error)?;
        Ok(Self {
            id: present(id),
            result: present(result),
            error,
        })
    }

    /// The exact path, for answers with escaped keys.
    fn decode(body: &'a [u8]) -> Result<Self, ResponseError> {
        #[derive(Deserialize)]
        struct Decoded<'a> {
            #[serde(borrow, default)]
            id: Option<&'a RawValue>,
            #[serde(borrow, default)]
            result: Option<&'a RawValue>,
            #[serde(default)]
            error: Option<ErrorObject>,
        }
        let decoded: Decoded<'a> =
            serde_json::from_slice(body).map_err(|_| ResponseError::Envelope("not JSON"))?;
        Ok(Self {
            id: decoded.id.map(|raw| raw.get().as_bytes()),
            result: decoded.result.map(|raw| raw.get().as_bytes()),
            error: decoded.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &'static str) -> Result<RpcCall, RpcError> {
        match parse(&Bytes::from_static(body.as_bytes())) {
            Ok(Parsed::Single(call)) => call,
            other => panic!("expected a single call, got {other:?}"),
        }
    }

    #[test]
    fn reads_method_id_and_raw_params() {
        let call = single(r#" {"jsonrpc":"2.0","method":"eth_call","params":[{"to":"0x1"}, "latest"],"id":"a\"b"}"#)
            .expect("valid");
        assert_eq!(call.method(), "eth_call");
        assert_eq!(call.id(), br#""a\"b""#);
        assert_eq!(call.params(), Some(&br#"[{"to":"0x1"}, "latest"]"#[..]));
    }

    #[test]
    fn unescapes_method_names() {
        let call = single(r#"{"method":"eth\u005fchainId","id":1}"#).expect("valid");
        assert_eq!(call.method(), "eth_chainId");
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_null_id() {
        for body in [
            r#"{"method":"x","id":1"#,
            "",
            "nonsense",
            r#"[{"method":"x"},"#,
        ] {
            let err = parse(&Bytes::from_static(body.as_bytes())).expect_err(body);
            assert_eq!(err.code, code::PARSE_ERROR, "{body}");
            assert!(err.id.is_empty());
        }
    }

    #[test]
    fn params_are_the_upstreams_to_judge() {
        // Balanced but not JSON inside params: forwarded, for op-geth to answer -32700 itself.
        let call = single(r#"{"method":"m","params":[1 2],"id":1}"#).expect("envelope is fine");
        assert_eq!(call.params(), Some(&b"[1 2]"[..]));
    }

    #[test]
    fn a_null_id_is_a_call_not_a_notification() {
        let call = single(r#"{"method":"m","id":null}"#).expect("valid");
        assert_eq!(call.id(), b"null");
        assert!(!call.is_notification());
        assert!(
            single(r#"{"method":"m"}"#)
                .expect("valid")
                .is_notification()
        );
    }

    #[test]
    fn missing_method_is_invalid_request_with_the_id() {
        let err = single(r#"{"id":42,"params":[]}"#).expect_err("no method");
        assert_eq!(err.code, code::INVALID_REQUEST);
        assert_eq!(&err.id[..], b"42");
    }

    #[test]
    fn non_object_and_object_ids_are_invalid_requests() {
        assert_eq!(single("1").expect_err("number").code, code::INVALID_REQUEST);
        assert_eq!(
            single(r#"{"method":"m","id":{"a":1}}"#)
                .expect_err("object id")
                .code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn empty_batch_is_one_invalid_request() {
        let err = parse(&Bytes::from_static(b" [ ] ")).expect_err("empty");
        assert_eq!(err.code, code::INVALID_REQUEST);
    }

    #[test]
    fn batch_elements_stand_alone() {
        let body = Bytes::from_static(br#"[{"method":"a","id":1},5,{"id":3},{"method":"b"}]"#);
        let Ok(Parsed::Batch(calls)) = parse(&body) else {
            panic!("a batch")
        };
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[0].as_ref().map(RpcCall::method), Ok("a"));
        assert_eq!(
            calls[1].as_ref().err().map(|e| e.code),
            Some(code::INVALID_REQUEST)
        );
        assert_eq!(calls[2].as_ref().err().map(|e| &e.id[..]), Some(&b"3"[..]));
        assert!(calls[3].as_ref().is_ok_and(RpcCall::is_notification));
        assert_eq!(
            &calls[0]
                .as_ref()
                .map(|c| c.bytes().clone())
                .unwrap_or_default()[..],
            br#"{"method":"a","id":1}"#
        );
    }

    #[test]
    fn error_response_echoes_the_raw_id_and_escapes_the_message() {
        let body = error_response(br#""x""#, code::METHOD_NOT_FOUND, "no \"such\" method");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["id"], "x");
        assert_eq!(value["error"]["code"], -32601);
        assert_eq!(value["error"]["message"], "no \"such\" method");
        assert_eq!(
            &error_response(b"", 1, "m")[..],
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#
        );
    }

    #[test]
    fn built_calls_parse_back_to_themselves() {
        let call = RpcCall::new("engine_getPayloadV3", b"9", br#"["0x0300000000000001"]"#);
        let again = match parse(call.bytes()) {
            Ok(Parsed::Single(Ok(c))) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(again.method(), call.method());
        assert_eq!(again.id(), call.id());
        assert_eq!(again.params(), call.params());
    }

    #[test]
    fn responses_give_the_raw_result_or_the_decoded_error() {
        let body = br#"{"jsonrpc":"2.0","id":7,"result":{"status":"VALID","x":[1,"]"]}}"#;
        let answer = RpcResponse::from_slice(body).expect("a response");
        assert_eq!(answer.id, Some(&b"7"[..]));
        assert_eq!(
            answer.result,
            Some(&br#"{"status":"VALID","x":[1,"]"]}"#[..])
        );
        assert_eq!(answer.error, None);

        let body = br#"{"id":"a","error":{"code":-38001,"message":"Unknown payload","data":{}},"result":null}"#;
        let answer = RpcResponse::from_slice(body).expect("a response");
        assert_eq!(answer.result, None, "a null result is no result");
        assert_eq!(
            answer.error,
            Some(ErrorObject {
                code: -38001,
                message: "Unknown payload".into()
            })
        );

        let escaped = br#"{"id":1,"re\u0073ult":"0x1"}"#;
        let answer = RpcResponse::from_slice(escaped).expect("escaped keys are decoded");
        assert_eq!(answer.result, Some(&br#""0x1""#[..]));
    }

    #[test]
    fn broken_responses_are_refused() {
        for body in [
            &br#"{"result":1,"result":2}"#[..],
            br#"[{"result":1}]"#,
            br#"{"result":[1}"#,
            br#"{"result":1} x"#,
            br#"{"error":{"code":"x"}}"#,
            br#"{"result":"0x1"#,
            b"",
        ] {
            assert!(RpcResponse::from_slice(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn join_batch_keeps_order_and_skips_notifications() {
        let joined = join_batch([&b"{\"id\":1}\n"[..], b"", b"{\"id\":2}"]);
        assert_eq!(&joined[..], br#"[{"id":1},{"id":2}]"#);
    }
}

#[cfg(test)]
pub(crate) mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON value, a few levels deep (for the scanners' agreement with serde).
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn id() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            any::<u64>().prop_map(|n| Some(Value::from(n))),
            ".{0,10}".prop_map(|s| Some(Value::String(s))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever serde writes, the scanner reads back the same method, id and params.
        #[test]
        fn agrees_with_serde_on_any_envelope(method in ".{0,16}", id in id(), params in json_value(), extra in json_value(), pretty: bool) {
            let mut envelope = serde_json::Map::new();
            envelope.insert("jsonrpc".into(), Value::from("2.0"));
            envelope.insert("extra".into(), extra);
            envelope.insert("method".into(), Value::from(method.clone()));
            envelope.insert("params".into(), params.clone());
            if let Some(id) = &id {
                envelope.insert("id".into(), id.clone());
            }
            let value = Value::Object(envelope);
            let text = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap_or_default();
            let Ok(Parsed::Single(Ok(call))) = parse(&Bytes::from(text)) else {
                return Err(TestCaseError::fail("a valid call was refused"));
            };
            prop_assert_eq!(call.method(), method.as_str());
            // Both sides through serde's float parsing, which does not round-trip exactly.
            let ours: Value = serde_json::from_slice(call.params().unwrap_or_default()).unwrap_or(Value::Bool(false));
            let theirs: Value = serde_json::from_slice(&serde_json::to_vec(&params).unwrap_or_default()).unwrap_or(Value::Null);
            prop_assert_eq!(ours, theirs);
            match id {
                None => prop_assert!(call.is_notification()),
                Some(id) => prop_assert_eq!(serde_json::from_slice::<Value>(call.id()).ok(), Some(id)),
            }
        }

        /// Whatever serde writes as an answer, the scan reads the same result and error as
        /// serde's own decode.
        #[test]
        fn responses_agree_with_serde(result in json_value(), code: i32, message in ".{0,12}", failed: bool, pretty: bool) {
            let mut envelope = serde_json::Map::new();
            envelope.insert("jsonrpc".into(), Value::from("2.0"));
            envelope.insert("id".into(), Value::from(1));
            if failed {
                envelope.insert("error".into(), serde_json::json!({"code": code, "message": message}));
            } else {
                envelope.insert("result".into(), result.clone());
            }
            let value = Value::Object(envelope);
            let text = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap_or_default();
            let Ok(answer) = RpcResponse::from_slice(&text) else {
                return Err(TestCaseError::fail("a valid response was refused"));
            };
            if failed {
                prop_assert_eq!(answer.result, None);
                prop_assert_eq!(answer.error, Some(ErrorObject { code, message }));
            } else {
                prop_assert_eq!(answer.error, None);
                let ours: Option<Value> = answer.result.map(|raw| serde_json::from_slice(raw).unwrap_or(Value::Bool(false)));
                let theirs = Some(serde_json::from_slice::<Value>(&serde_json::to_vec(&result).unwrap_or_default()).unwrap_or(Value::Null)).filter(|v| !v.is_null());
                prop_assert_eq!(ours, theirs);
            }
        }

        /// Batches of valid calls come back whole and in order.
        #[test]
        fn batches_keep_every_call_in_order(methods in prop::collection::vec("[a-z_]{1,12}", 1..20)) {
            let batch: Vec<Value> = methods.iter().enumerate()
                .map(|(i, m)| serde_json::json!({"jsonrpc":"2.0","id":i,"method":m,"params":[i]}))
                .collect();
            let body = Bytes::from(serde_json::to_vec(&batch).unwrap_or_default());
            let Ok(Parsed::Batch(calls)) = parse(&body) else { return Err(TestCaseError::fail("not a batch")) };
            let got: Vec<String> = calls.iter().filter_map(|c| c.as_ref().ok()).map(|c| c.method().to_owned()).collect();
            prop_assert_eq!(got, methods);
        }

        /// Any bytes at all: an answer, never a panic; an accepted call has a real method, and
        /// its params (when present) are one balanced JSON value.
        #[test]
        fn never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let body = Bytes::from(bytes);
            if let Ok(Parsed::Single(Ok(call))) = parse(&body) {
                prop_assert!(std::str::from_utf8(call.method().as_bytes()).is_ok());
                if let Some(params) = call.params() {
                    let starts_a_value = matches!(params.first(), Some(b'[' | b'{' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'));
                    prop_assert!(starts_a_value, "params of an accepted call start a JSON value");
                }
            }
        }

        /// Truncating a valid envelope anywhere makes it a parse error, never a call.
        #[test]
        fn truncated_envelopes_are_parse_errors(params in json_value(), cut in 0usize..1_000) {
            let text = serde_json::to_vec(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"m","params":params})).unwrap_or_default();
            let cut = cut % text.len();
            let parsed = parse(&Bytes::copy_from_slice(&text[..cut]));
            prop_assert!(matches!(parsed, Err(RpcError { code: code::PARSE_ERROR, .. })), "{:?}", parsed);
        }
    }
}
