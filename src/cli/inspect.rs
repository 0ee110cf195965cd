//! `streamsync inspect`: what a datadir holds.

use streamsync::store::{Store, StoreOptions};

use super::{CliError, DataDir};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    dir: DataDir,
    /// Print one line of JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let store = Store::open(&a.dir.datadir, StoreOptions::default())?;
    let s = store.stats()?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("datadir      {}", a.dir.datadir.display());
    println!("network      {} shard {}", s.network, s.shard_id);
    println!("head         {} {}", s.head_number, s.head_hash);
    println!("epoch        {}", s.epoch);
    println!("blocks       {}", s.blocks);
    println!("genesis      {}", s.genesis_hash);
    println!("map size     {} MiB", s.map_size >> 20);
    println!("{:<16} {:>10} {:>14}", "table", "entries", "bytes");
    for t in &s.tables {
        println!("{:<16} {:>10} {:>14}", t.name, t.entries, t.bytes);
    }
    Ok(())
}
