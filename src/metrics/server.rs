//! `/metrics` (and `/status`) over a small synchronous HTTP server on its own
//! thread. It also runs the recorder's upkeep (histogram maintenance) at
//! least every [`UPKEEP_INTERVAL`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tiny_http::{Header, Response, Server};

/// How often the recorder's upkeep runs when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A JSON status source for `/status`.
pub type StatusFn = Arc<dyn Fn() -> String + Send + Sync>;

/// A running metrics endpoint. Dropping it stops the thread and joins it.
pub struct MetricsServer {
    addr: SocketAddr,
    server: Option<Arc<Server>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `/metrics` from
    /// `handle` and, if given, `/status` from `status`.
    pub fn start(
        addr: SocketAddr,
        handle: PrometheusHandle,
        status: Option<StatusFn>,
    ) -> std::io::Result<Self> {
        let server = Arc::new(Server::http(addr).map_err(std::io::Error::other)?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("metrics server is not on an IP socket"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let server = server.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || serve(&server, &handle, status.as_ref(), &stop))?
        };
        Ok(MetricsServer {
            addr,
            server: Some(server),
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the serving thread. The listening socket is
    /// closed by tiny_http's own accept thread moments later.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(server) = self.server.take() {
            server.unblock();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(server: &Server, handle: &PrometheusHandle, status: Option<&StatusFn>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let req = match server.recv_timeout(UPKEEP_INTERVAL) {
            Ok(Some(r)) => r,
            Ok(None) => {
                handle.run_upkeep();
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics server stopped");
                return;
            }
        };
        let (body, ctype, code) = match req.url() {
            "/metrics" => {
                handle.run_upkeep();
                (handle.render(), "text/plain; version=0.0.4", 200)
            }
            "/status" if status.is_some() => (
                status.map(|s| s()).unwrap_or_default(),
                "application/json",
                200,
            ),
            _ => ("not found\n".to_string(), "text/plain", 404),
        };
        let mut resp = Response::from_string(body).with_status_code(code);
        if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
            resp = resp.with_header(h);
        }
        if let Err(e) = req.respond(resp) {
            tracing::debug!(error = %e, "metrics client went away");
        }
    }
}
