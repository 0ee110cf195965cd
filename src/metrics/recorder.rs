//! The Prometheus recorder: built without an async runtime, every series
//! labelled `topic`, every metric of the guide registered up front so a
//! dashboard sees them from the first scrape.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::names::{
    MetricKind, ALL_METRICS, COUNT_BUCKETS, DELAY_BUCKETS, LABEL_REASON, LABEL_TOPIC,
    REMOVAL_REASONS, STREAM_REMOVAL_REASONS,
};

/// The recorder could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Building failed (bad buckets).
    #[error("building the Prometheus recorder: {0}")]
    Build(String),
    /// A global recorder is already installed in this process.
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
}

/// Builds a recorder whose series all carry `topic` (the protocol id), with
/// buckets for every histogram. Install it with [`install_global`] or use it
/// locally with `metrics::with_local_recorder` (tests).
pub fn build_recorder(topic: &str) -> Result<(PrometheusRecorder, PrometheusHandle), MetricsError> {
    let mut b = PrometheusBuilder::new().add_global_label(LABEL_TOPIC, topic);
    for m in ALL_METRICS
        .iter()
        .filter(|m| m.kind == MetricKind::Histogram)
    {
        let buckets = if m.name.contains("num_blocks") {
            COUNT_BUCKETS
        } else {
            DELAY_BUCKETS
        };
        b = b
            .set_buckets_for_metric(Matcher::Full(m.name.to_string()), buckets)
            .map_err(|e| MetricsError::Build(e.to_string()))?;
    }
    let recorder = b.build_recorder();
    let handle = recorder.handle();
    Ok((recorder, handle))
}

/// Builds the recorder, installs it for the whole process, and registers
/// every metric. Returns the handle that renders the exposition.
pub fn install_global(topic: &str) -> Result<PrometheusHandle, MetricsError> {
    let (recorder, handle) = build_recorder(topic)?;
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    register_all();
    Ok(handle)
}

/// Describes every metric (help text and type) and registers it at zero with
/// the current recorder, so all names appear in the exposition at once.
pub fn register_all() {
    for m in ALL_METRICS {
        match m.kind {
            MetricKind::Counter => {
                describe_counter!(m.name, m.help);
                if m.name == STREAM_REMOVAL_REASONS {
                    for r in REMOVAL_REASONS {
                        metrics::counter!(m.name, LABEL_REASON => r).absolute(0);
                    }
                } else {
                    metrics::counter!(m.name).absolute(0);
                }
            }
            MetricKind::Gauge => {
                describe_gauge!(m.name, m.help);
                metrics::gauge!(m.name).set(0.0);
            }
            MetricKind::Histogram => {
                if m.name.contains("num_blocks") {
                    describe_histogram!(m.name, m.help);
                } else {
                    describe_histogram!(m.name, Unit::Seconds, m.help);
                }
                // Registering creates the series; it renders with zero counts.
                let _ = metrics::histogram!(m.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guide_metric_renders_with_topic_label() {
        let topic = "streamsync/sync/localnet/0/1.0.0";
        let (recorder, handle) = build_recorder(topic).expect("builds");
        metrics::with_local_recorder(&recorder, register_all);
        let text = handle.render();
        for m in ALL_METRICS {
            let series = match m.kind {
                MetricKind::Histogram => format!("{}_bucket{{", m.name),
                _ => format!("{}{{", m.name),
            };
            assert!(
                text.contains(&series),
                "{} missing from exposition:\n{text}",
                m.name
            );
            let ty = match m.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            assert!(
                text.contains(&format!("# TYPE {} {ty}", m.name)),
                "{} not typed {ty}",
                m.name
            );
        }
        assert!(text.contains(&format!("topic=\"{topic}\"")));
        assert!(text.contains("reason=\"rate-limit violation\""));
    }

    #[test]
    fn guide_lists_thirty_four_metrics() {
        assert_eq!(ALL_METRICS.len(), 34);
        let mut names: Vec<_> = ALL_METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 34, "duplicate metric name");
    }
}
