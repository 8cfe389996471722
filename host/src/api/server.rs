//! The HTTP/1.1 server: accepts connections and serves the router on each
//! with hyper, under limits a slow, idle or flooding client cannot wear
//! down. `axum::serve` has no header-read, body-read or idle timeout and no
//! connection cap: with 1,024 descriptors, 1,100 connections that each sent
//! half a request made `/api/v1/health` time out for everyone.
//!
//! - **Header read.** A connection whose request head is not complete
//!   within `header_timeout` of its first byte is closed.
//! - **Idle keep-alive.** A connection without a request for
//!   `idle_timeout` is closed.
//! - **Body read.** The whole body must arrive within `body_timeout` of
//!   the head ([`DeadlineBody`]; the handler answers 408
//!   `REQUEST_TIMEOUT`).
//! - **Connection cap.** At `max_connections`, a new connection evicts the
//!   connection that has waited longest without a request in flight (idle,
//!   or with a head still arriving: what a slow client holds), so health
//!   checks and real traffic keep getting in. When every connection is busy
//!   the new one is answered 503 and closed.
//! - **hyper's own errors** (a malformed request line, headers too large, a
//!   bad `Content-Length`) are rewritten into the API's error body with an
//!   `X-Request-Id` ([`TrackedStream`]).
//! - **Shutdown.** Stop accepting, let requests in flight finish and close
//!   idle connections; after `shutdown_grace` close whatever is left. A
//!   request cut off there was never answered, so nothing acknowledged is
//!   lost (its commit either happened or not; the client retries with its
//!   idempotency key).
use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, http::Request};
use bytes::Bytes;
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
};
use tower::ServiceExt as _;

pub use crate::config::ServerLimits;
use crate::domain::ids::object_id;

/// Raises this process's open-file limit to the hard limit where the OS
/// allows, and returns the (soft) limit now in force.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Connections a process with `open_files` descriptors may hold: what is
/// left after a reserve for the database pools, files and Redis.
pub fn connections_for(open_files: u64) -> usize {
    let usable = open_files.saturating_sub(256).clamp(64, 100_000);
    usize::try_from(usable).unwrap_or(100_000)
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// One connection as the server and its watchdog see it.
#[derive(Debug)]
struct Conn {
    /// `IDLE` (no request), `HEAD` (a head is arriving) or `BUSY` (a
    /// request is being served).
    phase: AtomicU8,
    /// When the phase began, in ms since the server started.
    since: AtomicU64,
    /// Requests handed to the router on this connection.
    calls: AtomicU64,
    /// Wakes the watchdog when the phase changes.
    changed: Notify,
    /// Tells the connection to close now.
    close: Notify,
    epoch: Instant,
}

impl Conn {
    /// A new connection: its first head is timed from the accept.
    fn new(epoch: Instant) -> Self {
        let conn = Self {
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            changed: Notify::new(),
            close: Notify::new(),
            epoch,
        };
        conn.since.store(conn.now_ms(), Ordering::Relaxed);
        conn
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: u8) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    /// When the current phase times out (`None` while a request is served:
    /// the body deadline and the pipeline deadline bound that).
    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        let timeout = match self.phase.load(Ordering::Acquire) {
            IDLE => limits.idle_timeout,
            HEAD => limits.header_timeout,
            _ => return None,
        };
        let since = Duration::from_millis(self.since.load(Ordering::Relaxed));
        Some(self.epoch + since + timeout)
    }
}

/// The open connections, for the cap and for shutdown.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled whenever a connection ends.
    ended: Notify,
}

enum Admission {
    Admitted,
    /// At the cap and nothing to evict.
    Full,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Registers `conn`; at the cap, first evicts the connection that has
    /// waited longest without a request in flight.
    fn admit(&self, id: u64, conn: Arc<Conn>, max: usize) -> Admission {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.len() >= max {
            let victim = conns
                .iter()
                .filter(|(_, c)| c.phase.load(Ordering::Acquire) != BUSY)
                .min_by_key(|(_, c)| c.since.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            match victim.and_then(|v| conns.remove(&v)) {
                Some(old) => {
                    metrics::counter!("aduana_http_connections_evicted_total").increment(1);
                    old.close.notify_one();
                }
                None => return Admission::Full,
            }
        }
        conns.insert(id, conn);
        Admission::Admitted
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.ended.notify_waiters();
    }

    fn close_all(&self) {
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            c.close.notify_one();
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// within `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let epoch = Instant::now();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was
                    // accepted: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn = Arc::new(Conn::new(epoch));
        match registry.admit(next_id, Arc::clone(&conn), limits.max_connections) {
            Admission::Admitted => {}
            Admission::Full => {
                metrics::counter!("aduana_http_connections_refused_total").increment(1);
                tokio::spawn(refuse(stream));
                continue;
            }
        }
        metrics::gauge!("aduana_http_connections").set(registry.len() as f64);
        tokio::spawn(serve_connection(
            next_id,
            stream,
            conn,
            router.clone(),
            Arc::clone(&limits),
            Arc::clone(&registry),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    // Shutdown: in-flight requests finish, idle connections close.
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    let open = wait_until_empty(&registry, deadline).await;
    if open > 0 {
        tracing::warn!(
            connections = open,
            grace_ms = limits.shutdown_grace.as_millis() as u64,
            "shutdown grace over; closing the connections still open"
        );
        registry.close_all();
        wait_until_empty(
            &registry,
            tokio::time::Instant::now() + Duration::from_secs(1),
        )
        .await;
    }
    Ok(())
}

/// Waits until no connection is open or `deadline`; returns how many are.
async fn wait_until_empty(registry: &Registry, deadline: tokio::time::Instant) -> usize {
    loop {
        let ended = registry.ended.notified();
        let open = registry.len();
        if open == 0 {
            return 0;
        }
        if tokio::time::timeout_at(deadline, ended).await.is_err() {
            return registry.len();
        }
    }
}

async fn serve_connection(
    id: u64,
    stream: TcpStream,
    conn: Arc<Conn>,
    router: Router,
    limits: Arc<ServerLimits>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(TrackedStream::new(stream, Arc::clone(&conn)));
    let service = {
        let (conn, body_timeout) = (Arc::clone(&conn), limits.body_timeout);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            conn.calls.fetch_add(1, Ordering::AcqRel);
            conn.enter(BUSY);
            let deadline = tokio::time::Instant::now() + body_timeout;
            let req = req.map(|b| Body::new(DeadlineBody::new(b, deadline)));
            let (router, conn) = (router.clone(), Arc::clone(&conn));
            async move {
                let response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
                Ok::<_, Infallible>(response.map(|b| Body::new(EndOfResponse::new(b, conn))))
            }
        })
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // Our watchdog times the head (hyper's timer would also cut idle
        // keep-alive connections at the same length).
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192) * 2)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let served = http.serve_connection(io, service);
    tokio::pin!(served);
    let mut stopping = *stop.borrow();
    if stopping {
        served.as_mut().graceful_shutdown();
    }
    loop {
        let changed = conn.changed.notified();
        let timeout = async {
            match conn.deadline(&limits) {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = changed => {}
            () = timeout => {
                if conn.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                    let phase = if conn.phase.load(Ordering::Acquire) == HEAD { "head" } else { "idle" };
                    metrics::counter!("aduana_http_connections_timed_out_total", "phase" => phase).increment(1);
                    tracing::debug!(phase, "closing a connection past its timeout");
                    break;
                }
            }
            () = conn.close.notified() => break,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
    registry.remove(id);
    metrics::gauge!("aduana_http_connections").set(registry.len() as f64);
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let response = error_response(
        503,
        "Service Unavailable",
        "SERVER_BUSY",
        "every connection is serving a request; retry shortly",
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A complete `Connection: close` response with the API's error body.
fn error_response(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "error": { "code": code, "message": message, "details": {} }
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {}\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        object_id("req")
    )
    .into_bytes()
}

/// The API's answer in place of the bare response hyper writes when it
/// cannot parse a request.
fn rewrite_hyper_error(status: u16) -> Vec<u8> {
    match status {
        431 => error_response(
            431,
            "Request Header Fields Too Large",
            "HEADERS_TOO_LARGE",
            "the request line and headers are larger than this server accepts",
        ),
        414 => error_response(
            414,
            "URI Too Long",
            "URI_TOO_LONG",
            "the request target is longer than this server accepts",
        ),
        505 => error_response(
            505,
            "HTTP Version Not Supported",
            "HTTP_VERSION_NOT_SUPPORTED",
            "only HTTP/1.0 and HTTP/1.1 are served",
        ),
        501 => error_response(
            501,
            "Not Implemented",
            "NOT_IMPLEMENTED",
            "the request uses a method or transfer coding this server does not implement",
        ),
        _ => error_response(
            400,
            "Bad Request",
            "BAD_REQUEST",
            "malformed HTTP request: the request line, a header or the body framing \
             (Content-Length, Transfer-Encoding) could not be parsed",
        ),
    }
}

/// The TCP stream of a connection: reports the first byte of each request
/// head to the watchdog, and replaces the bare responses hyper writes for
/// requests it could not parse (the router never saw them) with the API's
/// error body.
struct TrackedStream {
    stream: TcpStream,
    conn: Arc<Conn>,
    /// Router calls when the latest head byte was read.
    calls_at_head: u64,
    /// A replacement response still to write.
    pending: Vec<u8>,
    written: usize,
    /// hyper's bytes are being swallowed (after a replacement).
    swallowing: bool,
}

impl TrackedStream {
    fn new(stream: TcpStream, conn: Arc<Conn>) -> Self {
        Self {
            stream,
            conn,
            calls_at_head: 0,
            pending: Vec::new(),
            written: 0,
            swallowing: false,
        }
    }

    /// Whether `buf` is a response hyper wrote on its own: no router call
    /// since the head began, and a status line (`HTTP/1.x NNN`).
    fn is_hyper_error(&self, buf: &[u8]) -> bool {
        self.conn.phase.load(Ordering::Acquire) != BUSY
            && self.conn.calls.load(Ordering::Acquire) == self.calls_at_head
            && buf.starts_with(b"HTTP/1.")
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            match self.conn.phase.load(Ordering::Acquire) {
                IDLE => {
                    self.conn.enter(HEAD);
                    self.calls_at_head = self.conn.calls.load(Ordering::Acquire);
                }
                HEAD => self.calls_at_head = self.conn.calls.load(Ordering::Acquire),
                _ => {}
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.swallowing && self.is_hyper_error(buf) {
            let status = std::str::from_utf8(buf.get(9..12).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(400);
            tracing::debug!(
                status,
                "rewriting a response hyper wrote for an unparsable request"
            );
            self.pending = rewrite_hyper_error(status);
            self.written = 0;
            self.swallowing = true;
        }
        if self.swallowing {
            ready!(self.drain(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if self.swallowing || self.is_hyper_error(first) {
            // Rare (an unparsable request): one contiguous buffer is simpler.
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return self.poll_write(cx, &all);
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The request body past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimeout;

/// A request body that must arrive whole by a deadline. A timer is armed
/// only when the body is not already there.
pub struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: tokio::time::Instant) -> Self {
        Self {
            inner,
            deadline,
            sleep: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the watchdog when the response is done (its
/// end, or hyper dropping it), so the connection counts as idle again.
struct EndOfResponse {
    inner: Body,
    conn: Option<Arc<Conn>>,
}

impl EndOfResponse {
    fn new(inner: Body, conn: Arc<Conn>) -> Self {
        Self {
            inner,
            conn: Some(conn),
        }
    }

    fn done(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.enter(IDLE);
        }
    }
}

impl Drop for EndOfResponse {
    fn drop(&mut self) {
        self.done();
    }
}

impl http_body::Body for EndOfResponse {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.done();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
