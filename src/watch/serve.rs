//! The watcher's HTTP endpoint (`--health-addr`, default `0.0.0.0:8080`):
//! `/healthz` (200 while the main loop turns), `/readyz` (200 while it
//! turns and its watch views are listed, leader or follower) and
//! `/metrics` (Prometheus text format, [`super::metrics`]). Plain HTTP/1.1
//! on hyper, GET only; anything else is 404 or 405.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::Health;
use super::{Error, Result};

/// How long the main loop may stay silent before `/healthz` fails: a few
/// heartbeats (the loop turns at least every [`super::run::HEARTBEAT`]).
pub const STALL: Duration = Duration::from_secs(30);

/// Binds `addr` (port 0: any free port) and returns the bound address and
/// the server task, which runs until dropped or aborted.
pub async fn start(addr: SocketAddr, health: Health) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Serve { addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Serve { addr, source })?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let health = health.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let health = health.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &health)) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok((bound, task))
}

fn answer(req: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    let text = |code: StatusCode, body: String, kind: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(kind));
        r
    };
    let plain = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), plain);
    }
    let judge = |ok: bool, what: &str| {
        if ok {
            text(StatusCode::OK, "ok\n".into(), plain)
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{what}\n"), plain)
        }
    };
    match req.uri().path() {
        "/healthz" => judge(health.alive(STALL), "the watch loop has stalled"),
        "/readyz" => judge(health.ready(STALL), "the watch views are not listed yet, or a stream is failing"),
        "/metrics" => text(StatusCode::OK, health.render(), "text/plain; version=0.0.4; charset=utf-8"),
        _ => text(StatusCode::NOT_FOUND, "not found: /healthz, /readyz, /metrics\n".into(), plain),
    }
}
