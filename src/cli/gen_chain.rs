//! `streamsync gen-chain`: write a valid chain deterministically.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::ProgressBar;
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::generator::Generator;
use streamsync::chain::{ChainBackend, GenesisSpec};
use streamsync::config::Network;
use streamsync::crypto::hash::to_hex;
use streamsync::store::{Store, StoreOptions};

use super::{parse_network, CliError, DataDir};

/// Blocks per insert transaction while generating.
const GEN_BATCH: usize = 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    dir: DataDir,
    /// Blocks to generate after genesis.
    #[arg(long)]
    blocks: u64,
    /// Seed of keys, accounts and transfers (same arguments → same chain).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Committee members per epoch.
    #[arg(long, default_value_t = 64)]
    committee: u32,
    /// Blocks per epoch.
    #[arg(long = "epoch-len", default_value_t = 1000)]
    epoch_len: u64,
    /// Transfers per block.
    #[arg(long, default_value_t = 4)]
    txs: u32,
    /// Genesis accounts.
    #[arg(long, default_value_t = 256)]
    accounts: u32,
    /// Network of the chain.
    #[arg(long, default_value = "localnet", value_parser = parse_network)]
    network: Network,
    /// Shard id.
    #[arg(long, default_value_t = 0)]
    shard: u32,
    /// Skip fsync on commit (faster; a power loss may lose the last commits).
    #[arg(long)]
    no_sync: bool,
    /// Print one line of JSON at the end instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let spec = GenesisSpec {
        seed: a.seed,
        network: a.network.name().to_string(),
        shard_id: a.shard,
        epoch_len: a.epoch_len,
        committee_size: a.committee,
        accounts: a.accounts,
    };
    let (mut gen, genesis) = Generator::new(spec, a.txs)?;
    let opts = StoreOptions {
        durable: !a.no_sync,
        ..StoreOptions::default()
    };
    let store = Store::open_or_create(&a.dir.datadir, &genesis, opts)?;
    let head = store.head()?;
    if head.number != 0 {
        return Err(format!(
            "{} already holds a chain up to block {}; use an empty directory",
            a.dir.datadir.display(),
            head.number
        )
        .into());
    }
    let start = Instant::now();
    let bar = progress_bar(a.blocks);
    let (tx, rx) = crossbeam::channel::bounded::<InsertBatch>(2);
    let total = a.blocks;
    // Signing is sequential (each header carries its parent's commit), so one
    // thread generates while this one writes.
    let producer = std::thread::spawn(move || -> Result<(), String> {
        let mut left = total;
        while left > 0 {
            let n = left.min(GEN_BATCH as u64) as usize;
            let blocks = (0..n)
                .map(|_| gen.next_block())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            left -= n as u64;
            if tx.send(InsertBatch::seal(blocks, vec![])).is_err() {
                return Ok(());
            }
        }
        Ok(())
    });
    let mut last = head;
    let mut logged = 0u64;
    for batch in rx {
        last = store.insert_batch(&batch)?;
        bar.set_position(last.number);
        if bar.is_hidden() && (last.number - logged) * 10 >= total.max(1) {
            logged = last.number;
            tracing::info!(block = last.number, of = total, "generating");
        }
    }
    producer.join().map_err(|_| "generator thread panicked")??;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let rate = a.blocks as f64 / secs.max(1e-9);
    let hash = to_hex(&last.hash);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "blocks": a.blocks,
                "head_number": last.number,
                "head_hash": hash,
                "seconds": secs,
                "blocks_per_sec": rate,
            })
        );
    } else {
        println!(
            "generated {} blocks in {secs:.1} s ({rate:.0} blocks/s); head {} {hash}",
            a.blocks, last.number
        );
    }
    Ok(())
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Some(style) =
        super::bar_style("{spinner} gen-chain [{bar:40}] {pos}/{len} blocks {rate} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
