//! Item sizes and request units under DynamoDB's published rules, and the on-demand list prices.
//!
//! Sizes follow "DynamoDB item sizes and formats"
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
//! an item is the sum of its attribute names' UTF-8 lengths and its values' sizes, where
//! - a string is its UTF-8 bytes; a binary its raw bytes;
//! - a number is 1 byte per two significant digits (leading and trailing zeroes trimmed) plus 1 byte;
//! - a null or a Boolean is 1 byte;
//! - a list or a map is 3 bytes plus, per element, 1 byte and the element's size (a map element also its name);
//! - a set is the sum of its elements' sizes.
//!
//! Units follow the on-demand pricing page (<https://aws.amazon.com/dynamodb/pricing/on-demand/>): a write request
//! unit writes up to 1 KB (transactional writes take two); a read request unit reads up to 4 KB strongly
//! consistent, two such reads eventually consistent, half a transactional read. Reads are kept here in **half
//! units** so that eventually consistent reads stay whole numbers.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Bytes one write request unit covers.
pub const WRITE_UNIT_BYTES: u64 = 1024;
/// Bytes one read request unit covers (strongly consistent).
pub const READ_UNIT_BYTES: u64 = 4096;
/// Overhead of a list or a map, whatever it holds.
const COLLECTION_OVERHEAD: u64 = 3;
/// Overhead of each element of a list or a map.
const ELEMENT_OVERHEAD: u64 = 1;
/// Size of a null or a Boolean value.
const SCALAR_FLAG_SIZE: u64 = 1;

/// On-demand list prices in us-east-1, USD, after the price cut of 1 November 2024 (on-demand throughput halved):
/// $0.625 per million write request units, $0.125 per million read request units, and $0.25 per GB-month of
/// Standard table storage (the first 25 GB of storage are in the free tier).
pub mod price {
    pub const USD_PER_MILLION_WRU: f64 = 0.625;
    pub const USD_PER_MILLION_RRU: f64 = 0.125;
    pub const USD_PER_GB_MONTH: f64 = 0.25;
}

/// How a read is served, which sets its price per 4 KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Half a read unit per 4 KB: GetItem/Query/Scan without `ConsistentRead`, and every index read.
    Eventual,
    /// One read unit per 4 KB.
    Strong,
    /// Two read units per 4 KB (TransactGetItems).
    Transactional,
}

/// The size of one attribute value (without its name).
pub fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(text) => text.len() as u64,
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => SCALAR_FLAG_SIZE,
        AttributeValue::Ss(texts) => texts.iter().map(|t| t.len() as u64).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(values) => {
            COLLECTION_OVERHEAD + values.iter().map(|v| ELEMENT_OVERHEAD + value_size(v)).sum::<u64>()
        }
        AttributeValue::M(entries) => {
            COLLECTION_OVERHEAD
                + entries.iter().map(|(k, v)| ELEMENT_OVERHEAD + k.len() as u64 + value_size(v)).sum::<u64>()
        }
        // A type newer than this SDK: count its debug form, the best stand-in for bytes on the wire.
        _ => format!("{value:?}").len() as u64,
    }
}

/// The size of a number: 1 byte per two significant digits, plus 1 (the sign and exponent are not counted).
pub fn number_size(number: &str) -> u64 {
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1) as u64;
    significant.div_ceil(2) + 1
}

/// The size of an item: its attribute names and values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter().map(|(name, value)| name.len() as u64 + value_size(value)).sum()
}

/// Write request units for writing (or deleting) an item of `bytes`: one per KB started, at least one.
pub fn write_units(bytes: u64) -> u64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1)
}

/// Read units, in halves, for reading `bytes` in one request: one unit per 4 KB started (at least one), halved
/// for eventually consistent reads and doubled for transactional ones.
pub fn read_half_units(bytes: u64, consistency: Consistency) -> u64 {
    let strong = bytes.div_ceil(READ_UNIT_BYTES).max(1);
    match consistency {
        Consistency::Eventual => strong,
        Consistency::Strong => strong * 2,
        Consistency::Transactional => strong * 4,
    }
}

/// The on-demand cost in USD of `read_half_units` and `write_units`.
pub fn usd(read_half_units: f64, write_units: f64) -> f64 {
    read_half_units / 2.0 * price::USD_PER_MILLION_RRU / 1e6 + write_units * price::USD_PER_MILLION_WRU / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    #[test]
    fn numbers_count_significant_digit_pairs_plus_one() {
        let table = [
            ("0", 2),
            ("7", 2),
            ("12", 2),
            ("123", 3),
            ("100000", 2),
            ("-42", 2),
            ("0.0012", 2),
            ("3.14159", 4),
            ("1767225600000", 5),
            ("1767225600123", 8),
            ("1.5E10", 2),
        ];
        for (number, size) in table {
            assert_eq!(number_size(number), size, "size of {number}");
        }
    }

    #[test]
    fn values_follow_the_published_rules() {
        let table: Vec<(AttributeValue, u64)> = vec![
            (s(""), 0),
            (s("active"), 6),
            (s("héllo"), 6),
            (AttributeValue::B(Blob::new(vec![0u8; 10])), 10),
            (AttributeValue::Bool(true), 1),
            (AttributeValue::Null(true), 1),
            (AttributeValue::L(vec![]), 3),
            (AttributeValue::L(vec![s("ab"), n("5")]), 3 + (1 + 2) + (1 + 2)),
            (AttributeValue::M(HashMap::new()), 3),
            (AttributeValue::M(HashMap::from([("at".to_owned(), n("12"))])), 3 + 1 + 2 + 2),
            (AttributeValue::Ss(vec!["a".into(), "bcd".into()]), 4),
            (AttributeValue::Ns(vec!["1".into(), "123".into()]), 2 + 3),
        ];
        for (value, size) in table {
            assert_eq!(value_size(&value), size, "size of {value:?}");
        }
    }

    #[test]
    fn an_item_is_its_names_and_values() {
        let item = HashMap::from([
            ("installation_id".to_owned(), n("12345")),
            ("status".to_owned(), s("active")),
            ("max_runners".to_owned(), n("10")),
        ]);
        assert_eq!(item_size(&item), (15 + 4) + (6 + 6) + (11 + 2));
    }

    #[test]
    fn units_round_up_per_kilobyte_and_per_four_kilobytes() {
        let writes = [(0, 1), (1, 1), (1024, 1), (1025, 2), (3000, 3)];
        for (bytes, units) in writes {
            assert_eq!(write_units(bytes), units, "write units of {bytes} bytes");
        }
        let reads = [
            (0, Consistency::Strong, 2),
            (100, Consistency::Eventual, 1),
            (4096, Consistency::Strong, 2),
            (4097, Consistency::Strong, 4),
            (8192, Consistency::Eventual, 2),
            (8192, Consistency::Transactional, 8),
        ];
        for (bytes, consistency, halves) in reads {
            assert_eq!(read_half_units(bytes, consistency), halves, "{consistency:?} read of {bytes} bytes");
        }
    }

    #[test]
    fn a_million_of_each_unit_costs_the_list_price() {
        let cost = usd(2e6, 1e6);
        assert!((cost - (price::USD_PER_MILLION_RRU + price::USD_PER_MILLION_WRU)).abs() < 1e-12, "{cost}");
    }
}
