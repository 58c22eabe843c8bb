//! Wait-time statistics: how long jobs waited from ghr hearing of them to running, as percentiles per hour.
//!
//! A wait counts in the hour it ended (the job started): the hour's bar then describes what operators saw
//! happen in it, and a long wait still in progress never drags an hour that is already over.

use crate::Timestamp;
use chrono::{DurationRound, TimeDelta};

/// One hour's waits.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyWaits {
    /// Start of the hour (UTC, on the hour).
    pub hour: Timestamp,
    /// How many jobs started in the hour.
    pub jobs: usize,
    /// Median wait in seconds; None when no job started in the hour.
    pub p50_seconds: Option<f64>,
    /// 95th-percentile wait in seconds; None when no job started in the hour.
    pub p95_seconds: Option<f64>,
}

/// The `p`-th percentile (0..=100) of `values` by the nearest-rank method: the smallest value such that at least
/// `p` percent of the values are at most it. None for no values. `values` need not be sorted.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Waits `(received_at, started_at)` bucketed by the hour they ended, for the `hours` whole hours up to and
/// including the one containing `now`, oldest first. Waits outside those hours are ignored; a start before its
/// receipt (clock skew between GitHub and ghr) counts as no wait.
pub fn hourly_waits(waits: &[(Timestamp, Timestamp)], now: Timestamp, hours: u32) -> Vec<HourlyWaits> {
    let hour = TimeDelta::hours(1);
    let current = now.duration_trunc(hour).unwrap_or(now);
    let first = current - hour * (hours.max(1) as i32 - 1);
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); hours.max(1) as usize];
    for (received, started) in waits {
        if *started < first || *started >= current + hour {
            continue;
        }
        let index = ((*started - first).num_seconds() / 3600) as usize;
        let seconds = (*started - *received).num_milliseconds().max(0) as f64 / 1000.0;
        if let Some(bucket) = buckets.get_mut(index) {
            bucket.push(seconds);
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, values)| HourlyWaits {
            hour: first + hour * i as i32,
            jobs: values.len(),
            p50_seconds: percentile(&values, 50.0),
            p95_seconds: percentile(&values, 95.0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 1, 31, h, m, s).single().expect("a valid instant")
    }

    #[test]
    fn percentile_table() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let table: [(&[f64], f64, Option<f64>); 9] = [
            (&[], 50.0, None),
            (&[7.0], 50.0, Some(7.0)),
            (&[7.0], 95.0, Some(7.0)),
            (&[3.0, 1.0, 2.0], 50.0, Some(2.0)),
            (&ten, 50.0, Some(5.0)),
            (&ten, 95.0, Some(10.0)),
            (&hundred, 95.0, Some(95.0)),
            (&hundred, 0.0, Some(1.0)),
            (&hundred, 100.0, Some(100.0)),
        ];
        for (values, p, expected) in table {
            assert_eq!(percentile(values, p), expected, "p{p} of {values:?}");
        }
    }

    #[test]
    fn waits_land_in_the_hour_they_ended() {
        let now = at(12, 30, 0);
        let waits = [
            // Hour 12: waits of 10 s and 30 s.
            (at(12, 0, 0), at(12, 0, 10)),
            (at(12, 1, 0), at(12, 1, 30)),
            // Received in hour 10, started in hour 11: counts in 11.
            (at(10, 59, 0), at(11, 1, 0)),
            // Before the window (3 hours: 10, 11, 12): ignored.
            (at(9, 0, 0), at(9, 0, 5)),
            // After now's hour: ignored.
            (at(13, 0, 0), at(13, 0, 5)),
            // Started before it was received: no wait.
            (at(10, 5, 0), at(10, 4, 0)),
        ];
        let hours = hourly_waits(&waits, now, 3);
        let table = [
            (at(10, 0, 0), 1, Some(0.0), Some(0.0)),
            (at(11, 0, 0), 1, Some(120.0), Some(120.0)),
            (at(12, 0, 0), 2, Some(10.0), Some(30.0)),
        ];
        assert_eq!(hours.len(), table.len());
        for (got, (hour, jobs, p50, p95)) in hours.iter().zip(table) {
            assert_eq!((got.hour, got.jobs, got.p50_seconds, got.p95_seconds), (hour, jobs, p50, p95));
        }
    }

    #[test]
    fn empty_hours_have_no_percentiles() {
        let hours = hourly_waits(&[], at(5, 59, 59), 12);
        assert_eq!(hours.len(), 12);
        assert_eq!(hours.first().map(|h| h.hour), Some(at(5, 0, 0) - TimeDelta::hours(11)));
        assert!(hours.iter().all(|h| h.jobs == 0 && h.p50_seconds.is_none() && h.p95_seconds.is_none()));
    }
}
