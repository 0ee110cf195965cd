//! The picture of a simulation (SVG, with plotters): blocks over virtual
//! time for sampled joiners, the distribution of time-to-sync, and block
//! requests served per node.
#![cfg(feature = "testkit")]

use std::path::Path;

use plotters::prelude::*;
use streamsync::testkit::sim::scenario::Report;

use super::CliError;

/// Draws `r` into the SVG file `path`.
pub fn draw(r: &Report, path: &Path) -> Result<(), CliError> {
    let root = SVGBackend::new(path, (1500, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let e = |e: &dyn std::fmt::Display| -> CliError { e.to_string().into() };

    // 1. Heads over virtual time.
    let t_max = r
        .traces
        .iter()
        .flat_map(|t| t.heads.last().map(|h| h.0))
        .fold(1.0, f64::max);
    let h_max = r
        .traces
        .iter()
        .flat_map(|t| t.heads.iter().map(|h| h.1))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut c = ChartBuilder::on(&panels[0])
        .caption("committed head of sampled joiners", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0u64..h_max)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("virtual seconds")
        .y_desc("block")
        .draw()
        .map_err(|x| e(&x))?;
    for (k, t) in r.traces.iter().enumerate() {
        c.draw_series(LineSeries::new(
            t.heads.iter().copied(),
            Palette99::pick(k).stroke_width(2),
        ))
        .map_err(|x| e(&x))?;
    }

    // 2. Time to sync, sorted (a CDF).
    let mut times = r.times_to_sync.clone();
    times.sort_by(f64::total_cmp);
    let x_max = times.last().copied().unwrap_or(1.0).max(1.0);
    let mut c = ChartBuilder::on(&panels[1])
        .caption("time to sync of the joiners (CDF)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..1.0)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("virtual seconds from start")
        .y_desc("share synced")
        .draw()
        .map_err(|x| e(&x))?;
    let n = times.len().max(1) as f64;
    c.draw_series(LineSeries::new(
        times
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, (i + 1) as f64 / n)),
        BLUE.stroke_width(2),
    ))
    .map_err(|x| e(&x))?;

    // 3. Block requests served per honest node, busiest first.
    let mut served = r.served.clone();
    served.sort_unstable_by(|a, b| b.cmp(a));
    let y_max = served.first().copied().unwrap_or(1).max(1);
    let mut c = ChartBuilder::on(&panels[2])
        .caption(
            format!(
                "block requests served per node (top 1 %: {:.1} %, Gini {:.2})",
                100.0 * r.top1pct_request_share,
                r.gini
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0usize..served.len().max(1), 0u64..y_max + 1)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("honest nodes, busiest first")
        .y_desc("requests")
        .draw()
        .map_err(|x| e(&x))?;
    c.draw_series(LineSeries::new(
        served.iter().enumerate().map(|(i, v)| (i, *v)),
        RED.stroke_width(2),
    ))
    .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
