//! Metric names, word for word from the guide, with their types.

/// The Prometheus type of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic count.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution with buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric: name, type and help text.
#[derive(Clone, Copy, Debug)]
pub struct MetricSpec {
    /// Exposition name.
    pub name: &'static str,
    /// Type.
    pub kind: MetricKind,
    /// Help text (from the guide).
    pub help: &'static str,
}

macro_rules! metrics_table {
    ($( $(#[$doc:meta])* $konst:ident = $name:literal, $kind:ident, $help:literal; )*) => {
        $( $(#[$doc])* pub const $konst: &str = $name; )*
        /// Every metric of the guide, with type and help.
        pub const ALL_METRICS: &[MetricSpec] = &[
            $( MetricSpec { name: $name, kind: MetricKind::$kind, help: $help }, )*
        ];
    };
}

metrics_table! {
    /// Times consensus triggered a download task.
    CONSENSUS_TRIGGER = "hmy_staged_stream_sync_consensus_trigger", Counter, "Number of times consensus triggered download tasks";
    /// Blocks synced in long-range sync.
    NUM_BLOCKS_SYNCED_LONG_RANGE = "hmy_staged_stream_sync_num_blocks_synced_long_range", Counter, "Number of blocks synced in long-range sync";
    /// Blocks that failed to insert.
    NUM_BLOCKS_FAILED_LONG_RANGE = "hmy_staged_stream_sync_num_blocks_failed_long_range", Counter, "Number of blocks that failed to insert into chain";
    /// Short-range syncs triggered.
    NUM_SHORT_RANGE = "hmy_staged_stream_sync_num_short_range", Counter, "Number of short-range sync operations triggered";
    /// Epoch syncs triggered.
    NUM_EPOCH_SYNC = "hmy_staged_stream_sync_num_epoch_sync", Counter, "Number of epoch block sync operations triggered";
    /// Failed downloads.
    FAILED_DOWNLOAD = "hmy_staged_stream_sync_failed_download", Counter, "Number of failed download operations";
    /// Blocks inserted per short-range sync.
    NUM_BLOCKS_INSERTED_SHORT_RANGE = "hmy_staged_stream_sync_num_blocks_inserted_short_range", Histogram, "Histogram of blocks inserted per short-range sync";
    /// Blocks inserted per epoch sync.
    NUM_BLOCKS_INSERTED_EPOCH_SYNC = "hmy_staged_stream_sync_num_blocks_inserted_epoch_sync", Histogram, "Histogram of blocks inserted per epoch sync";
    /// Blocks inserted from the beacon helper.
    NUM_BLOCKS_INSERTED_BEACON_HELPER = "hmy_staged_stream_sync_num_blocks_inserted_beacon_helper", Counter, "Number of blocks inserted from beacon helper";
    /// Outgoing client requests.
    CLIENT_REQUEST = "hmy_stream_sync_client_request", Counter, "Number of outgoing requests as a client";
    /// Failed outgoing requests.
    FAILED_CLIENT_REQUEST = "hmy_stream_sync_failed_client_request", Counter, "Number of failed outgoing requests";
    /// Client request delay, seconds.
    CLIENT_REQUEST_DELAY = "hmy_stream_sync_client_request_delay", Histogram, "Histogram of client request delays (seconds)";
    /// Incoming requests as a server.
    SYNC_SERVER_REQUEST = "hmy_stream_sync_server_request", Counter, "Number of incoming requests as a server";
    /// Connected streams.
    NUM_STREAMS = "hmy_stream_num_streams", Gauge, "Current number of connected streams";
    /// Reserved streams.
    NUM_RESERVED_STREAMS = "hmy_stream_num_reserved_streams", Gauge, "Current number of reserved streams";
    /// Streams added.
    ADDED_STREAMS = "hmy_stream_added_streams", Counter, "Total number of streams added";
    /// Streams removed.
    REMOVED_STREAMS = "hmy_stream_removed_streams", Counter, "Total number of streams removed";
    /// Critical errors causing removal.
    STREAM_CRITICAL_ERRORS = "hmy_stream_stream_critical_errors", Counter, "Number of critical errors causing stream removal";
    /// Removals by `reason` label.
    STREAM_REMOVAL_REASONS = "hmy_stream_stream_removal_reasons", Counter, "Distribution of stream removal reasons";
    /// Discovery attempts.
    DISCOVER = "hmy_stream_discover", Counter, "Number of peer discovery attempts";
    /// Peers discovered and connected.
    DISCOVER_PEERS = "hmy_stream_discover_peers", Counter, "Number of peers successfully discovered and connected";
    /// Stream setup duration, seconds.
    SETUP_STREAM_DURATION = "hmy_stream_setup_stream_duration", Histogram, "Histogram of stream setup durations (seconds)";
    /// Bytes read from streams.
    BYTES_READ = "hmy_stream_bytes_read", Counter, "Total bytes read from streams";
    /// Bytes written to streams.
    BYTES_WRITE = "hmy_stream_bytes_write", Counter, "Total bytes written to streams";
    /// Messages read.
    MSG_READ = "hmy_stream_msg_read", Counter, "Total messages read from streams";
    /// Messages written.
    MSG_WRITE = "hmy_stream_msg_write", Counter, "Total messages written to streams";
    /// Failed message reads.
    MSG_READ_FAILED = "hmy_stream_msg_read_failed", Counter, "Number of failed message reads";
    /// Failed message writes.
    MSG_WRITE_FAILED = "hmy_stream_msg_write_failed", Counter, "Number of failed message writes";
    /// Streams connected to the request manager.
    REQUEST_MANAGER_NUM_CONNECTED_STREAMS = "hmy_stream_request_manager_num_connected_streams", Gauge, "Number of streams connected to request manager";
    /// Streams available for requests.
    REQUEST_MANAGER_NUM_AVAILABLE_STREAMS = "hmy_stream_request_manager_num_available_streams", Gauge, "Number of streams available for requests";
    /// Requests waiting in queue.
    NUM_WAITING_REQUESTS = "hmy_stream_num_waiting_requests", Gauge, "Number of requests waiting in queue";
    /// Requests in flight.
    NUM_PENDING_REQUESTS = "hmy_stream_num_pending_requests", Gauge, "Number of requests currently being processed";
    /// Incoming requests as server (rate limiter).
    NUM_SERVER_REQUEST = "hmy_stream_num_server_request", Counter, "Number of incoming requests as server";
    /// Server request processing delay, seconds.
    SERVER_REQUEST_DELAY = "hmy_stream_server_request_delay", Histogram, "Histogram of server request processing delays (seconds)";
}

/// The label every series carries: the protocol id.
pub const LABEL_TOPIC: &str = "topic";
/// The label of [`STREAM_REMOVAL_REASONS`].
pub const LABEL_REASON: &str = "reason";
/// Values of the `reason` label (the guide's bad-actor causes).
pub const REMOVAL_REASONS: [&str; 6] = [
    "critical error",
    "connection failure",
    "slow",
    "invalid response",
    "rate-limit violation",
    "protocol mismatch",
];

/// Buckets of the delay and duration histograms, seconds.
pub const DELAY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of the blocks-per-operation histograms.
pub const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
