//! `streamsync dump-config`: network defaults, then the file, then the
//! `--sync.*` flags, printed as a file that loads back to the same output
//! (`node --print-config` prints the same).

use super::config_flags::ConfigArgs;
use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Network, file and `--sync.*` flags, as `node` takes them.
    #[command(flatten)]
    cfg: ConfigArgs,
}

pub fn run(a: Args) -> Result<(), CliError> {
    print!("{}", a.cfg.effective()?.to_toml());
    Ok(())
}
