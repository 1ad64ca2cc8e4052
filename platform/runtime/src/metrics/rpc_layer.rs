//! The duration and status of every gRPC call, answered by a server or made through the
//! platform's client: one histogram per side (`rpc.server.call.duration`,
//! `rpc.client.call.duration`, in seconds), by service, method and status code.
//!
//! A call ends when its response body ends, so a stream is measured whole. Its status is
//! the `grpc-status` of a trailers-only answer's headers, else of the trailers; a body
//! dropped before its trailers (the caller went away) counts as CANCELLED. Paths nobody
//! serves (UNIMPLEMENTED) are labelled `_OTHER`, so a caller cannot make new series.

use std::{
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll, ready},
    time::Instant,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use opentelemetry::{KeyValue, metrics::Histogram};
use pin_project_lite::pin_project;
use tonic::{Code, body::Body};
use tower::{Layer, Service};

use super::status::{code_name, grpc_status};

/// Bucket bounds in seconds: from a cached read (~1 ms) to a long restore wave.
const BOUNDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

struct Instruments {
    server: Histogram<f64>,
    client: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = super::meter();
        Instruments {
            server: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("gRPC calls this server answered, by method and status")
                .with_boundaries(BOUNDS.to_vec())
                .build(),
            client: meter
                .f64_histogram("rpc.client.call.duration")
                .with_unit("s")
                .with_description("gRPC calls this process made, by peer, method and status")
                .with_boundaries(BOUNDS.to_vec())
                .build(),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// Measures calls; see the module docs.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    side: Side,
    peer: Option<KeyValue>,
}

impl RpcMetricsLayer {
    /// For a server's stack: every call it answers.
    pub fn server() -> Self {
        Self {
            side: Side::Server,
            peer: None,
        }
    }

    /// For a channel to `peer` (a service name): every call made on it.
    pub fn client(peer: &str) -> Self {
        Self {
            side: Side::Client,
            peer: Some(KeyValue::new("peer.service", peer.to_owned())),
        }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            side: self.side,
            peer: self.peer.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    side: Side,
    peer: Option<KeyValue>,
}

impl<S, B> Service<Request<B>> for RpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Error: std::error::Error + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = RpcMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call::start(self.side, request.uri().path(), self.peer.clone());
        RpcMetricsFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

pin_project! {
    pub struct RpcMetricsFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, E> Future for RpcMetricsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: std::error::Error + 'static,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(call) = this.call.take() else {
            return Poll::Ready(result);
        };
        Poll::Ready(match result {
            Ok(response) => match grpc_status(response.headers()) {
                Some(code) => {
                    call.finish(code);
                    Ok(response)
                }
                None => Ok(response.map(|body| {
                    Body::new(MeteredBody {
                        inner: body,
                        call: Some(call),
                    })
                })),
            },
            Err(error) => {
                call.finish(error_code(&error));
                Err(error)
            }
        })
    }
}

/// A transport failure: the deadline if the channel's timer fired, else the peer was
/// unreachable.
fn error_code(error: &(dyn std::error::Error + 'static)) -> Code {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.is::<tonic::TimeoutExpired>() {
            return Code::DeadlineExceeded;
        }
        source = cause.source();
    }
    Code::Unavailable
}

/// One call being measured; recorded once, when it finishes or is dropped.
struct Call {
    side: Side,
    start: Instant,
    service: String,
    method: String,
    peer: Option<KeyValue>,
    recorded: bool,
}

impl Call {
    fn start(side: Side, path: &str, peer: Option<KeyValue>) -> Call {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        Call {
            side,
            start: Instant::now(),
            service: service.to_owned(),
            method: method.to_owned(),
            peer,
            recorded: false,
        }
    }

    fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (service, method) = if code == Code::Unimplemented {
            ("_OTHER".to_owned(), "_OTHER".to_owned())
        } else {
            (
                std::mem::take(&mut self.service),
                std::mem::take(&mut self.method),
            )
        };
        let mut attributes = vec![
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", method),
            KeyValue::new("rpc.response.status_code", code_name(code)),
        ];
        attributes.extend(self.peer.take());
        let histogram = match self.side {
            Side::Server => &instruments().server,
            Side::Client => &instruments().client,
        };
        histogram.record(self.start.elapsed().as_secs_f64(), &attributes);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

pin_project! {
    /// A response body that finishes its call's measurement at the trailers.
    struct MeteredBody {
        #[pin]
        inner: Body,
        call: Option<Call>,
    }
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        let polled = ready!(this.inner.poll_frame(cx));
        let ended = match &polled {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|trailers| grpc_status(trailers).unwrap_or(Code::Unknown)),
            Some(Err(status)) => Some(status.code()),
            None => Some(Code::Unknown),
        };
        if let Some(code) = ended
            && let Some(call) = this.call.take()
        {
            call.finish(code);
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        let call = Call::start(
            Side::Server,
            "/micros.catalog.v1.CatalogService/GetSite",
            None,
        );
        assert_eq!(call.service, "micros.catalog.v1.CatalogService");
        assert_eq!(call.method, "GetSite");
    }

    #[test]
    fn a_timer_in_the_cause_chain_is_a_deadline() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] tonic::TimeoutExpired);
        assert_eq!(
            error_code(&Wrapped(tonic::TimeoutExpired(()))),
            Code::DeadlineExceeded
        );
        assert_eq!(
            error_code(&std::io::Error::other("refused")),
            Code::Unavailable
        );
    }
}
