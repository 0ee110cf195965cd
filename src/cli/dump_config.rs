//! `streamsync dump-config`: network defaults, then the file, printed as a
//! file that loads back to the same output.

use std::path::PathBuf;

use streamsync::config::{self, Config};

use super::{parse_network, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Network whose defaults apply (mainnet, testnet, localnet, partner);
    /// default: the file's `[Network] NetworkType`, else mainnet.
    #[arg(long, value_parser = parse_network)]
    network: Option<config::Network>,
    /// A `harmony.conf`-style TOML file; its `[Sync]` section overrides the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let cfg = match &a.config {
        Some(path) => config::load_file(path, a.network)?,
        None => Config::for_network(a.network.unwrap_or(config::Network::Mainnet)),
    };
    print!("{}", cfg.to_toml());
    Ok(())
}
