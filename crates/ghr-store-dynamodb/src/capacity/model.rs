//! The cost of one request: the meter's copy of the tables (the shadow) gives each item's size before a write
//! and the keys it has in each index; the request and its answer give the rest.
//!
//! Rules (DynamoDB developer guide, "Read/write capacity mode" and "Global secondary indexes: write activity"
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes>):
//! - PutItem, UpdateItem and DeleteItem cost the larger of the item's sizes before and after, per KB; a write
//!   whose condition fails still costs the existing item's size (at least one unit);
//! - TransactWriteItems costs twice that per item (prepare and commit). A cancelled transaction is charged as
//!   its items' failed conditional writes, twice: an upper bound, the guide does not give the split;
//! - each global secondary index costs one write when the item enters it, one when it leaves it, two when its
//!   index key changes (delete and put) and one when a projected attribute changes (any attribute under an ALL
//!   projection; only the listed ones under INCLUDE), each sized as the index's item (keys plus what it
//!   projects); index writes are standard writes, also inside transactions;
//! - a read costs the sizes it reads (every item a Query or Scan examines, before its filter; a projection
//!   does not make it cheaper) per 4 KB per request, at least one unit; index reads are eventually consistent.

use super::size::{Consistency, item_size, read_half_units, write_units};
use super::update;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// Key and index key attributes of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    pub table: String,
    pub key: Vec<String>,
    /// Index name, its key attributes (hash, then range if any), and what else it projects (`None`: all).
    pub indexes: Vec<(String, Vec<String>, Option<Vec<String>>)>,
}

/// What one request cost, in the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub read_half_units: u64,
    /// Writes to the tables themselves.
    pub write_units: u64,
    /// Writes to global secondary indexes.
    pub index_write_units: u64,
    /// Update expressions the model could not apply (their write is charged on the item's known size).
    pub unmodelled: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Self) {
        self.read_half_units += other.read_half_units;
        self.write_units += other.write_units;
        self.index_write_units += other.index_write_units;
        self.unmodelled += other.unmodelled;
    }
}

/// One write of a request, before its answer is known.
#[derive(Debug, Clone)]
pub enum Write {
    Put { table: String, item: Item },
    Update { table: String, key: Item, expression: String, names: HashMap<String, String>, values: Item },
    Delete { table: String, key: Item },
    Check { table: String, key: Item },
}

impl Write {
    pub fn of_transact(item: &TransactWriteItem) -> Option<Self> {
        let values = |v: Option<&Item>| v.cloned().unwrap_or_default();
        let names = |n: Option<&HashMap<String, String>>| n.cloned().unwrap_or_default();
        if let Some(put) = item.put() {
            Some(Write::Put { table: put.table_name().to_owned(), item: put.item().clone() })
        } else if let Some(u) = item.update() {
            Some(Write::Update {
                table: u.table_name().to_owned(),
                key: u.key().clone(),
                expression: u.update_expression().to_owned(),
                names: names(u.expression_attribute_names()),
                values: values(u.expression_attribute_values()),
            })
        } else if let Some(d) = item.delete() {
            Some(Write::Delete { table: d.table_name().to_owned(), key: d.key().clone() })
        } else {
            item.condition_check().map(|c| Write::Check { table: c.table_name().to_owned(), key: c.key().clone() })
        }
    }
}

/// The meter's copy of every item it saw written or read in full.
#[derive(Debug, Default)]
pub struct Shadow {
    layouts: HashMap<String, TableLayout>,
    items: HashMap<(String, String), Item>,
}

/// A canonical text of an item's key attributes.
fn key_text(layout: Option<&TableLayout>, item: &Item) -> String {
    let mut names: Vec<&String> = match layout {
        Some(layout) => layout.key.iter().collect(),
        None => item.keys().collect(),
    };
    names.sort();
    names.iter().map(|n| format!("{n}={:?};", item.get(*n))).collect()
}

impl Shadow {
    pub fn new(layouts: Vec<TableLayout>) -> Self {
        Self { layouts: layouts.into_iter().map(|l| (l.table.clone(), l)).collect(), items: HashMap::new() }
    }

    fn id(&self, table: &str, item: &Item) -> (String, String) {
        (table.to_owned(), key_text(self.layouts.get(table), item))
    }

    pub fn get(&self, table: &str, key: &Item) -> Option<&Item> {
        self.items.get(&self.id(table, key))
    }

    /// Remember an item read in full (no projection).
    pub fn learn(&mut self, table: &str, item: &Item) {
        let id = self.id(table, item);
        self.items.insert(id, item.clone());
    }

    fn size_of(&self, table: &str, key: &Item) -> u64 {
        self.get(table, key).map_or(0, item_size)
    }

    /// The size a read of `item` (as answered, perhaps projected) is charged on: the full item when known.
    pub fn read_size(&self, table: &str, answered: &Item) -> u64 {
        self.get(table, answered).map_or_else(|| item_size(answered), item_size).max(item_size(answered))
    }

    /// The item after `write`, or `None` when it is deleted (or the model cannot tell).
    fn after(&self, write: &Write) -> Result<Option<Item>, update::ExpressionError> {
        match write {
            Write::Put { item, .. } => Ok(Some(item.clone())),
            Write::Update { table, key, expression, names, values } => {
                let before = self.get(table, key).cloned().unwrap_or_else(|| key.clone());
                update::apply(&before, expression, names, values).map(Some)
            }
            Write::Delete { .. } => Ok(None),
            Write::Check { table, key } => Ok(self.get(table, key).cloned()),
        }
    }

    fn target(write: &Write) -> (&str, Item) {
        match write {
            Write::Put { table, item } => (table, item.clone()),
            Write::Update { table, key, .. } | Write::Delete { table, key } | Write::Check { table, key } => {
                (table, key.clone())
            }
        }
    }

    /// Index writes caused by an item changing from `before` to `after`, each sized as the index's own item (the
    /// keys and what the index projects).
    fn index_units(&self, table: &str, before: Option<&Item>, after: Option<&Item>) -> u64 {
        let Some(layout) = self.layouts.get(table) else { return 0 };
        let keys = |item: Option<&Item>, attrs: &[String]| -> Option<Vec<AttributeValue>> {
            let item = item?;
            attrs.iter().map(|a| item.get(a).cloned()).collect()
        };
        layout
            .indexes
            .iter()
            .map(|(_, attrs, include)| {
                let projected = |item: Option<&Item>| -> Option<Item> {
                    let item = item?;
                    Some(match include {
                        None => item.clone(),
                        Some(include) => item
                            .iter()
                            .filter(|(name, _)| {
                                layout.key.contains(name) || attrs.contains(name) || include.contains(name)
                            })
                            .map(|(name, value)| (name.clone(), value.clone()))
                            .collect(),
                    })
                };
                let (old_image, new_image) = (projected(before), projected(after));
                let size = |image: &Option<Item>| image.as_ref().map_or(0, item_size);
                match (keys(before, attrs), keys(after, attrs)) {
                    (None, None) => 0,
                    (None, Some(_)) => write_units(size(&new_image)),
                    (Some(_), None) => write_units(size(&old_image)),
                    (Some(old), Some(new)) if old != new => {
                        write_units(size(&old_image)) + write_units(size(&new_image))
                    }
                    (Some(_), Some(_)) if old_image == new_image => 0,
                    (Some(_), Some(_)) => write_units(size(&old_image).max(size(&new_image))),
                }
            })
            .sum()
    }

    /// Cost `writes` (one request; `factor` 2 inside a transaction) and, when `applied`, take them into the copy.
    pub fn write(&mut self, writes: &[Write], factor: u64, applied: bool) -> Cost {
        let mut cost = Cost::default();
        let mut changes = Vec::new();
        for write in writes {
            let (table, key) = Self::target(write);
            let before_size = self.size_of(table, &key);
            if !applied || matches!(write, Write::Check { .. }) {
                cost.write_units += factor * write_units(before_size);
                continue;
            }
            match self.after(write) {
                Ok(after) => {
                    let after_size = after.as_ref().map_or(0, item_size);
                    cost.write_units += factor * write_units(before_size.max(after_size));
                    cost.index_write_units += self.index_units(table, self.get(table, &key), after.as_ref());
                    changes.push((self.id(table, &key), after));
                }
                Err(_) => {
                    cost.unmodelled += 1;
                    cost.write_units += factor * write_units(before_size);
                }
            }
        }
        for (id, after) in changes {
            match after {
                Some(item) => self.items.insert(id, item),
                None => self.items.remove(&id),
            };
        }
        cost
    }

    /// Cost one read request that examined `examined` items (answered ones, plus `filtered` that a filter
    /// dropped, sized as the answered ones' mean), and learn the answered ones when they are whole.
    pub fn read(&mut self, table: &str, answered: &[Item], filtered: u64, whole: bool, how: Consistency) -> Cost {
        let sizes: Vec<u64> = answered.iter().map(|item| self.read_size(table, item)).collect();
        let total: u64 = sizes.iter().sum();
        let mean = if sizes.is_empty() { 0 } else { total / sizes.len() as u64 };
        if whole {
            for item in answered {
                self.learn(table, item);
            }
        }
        Cost { read_half_units: read_half_units(total + filtered * mean, how), ..Cost::default() }
    }

    /// Cost the per-item reads of a batch or transactional get (each item rounded on its own).
    pub fn read_each(&mut self, table: &str, answered: &[Item], how: Consistency) -> Cost {
        let half_units = answered.iter().map(|item| read_half_units(self.read_size(table, item), how)).sum();
        Cost { read_half_units: half_units, ..Cost::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }
    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn shadow() -> Shadow {
        Shadow::new(vec![TableLayout {
            table: "runners".into(),
            key: vec!["name".into()],
            indexes: vec![("live-index".into(), vec!["live_tenant".into(), "live_order".into()], None)],
        }])
    }

    fn runner(name: &str, live: Option<(u64, &str)>, pad: usize) -> Item {
        let mut item = HashMap::from([("name".to_owned(), s(name)), ("pad".to_owned(), s(&"x".repeat(pad)))]);
        if let Some((tenant, order)) = live {
            item.insert("live_tenant".into(), n(tenant));
            item.insert("live_order".into(), s(order));
        }
        item
    }

    fn put(item: Item) -> Write {
        Write::Put { table: "runners".into(), item }
    }

    #[test]
    fn writes_cost_the_larger_image_and_each_index_change() {
        // (before, write, factor, table units, index units)
        type Case = (Option<Item>, Write, u64, u64, u64);
        let table: Vec<Case> = vec![
            (None, put(runner("a", None, 10)), 1, 1, 0),
            (None, put(runner("a", Some((1, "o")), 10)), 1, 1, 1),
            (None, put(runner("a", Some((1, "o")), 2000)), 2, 4, 2),
            (Some(runner("a", Some((1, "o")), 10)), put(runner("a", Some((1, "o")), 20)), 1, 1, 1),
            (Some(runner("a", Some((1, "o")), 10)), put(runner("a", Some((1, "o")), 10)), 1, 1, 0),
            (Some(runner("a", Some((1, "o")), 10)), put(runner("a", Some((1, "p")), 10)), 1, 1, 2),
            (Some(runner("a", Some((1, "o")), 1500)), put(runner("a", None, 10)), 1, 2, 2),
            (
                Some(runner("a", Some((1, "o")), 10)),
                Write::Delete { table: "runners".into(), key: runner("a", None, 0) },
                1,
                1,
                1,
            ),
        ];
        for (i, (before, write, factor, units, index_units)) in table.into_iter().enumerate() {
            let mut shadow = shadow();
            if let Some(before) = &before {
                shadow.learn("runners", before);
            }
            let cost = shadow.write(std::slice::from_ref(&write), factor, true);
            assert_eq!((cost.write_units, cost.index_write_units), (units, index_units), "case {i}: {write:?}");
        }
    }

    #[test]
    fn updates_are_sized_through_their_expression_and_failed_writes_on_the_old_item() {
        let mut shadow = shadow();
        shadow.learn("runners", &runner("a", Some((1, "o")), 900));
        let release = Write::Update {
            table: "runners".into(),
            key: HashMap::from([("name".to_owned(), s("a"))]),
            expression: "SET pad = :p REMOVE live_tenant, live_order".into(),
            names: HashMap::new(),
            values: HashMap::from([(":p".to_owned(), s("short"))]),
        };
        let refused = shadow.write(std::slice::from_ref(&release), 2, false);
        assert_eq!((refused.write_units, refused.index_write_units), (2, 0));
        let cost = shadow.write(std::slice::from_ref(&release), 1, true);
        assert_eq!((cost.write_units, cost.index_write_units, cost.unmodelled), (1, 1, 0));
        let after = shadow.get("runners", &HashMap::from([("name".to_owned(), s("a"))])).expect("kept");
        assert!(!after.contains_key("live_tenant"));
        let Write::Update { table, key, names, values, .. } = release else { unreachable!("built as an update") };
        let broken = Write::Update { table, key, expression: "SET pad = :missing".into(), names, values };
        assert_eq!(shadow.write(&[broken], 1, true).unmodelled, 1);
    }

    #[test]
    fn reads_sum_what_they_examine() {
        let mut shadow = shadow();
        let items: Vec<Item> = (0..3).map(|i| runner(&format!("r{i}"), None, 1500)).collect();
        let strong = shadow.read("runners", &items, 0, true, Consistency::Strong);
        assert_eq!(strong.read_half_units, 4, "3 × ~1.5 KB = 2 units");
        let filtered = shadow.read("runners", &items, 3, true, Consistency::Eventual);
        assert_eq!(filtered.read_half_units, 3, "6 × ~1.5 KB = 3 units, halved");
        let empty = shadow.read("runners", &[], 0, true, Consistency::Eventual);
        assert_eq!(empty.read_half_units, 1, "an empty answer still costs half a unit");
        let each = shadow.read_each("runners", &items, Consistency::Transactional);
        assert_eq!(each.read_half_units, 12);
    }
}
