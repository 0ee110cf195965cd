//! Histogram samples a sans-IO core keeps for its driver.
//!
//! Cores never write to the process-global recorder (a simulator runs
//! thousands of them in one process): they count in plain fields and keep
//! histogram samples here, and their driver thread drains them into
//! `metrics` after every input.

/// Most samples kept between two drains. Past it new samples are dropped
/// and counted, so a core that nobody drains (a simulator that ignores
/// metrics) stays bounded: 64 KiB. A driver drains after every input,
/// and no single input of the request manager fails more than its waiting
/// queue (1024) plus its flights (128 streams × 32 with the defaults).
pub const MAX_PENDING_SAMPLES: usize = 8192;

/// Histogram samples recorded by a core and not yet published by its
/// driver, oldest first; at most `MAX_PENDING_SAMPLES`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    values: Vec<f64>,
    dropped: u64,
}

impl Samples {
    /// Records `v`, unless `MAX_PENDING_SAMPLES` are already pending
    /// (then it is counted as dropped).
    pub fn record(&mut self, v: f64) {
        if self.values.len() < MAX_PENDING_SAMPLES {
            self.values.push(v);
        } else {
            self.dropped += 1;
        }
    }

    /// Takes the pending samples, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, f64> {
        self.values.drain(..)
    }

    /// Samples pending.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no sample is pending.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Samples dropped so far because too many were pending.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_drained_in_order_and_bounded() {
        let mut s = Samples::default();
        s.record(1.0);
        s.record(2.0);
        assert_eq!(s.drain().collect::<Vec<_>>(), vec![1.0, 2.0]);
        assert!(s.is_empty());
        for i in 0..MAX_PENDING_SAMPLES + 10 {
            s.record(i as f64);
        }
        assert_eq!((s.len(), s.dropped()), (MAX_PENDING_SAMPLES, 10));
    }
}
