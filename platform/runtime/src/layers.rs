//! The tower layers every Micros server runs, one per concern. [`crate::server`] stacks
//! them in one place, in this order (outermost first):
//!
//! 1. trace: extract W3C trace context, open a span per call (tonic-tracing-opentelemetry);
//!    then metrics: duration and status of every call, refused ones included
//!    ([`crate::metrics::RpcMetricsLayer`]);
//! 2. overload: a global concurrency limit with load shedding, answered RESOURCE_EXHAUSTED
//!    at once instead of queueing; health checks exempt ([`OverloadLayer`]);
//! 3. deadline: the smaller of the server's limit and the client's `grpc-timeout`,
//!    answered DEADLINE_EXCEEDED ([`DeadlineLayer`]);
//! 4. auth: bearer token to [`Principal`](crate::auth::Principal) ([`AuthLayer`]).
//!
//! Health and reflection skip auth: probes and grpcurl carry no token. Health also skips
//! the overload layer: a probe answers while the server is at its limit.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use tokio::sync::Semaphore;
use tonic::{Code, body::Body};
use tower::{Layer, Service};

use crate::{auth::Authenticator, error::status_with_info};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Paths served without a token.
pub fn is_exempt_from_auth(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Paths the trace layer leaves out: probes every few seconds would drown real calls.
pub fn is_traced(path: &str) -> bool {
    !path.starts_with("/grpc.health.v1.Health/")
}

fn status_response(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Response<Body> {
    status_with_info(code, message, reason, "micros.platform", metadata).into_http()
}

/// Paths the overload layer neither counts nor sheds: a readiness or liveness probe must
/// report the truth while the server is at its limit, or a busy pod is taken out of
/// rotation and then restarted, killing the very calls that made it busy.
pub fn is_exempt_from_overload(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// At most `limit` calls in flight across every connection; a call beyond it is answered
/// RESOURCE_EXHAUSTED (`OVERLOADED`, with ErrorInfo) at once instead of queueing, so
/// clients back off. Health checks pass outside the limit ([`is_exempt_from_overload`]).
#[derive(Debug, Clone)]
pub struct OverloadLayer {
    limit: usize,
    permits: Arc<Semaphore>,
}

impl OverloadLayer {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            permits: Arc::new(Semaphore::new(limit)),
        }
    }
}

impl<S> Layer<S> for OverloadLayer {
    type Service = Overload<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Overload {
            inner,
            limit: self.limit,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Overload<S> {
    inner: S,
    limit: usize,
    permits: Arc<Semaphore>,
}

impl<S> Service<Request<Body>> for Overload<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_exempt_from_overload(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                let response = status_response(
                    Code::ResourceExhausted,
                    format!(
                        "the server is at its limit of {} calls in flight; retry with backoff",
                        self.limit
                    ),
                    "OVERLOADED",
                    HashMap::from([("concurrency_limit".to_owned(), self.limit.to_string())]),
                );
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// Bounds every call by the server's timeout, or the client's `grpc-timeout` if sooner.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request<Body>> for Deadline<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        // tonic wraps every connection in its own `grpc-timeout` guard, outside this
        // layer, which answers CANCELLED; ending a millisecond earlier makes this
        // layer's DEADLINE_EXCEEDED (with ErrorInfo) the answer the client sees.
        let deadline = client.map_or(self.limit, |client| {
            client
                .saturating_sub(Duration::from_millis(1))
                .min(self.limit)
        });
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(deadline, call).await {
                Ok(result) => result,
                Err(_) => Ok(status_response(
                    Code::DeadlineExceeded,
                    format!("the call did not finish within {deadline:?}"),
                    "DEADLINE_EXCEEDED",
                    HashMap::from([("deadline_ms".to_owned(), deadline.as_millis().to_string())]),
                )),
            }
        })
    }
}

/// The `grpc-timeout` header: at most 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Verifies the bearer token and attaches the principal; see [`crate::auth`].
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> Service<Request<Body>> for Auth<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if is_exempt_from_auth(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        match self.credentials(&request) {
            Ok((principal, grant)) => {
                tracing::Span::current().record("principal", principal.name.as_str());
                request.extensions_mut().insert(principal);
                if let Some(grant) = grant {
                    request.extensions_mut().insert(grant);
                }
                Box::pin(self.inner.call(request))
            }
            Err(error) => {
                let response = tonic::Status::from(error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

impl<S> Auth<S> {
    /// The caller, and the grant it carries if any: a grant that does not verify
    /// refuses the call rather than being ignored.
    fn credentials(
        &self,
        request: &Request<Body>,
    ) -> Result<(crate::auth::Principal, Option<crate::auth::Grant>), crate::auth::AuthError> {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let principal = self
            .authenticator
            .verify_header(header(http::header::AUTHORIZATION.as_str()))?;
        let grant = header(crate::auth::GRANT_HEADER)
            .map(|grant| self.authenticator.verify_grant(grant.trim()))
            .transpose()?;
        Ok((principal, grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("100u"), Some(Duration::from_micros(100)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("1é"), None);
    }

    #[test]
    fn only_health_skips_the_overload_limit() {
        assert!(is_exempt_from_overload("/grpc.health.v1.Health/Check"));
        assert!(is_exempt_from_overload("/grpc.health.v1.Health/Watch"));
        assert!(!is_exempt_from_overload(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_exempt_from_overload(
            "/micros.media.v1.MediaService/Upload"
        ));
    }

    #[test]
    fn probes_and_reflection_skip_auth() {
        assert!(is_exempt_from_auth("/grpc.health.v1.Health/Check"));
        assert!(is_exempt_from_auth(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_exempt_from_auth(
            "/micros.catalog.v1.CatalogService/GetSite"
        ));
    }
}
