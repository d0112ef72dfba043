//! TLS to upstreams: `https://` URLs through rustls, with the system's roots or a private CA, and
//! an optional client certificate for mutual TLS.
//!
//! # Behaviour
//!
//! [`connector`] builds the connector every [`Forward`](crate::Forward) uses: plain TCP for
//! `http://`, rustls for `https://`, HTTP/1.1 (the one protocol offered in ALPN). The crypto
//! backend is *ring*: it builds in seconds with the C compiler every machine already has, where
//! aws-lc-rs needs a full CMake build.
//!
//! - Trust: the system's root certificates by default; with [`TlsOptions::ca_file`], that CA
//!   (and only it), for builders on a private PKI.
//! - Client certificate: [`TlsOptions::client_identity`], a PEM certificate chain and key.
//! - A certificate problem (unknown issuer, expired, wrong name, refused client certificate)
//!   fails that call with [`ForwardError::Tls`](crate::ForwardError::Tls), which says what
//!   rustls objected to; it never hangs.
//!
//! # Example
//!
//! ```no_run
//! use switchyard_layers::{Forward, tls::TlsOptions};
//!
//! let options = TlsOptions { ca_file: Some("/etc/builder/ca.pem".into()), client_identity: None };
//! let builder = Forward::with_tls("builder", "https://builder.example:8551".parse().unwrap(), &options).unwrap();
//! # let _ = builder;
//! ```

use std::{path::PathBuf, sync::Arc};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// The connector of every upstream: plain or rustls, by URL scheme.
pub type UpstreamConnector = HttpsConnector<HttpConnector>;

/// How to reach one upstream over TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Trust only this CA (PEM), instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Present this certificate chain and key (both PEM) for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// Why a TLS configuration could not be built. Names the file; never shows key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A CA file holds no certificate.
    #[error("{0}: no certificate in the file")]
    NoCertificate(PathBuf),
    /// The system has no usable root certificates.
    #[error("no system root certificates found; give a CA file")]
    NoSystemRoots,
    /// rustls refused the configuration (e.g. a key that does not match its certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn pem_error(path: &std::path::Path, error: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

fn roots(options: &TlsOptions) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, e))? {
                roots.add(cert.map_err(|e| pem_error(path, e))?)?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate(path.clone()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A few unusable system certificates are common; skipping them is what every
                // client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

/// The rustls client configuration for `options`.
///
/// # Errors
///
/// If a file cannot be read, holds nothing usable, or the key does not fit the certificate.
pub fn client_config(options: &TlsOptions) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(options)?);
    let config = match &options.client_identity {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let chain = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| pem_error(cert_path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(cert_path, e))?;
            if chain.is_empty() {
                return Err(TlsError::NoCertificate(cert_path.clone()));
            }
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem_error(key_path, e))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    // ALPN (h2, http/1.1) is set by the connector builder.
    Ok(config)
}

/// A connector for `uri` over `http` (the TCP connector, with its timeouts): rustls with
/// `options` if it is `https://`, plain TCP otherwise.
///
/// # Errors
///
/// If the TLS configuration cannot be built (only for `https://`).
pub fn connector(
    uri: &http::Uri,
    options: &TlsOptions,
    mut http: HttpConnector,
) -> Result<UpstreamConnector, TlsError> {
    http.enforce_http(false);
    // Plain upstreams need no roots: don't fail (or read the system store) for them.
    let config = if uri.scheme_str() == Some("https") {
        client_config(options)?
    } else {
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth()
    };
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        // Offer only what the pool speaks: an upstream that picked h2 would fail the handshake.
        .enable_http1()
        .wrap_connector(http))
}

/// The rustls error somewhere in `error`'s chain, if the failure was TLS's.
pub(crate) fn rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cursor = Some(error);
    while let Some(error) = cursor {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error's source() skips the error it wraps (and hyper-rustls wraps tokio-rustls's
        // io::Error in another one): step into the wrapped error instead.
        cursor = match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// Whether `uri` is plain HTTP to a host that is not this machine (its JWT travels in clear).
pub fn is_plain_remote(uri: &http::Uri) -> bool {
    if uri.scheme_str() != Some("http") {
        return false;
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_remote_urls() {
        for (url, remote) in [
            ("http://10.0.0.2:8551", true),
            ("http://builder.example:8551", true),
            ("http://127.0.0.1:8551", false),
            ("http://localhost:8551", false),
            ("http://[::1]:8551", false),
            ("https://builder.example:8551", false),
        ] {
            assert_eq!(is_plain_remote(&url.parse().expect("uri")), remote, "{url}");
        }
    }

    #[test]
    fn finds_rustls_errors_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
        let outer = std::io::Error::other(inner);
        assert_eq!(rustls_error(&outer), Some(&tls));
        assert_eq!(rustls_error(&std::io::Error::other("plain")), None);
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let options = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            client_identity: None,
        };
        let error = client_config(&options).expect_err("missing").to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
