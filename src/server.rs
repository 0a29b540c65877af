//! The reference server: the [`Handler`] behind axum and tokio, a background sweeper, and a
//! clean shutdown. The `notifeed` binary (`src/main.rs`) only parses flags, opens the engine
//! and calls [`run`].
//!
//! * Every request is read up to [`Handler::max_request_bytes`] and answered by the handler on
//!   tokio's blocking pool (store calls do I/O; delta long polls wait). A larger body is read
//!   on (up to 32 MiB more) and thrown away, so the client sees the 413.
//! * One log line per request on stderr: method, path, status, milliseconds.
//! * The sweeper calls [`FeedStore::sweep_expired`] every [`Background::sweep_interval`]; a
//!   log store's scheduled verification and backups ([`crate::maintenance`]) run beside it
//!   when [`Background::maintenance`] asks for them.
//! * On shutdown (SIGINT or SIGTERM, see [`shutdown_signal`]) the server stops accepting,
//!   finishes in-flight requests (waiting at most [`Handler::shutdown_grace`]; one still
//!   unanswered then is dropped, so never acknowledged), stops the background tasks (a sweep,
//!   verification or backup in progress finishes first) and calls
//!   [`FeedStore::sync`], so nothing acknowledged is lost whatever the engine's durability
//!   setting.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;

use crate::handler::{Handler, Request};
use crate::maintenance::Maintenance;
use crate::store::{FeedStore, StoreError};

/// What the server runs in the background while it serves.
#[derive(Clone)]
pub struct Background {
    /// How often to sweep expired notifications.
    pub sweep_interval: Duration,
    /// Scheduled verification and backups of a log store; `None`: none.
    pub maintenance: Option<Maintenance>,
}

impl Background {
    /// Sweeps every `every`, and nothing else.
    pub fn sweeping(every: Duration) -> Self {
        Self { sweep_interval: every, maintenance: None }
    }
}

/// The axum router: every path and method goes to the handler, which answers 404 and 405
/// itself.
pub fn router(handler: Arc<Handler>) -> axum::Router {
    axum::Router::new().fallback(serve_request).with_state(handler)
}

/// Converts an axum request, runs the handler, converts the response back, and logs a line.
async fn serve_request(
    State(handler): State<Arc<Handler>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path_and_query =
        parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut request = Request::new(parts.method.as_str(), &path_and_query);
    request.headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let response = match read_body(body, handler.max_request_bytes()).await {
        BodyRead::Whole(bytes) => {
            // The head (no body) stays here, to answer for the handler if its task fails.
            let head = request.clone();
            request.body = bytes;
            let running = Arc::clone(&handler);
            match tokio::task::spawn_blocking(move || running.handle(request)).await {
                Ok(response) => response,
                Err(e) => {
                    // The detail (a panic message) goes to the log, not to the client.
                    eprintln!("notifeed: the request handler failed: {e}");
                    handler.error_response(
                        &head,
                        crate::handler::HandlerError::Internal("the request handler failed".into()),
                    )
                }
            }
        }
        BodyRead::TooLarge => handler.handle_oversized(&request),
        BodyRead::Failed => handler.error_response(
            &request,
            crate::handler::HandlerError::BadRequest { field: "the body".into(), problem: "could not be read".into() },
        ),
    };
    let response = into_axum(response);
    let shown: String = path_and_query.chars().take(200).collect();
    eprintln!("{} {} {} {}ms", parts.method, shown, response.status().as_u16(), started.elapsed().as_millis());
    response
}

/// How much of an oversized body is read and thrown away so that the client, still sending,
/// sees the 413 instead of a broken connection. Beyond it the connection is dropped.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

enum BodyRead {
    Whole(Vec<u8>),
    TooLarge,
    Failed,
}

/// Reads the body up to `limit` bytes. An oversized body is drained up to [`DRAIN_LIMIT`]
/// without being kept.
async fn read_body(mut body: Body, limit: usize) -> BodyRead {
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return if total > limit { BodyRead::TooLarge } else { BodyRead::Failed } };
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= limit {
                kept.extend_from_slice(&data);
            } else if total > limit.saturating_add(DRAIN_LIMIT) {
                break;
            }
        }
    }
    if total > limit { BodyRead::TooLarge } else { BodyRead::Whole(kept) }
}

fn into_axum(response: crate::handler::Response) -> axum::response::Response {
    let mut out = axum::response::Response::new(Body::from(response.body));
    *out.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            out.headers_mut().append(name, value);
        }
    }
    out
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Listens for `SIGUSR1` from now on (call it inside the runtime, before the server says it
/// is up, so no signal comes before the handler) and, on each, asks `requests` for a backup
/// now ([`crate::maintenance::Maintenance::backup_requests`]); with `None` (no backup folder
/// configured) it logs that the signal is ignored. Either way a `SIGUSR1` no longer ends the
/// process, as it would by default. Spawn the future it returns.
///
/// # Errors
/// When the signal handler cannot be installed.
#[cfg(unix)]
pub fn backups_on_sigusr1(
    requests: Option<Arc<tokio::sync::Notify>>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    requests_on_signal(
        tokio::signal::unix::SignalKind::user_defined1(),
        requests,
        "notifeed: SIGUSR1: backing up now",
        "notifeed: SIGUSR1 ignored: no [maintenance] backup_dir is configured",
    )
}

/// As [`backups_on_sigusr1`], for `SIGUSR2` and a verification of the log store now
/// ([`crate::maintenance::Maintenance::verify_requests`]); with `None` (an engine other than
/// the log engine) it logs that the signal is ignored.
///
/// # Errors
/// When the signal handler cannot be installed.
#[cfg(unix)]
pub fn verification_on_sigusr2(
    requests: Option<Arc<tokio::sync::Notify>>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    requests_on_signal(
        tokio::signal::unix::SignalKind::user_defined2(),
        requests,
        "notifeed: SIGUSR2: verifying now",
        "notifeed: SIGUSR2 ignored: verification needs the log engine",
    )
}

/// On each `signal`, logs `asked` and notifies `requests`, or logs `ignored` without them.
#[cfg(unix)]
fn requests_on_signal(
    signal: tokio::signal::unix::SignalKind,
    requests: Option<Arc<tokio::sync::Notify>>,
    asked: &'static str,
    ignored: &'static str,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut signal = tokio::signal::unix::signal(signal)?;
    Ok(async move {
        while signal.recv().await.is_some() {
            match &requests {
                Some(requests) => {
                    eprintln!("{asked}");
                    requests.notify_one();
                }
                None => eprintln!("{ignored}"),
            }
        }
    })
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Accepting or serving connections failed.
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
    /// The final sync of the store failed: writes acknowledged since the last sync may be lost.
    #[error("the final sync of the store failed: {0}")]
    Sync(#[from] StoreError),
    /// The final sync could not run.
    #[error("the final sync of the store could not run: {0}")]
    Join(String),
}

/// Serves `handler` on `listener` until `shutdown` resolves, sweeping `store` and running the
/// rest of `background`; then finishes in-flight requests (for at most
/// [`Handler::shutdown_grace`]), stops the background tasks (waiting for a sweep,
/// verification or backup in progress to finish) and syncs the store.
///
/// The caller drops its own handles afterwards; the store closes when the last `Arc` goes.
///
/// # Errors
/// [`ServerError::Serve`] when serving fails, [`ServerError::Sync`] when the final sync fails.
pub async fn run(
    listener: tokio::net::TcpListener,
    handler: Arc<Handler>,
    store: Arc<dyn FeedStore>,
    background: Background,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (stop_background, stopping_background) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(sweep_until(Arc::clone(&store), background.sweep_interval, stopping_background.clone()));
    let maintainer =
        background.maintenance.map(|m| tokio::spawn(crate::maintenance::run_until(m, stopping_background)));
    let grace = handler.shutdown_grace();
    let stopping = Arc::clone(&handler);
    let (signalled, signal_seen) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        // Long polls would otherwise hold the shutdown for up to their whole wait.
        stopping.stop_waiting();
        let _ = signalled.send(());
    };
    let serving = axum::serve(listener, router(handler)).with_graceful_shutdown(shutdown);
    // A client stalled mid-request would hold a graceful shutdown forever: past the grace
    // period its request is dropped unanswered (so unacknowledged).
    let grace_ended = async move {
        match signal_seen.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let served = tokio::select! {
        served = serving.into_future() => served,
        () = grace_ended => {
            eprintln!("notifeed: requests still in flight after {}s of shutdown; dropping them", grace.as_secs());
            Ok(())
        }
    };
    // A sweep, verification or backup in progress finishes first: the sync comes after it.
    let _ = stop_background.send(true);
    if let Some(mut maintainer) = maintainer
        && tokio::time::timeout(Duration::from_millis(100), &mut maintainer).await.is_err()
    {
        eprintln!("notifeed: waiting for the running verification or backup to finish");
        let _ = maintainer.await;
    }
    let _ = sweeper.await;
    // IMPORTANT: every request has been answered; sync makes everything acknowledged durable
    // before the process exits, even under `Durability::Buffered`.
    let synced =
        tokio::task::spawn_blocking(move || store.sync()).await.map_err(|e| ServerError::Join(e.to_string()))?;
    served?;
    synced?;
    eprintln!("notifeed: store synced; shut down cleanly");
    Ok(())
}

/// Sweeps every `every` until `stop` holds `true`; a sweep in progress is finished first.
async fn sweep_until(store: Arc<dyn FeedStore>, every: Duration, stop: tokio::sync::watch::Receiver<bool>) {
    crate::maintenance::every_interval("the sweep task", Some(every), stop, None, move || {
        match store.sweep_expired() {
            Ok(stats) if stats.expired > 0 => eprintln!(
                "notifeed: sweep reclaimed {} expired notifications, {} bytes, in {}ms",
                stats.expired,
                stats.bytes_reclaimed,
                stats.duration.as_millis()
            ),
            Ok(_) => {}
            Err(e) => eprintln!("notifeed: sweep failed: {e}"),
        }
    })
    .await;
}
