//! `--metrics-addr`: the metrics as Prometheus text at `/metrics`, liveness at `/health` and
//! readiness at `/ready`, over plain HTTP/1.1.
//!
//! The exposition format is metrics-exporter-prometheus's; hyper (already in the tree for the
//! object stores' HTTP) serves it beside the two probes its own listener does not have.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cdc_core::metrics::{self, Readiness};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often histograms are folded (the exporter's upkeep).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder and serves the endpoints on `addr` (`HOST:PORT`) until
/// the process ends. Returns the address bound (port 0 picks a free one).
pub async fn serve(
    addr: &str,
    readiness: Arc<Readiness>,
) -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metrics::COMMIT_SECONDS.into()),
            metrics::COMMIT_SECONDS_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(metrics::BATCH_EVENTS.into()),
            metrics::BATCH_EVENTS_BUCKETS,
        )?
        .install_recorder()?;
    metrics::describe();
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let (handle, readiness) = (handle.clone(), readiness.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = respond(request.uri().path(), &handle, &readiness);
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                // A client that hangs up mid-request is its own business.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(bound)
}

/// The answer for `path`.
fn respond(path: &str, handle: &PrometheusHandle, readiness: &Readiness) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        "/health" => (StatusCode::OK, "text/plain", "live\n".to_string()),
        "/ready" if readiness.is_ready() => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        "/ready" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: partitions not assigned yet, or still catching up\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /metrics, /health, /ready\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
