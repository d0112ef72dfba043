//! Bad input gets a clear answer and never reaches op-geth.

use http::StatusCode;
use switchyard_layers::jsonrpc::code;
use switchyard_sim::Fork;

use crate::harness::{Switchyard, config_for, json, op_geth, spec};

#[tokio::test]
async fn oversized_body_is_413_and_not_forwarded() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let mut config = config_for(&l2);
    config.limits.max_request_size = 4096;
    let proxy = Switchyard::start(config).await;
    let client = proxy.client(l2.secret());
    let padding = "0".repeat(8192);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{padding}"]}}"#
    );
    let (status, answer) = client.post_signed(body.into()).await.expect("post");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(&answer)["error"]["code"], code::REQUEST_TOO_LARGE);
    assert_eq!(l2.log().count("eth_sendRawTransaction"), 0);
    // The connection pool and the server are fine afterwards.
    let (status, _) = client
        .post_signed(r#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId","params":[]}"#.into())
        .await
        .expect("post");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_is_32700_and_invalid_requests_are_32600_with_their_id() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let proxy = Switchyard::start(config_for(&l2)).await;
    let client = proxy.client(l2.secret());
    for garbage in [r#"{"jsonrpc":"2.0","id":1,"method":"#, "\u{0}\u{1}", "[{]"] {
        let (status, answer) = client
            .post_signed(garbage.to_owned().into())
            .await
            .expect("post");
        assert_eq!(status, StatusCode::OK);
        let answer = json(&answer);
        assert_eq!(answer["error"]["code"], code::PARSE_ERROR, "{garbage:?}");
        assert_eq!(answer["id"], serde_json::Value::Null);
    }
    let (_, answer) = client
        .post_signed(r#"{"jsonrpc":"2.0","id":"x","params":[]}"#.into())
        .await
        .expect("post");
    let answer = json(&answer);
    assert_eq!(answer["error"]["code"], code::INVALID_REQUEST);
    assert_eq!(answer["id"], "x");
    let (_, answer) = client.post_signed("[]".into()).await.expect("post");
    assert_eq!(json(&answer)["error"]["code"], code::INVALID_REQUEST);
    // Only switchyard's own head checks reached op-geth; none of these requests did.
    assert!(
        l2.log()
            .entries()
            .iter()
            .all(|e| e.method == "eth_getBlockByNumber")
    );
}

/// Writes one keep-alive request and reads its response head and body (`Content-Length`).
async fn request_on(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("read");
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("length");
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.expect("body");
    head
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let mut config = config_for(&l2);
    config.limits.max_connections = 1;
    let proxy = Switchyard::start(config).await;

    // The one slot, held by an idle keep-alive connection.
    let mut first = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    assert!(request_on(&mut first).await.starts_with("HTTP/1.1 200"));

    // A second client is not served while the slot is taken. (Waiting for an absence needs a
    // bound; without the cap it would be answered in about a millisecond.)
    let mut second = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let mut waiting = tokio::spawn(async move { request_on(&mut second).await });
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting).await;
    assert!(early.is_err(), "served past the cap: {early:?}");

    // The first leaves: the second is served.
    drop(first);
    let answer = waiting.await.expect("join");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
