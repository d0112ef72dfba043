//! Transparency: through switchyard, every call answers byte for byte as op-geth answers directly.

use alloy_primitives::B256;
use serde_json::{Value, json};
use switchyard_sim::{ChainSpec, EngineClient, Fork, Sequencer, SequencerConfig, tx};

use crate::harness::{Switchyard, call, config_for, json, op_geth, spec};

/// Two identical simulated chains, one behind switchyard; every call goes to both.
struct Twins {
    direct: EngineClient,
    proxied: EngineClient,
    _sims: (switchyard_sim::EngineSim, switchyard_sim::EngineSim),
    _proxy: Switchyard,
}

impl Twins {
    async fn new(spec: ChainSpec) -> Self {
        let direct_sim = op_geth(spec.clone()).await;
        let proxied_sim = op_geth(spec).await;
        let proxy = Switchyard::start(config_for(&proxied_sim)).await;
        Self {
            direct: EngineClient::new(&direct_sim.url(), direct_sim.secret()).expect("client"),
            proxied: proxy.client(proxied_sim.secret()),
            _sims: (direct_sim, proxied_sim),
            _proxy: proxy,
        }
    }

    /// Sends `body` to both; asserts identical status and bytes; returns the bytes.
    async fn same(&self, body: bytes::Bytes) -> bytes::Bytes {
        let (direct_status, direct) = self.direct.post_signed(body.clone()).await.expect("direct");
        let (proxied_status, proxied) = self
            .proxied
            .post_signed(body.clone())
            .await
            .expect("proxied");
        assert_eq!(
            proxied_status,
            direct_status,
            "status for {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            proxied,
            direct,
            "bytes for {}:\nproxied {}\ndirect  {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&proxied),
            String::from_utf8_lossy(&direct)
        );
        direct
    }

    async fn result(&self, method: &str, params: Value) -> Value {
        let answer = json(&self.same(call(1, method, params)).await);
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }
}

const READS: [(&str, &str); 14] = [
    ("eth_chainId", "[]"),
    ("net_version", "[]"),
    ("web3_clientVersion", "[]"),
    ("eth_syncing", "[]"),
    ("eth_blockNumber", "[]"),
    ("eth_getBlockByNumber", r#"["latest", false]"#),
    ("eth_getBlockByNumber", r#"["safe", true]"#),
    ("eth_getBlockByNumber", r#"["finalized", false]"#),
    ("eth_getBlockByNumber", r#"["0x0", true]"#),
    (
        "engine_exchangeCapabilities",
        r#"[["engine_newPayloadV4"]]"#,
    ),
    (
        "engine_getClientVersionV1",
        r#"[{"code":"OP","name":"op-node","version":"v1","commit":"0x01020304"}]"#,
    ),
    (
        "engine_signalSuperchainV1",
        r#"[{"recommended":"0x0000000000000000000000000000000000000000000000000000000000000000","required":"0x0000000000000000000000000000000000000000000000000000000000000000"}]"#,
    ),
    ("no_suchMethod", "[]"),
    ("engine_getPayloadV9", r#"["0x0300000000000000"]"#),
];

#[tokio::test]
async fn every_method_single_and_batched_is_byte_identical() {
    for last in [
        Fork::Bedrock,
        Fork::Canyon,
        Fork::Ecotone,
        Fork::Isthmus,
        Fork::Jovian,
        Fork::Karst,
    ] {
        let chain = spec(last);
        let twins = Twins::new(chain.clone()).await;
        for (method, params) in READS {
            twins
                .same(call(
                    7,
                    method,
                    serde_json::from_str(params).expect("params"),
                ))
                .await;
        }
        let genesis = twins
            .result("eth_getBlockByNumber", json!(["latest", false]))
            .await;
        twins
            .result("eth_getBlockByHash", json!([genesis["hash"], false]))
            .await;
        twins
            .result(
                "eth_sendRawTransaction",
                json!([tx::transfer(chain.chain_id, 1, 0, 40)]),
            )
            .await;

        // One block through the Engine API, every call compared, with the versions op-node uses.
        let planner = Sequencer::connect(
            &twins.direct_url(),
            twins.direct_secret(),
            SequencerConfig::new(chain.clone()),
        )
        .await
        .expect("planner");
        let attrs = planner.next_attributes();
        let ts = attrs.payload_attributes.timestamp;
        let head = genesis["hash"].clone();
        let state =
            json!({"headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head});
        let fcu = chain.forks.fcu_version(ts);
        let updated = twins
            .result(
                &format!("engine_forkchoiceUpdatedV{fcu}"),
                json!([state, attrs]),
            )
            .await;
        let id = updated["payloadId"].clone();
        let get = chain.forks.get_payload_version(ts);
        let envelope = twins
            .result(&format!("engine_getPayloadV{get}"), json!([id]))
            .await;
        let payload = envelope["executionPayload"].clone();
        let beacon = envelope["parentBeaconBlockRoot"].clone();
        let new = chain.forks.new_payload_version(ts);
        let params = match new {
            2 => json!([payload]),
            3 => json!([payload, [], beacon]),
            _ => json!([payload, [], beacon, []]),
        };
        let status = twins
            .result(&format!("engine_newPayloadV{new}"), params)
            .await;
        assert_eq!(status["status"], "VALID", "{last:?}");
        let hash = payload["blockHash"].clone();
        let state =
            json!({"headBlockHash": hash, "safeBlockHash": head, "finalizedBlockHash": head});
        twins
            .result("engine_forkchoiceUpdatedV3", json!([state, null]))
            .await;
        twins
            .result("eth_getBlockByNumber", json!(["0x1", true]))
            .await;
        twins
            .result("eth_getBlockByHash", json!([hash, true]))
            .await;

        // Every other version of every engine method, answered (with errors) exactly as op-geth.
        for method in [
            "engine_forkchoiceUpdatedV1",
            "engine_forkchoiceUpdatedV2",
            "engine_forkchoiceUpdatedV3",
        ] {
            twins
                .same(call(3, method, json!([state, planner.next_attributes()])))
                .await;
        }
        for v in 2..=5 {
            twins
                .same(call(4, &format!("engine_getPayloadV{v}"), json!([id])))
                .await;
        }
        for v in 2..=4 {
            twins
                .same(call(
                    5,
                    &format!("engine_newPayloadV{v}"),
                    json!([payload, [], beacon, []]),
                ))
                .await;
        }

        // The same reads as one batch, with a notification and an invalid element inside.
        let mut batch: Vec<Value> = READS
            .iter()
            .enumerate()
            .map(|(i, (method, params))| {
                json!({"jsonrpc": "2.0", "id": i, "method": method, "params": serde_json::from_str::<Value>(params).expect("params")})
            })
            .collect();
        batch.push(json!({"jsonrpc": "2.0", "method": "eth_chainId"}));
        batch.push(json!({"jsonrpc": "2.0", "id": 99}));
        batch.push(json!({"jsonrpc": "2.0", "id": "engine", "method": "engine_forkchoiceUpdatedV3", "params": [state, null]}));
        let answers = json(
            &twins
                .same(serde_json::to_vec(&batch).expect("batch").into())
                .await,
        );
        assert_eq!(
            answers.as_array().map(Vec::len),
            Some(READS.len() + 2),
            "{last:?}"
        );
    }
}

#[tokio::test]
async fn ids_are_echoed_exactly() {
    let twins = Twins::new(spec(Fork::Isthmus)).await;
    for id in [
        r#""abc""#,
        "1.0",
        "-0",
        "null",
        r#""""#,
        "18446744073709551616",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_chainId","params":[]}}"#);
        let answer = twins.same(body.into()).await;
        assert!(
            String::from_utf8_lossy(&answer).contains(&format!("\"id\":{id}")),
            "{id}"
        );
    }
    let head: B256 = serde_json::from_value(
        twins
            .result("eth_getBlockByNumber", json!(["latest", false]))
            .await["hash"]
            .clone(),
    )
    .expect("hash");
    assert!(!head.is_zero());
}

impl Twins {
    fn direct_url(&self) -> String {
        self._sims.0.url()
    }
    fn direct_secret(&self) -> [u8; 32] {
        self._sims.0.secret()
    }
}
