//! Inbound JWT: only op-node's secret gets in, and what gets in is re-signed for op-geth.

use http::StatusCode;
use switchyard_layers::JwtSecret;
use switchyard_sim::{Fork, random_secret, secret_hex, token, token_hs384};

use crate::harness::{Switchyard, call, config_for, json, op_geth, spec};

#[tokio::test]
async fn bad_tokens_get_401_and_nothing_reaches_op_geth() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let op_node_secret = random_secret();
    let mut config = config_for(&l2);
    config.rpc_secret = JwtSecret::from_hex(&secret_hex(&op_node_secret)).expect("secret");
    let proxy = Switchyard::start(config).await;
    let client = proxy.client(op_node_secret);
    let body = call(1, "eth_chainId", serde_json::json!([]));

    let cases = [
        ("missing", None, "missing token\n"),
        (
            "wrong key",
            Some(token(&random_secret(), 0)),
            "signature is invalid\n",
        ),
        (
            "op-geth's key",
            Some(token(&l2.secret(), 0)),
            "signature is invalid\n",
        ),
        ("HS384", Some(token_hs384(&op_node_secret)), ""),
        (
            "iat 61 s ago",
            Some(token(&op_node_secret, -61)),
            "stale token\n",
        ),
        (
            "iat 61 s ahead",
            Some(token(&op_node_secret, 61)),
            "future token\n",
        ),
        (
            "not bearer",
            Some(format!("Basic {}", token(&op_node_secret, 0))),
            "missing token\n",
        ),
    ];
    for (what, token, reason) in cases {
        let header = token.map(|t| {
            if t.starts_with("Basic ") {
                t
            } else {
                format!("Bearer {t}")
            }
        });
        let (status, answer) = client
            .post(body.clone(), header.as_deref())
            .await
            .expect("post");
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        if !reason.is_empty() {
            assert_eq!(String::from_utf8_lossy(&answer), reason, "{what}");
        }
    }
    assert_eq!(l2.log().count("eth_chainId"), 0, "nothing was forwarded");
    assert_eq!(
        l2.log().unauthorized(),
        0,
        "nothing even knocked on op-geth's door"
    );

    // op-node's valid token gets through, and op-geth accepts what arrives: it was re-signed.
    let (status, answer) = client.post_signed(body).await.expect("post");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&answer)["result"], "0x385");
    assert_eq!(l2.log().count("eth_chainId"), 1);
    assert_eq!(l2.log().unauthorized(), 0);
}

#[tokio::test]
async fn tokens_at_the_edge_of_the_window_are_accepted() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let proxy = Switchyard::start(config_for(&l2)).await;
    let client = proxy.client(l2.secret());
    for skew in [-59, 59] {
        let header = format!("Bearer {}", token(&l2.secret(), skew));
        let (status, _) = client
            .post(call(1, "eth_chainId", serde_json::json!([])), Some(&header))
            .await
            .expect("post");
        assert_eq!(status, StatusCode::OK, "iat {skew:+} s");
    }
}
