//! Builders behind TLS: trusted ones build blocks; a wrong CA, an expired certificate, a name
//! mismatch or a refused client certificate make the local block win, with the reason recorded.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, date_time_ymd};
use switchyard_layers::{payload_select::Source, tls::TlsOptions};
use switchyard_sim::{ChainSpec, Fork, SimConfig, SimTls};

use crate::harness::{Net, spec};

/// A certificate authority of the test's own.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let pem = params.self_signed(&key).expect("self-signed").pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names`, optionally expired. Returns (certificate, key) PEM.
    fn leaf(&self, names: &[&str], expired: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

struct Files(PathBuf);

impl Files {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("switchyard-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tls_builder(
    spec: &ChainSpec,
    name: &str,
    (cert, key): (String, String),
    client_ca: Option<&Ca>,
) -> SimConfig {
    let mut config = SimConfig::builder(spec.clone()).named(name);
    config.tls = Some(SimTls {
        cert_chain_pem: cert,
        key_pem: key,
        client_ca_pem: client_ca.map(|ca| ca.pem.clone()),
    });
    config
}

async fn outcome(
    spec: ChainSpec,
    builder: SimConfig,
    options: TlsOptions,
) -> (Source, Option<&'static str>) {
    let mut net = Net::start_custom(spec, vec![(builder, options)], |_| {}).await;
    let report = net.step().await;
    let decision = net.last();
    if decision.source == Source::Local {
        assert!(net.built_locally(report.number));
    }
    (decision.source, decision.builders[0].lost)
}

fn trusting(path: &Path) -> TlsOptions {
    TlsOptions {
        ca_file: Some(path.to_owned()),
        client_identity: None,
    }
}

#[tokio::test]
async fn a_builder_behind_tls_wins_blocks() {
    let files = Files::new("ok");
    let ca = Ca::new("builders' CA");
    let ca_file = files.write("ca.pem", &ca.pem);
    let chain = spec(Fork::Isthmus);
    let builder = tls_builder(&chain, "tls-builder", ca.leaf(&["127.0.0.1"], false), None);
    let mut net = Net::start_custom(chain, vec![(builder, trusting(&ca_file))], |_| {}).await;
    assert!(net.builders[0].url().starts_with("https://"));
    for _ in 0..3 {
        let report = net.step().await;
        assert!(
            net.built_by(report.number, "tls-builder"),
            "{:?}",
            net.last()
        );
    }
}

#[tokio::test]
async fn certificate_problems_fall_back_to_the_local_block() {
    let files = Files::new("bad");
    let ca = Ca::new("builders' CA");
    let other = Ca::new("someone else's CA");
    let ca_file = files.write("ca.pem", &ca.pem);
    let other_file = files.write("other.pem", &other.pem);
    let chain = spec(Fork::Isthmus);
    let cases = [
        (
            "wrong CA",
            tls_builder(&chain, "b", ca.leaf(&["127.0.0.1"], false), None),
            trusting(&other_file),
        ),
        (
            "expired",
            tls_builder(&chain, "b", ca.leaf(&["127.0.0.1"], true), None),
            trusting(&ca_file),
        ),
        (
            "name mismatch",
            tls_builder(&chain, "b", ca.leaf(&["builder.example"], false), None),
            trusting(&ca_file),
        ),
    ];
    for (what, builder, options) in cases {
        let (source, lost) = outcome(chain.clone(), builder, options).await;
        assert_eq!(source, Source::Local, "{what}");
        // Whichever reached the builder first, the health poll or the FCU, names TLS.
        assert!(
            matches!(lost, Some("tls" | "skipped_tls")),
            "{what}: {lost:?}"
        );
    }
}

#[tokio::test]
async fn mutual_tls_needs_the_right_client_certificate() {
    let files = Files::new("mtls");
    let ca = Ca::new("builders' CA");
    let clients = Ca::new("sequencers' CA");
    let ca_file = files.write("ca.pem", &ca.pem);
    let (cert, key) = clients.leaf(&["switchyard.sequencer"], false);
    let identity = Some((
        files.write("client.pem", &cert),
        files.write("client.key", &key),
    ));
    let chain = spec(Fork::Isthmus);
    let server = ca.leaf(&["127.0.0.1"], false);

    let with_cert = TlsOptions {
        ca_file: Some(ca_file.clone()),
        client_identity: identity,
    };
    let builder = tls_builder(&chain, "mtls-builder", server.clone(), Some(&clients));
    let (source, _) = outcome(chain.clone(), builder, with_cert).await;
    assert_eq!(source, Source::Builder("mtls-builder".into()));

    let builder = tls_builder(&chain, "mtls-builder", server, Some(&clients));
    let (source, lost) = outcome(chain, builder, trusting(&ca_file)).await;
    assert_eq!(source, Source::Local);
    assert!(matches!(lost, Some("tls" | "skipped_tls")), "{lost:?}");
}

#[tokio::test]
async fn a_builders_flashblocks_stream_over_wss_is_taken_with_its_tls_settings() {
    let files = Files::new("wss");
    let ca = Ca::new("builders' CA");
    let ca_file = files.write("ca.pem", &ca.pem);
    let chain = spec(Fork::Isthmus);
    let builder = tls_builder(&chain, "wss-builder", ca.leaf(&["127.0.0.1"], false), None)
        .with_flashblocks(switchyard_sim::FlashblocksConfig {
            interval: std::time::Duration::from_millis(2),
            per_block: 3,
            brotli: false,
        });
    let mut net = Net::start_custom(chain, vec![(builder, trusting(&ca_file))], |_| {}).await;
    let url = net.builders[0].flashblocks_url().expect("a stream");
    assert!(url.starts_with("wss://"), "{url}");
    let mut connections = net.builders[0].flashblocks_connections().expect("a stream");
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        connections.wait_for(|n| *n >= 1),
    )
    .await
    .expect("switchyard connects over TLS")
    .expect("alive");
    // Published by switchyard, so taken over TLS; then served.
    let outbound = net.proxy.flashblocks.expect("listener");
    let stream = tokio::net::TcpStream::connect(outbound)
        .await
        .expect("connect");
    let (subscriber, _) = tokio_tungstenite::client_async(format!("ws://{outbound}/"), stream)
        .await
        .expect("subscribe");
    let (_sink, mut frames) = futures_util::StreamExt::split(subscriber);
    let report = net
        .seq
        .step_after(async {
            for _ in 0..3 {
                tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    futures_util::StreamExt::next(&mut frames),
                )
                .await
                .expect("a flashblock")
                .expect("open")
                .expect("a frame");
            }
        })
        .await
        .expect("block");
    assert!(net.built_by(report.number, "wss-builder"));
    assert_eq!(net.last().builders[0].flashblocks, Some(3));
}
