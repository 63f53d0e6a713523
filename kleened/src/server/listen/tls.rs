//! TLS on a listener: the acceptor made from the configured certificate and key, and the
//! handshake, bounded in time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

use super::{ListenError, Stream};

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS acceptor of listener `name`, from its certificate chain and private key.
pub(super) fn tls_acceptor(name: &str, settings: &TlsSettings) -> Result<TlsAcceptor, ListenError> {
    let fail = |path: &Path, reason: String| ListenError::Tls {
        address: name.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&settings.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(&settings.cert, format!("cannot read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(fail(&settings.cert, "no certificate in the file".into()));
    }
    let key_path = settings.key.as_ref().unwrap_or(&settings.cert);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| fail(key_path, format!("cannot read the private key: {e}")))?;
    if let Some(dh) = &settings.dh_params {
        tracing::info!(path = %dh.display(), "tlsdh is ignored: only elliptic-curve key exchange is offered");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&settings.cert, e.to_string()))?;
    let builder = match (&settings.ca_cert, settings.verify_client) {
        (Some(ca_path), true) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| fail(ca_path, format!("cannot read CA certificates: {e}")))?;
            let (added, _ignored) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err(fail(ca_path, "no usable CA certificate in the file".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| fail(ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| fail(key_path, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The stream to speak HTTP on: `io` itself, or, on a TLS listener, the TLS session once its
/// handshake succeeded within [`TLS_HANDSHAKE_TIMEOUT`].
pub(super) async fn handshake<S: Stream>(
    io: S,
    tls: Option<TlsAcceptor>,
    name: &str,
) -> Option<Box<dyn Stream>> {
    let Some(acceptor) = tls else {
        return Some(Box::new(io));
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(err)) => {
            tracing::info!(address = %name, error = %err, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(address = %name, "TLS handshake timed out");
            None
        }
    }
}
