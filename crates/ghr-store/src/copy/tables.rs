//! What `ghr store copy` moves: the tables that hold records, each with its typed columns in the order both
//! backends declare them, and the SQL that pages through and inserts them (placeholders per backend).
//!
//! Not copied: the count tables (`job_status_counts`, `tenant_status_counts`: rebuilt on the target, and
//! checked against a recount), `leases` (they name processes of
//! the old deployment; replicas take fresh ones), `store_health` (a per-store probe counter) and the
//! PostgreSQL-only `reserve_lock` row.

/// How a column is stored: a 64-bit integer (ids, counts, millisecond timestamps) or text (names, enums,
/// JSON). Every column may be NULL as far as the copy is concerned: it moves what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Text,
}

/// One value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

#[derive(Debug)]
pub(super) struct Column {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
}

const fn int(name: &'static str) -> Column {
    Column { name, kind: Kind::Int }
}

const fn text(name: &'static str) -> Column {
    Column { name, kind: Kind::Text }
}

/// A copied table: its unique key (rows are read in key order, a page at a time) and its columns.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) name: &'static str,
    /// The primary key: the first column.
    pub(super) key: &'static str,
    pub(super) columns: &'static [Column],
}

/// In dependency order: runners refer to tenants.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        key: "installation_id",
        columns: &[
            int("installation_id"),
            text("org_name"),
            text("org_name_lower"),
            text("org_type"),
            text("status"),
            text("tier"),
            int("max_runners"),
            int("github_account_id"),
            text("sender_login"),
            int("sender_id"),
            int("created_at"),
            int("updated_at"),
        ],
    },
    Table {
        name: "webhook_deliveries",
        key: "delivery_id",
        columns: &[text("delivery_id"), text("event"), text("action"), int("installation_id"), int("received_at")],
    },
    Table {
        name: "jobs",
        key: "job_id",
        columns: &[
            int("job_id"),
            int("installation_id"),
            text("repository"),
            text("labels"),
            text("tier"),
            text("status"),
            text("conclusion"),
            text("runner_name"),
            text("wait_reason"),
            int("received_at"),
            int("queued_at"),
            int("started_at"),
            int("completed_at"),
            int("updated_at"),
        ],
    },
    Table {
        name: "job_events",
        key: "id",
        columns: &[int("id"), int("job_id"), int("at"), text("kind"), text("detail")],
    },
    Table {
        name: "runners",
        key: "seq",
        columns: &[
            int("seq"),
            text("name"),
            int("installation_id"),
            text("tier"),
            text("tenant_tier"),
            text("scope_repo"),
            text("state"),
            text("instance_id"),
            int("github_runner_id"),
            int("intended_job"),
            int("job_id"),
            int("created_at"),
            int("launched_at"),
            int("registered_at"),
            int("job_started_at"),
            int("finished_at"),
            int("terminated_at"),
            text("last_error"),
            int("updated_at"),
        ],
    },
    Table { name: "checkpoints", key: "name", columns: &[text("name"), text("value"), int("updated_at")] },
    // Warm-pool machines are running instances: the target store must know them (and their bound runners).
    Table {
        name: "pool_machines",
        key: "id",
        columns: &[
            text("id"),
            text("tier"),
            text("state"),
            text("instance_id"),
            text("secret_hash"),
            text("runner_name"),
            int("created_at"),
            int("ready_at"),
            int("bound_at"),
            int("delivered_at"),
            int("retired_at"),
            text("retire_reason"),
        ],
    },
];

/// Serial columns whose sequence must continue past the copied rows, so new runners and timeline entries
/// never reuse a copied number (a runner's name derives from its `seq`). SQLite's AUTOINCREMENT keeps its
/// counter (`sqlite_sequence`) at the largest id inserted by itself; PostgreSQL's sequences must be set.
pub(super) const SERIALS: &[(&str, &str)] = &[("runners", "seq"), ("job_events", "id")];

/// Count tables kept by triggers, each with the table and column it counts.
pub(super) const STATUS_COUNTS: &[(&str, &str)] = &[("job_status_counts", "jobs"), ("tenant_status_counts", "tenants")];

/// Placeholder style of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    /// `?` (SQLite).
    Question,
    /// `$1`, `$2`, ... (PostgreSQL).
    Numbered,
}

impl Placeholders {
    fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Question => "?".to_owned(),
            Placeholders::Numbered => format!("${n}"),
        }
    }
}

impl Table {
    fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }

    /// One page in key order, after the key bound to the first placeholder when `after` is set.
    pub(super) fn select_page(&self, style: Placeholders, after: bool, limit: usize) -> String {
        let filter = if after { format!(" WHERE {} > {}", self.key, style.nth(1)) } else { String::new() };
        format!("SELECT {} FROM {}{filter} ORDER BY {} LIMIT {limit}", self.column_list(), self.name, self.key)
    }

    /// A multi-row insert of `rows` rows.
    pub(super) fn insert(&self, style: Placeholders, rows: usize) -> String {
        let width = self.columns.len();
        let tuples = (0..rows)
            .map(|row| {
                let values = (1..=width).map(|i| style.nth(row * width + i)).collect::<Vec<_>>().join(", ");
                format!("({values})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("INSERT INTO {} ({}) VALUES {tuples}", self.name, self.column_list())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_every_column_in_order() {
        let checkpoints = TABLES.iter().find(|t| t.name == "checkpoints").unwrap();
        assert_eq!(
            checkpoints.select_page(Placeholders::Numbered, true, 10),
            "SELECT name, value, updated_at FROM checkpoints WHERE name > $1 ORDER BY name LIMIT 10"
        );
        assert_eq!(
            checkpoints.insert(Placeholders::Numbered, 2),
            "INSERT INTO checkpoints (name, value, updated_at) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(
            checkpoints.insert(Placeholders::Question, 1),
            "INSERT INTO checkpoints (name, value, updated_at) VALUES (?, ?, ?)"
        );
    }

    #[test]
    fn every_table_is_keyed_by_its_first_column() {
        for table in TABLES {
            assert_eq!(table.columns[0].name, table.key, "{}", table.name);
        }
        for (table, column) in SERIALS {
            let spec = TABLES.iter().find(|t| t.name == *table).unwrap();
            assert_eq!(spec.key, *column, "a serial column is its table's key");
        }
    }
}
