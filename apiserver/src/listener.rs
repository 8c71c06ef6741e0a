//! The HTTPS front door: accept TCP, finish TLS, name the user from the client
//! certificate, and hand each request to [`Server::handle`]. HTTP/2 and
//! HTTP/1.1 (with upgrades, for exec/attach later) on one port.

use crate::server::{Server, User};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, warn};

/// Serve until the listener fails or the task is aborted.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, server: Arc<Server>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|c| crate::tls::user_from_cert(c.as_ref()))
                .map(|(name, mut groups)| {
                    groups.push("system:authenticated".into());
                    User { name, groups }
                });
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let server = server.clone();
                let user = user.clone();
                let span = tracing::debug_span!("request", method = %req.method(), path = %req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(server.handle(req, user).await) }.instrument(span)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc).await {
                debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
