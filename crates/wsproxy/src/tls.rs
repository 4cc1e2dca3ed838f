//! TLS with rustls (ring provider): the proxy's connection to a `wss://`
//! upstream, verified against the platform's roots and the webpki roots (or
//! a CA file, or not at all with `--insecure`), and a TLS listener for
//! clients that connect with `wss://`.
//!
//! A certificate in the `--upstream-ca` file that is the upstream's own
//! certificate is accepted as it is (pinned), even where webpki refuses it
//! as an end entity: a self-signed test certificate made with `openssl req
//! -x509` is marked `CA:TRUE`, and is exactly what people give here (curl's
//! `--cacert` accepts it too). Its name is still checked, and so are the
//! handshake's signatures.

use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the upstream's certificate is checked against.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTrust {
    /// A PEM file of CA certificates to trust besides the usual roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate (signatures are still checked).
    pub insecure: bool,
}

/// The client configuration for a `wss://` upstream. Offers ALPN
/// `http/1.1`: WebSocket's upgrade is an HTTP/1.1 mechanism (RFC 6455 §4.1).
pub fn client_config(trust: &UpstreamTrust) -> anyhow::Result<Arc<ClientConfig>> {
    client_config_for(trust, "--upstream-ca")
}

/// [`client_config`] for another tool (`wsharness bench`), whose errors
/// name its own CA flag `ca_flag`.
pub fn client_config_for(trust: &UpstreamTrust, ca_flag: &str) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let mut config = if trust.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))).with_no_client_auth()
    } else {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // The platform's roots too (a corporate CA installed system-wide);
        // unreadable ones are skipped, as every TLS client does.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        let mut pinned = Vec::new();
        if let Some(path) = &trust.ca_file {
            let certs = read_certs(ca_flag, path)?;
            let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
            if added == 0 {
                bail!("{ca_flag} {}: no usable CA certificate in it", path.display());
            }
            pinned = certs;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("building the certificate verifier")?;
        let verifier = Arc::new(PinnedOrWebPki { webpki, pinned });
        builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The listener's configuration from a PEM certificate chain and key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = read_certs("--tls-cert", cert)?;
    std::fs::File::open(key).with_context(|| format!("--tls-key {}: cannot open it", key.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("--tls-key {}: no private key read: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--tls-cert/--tls-key: the key does not go with the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM certificates in `path`, given with `flag`; errors name both.
fn read_certs(flag: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path).with_context(|| format!("{flag} {}: cannot open it", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_reader_iter(io::BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{flag} {}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{flag} {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", path.display());
    }
    Ok(certs)
}

/// The name to send as SNI and to check the certificate against.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|e| anyhow::anyhow!("{host}: not a TLS server name: {e}"))
}

/// A one-line reason for a failed TLS handshake with the upstream, naming
/// the usual causes and what to do.
pub fn describe_error(e: &io::Error) -> String {
    describe(e, Peer::Upstream, "--upstream-ca")
}

/// [`describe_error`] for another tool's connection to a server, whose CA
/// flag is `ca_flag`.
pub fn describe_server_error(e: &io::Error, ca_flag: &str) -> String {
    describe(e, Peer::Upstream, ca_flag)
}

/// A one-line reason for a failed TLS handshake with a client of the
/// `--tls-cert` listener.
pub fn describe_client_error(e: &io::Error) -> String {
    describe(e, Peer::Client, "")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Upstream,
    Client,
}

fn describe(e: &io::Error, peer: Peer, ca_flag: &str) -> String {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return match peer {
                Peer::Upstream => format!(
                    "the upstream closed the connection during the TLS handshake \
                     (a plain ws:// server? then use ws://): {e}"
                ),
                Peer::Client => format!("the client closed the connection during the TLS handshake: {e}"),
            };
        }
        return e.to_string();
    };
    let what = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "certificate expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "certificate not yet valid",
            CertificateError::UnknownIssuer => &format!(
                "unknown issuer (not signed by a trusted CA: give the CA's certificate, \
                     or the server's own, with {ca_flag} FILE)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name mismatch (the certificate is not valid for this host: use a name it lists, \
                 or a certificate that lists this one)"
            }
            CertificateError::Revoked => "certificate revoked",
            CertificateError::BadSignature => "bad certificate signature",
            c if is_ca_used_as_end_entity(c) => &format!(
                "the server's certificate is a CA certificate (CA:TRUE, as `openssl req -x509` makes them), \
                 not one issued to a server: to trust it, give that very certificate with {ca_flag} FILE \
                 (it is then pinned)"
            ),
            _ => "invalid certificate",
        },
        // Plain HTTP where a TLS record was expected.
        rustls::Error::InvalidMessage(_) => match peer {
            Peer::Upstream => "the upstream answered a TLS handshake in plain text: use ws://",
            Peer::Client => {
                "the client sent plain text to a TLS listener: connect with wss://, \
                 or run the proxy without --tls-cert"
            }
        },
        rustls::Error::NoApplicationProtocol => "no common ALPN protocol (the server does not offer http/1.1)",
        rustls::Error::AlertReceived(_) => match peer {
            Peer::Upstream => "the server refused the handshake",
            Peer::Client => "the client refused the handshake (does it trust the proxy's --tls-cert?)",
        },
        _ => "handshake failed",
    };
    format!("{what}: {tls}")
}

/// webpki refuses a certificate marked `CA:TRUE` as a server's own; rustls
/// passes that reason on as `Other`.
fn is_ca_used_as_end_entity(c: &CertificateError) -> bool {
    matches!(c, CertificateError::Other(other)
        if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)))
}

/// The first bytes of a TLS record (content type 20 to 23, version 3.x):
/// what a TLS peer sends where plain HTTP was expected.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [20..=23, 3, 0..=4, ..])
}

/// Verification against the roots (webpki), and besides it a certificate
/// given with `--upstream-ca` that is exactly the server's own (pinned):
/// accepted when webpki refuses it as an end entity (a self-signed `CA:TRUE`
/// test certificate) or cannot find its issuer, once its name matches.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verdict {
            Err(rustls::Error::InvalidCertificate(ref c))
                if (is_ca_used_as_end_entity(c) || *c == CertificateError::UnknownIssuer)
                    && self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `--insecure`: any certificate is accepted; the handshake signatures are
/// still verified, so the connection is encrypted to whoever answered.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
