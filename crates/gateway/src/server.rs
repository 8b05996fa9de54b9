//! Listeners: the proxy (HTTP/1.1 and h2c, or TLS with HTTP/2 by ALPN) served through
//! `rampart-listen` (connection hygiene and the graceful drain).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::service::TowerToHyperService;
use rampart_listen::Listener;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;
pub use tower::limit::GlobalConcurrencyLimitLayer;

use crate::live::Shared;
use crate::proxy::{Reject, RespBody, handle};
use http::Response;

/// Accept connections until `shutdown` flips, then drain in-flight requests for up to `drain`.
/// Connections are served under the listener's [`rampart_listen::Limits`] (timeouts,
/// connection, header and HTTP/2 limits). Requests beyond `limit` in flight at once are shed
/// with a 503 (`overloaded`) rather than queued, so an overloaded gateway stays responsive
/// (tower's global concurrency limit and load-shed layers).
pub async fn serve(
    listener: Listener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    limit: GlobalConcurrencyLimitLayer,
) {
    let is_tls = listener.tls.is_some();
    let make = move |peer: SocketAddr| {
        let shared = shared.clone();
        TowerToHyperService::new(
            ServiceBuilder::new()
                .map_result(shed)
                .load_shed()
                .layer(limit.clone())
                .service_fn(move |req| handle(shared.clone(), req, peer, is_tls)),
        )
    };
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    rampart_listen::serve(listener, make, stop, drain).await;
}

/// Turn a shed request into a 503 response instead of a broken connection.
fn shed(
    r: Result<Response<RespBody>, tower::BoxError>,
) -> Result<Response<RespBody>, tower::BoxError> {
    Ok(r.unwrap_or_else(|_| Reject::Overloaded.into_response()))
}

/// A TLS acceptor from PEM files, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key found", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Bind a loopback-or-given address, with a clear error.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for {what} on {addr}: {e}"))
}

/// The text of an IP address without going through `fmt` (it is on the request path, for
/// `x-forwarded-for`).
pub fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                let o = *octet;
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + (o / 10) % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
            out
        }
        v6 => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "1.2.3.4",
            "100.0.0.7",
            "127.0.0.1",
            "10.20.255.9",
            "192.168.100.1",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(super::ip_text(ip), ip.to_string());
        }
    }
}
