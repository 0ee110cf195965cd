//! Summary statistics for simulation reports.

/// The `p`-quantile (0.0–1.0) of `values` by the nearest-rank method;
/// `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// The Gini coefficient of `values` (0: all equal, → 1: one holds all);
/// 0 when empty or all zero.
pub fn gini(values: &[f64]) -> f64 {
    let n = values.len();
    let total: f64 = values.iter().sum();
    if n == 0 || total <= 0.0 {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    (2.0 * weighted) / (n as f64 * total) - (n as f64 + 1.0) / n as f64
}

/// The share (0.0–1.0) of the total held by the largest `ceil(frac × n)`
/// values (at least one); 0 when the total is 0.
pub fn top_share(values: &[f64], frac: f64) -> f64 {
    let total: f64 = values.iter().sum();
    if values.is_empty() || total <= 0.0 {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let k = ((frac * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[..k].iter().sum::<f64>() / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_is_zero_when_equal_and_near_one_when_one_holds_all() {
        assert!(gini(&[5.0; 100]).abs() < 1e-9);
        let mut v = vec![0.0; 100];
        v[7] = 1.0;
        assert!((gini(&v) - 0.99).abs() < 1e-9, "{}", gini(&v));
    }

    #[test]
    fn top_share_takes_the_largest_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((top_share(&v, 0.01) - 100.0 / 5050.0).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
    }
}
