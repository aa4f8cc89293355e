//! `--metrics`: an HTTP endpoint beside the tunnel, serving `/metrics` (Prometheus) and `/status`
//! (JSON with a target check). Both read one [`crate::stats::Snapshot`], as the systemd STATUS line
//! does; neither touches a connection. HTTP is hyper's; the exposition format is the `prometheus`
//! crate's.
//!
//! A client holds one of `MAX_CLIENTS` slots from accept to close, so none may hold one for ever:
//! hyper closes a connection whose request headers take longer than `HEADER_TIMEOUT` (the next
//! request's too, so a keep-alive client that goes quiet is closed as well), a request body is never
//! waited for (the reply does not read it, and hyper closes a connection whose body is not all there
//! once the reply is out), and `stall::StallLimited` closes one whose replies are not read for
//! `WRITE_STALL_LIMIT`.

pub mod exposition;
mod stall;
pub mod status;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use self::stall::StallLimited;
use crate::tunnel::stream::Stream;
use crate::tunnel::{Listener, Tunnel};
pub use status::Addresses;

/// Scrapers and checkers served at once; more wait in the backlog. A monitor needs one or two.
const MAX_CLIENTS: usize = 16;

/// How long a client may take to send its request headers, counted from the end of the previous reply
/// on a kept-alive connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a reply may wait for the client to read any of it before the connection is closed. A
/// client that pipelines requests and never reads the replies would otherwise hold its slot for ever
/// (hyper waits for each reply to be written before it reads the next request), and `MAX_CLIENTS` of
/// them would keep Prometheus out. A reader that is there takes a reply of a few kilobytes into its
/// socket buffer at once, so any wait at all is rare; 10 s is Prometheus's default scrape timeout,
/// after which the scraper has given up on the reply and no one will read it.
const WRITE_STALL_LIMIT: Duration = Duration::from_secs(10);

/// Serves the endpoint on `listener` until dropped.
pub async fn serve(listener: Listener, tunnel: Arc<Tunnel>, addresses: Addresses) {
    let addresses = Arc::new(addresses);
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = clients.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tunnel = tunnel.clone();
        let addresses = addresses.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                let (tunnel, addresses) = (tunnel.clone(), addresses.clone());
                async move { Ok::<_, Infallible>(respond(&request, &tunnel, &addresses).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let served = match stream {
                Stream::Tcp(s) => http.serve_connection(limited(s), service).await,
                Stream::Unix(s) => http.serve_connection(limited(s), service).await,
            };
            if let Err(e) = served {
                tracing::debug!("metrics endpoint: {e}");
            }
        });
    }
}

/// A client connection as hyper takes it, its replies' writes limited by `WRITE_STALL_LIMIT`.
fn limited<S>(stream: S) -> TokioIo<StallLimited<S>> {
    TokioIo::new(StallLimited::new(stream, WRITE_STALL_LIMIT))
}

/// One request's response.
async fn respond(
    request: &Request<Incoming>,
    tunnel: &Tunnel,
    addresses: &Addresses,
) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => {
            let end = exposition::End {
                mode: tunnel.settings.mode,
                max_connections: tunnel.settings.max_connections,
            };
            let text = exposition::render(&tunnel.snapshot(), end);
            with_type(StatusCode::OK, exposition::CONTENT_TYPE, text.into_bytes())
        }
        "/status" => {
            let status = status::status(tunnel, addresses, tunnel.snapshot()).await;
            let code = if status.healthy() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let mut json = serde_json::to_vec_pretty(&status).unwrap_or_default();
            json.push(b'\n');
            with_type(code, "application/json", json)
        }
        "/" => plain(StatusCode::OK, "spiped: /metrics (Prometheus), /status (JSON)\n".into()),
        _ => plain(StatusCode::NOT_FOUND, "not found: try /metrics or /status\n".into()),
    }
}

fn plain(code: StatusCode, text: String) -> Response<Full<Bytes>> {
    with_type(code, "text/plain; charset=utf-8", text.into_bytes())
}

fn with_type(code: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
