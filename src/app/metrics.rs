//! Prometheus metrics for the whole process, rendered at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::status::StatusBoard;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    subsystem_up: IntGaugeVec,
    resident_memory: IntGauge,
    /// Registered only when the binary counts its heap (`heap-stats`).
    heap_live: Option<IntGauge>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("demiurge".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered by the app, by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request in the app",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["route"],
        )?;
        let subsystem_up = IntGaugeVec::new(
            Opts::new(
                "subsystem_up",
                "1 when the subsystem is running (or off by configuration)",
            ),
            &["subsystem"],
        )?;
        let resident_memory = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory of the process",
        )?;
        let start_time = IntGauge::new(
            "process_start_time_seconds",
            "Start of the process, unix seconds",
        )?;
        let build = IntGaugeVec::new(
            Opts::new("build_info", "Version of the running binary"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(subsystem_up.clone()),
            Box::new(resident_memory.clone()),
            Box::new(start_time.clone()),
            Box::new(build),
        ] {
            registry.register(c)?;
        }
        start_time.set(chrono::Utc::now().timestamp());
        let heap_live = match crate::heap::live_bytes() {
            Some(_) => {
                let g = IntGauge::new(
                    "heap_live_bytes",
                    "Bytes in use on the heap (built with heap-stats)",
                )?;
                registry.register(Box::new(g.clone()))?;
                Some(g)
            }
            None => None,
        };
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            subsystem_up,
            resident_memory,
            heap_live,
        })
    }

    /// The registry other subsystems add their own collectors to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self, status: &StatusBoard) -> String {
        for s in status.snapshot() {
            self.subsystem_up
                .with_label_values(&[s.name])
                .set(i64::from(s.state.is_ready()));
        }
        if let Some(rss) = resident_memory_bytes() {
            self.resident_memory.set(rss);
        }
        if let (Some(g), Some(n)) = (&self.heap_live, crate::heap::live_bytes()) {
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Resident set size from /proc (Linux); None elsewhere.
pub fn resident_memory_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * if page > 0 { page } else { 4096 })
}
