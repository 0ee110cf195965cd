//! The picture of a `localnet` run (`--plot FILE.svg`, with plotters):
//! blocks over time per stage (hashes staged, bodies staged, committed), as
//! the syncing node's `/status` showed them, and each serving peer's share
//! of the blocks served.

use std::path::Path;

use plotters::prelude::*;

use super::CliError;

/// One `/status` sample of the syncing node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Seconds since the syncing node started.
    pub t: f64,
    /// BlockHashes' checkpoint (`hashes_staged_to`).
    pub hashes: u64,
    /// BlockBodies' checkpoint (`bodies_staged_to`).
    pub bodies: u64,
    /// The committed head (States).
    pub head: u64,
}

/// One serving peer: its label and the blocks it served.
#[derive(Clone, Debug)]
pub struct Served {
    /// e.g. `peer 3` or `peer 5 (wrong-bodies)`.
    pub label: String,
    /// Blocks its server sent (`Host::blocks_served`).
    pub blocks: u64,
}

/// A stage's line: its name, its value in a sample, its colour.
type Stage = (&'static str, fn(&Sample) -> u64, RGBColor);

/// Draws the run into the SVG file `path`.
pub fn draw(samples: &[Sample], served: &[Served], path: &Path) -> Result<(), CliError> {
    let e = |e: &dyn std::fmt::Display| -> CliError { format!("plot: {e}").into() };
    let root = SVGBackend::new(path, (1200, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let panels = root.split_evenly((1, 2));

    let t_max = samples.last().map_or(1.0, |s| s.t).max(0.1);
    let n_max = samples
        .iter()
        .map(|s| s.hashes.max(s.bodies).max(s.head))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut c = ChartBuilder::on(&panels[0])
        .caption("blocks over time, per stage", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0u64..n_max + n_max / 20 + 1)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("seconds")
        .y_desc("block")
        .draw()
        .map_err(|x| e(&x))?;
    let stages: [Stage; 3] = [
        ("BlockHashes (staged)", |s| s.hashes, BLUE),
        ("BlockBodies (staged)", |s| s.bodies, GREEN),
        ("States (committed)", |s| s.head, RED),
    ];
    for (name, f, color) in stages {
        c.draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t, f(s))),
            color.stroke_width(2),
        ))
        .map_err(|x| e(&x))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    let total: u64 = served.iter().map(|s| s.blocks).sum::<u64>().max(1);
    let mut c = ChartBuilder::on(&panels[1])
        .caption("share of the blocks served, per peer", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((0..served.len().max(1) - 1).into_segmented(), 0.0..100.0)
        .map_err(|x| e(&x))?;
    let labels: Vec<String> = served.iter().map(|s| s.label.clone()).collect();
    c.configure_mesh()
        .disable_x_mesh()
        .x_desc("serving peer")
        .y_desc("% of blocks served")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|x| e(&x))?;
    c.draw_series(served.iter().enumerate().map(|(i, s)| {
        let pct = 100.0 * s.blocks as f64 / total as f64;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), pct),
            ],
            BLUE.mix(0.6).filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        bar
    }))
    .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_names_every_stage_and_every_peer() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("run.svg");
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                t: f64::from(i) / 10.0,
                hashes: 100 * i as u64,
                bodies: 90 * i as u64,
                head: 80 * i as u64,
            })
            .collect();
        let served = vec![
            Served {
                label: "peer 1".into(),
                blocks: 500,
            },
            Served {
                label: "peer 2 (wrong-bodies)".into(),
                blocks: 20,
            },
        ];
        draw(&samples, &served, &path).expect("draws");
        let svg = std::fs::read_to_string(&path).expect("svg");
        for text in [
            "BlockHashes (staged)",
            "BlockBodies (staged)",
            "States (committed)",
            "peer 1",
            "peer 2 (wrong-bodies)",
        ] {
            assert!(svg.contains(text), "{text} missing from the picture");
        }
    }
}
