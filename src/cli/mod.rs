//! CLI definitions and dispatch. Each subcommand lives in its own file.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use streamsync::config::Network;
use streamsync::net::LinkProfile;

mod config_flags;
mod dump_config;
mod gen_chain;
mod inspect;
mod localnet;
mod localnet_plot;
mod node;
mod signals;
mod sim_plot;
mod simulate;
mod status;

pub use signals::Interrupted;

/// A peer-to-peer staged block sync engine (Harmony stream sync, in Rust).
#[derive(Debug, Parser)]
#[command(name = "streamsync", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a valid chain deterministically into a datadir.
    GenChain(gen_chain::Args),
    /// Print a datadir's head, epoch, block count and table sizes.
    Inspect(inspect::Args),
    /// Print the complete effective configuration as TOML.
    DumpConfig(dump_config::Args),
    /// Run a node: serve the chain, and sync it when the client is on.
    Node(Box<node::Args>),
    /// The main job: a local network on loopback and a fresh node syncing from it.
    Localnet(localnet::Args),
    /// A network-scale scenario in the simulator (needs `--features testkit`).
    Simulate(simulate::Args),
    /// Ask a running node (`--metrics HOST:PORT`) for its health: a table
    /// of the guide's health indicators, or the `/status` JSON.
    Status(status::Args),
}

/// A CLI failure: printed as `error: ...`, exit status 1 (128 + the signal
/// for an [`Interrupted`] command).
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// The exit status of a failed command: 128 + the signal's number if a
/// signal stopped it, else 1.
pub fn exit_status(e: &CliError) -> u8 {
    e.downcast_ref::<Interrupted>()
        .map_or(1, |i| i.exit_status())
}

impl Cli {
    /// The log level when `RUST_LOG` is unset: `info`, but `warn` for
    /// `simulate`, whose thousand nodes would log every cooldown.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Simulate(_) => "warn",
            _ => "info",
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `default`).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::GenChain(a) => gen_chain::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::DumpConfig(a) => dump_config::run(a),
        Command::Node(a) => node::run(*a),
        Command::Localnet(a) => localnet::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Status(a) => status::run(a),
    }
}

/// Parses a network name for clap.
/// A progress bar style from `template`, where `{rate}` is the items per
/// second as a whole number (`2556/s`): indicatif's own `{per_sec}` prints
/// four decimals (`2,555.8721/s`), noise on a rate of thousands.
fn bar_style(template: &str) -> Option<indicatif::ProgressStyle> {
    let style = indicatif::ProgressStyle::with_template(template).ok()?;
    Some(
        style
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&whole_rate(s.per_sec()));
                },
            )
            .progress_chars("=> "),
    )
}

/// `per_sec` as a whole number per second (`2556/s`; `0/s` if not finite).
fn whole_rate(per_sec: f64) -> String {
    let r = if per_sec.is_finite() {
        per_sec.max(0.0)
    } else {
        0.0
    };
    format!("{:.0}/s", r)
}

fn parse_network(s: &str) -> Result<Network, String> {
    s.parse()
        .map_err(|e: streamsync::config::ConfigError| e.to_string())
}

/// A datadir argument.
#[derive(Debug, Clone, clap::Args)]
struct DataDir {
    /// The node's data directory (an LMDB environment).
    #[arg(long, value_name = "DIR")]
    datadir: PathBuf,
}

/// Peak resident set size of this process, MiB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this process has used so far, user + system, of all its
/// threads (finished ones included), seconds; 0 if it cannot be read.
pub fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value, and `getrusage` only
    // writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, exclusively borrowed `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// The WAN link emulated on every link a node sends over (DESIGN.md §12), in
/// user space since the kernel here has no netem. All zero: plain loopback.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "WAN link emulation (applies to every frame a node sends)")]
pub struct LinkArgs {
    /// One-way delay added to every frame sent, milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency: u64,
    /// Extra delay per frame, uniform in [0, MS] milliseconds; frames still
    /// arrive in order, as on TCP.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub jitter: u64,
    /// Bandwidth of each connection, each direction, megabits per second
    /// (e.g. 20 or 0.5); frames are serialized at that rate. 0 = unlimited.
    #[arg(long, default_value_t = 0.0, value_name = "MBIT", value_parser = parse_bandwidth)]
    pub bandwidth: f64,
    /// Frames lost, percent (e.g. 0.5). TCP loses no data: a lost frame
    /// arrives one retransmission delay, max(200 ms, 2 × latency), late and
    /// the frames behind it wait.
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT", value_parser = parse_loss)]
    pub loss: f64,
}

impl LinkArgs {
    /// The profile these flags describe.
    pub fn profile(&self) -> LinkProfile {
        let bps = (self.bandwidth * 1e6).round() as u64;
        LinkProfile {
            latency: std::time::Duration::from_millis(self.latency),
            jitter: std::time::Duration::from_millis(self.jitter),
            bandwidth_bps: (self.bandwidth > 0.0).then_some(bps.max(1)),
            loss: self.loss / 100.0,
        }
    }

    /// The same flags, to pass to a child `streamsync node`.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--latency".into(),
            self.latency.to_string(),
            "--jitter".into(),
            self.jitter.to_string(),
            "--bandwidth".into(),
            self.bandwidth.to_string(),
            "--loss".into(),
            self.loss.to_string(),
        ]
    }

    /// The profile for a report: `latency_ms`, `jitter_ms`,
    /// `bandwidth_mbit` (0 = unlimited) and `loss_pct`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "latency_ms": self.latency,
            "jitter_ms": self.jitter,
            "bandwidth_mbit": self.bandwidth,
            "loss_pct": self.loss,
        })
    }

    /// One line for a text report.
    pub fn describe(&self) -> String {
        if self.profile().is_off() {
            return "loopback (no WAN emulation)".into();
        }
        let bw = if self.bandwidth > 0.0 {
            format!("{} Mbit/s", self.bandwidth)
        } else {
            "unlimited".into()
        };
        format!(
            "latency {} ms, jitter {} ms, bandwidth {bw}, loss {} %",
            self.latency, self.jitter, self.loss
        )
    }
}

/// `--bandwidth`: a finite, non-negative number of megabits per second.
fn parse_bandwidth(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s}: expected megabits per second, a number ≥ 0 (0 = unlimited)"
        )),
    }
}

/// `--loss`: a percentage in [0, 100].
fn parse_loss(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s}: expected a percentage in 0..=100")),
    }
}

#[cfg(test)]
mod rate_tests {
    use super::whole_rate;

    #[test]
    fn the_progress_rate_prints_as_a_whole_number() {
        assert_eq!(whole_rate(2555.8721), "2556/s");
        assert_eq!(whole_rate(0.4), "0/s");
        assert_eq!(whole_rate(f64::NAN), "0/s");
    }
}
