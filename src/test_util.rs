//! Helpers shared by the unit tests of several modules.

use std::collections::BTreeMap;

/// The steps (index and kind: the log line's first word) at which two logs
/// of the same scripted run differ, at most 12; empty when they agree.
pub fn differing_steps(a: &[String], b: &[String]) -> Vec<String> {
    let kind = |x: &String| x.split([' ', '{', '(']).next().unwrap_or("").to_string();
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .take(12)
        .map(|(i, (x, _))| format!("{i} {}", kind(x)))
        .collect()
}

/// Runs `run` twice from the same instant and asserts the two logs are
/// the same, step for step (a core's decisions are functions of its
/// inputs only).
pub fn assert_same_runs(run: impl Fn(std::time::Instant) -> Vec<String>) {
    let t0 = std::time::Instant::now();
    let (a, b) = (run(t0), run(t0));
    let differ = differing_steps(&a, &b);
    assert!(
        differ.is_empty(),
        "of {} steps, the first that differ: {differ:?}",
        a.len()
    );
    assert_eq!(a.len(), b.len());
}

/// The series of `text` (a Prometheus exposition) whose value is not
/// zero, bucket lines left out.
pub fn nonzero(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(_, v)| *v != "0")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `script` under a recorder of its own (every guide metric
/// registered) and renders what it recorded.
pub fn render_metrics(script: impl FnOnce()) -> String {
    let (recorder, handle) = crate::metrics::build_recorder("t").expect("recorder");
    metrics::with_local_recorder(&recorder, || {
        crate::metrics::register_all();
        script();
    });
    handle.render()
}
