//! Metrics pushed to an OTLP collector, when asked for ([`PushSettings`]): a thread of its own
//! reads the node's metrics every interval (`collect`, given by [`crate::Metrics`], which reads
//! them under the lock a Prometheus scrape takes) and sends them as one
//! `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` call, and once more when
//! it stops. Its client is made like the span exporter's (its own connection, with the same
//! handling of endpoint, headers, timeout, TLS, gzip and retries).

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use bytes::Bytes;

use super::settings::PushSettings;
use super::{
    Batch, Client, Configured, ExporterError, METRICS_PATH, SHUTDOWN_WAIT, on_own_runtime,
    without_userinfo,
};

/// A metrics push whose settings were checked and whose client is configured (endpoint,
/// headers, TLS files read): what [`Pusher::start`] needs, nothing started yet.
#[derive(Debug)]
pub(crate) struct PushPlan {
    configured: Configured,
    interval: Duration,
    /// The collector, without credentials, for the log.
    pub(crate) endpoint: String,
}

impl PushPlan {
    pub(crate) fn new(settings: &PushSettings) -> Result<PushPlan, ExporterError> {
        Ok(PushPlan {
            configured: Client::configure(&settings.export, METRICS_PATH)?,
            interval: settings.interval,
            endpoint: without_userinfo(&settings.export.endpoint),
        })
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }
}

/// The push thread; dropping this pushes once more (waiting at most [`SHUTDOWN_WAIT`]) and
/// stops it.
#[derive(Debug)]
pub(crate) struct Pusher {
    stop: Option<Sender<()>>,
    /// In a mutex only so that the node's metrics can be shared between threads.
    done: Option<Mutex<Receiver<()>>>,
}

impl Pusher {
    /// Starts pushing what `collect` returns (an encoded `ExportMetricsServiceRequest`, or
    /// `None` when there is nothing to send).
    pub(crate) fn start(
        plan: PushPlan,
        mut collect: impl FnMut() -> Option<Vec<u8>> + Send + 'static,
    ) -> Result<Pusher, ExporterError> {
        let interval = plan.interval;
        let (runtime, client) = on_own_runtime(plan.configured)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("otlp-metrics".to_owned())
            .spawn(move || {
                loop {
                    // A message or a hang-up, not a timeout, means stop (after this push).
                    let stopping = !matches!(
                        stopped.recv_timeout(interval),
                        Err(RecvTimeoutError::Timeout)
                    );
                    if let Some(body) = collect() {
                        let body = Batch {
                            prefix: Bytes::new(),
                            body: Bytes::from(body),
                        };
                        if let Err(status) = runtime.block_on(client.export(body)) {
                            let (code, message) = (status.code(), status.message());
                            if stopping {
                                tracing::warn!(?code, message, "the last OTLP metrics push failed");
                            } else {
                                tracing::warn!(
                                    ?code,
                                    message,
                                    "OTLP metrics push failed; the next one sends the totals again"
                                );
                            }
                        }
                    }
                    if stopping {
                        break;
                    }
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| ExporterError::Thread(e.to_string()))?;
        Ok(Pusher {
            stop: Some(stop),
            done: Some(Mutex::new(done)),
        })
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(done) = self.done.take() {
            let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
            let _ = done.recv_timeout(SHUTDOWN_WAIT);
        }
    }
}
