//! `streamsync simulate`: a named or TOML-described network-scale scenario
//! in the simulator (DESIGN.md §14), reported as text or one JSON line,
//! with an SVG picture. Needs the `testkit` feature.

use std::path::PathBuf;

use super::CliError;

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario: scale, byzantine, boot-loss or partition.
    #[arg(long, default_value = "scale")]
    scenario: String,
    /// Nodes in all (default: the scenario's).
    #[arg(long)]
    nodes: Option<usize>,
    /// Seed of the run (the same seed, the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A TOML file whose keys override the scenario's parameters (the keys
    /// are the report's `scenario_params` names, e.g. `blocks = 20000`).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Draw the run into this file (SVG); none without it.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

#[cfg(not(feature = "testkit"))]
pub fn run(_a: Args) -> Result<(), CliError> {
    Err("simulate needs the simulator: build with `--features testkit`".into())
}

#[cfg(feature = "testkit")]
pub fn run(a: Args) -> Result<(), CliError> {
    use streamsync::testkit::sim::scenario::{self, Scenario};

    let mut s = Scenario::named(&a.scenario, a.nodes, a.seed)?;
    if let Some(f) = &a.file {
        s = overlay(&s, f)?;
        if let Some(n) = a.nodes {
            s.nodes = n;
        }
    }
    let wall = std::time::Instant::now();
    let quiet = a.json;
    let mut r = scenario::run(&s, |t, done, all| {
        if !quiet {
            eprintln!("  virtual {t:>6.0} s: {done}/{all} joiners synced");
        }
    })?;
    r.wall_s = wall.elapsed().as_secs_f64();
    r.peak_rss_mb = super::peak_rss_mb();
    if let Some(svg) = &a.svg {
        super::sim_plot::draw(&r, svg)?;
    }
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("scenario_params".into(), serde_json::to_value(&s)?);
        }
        println!("{v}");
    } else {
        print_text(&r, &s);
        if let Some(svg) = &a.svg {
            println!("picture: {}", svg.display());
        }
    }
    Ok(())
}

/// `base` with the keys of the TOML file `f` replaced.
#[cfg(feature = "testkit")]
fn overlay(
    base: &streamsync::testkit::sim::scenario::Scenario,
    f: &std::path::Path,
) -> Result<streamsync::testkit::sim::scenario::Scenario, CliError> {
    let text =
        std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
    let over: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: not TOML: {e}", f.display()))?;
    let mut v = serde_json::to_value(base)?;
    let Some(obj) = v.as_object_mut() else {
        return Err("scenario is not a table".into());
    };
    for (k, val) in over {
        if !obj.contains_key(&k) {
            let keys: Vec<&String> = obj.keys().collect();
            return Err(format!("{}: unknown key {k:?}; known: {keys:?}", f.display()).into());
        }
        obj.insert(k, serde_json::to_value(val)?);
    }
    serde_json::from_value(v).map_err(|e| format!("{}: {e}", f.display()).into())
}

#[cfg(feature = "testkit")]
fn print_text(
    r: &streamsync::testkit::sim::scenario::Report,
    s: &streamsync::testkit::sim::scenario::Scenario,
) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
    println!(
        "scenario {} (seed {}): {} nodes, {} honest, {} byzantine; {} blocks, links {} ms ± {} ms at {} Mbit/s",
        r.scenario, r.seed, r.nodes, r.honest_nodes, r.byzantine_nodes, s.blocks, s.latency_ms, s.jitter_ms, s.bandwidth_mbit
    );
    println!(
        "honest synced {}/{}, wrong head {}, foreign blocks stored {}",
        r.honest_synced, r.honest_nodes, r.honest_wrong_head, r.foreign_blocks_stored
    );
    println!(
        "joiners synced {}/{}: time to sync p50 {}, p99 {} (virtual)",
        r.joiners_synced,
        r.joiners,
        opt(r.time_to_sync_p50_s),
        opt(r.time_to_sync_p99_s)
    );
    println!(
        "load: {} block requests served by {} nodes; busiest 1 % served {:.1} %; Gini {:.2}",
        r.block_requests,
        r.serving_nodes,
        100.0 * r.top1pct_request_share,
        r.gini
    );
    if r.byzantine_nodes > 0 {
        println!(
            "byzantine: {} of {} (honest, byzantine) encounters ended in removal; honest peers blamed critically: {}",
            r.byzantine_removed_pairs, r.byzantine_met_pairs, r.honest_blamed_critical
        );
        for (name, met, removed) in &r.byzantine_by_behaviour {
            println!("  {name:<16} met {met:>5}, removed {removed:>5}");
        }
    }
    if let Some(behind) = r.behind_at_heal {
        println!(
            "partition: {behind} honest nodes behind the honest head at the heal; all on it {} later",
            opt(r.converged_after_heal_s)
        );
    }
    println!("dials {}, failed: {:?}", r.dials, r.dial_failures);
    for (reason, honest, byz) in &r.removals {
        println!("removed for {reason}: {honest} honest, {byz} byzantine peers");
    }
    println!(
        "ran {:.0} virtual s in {:.1} s wall, peak RSS {:.0} MiB; {} events; digest {}",
        r.virtual_s, r.wall_s, r.peak_rss_mb, r.events, r.digest
    );
}
