//! Item codec helpers: typed reads of DynamoDB attributes (a missing or mistyped one is `Corrupt`, naming it),
//! and the two time encodings (epoch milliseconds as N; ISO-8601 strings on the seed's tenant table).

use crate::error::corrupt;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use ghr_core::Timestamp;
use ghr_core::ports::StoreError;
use std::collections::HashMap;

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn bool(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

/// Epoch milliseconds, as N.
pub fn ts_ms(at: Timestamp) -> AttributeValue {
    n(at.timestamp_millis())
}

/// Epoch seconds, as N: the form DynamoDB's TTL reads.
pub fn epoch_seconds(at: Timestamp) -> AttributeValue {
    n(at.timestamp())
}

/// `2024-01-01T00:00:00.000Z`: the seed's `new Date().toISOString()`.
pub fn iso(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An ISO-8601 / RFC 3339 time as the seed writes it, or as an operator types it by hand
/// (`date -u +%Y-%m-%dT%H:%M:%SZ`, with or without fractions or an offset).
pub fn parse_iso(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.with_timezone(&Utc))
}

pub fn ms_to_ts(ms: i64) -> Option<Timestamp> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Typed reads of one item, each failure a `Corrupt` naming the operation and the attribute.
pub struct Reader<'a> {
    pub op: &'static str,
    pub item: &'a Item,
}

impl<'a> Reader<'a> {
    pub fn new(op: &'static str, item: &'a Item) -> Self {
        Self { op, item }
    }

    fn wrong(&self, name: &str, expected: &str) -> StoreError {
        corrupt(self.op, format!("attribute {name} is missing or not {expected}"))
    }

    pub fn opt_s(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value.as_str())),
            Some(_) => Err(self.wrong(name, "a string (S)")),
        }
    }

    pub fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name)?.ok_or_else(|| self.wrong(name, "a string (S)"))
    }

    fn opt_number<T: std::str::FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value.trim().parse().map(Some).map_err(|_| self.wrong(name, expected)),
            Some(_) => Err(self.wrong(name, expected)),
        }
    }

    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.opt_number(name, "a whole number >= 0 (N)")
    }

    pub fn u64(&self, name: &str) -> Result<u64, StoreError> {
        self.opt_u64(name)?.ok_or_else(|| self.wrong(name, "a whole number >= 0 (N)"))
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.opt_number(name, "a whole number (N)")
    }

    pub fn i64(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_i64(name)?.ok_or_else(|| self.wrong(name, "a whole number (N)"))
    }

    pub fn opt_u32(&self, name: &str) -> Result<Option<u32>, StoreError> {
        self.opt_number(name, "a whole number from 0 to 4294967295 (N)")
    }

    pub fn u32(&self, name: &str) -> Result<u32, StoreError> {
        self.opt_u32(name)?.ok_or_else(|| self.wrong(name, "a whole number from 0 to 4294967295 (N)"))
    }

    /// Epoch milliseconds (N).
    pub fn opt_ts_ms(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        match self.opt_i64(name)? {
            None => Ok(None),
            Some(ms) => ms_to_ts(ms).map(Some).ok_or_else(|| self.wrong(name, "epoch milliseconds (N)")),
        }
    }

    pub fn ts_ms(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.opt_ts_ms(name)?.ok_or_else(|| self.wrong(name, "epoch milliseconds (N)"))
    }

    /// An ISO-8601 string (S), as on the seed's tenant table.
    pub fn opt_iso(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        match self.opt_s(name)? {
            None => Ok(None),
            Some(text) => parse_iso(text).map(Some).ok_or_else(|| self.wrong(name, "an ISO-8601 time (S)")),
        }
    }

    pub fn iso(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.opt_iso(name)?.ok_or_else(|| self.wrong(name, "an ISO-8601 time (S)"))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(self.wrong(name, "a boolean (BOOL)")),
        }
    }

    pub fn opt_map(&self, name: &str) -> Result<Option<&'a HashMap<String, AttributeValue>>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::M(map)) => Ok(Some(map)),
            Some(_) => Err(self.wrong(name, "a map (M)")),
        }
    }

    pub fn opt_list(&self, name: &str) -> Result<Option<&'a [AttributeValue]>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::L(list)) => Ok(Some(list.as_slice())),
            Some(_) => Err(self.wrong(name, "a list (L)")),
        }
    }

    /// A list of strings (L of S, or a string set SS).
    pub fn strings(&self, name: &str) -> Result<Vec<String>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::Ss(set)) => Ok(set.clone()),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.clone()),
                    _ => Err(self.wrong(name, "a list of strings (L of S)")),
                })
                .collect(),
            Some(_) => Err(self.wrong(name, "a list of strings (L of S)")),
        }
    }
}

/// A list of strings as L of S (order kept; a string set would lose it).
pub fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips_the_seed_format_and_reads_hand_typed_times() {
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(iso(at), "2024-01-01T00:00:00.000Z");
        assert_eq!(parse_iso("2024-01-01T00:00:00.000Z"), Some(at));
        assert_eq!(parse_iso("2024-01-01T00:00:00Z"), Some(at));
        assert_eq!(parse_iso("2024-01-01T01:00:00+01:00"), Some(at));
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn reader_names_the_bad_attribute() {
        let item: Item = [("max_runners".to_owned(), s("five"))].into();
        let error = Reader::new("tenant_get", &item).u32("max_runners").unwrap_err().to_string();
        assert!(error.contains("tenant_get"), "{error}");
    }
}
