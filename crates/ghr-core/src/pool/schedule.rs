//! A tier's warm pool settings and its schedule (how many machines to keep ready at a time of day).

use crate::Timestamp;
use chrono::Timelike;
use std::time::Duration;

/// Minutes in a day: a window's bounds are minutes since midnight UTC, below this.
pub const MINUTES_PER_DAY: u16 = 24 * 60;
/// Largest pool per tier: a typo must not launch a fleet.
pub const MAX_POOL_SIZE: u32 = 1_000;
/// Default: a ready machine idle this long is replaced by a fresh one (patches, leaked state, spot reclaim).
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(60 * 60);
/// Default: a machine whose agent has not said hello this long after its launch is replaced.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// `[[tiers]] warm_pool`: machines of the tier kept ready, tenant-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPool {
    /// Machines kept ready outside every window.
    pub size: u32,
    /// Times of day with another size (first matching window wins).
    pub schedule: Vec<PoolWindow>,
    pub max_idle: Duration,
    pub boot_timeout: Duration,
}

impl WarmPool {
    pub fn of_size(size: u32) -> Self {
        WarmPool { size, schedule: Vec::new(), max_idle: DEFAULT_MAX_IDLE, boot_timeout: DEFAULT_BOOT_TIMEOUT }
    }

    /// How many machines the pool should hold at `now`.
    pub fn target(&self, now: Timestamp) -> u32 {
        let minute = (now.hour() * 60 + now.minute()) as u16;
        self.schedule.iter().find(|w| w.contains(minute)).map_or(self.size, |w| w.size)
    }
}

/// From `from` (inclusive) to `to` (exclusive), minutes since midnight UTC; `from > to` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    pub from: u16,
    pub to: u16,
    pub size: u32,
}

impl PoolWindow {
    pub fn contains(&self, minute: u16) -> bool {
        if self.from <= self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }
}

/// Why a schedule entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("time {0:?} is not HH:MM (00:00 to 23:59, UTC)")]
    BadTime(String),
    #[error("window {from}-{to} is empty: `from` and `to` must differ")]
    Empty { from: String, to: String },
    #[error("size {0} is above the largest pool, {MAX_POOL_SIZE}")]
    TooLarge(u32),
}

/// Parse `HH:MM` (UTC) into minutes since midnight.
pub fn parse_time_of_day(value: &str) -> Result<u16, ScheduleError> {
    let bad = || ScheduleError::BadTime(value.to_owned());
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h >= 24 || m >= 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A checked window from its configured spelling.
pub fn window(from: &str, to: &str, size: u32) -> Result<PoolWindow, ScheduleError> {
    let (f, t) = (parse_time_of_day(from)?, parse_time_of_day(to)?);
    if f == t {
        return Err(ScheduleError::Empty { from: from.to_owned(), to: to.to_owned() });
    }
    if size > MAX_POOL_SIZE {
        return Err(ScheduleError::TooLarge(size));
    }
    Ok(PoolWindow { from: f, to: t, size })
}

/// `HH:MM` of minutes since midnight.
pub fn format_time_of_day(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 12, 3, h, m, 0).unwrap()
    }

    #[test]
    fn schedule_picks_the_first_window_and_wraps_midnight() {
        let pool = WarmPool {
            schedule: vec![window("22:00", "06:00", 1).unwrap(), window("12:00", "13:00", 0).unwrap()],
            ..WarmPool::of_size(4)
        };
        let cases = [((23, 0), 1), ((0, 0), 1), ((5, 59), 1), ((6, 0), 4), ((12, 30), 0), ((13, 0), 4), ((21, 59), 4)];
        for ((h, m), want) in cases {
            assert_eq!(pool.target(at(h, m)), want, "{h:02}:{m:02}");
        }
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        let cases = [
            (("24:00", "01:00", 1), "not HH:MM"),
            (("7:00", "08:00", 1), "not HH:MM"),
            (("07:60", "08:00", 1), "not HH:MM"),
            (("08:00", "08:00", 1), "empty"),
            (("08:00", "09:00", MAX_POOL_SIZE + 1), "largest pool"),
        ];
        for ((from, to, size), want) in cases {
            let error = window(from, to, size).unwrap_err().to_string();
            assert!(error.contains(want), "{from}-{to}: {error}");
        }
        assert_eq!(format_time_of_day(window("07:05", "08:00", 1).unwrap().from), "07:05");
    }
}
