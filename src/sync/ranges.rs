//! Sets of block numbers kept as inclusive ranges (`first → last`), as the
//! machine's retry queues hold them.
//!
//! A plain `BTreeMap::insert` of a range that starts where a queued one
//! starts replaces it, losing the numbers only the longer one held: two
//! overlapping hash requests failing together (a stream going with both in
//! flight) left a number that nobody asked again, and the sync stood still
//! (the simulator's 200-node partition: one node stuck at a head below the
//! tip for 30 virtual minutes). [`add`] merges instead.

use std::collections::BTreeMap;

/// Adds `first..=last` to `set`, merging it with every range it overlaps
/// or touches, so each number is held once and none is lost. Nothing is
/// added when `first > last`.
pub fn add(set: &mut BTreeMap<u64, u64>, first: u64, last: u64) {
    if first > last {
        return;
    }
    let (mut a, mut b) = (first, last);
    let touching: Vec<(u64, u64)> = set
        .range(..=last.saturating_add(1))
        .rev()
        .take_while(|(_, y)| y.saturating_add(1) >= first)
        .map(|(x, y)| (*x, *y))
        .collect();
    for (x, y) in touching {
        set.remove(&x);
        a = a.min(x);
        b = b.max(y);
    }
    set.insert(a, b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_range_from_the_same_number_keeps_the_longer_ones_numbers() {
        let mut s = BTreeMap::new();
        add(&mut s, 2032, 2033);
        add(&mut s, 2032, 2032);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), vec![(2032, 2033)]);
    }

    #[test]
    fn overlapping_and_touching_ranges_merge_and_apart_ones_stay_apart() {
        let mut s = BTreeMap::new();
        add(&mut s, 10, 12);
        add(&mut s, 20, 25);
        add(&mut s, 13, 14); // touches 10..=12
        add(&mut s, 30, 31);
        add(&mut s, 5, 21); // spans 10..=14 and overlaps 20..=25
        add(&mut s, 9, 8); // empty
        assert_eq!(s.into_iter().collect::<Vec<_>>(), vec![(5, 25), (30, 31)]);
    }
}
