//! CLI definitions and dispatch. Each subcommand lives in its own file.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use streamsync::config::Network;

mod dump_config;
mod gen_chain;
mod inspect;
mod localnet;
mod node;

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
}

/// A CLI failure: printed as `error: ...`, exit status 1.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    }
}

/// Parses a network name for clap.
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
