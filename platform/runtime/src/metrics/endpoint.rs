//! `GET /metrics` for Prometheus, on the metrics port: the text exposition of the
//! process's registry. Plain HTTP/1.1, no auth (scrapers carry no token; the port is
//! meant for the cluster network, like the probes).

use std::{convert::Infallible, net::SocketAddr};

use http::{Method, Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;

/// A bound metrics listener, not yet serving.
pub struct MetricsEndpoint {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: prometheus::Registry,
}

impl MetricsEndpoint {
    /// Binds `addr` (port 0 picks a free one).
    pub async fn bind(
        addr: SocketAddr,
        registry: prometheus::Registry,
    ) -> std::io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(MetricsEndpoint {
            listener,
            local_addr,
            registry,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves in a task until the process ends: scrapes go on while the gRPC server
    /// drains, so the last moments of a process are measured too.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let (stream, _) = match self.listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "metrics endpoint: accept failed");
                        continue;
                    }
                };
                let registry = self.registry.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let registry = registry.clone();
                        async move { Ok::<_, Infallible>(respond(&registry, &request)) }
                    });
                    if let Err(error) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "metrics endpoint: connection ended");
                    }
                });
            }
        })
    }
}

fn respond(
    registry: &prometheus::Registry,
    request: &Request<Incoming>,
) -> Response<Full<bytes::Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(bytes::Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        response
    };
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"metrics are at GET /metrics\n".to_vec(),
        );
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => reply(StatusCode::OK, encoder.format_type(), body),
        Err(error) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot encode the metrics: {error}\n").into_bytes(),
        ),
    }
}
