//! Conversions between domain values and database columns, and the mapping of failures to `StoreError`,
//! shared by every SQL backend (SQLite and PostgreSQL store values the same way).
//!
//! Timestamps are 64-bit integer milliseconds since the epoch (UTC); ids are 64-bit integers; enums are
//! their stable strings. Reading back a value that does not decode is `StoreError::Corrupt`.

use ghr_core::Timestamp;
use ghr_core::ports::StoreError;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::str::FromStr;

/// A value ghr was asked to store does not fit the column (an id beyond `i64::MAX`).
#[derive(Debug, thiserror::Error)]
#[error("{what} {value} does not fit a 64-bit signed integer column")]
pub(crate) struct OutOfRange {
    pub(crate) what: &'static str,
    pub(crate) value: u64,
}

/// Wrap a driver error with the operation it interrupted.
pub(crate) fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Backend { op, source: Box::new(source) }
}

/// Report data read back from the database that does not decode.
pub(crate) fn corrupt(op: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { op, detail: detail.into() }
}

/// A timestamp as stored: milliseconds since the epoch.
pub(crate) fn ts(value: Timestamp) -> i64 {
    value.timestamp_millis()
}

pub(crate) fn ts_opt(value: Option<Timestamp>) -> Option<i64> {
    value.map(ts)
}

/// A numeric id as stored; ids beyond `i64::MAX` are refused.
pub(crate) fn id(op: &'static str, what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend { op, source: Box::new(OutOfRange { what, value }) })
}

pub(crate) fn id_opt(op: &'static str, what: &'static str, value: Option<u64>) -> Result<Option<i64>, StoreError> {
    value.map(|v| id(op, what, v)).transpose()
}

/// Typed access to the columns of one row, reporting every failure with the operation and column.
pub(crate) struct Columns<'r, R> {
    op: &'static str,
    row: &'r R,
}

impl<'r, R> Columns<'r, R>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    pub(crate) fn new(op: &'static str, row: &'r R) -> Self {
        Self { op, row }
    }

    fn raw<T>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T: Decode<'r, R::Database> + Type<R::Database>,
    {
        self.row.try_get::<T, _>(column).map_err(|source| corrupt(self.op, format!("column {column}: {source}")))
    }

    pub(crate) fn text(&self, column: &'static str) -> Result<String, StoreError> {
        self.raw::<String>(column)
    }

    pub(crate) fn text_opt(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.raw::<Option<String>>(column)
    }

    pub(crate) fn int(&self, column: &'static str) -> Result<i64, StoreError> {
        self.raw::<i64>(column)
    }

    pub(crate) fn int_opt(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        self.raw::<Option<i64>>(column)
    }

    /// A non-negative integer (an id or a count).
    pub(crate) fn unsigned(&self, column: &'static str) -> Result<u64, StoreError> {
        let value = self.int(column)?;
        u64::try_from(value).map_err(|_| corrupt(self.op, format!("column {column}: negative value {value}")))
    }

    pub(crate) fn unsigned_opt(&self, column: &'static str) -> Result<Option<u64>, StoreError> {
        match self.raw::<Option<i64>>(column)? {
            None => Ok(None),
            Some(value) => u64::try_from(value)
                .map(Some)
                .map_err(|_| corrupt(self.op, format!("column {column}: negative value {value}"))),
        }
    }

    pub(crate) fn u32(&self, column: &'static str) -> Result<u32, StoreError> {
        let value = self.int(column)?;
        u32::try_from(value).map_err(|_| corrupt(self.op, format!("column {column}: {value} is out of range")))
    }

    pub(crate) fn timestamp(&self, column: &'static str) -> Result<Timestamp, StoreError> {
        let millis = self.int(column)?;
        from_millis(self.op, column, millis)
    }

    pub(crate) fn timestamp_opt(&self, column: &'static str) -> Result<Option<Timestamp>, StoreError> {
        self.raw::<Option<i64>>(column)?.map(|millis| from_millis(self.op, column, millis)).transpose()
    }

    /// An enum stored as its string.
    pub(crate) fn parse<T>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text = self.text(column)?;
        text.parse::<T>().map_err(|err| corrupt(self.op, format!("column {column}: {err}")))
    }
}

fn from_millis(op: &'static str, column: &'static str, millis: i64) -> Result<Timestamp, StoreError> {
    chrono::DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| corrupt(op, format!("column {column}: {millis} ms is not a representable time")))
}

/// Encode a job's labels as a JSON array.
pub(crate) fn labels_to_json(op: &'static str, labels: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(labels).map_err(|source| StoreError::Backend { op, source: Box::new(source) })
}

pub(crate) fn labels_from_json(op: &'static str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|err| corrupt(op, format!("column labels: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let at = chrono::DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        assert_eq!(from_millis("test", "at", ts(at)).unwrap(), at);
        assert!(matches!(from_millis("test", "at", i64::MAX), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn ids_beyond_i64_are_refused_with_context() {
        assert_eq!(id("test", "job id", 42).unwrap(), 42);
        let err = id("test", "job id", u64::MAX).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("job id"), "{source}");
    }
}
