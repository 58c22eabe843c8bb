//! Capacity accounting: what each request to DynamoDB costs in read and write request units, under DynamoDB's
//! published on-demand rules, measured by an SDK interceptor so that benchmarks can price the tables per job.
//!
//! [`CapacityMeter`] is attached to a client ([`CapacityMeter::client`], or [`CapacityMeter::interceptor`] with
//! `aws_sdk_dynamodb::config::Builder::interceptor`). For every request it records, per operation, the model's
//! read units (in halves: eventually consistent reads cost half a unit per 4 KB) and write units, table and
//! index writes apart. Sizes follow [`size`]; the rules per request are in [`model`]. The meter keeps a copy of
//! every item it sees written or read whole (the shadow), which gives an item's size before a write and its
//! index keys; it must therefore see the tables from their creation (a fresh prefix) to be exact. Writes by
//! other clients are invisible to it, and an update on an item it never saw is sized from the key and the update
//! alone.
//!
//! [`CapacityMeter::asking_reported_capacity`] also sets `ReturnConsumedCapacity = TOTAL` on every request and
//! sums what the service answers, to compare with the model. (The emulator, moto, answers constants: 1 unit for
//! PutItem, DeleteItem, Query, Scan and BatchGetItem, 0.5 for GetItem and UpdateItem, 2 per item for
//! TransactGetItems, nothing for TransactWriteItems; only real DynamoDB's figures are worth comparing.)

mod model;
pub mod size;
mod update;

pub use model::{Cost, TableLayout};
pub use size::{Consistency, item_size, price, read_half_units, value_size, write_units};
pub use update::ExpressionError;

use crate::tables::Tables;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemError, DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemError, PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsError, TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemError, UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity, WriteRequest};
use aws_smithy_runtime_api::client::interceptors::context::Output;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use model::{Item, Shadow, Write};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the requests of one operation cost, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpTotals {
    pub calls: u64,
    /// Requests the service refused on a condition (a failed conditional write, a cancelled transaction):
    /// charged all the same.
    pub refused: u64,
    pub cost: Cost,
    /// Requests for which the service reported a consumed capacity, and the sum of what it reported.
    pub reported_calls: u64,
    pub reported_units: f64,
}

impl OpTotals {
    /// Read request units (eventually consistent reads count half).
    pub fn rru(&self) -> f64 {
        self.cost.read_half_units as f64 / 2.0
    }

    /// Write request units, tables and indexes.
    pub fn wru(&self) -> u64 {
        self.cost.write_units + self.cost.index_write_units
    }

    /// The on-demand price of these units at the list prices of [`price`].
    pub fn usd(&self) -> f64 {
        size::usd(self.cost.read_half_units as f64, self.wru() as f64)
    }

    fn add(&mut self, other: &OpTotals) {
        self.calls += other.calls;
        self.refused += other.refused;
        self.cost += other.cost;
        self.reported_calls += other.reported_calls;
        self.reported_units += other.reported_units;
    }
}

#[derive(Debug)]
struct State {
    shadow: Shadow,
    totals: BTreeMap<&'static str, OpTotals>,
}

/// Records what every request of the clients it is attached to costs. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct CapacityMeter {
    state: Arc<Mutex<State>>,
    ask_reported: bool,
}

impl CapacityMeter {
    /// A meter for the tables of `tables` (their keys and indexes), with nothing recorded.
    pub fn new(tables: &Tables) -> Self {
        Self::with_layouts(tables.layouts())
    }

    pub fn with_layouts(layouts: Vec<TableLayout>) -> Self {
        let state = State { shadow: Shadow::new(layouts), totals: BTreeMap::new() };
        Self { state: Arc::new(Mutex::new(state)), ask_reported: false }
    }

    /// Also ask the service for `ConsumedCapacity` (TOTAL) on every request and record what it answers.
    pub fn asking_reported_capacity(mut self) -> Self {
        self.ask_reported = true;
        self
    }

    /// The interceptor to attach to a client's configuration.
    pub fn interceptor(&self) -> CapacityInterceptor {
        CapacityInterceptor { meter: self.clone() }
    }

    /// A client of `config` with this meter attached.
    pub fn client(&self, config: &aws_config::SdkConfig) -> Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(config).interceptor(self.interceptor()).build();
        Client::from_conf(conf)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while recording leaves sums that are at worst one request short: keep using them.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Totals per operation (`GetItem`, `TransactWriteItems`, ...) since creation or the last [`reset`](Self::reset).
    pub fn by_operation(&self) -> BTreeMap<&'static str, OpTotals> {
        self.state().totals.clone()
    }

    /// Totals over every operation.
    pub fn total(&self) -> OpTotals {
        let mut sum = OpTotals::default();
        for totals in self.state().totals.values() {
            sum.add(totals);
        }
        sum
    }

    /// Forget the totals (the copy of the tables is kept: it is what later writes are sized against).
    pub fn reset(&self) {
        self.state().totals.clear();
    }

    fn record(&self, op: &'static str, cost: Cost, refused: bool, reported: Option<f64>) {
        let mut state = self.state();
        let totals = state.totals.entry(op).or_default();
        totals.calls += 1;
        totals.refused += u64::from(refused);
        totals.cost += cost;
        if let Some(units) = reported {
            totals.reported_calls += 1;
            totals.reported_units += units;
        }
    }
}

/// What a request is, kept from before it is sent until its answer.
#[derive(Debug, Clone)]
enum Pending {
    Get(GetItemInput),
    Put(PutItemInput),
    Update(UpdateItemInput),
    Delete(DeleteItemInput),
    Query(QueryInput),
    Scan(ScanInput),
    TransactWrite(TransactWriteItemsInput),
    TransactGet(TransactGetItemsInput),
    BatchGet(BatchGetItemInput),
    BatchWrite(BatchWriteItemInput),
    /// Control-plane calls (CreateTable, DescribeTable, ...): not billed per request.
    Free,
}

#[derive(Debug, Clone)]
struct PendingRequest(Pending);

impl Storable for PendingRequest {
    type Storer = StoreReplace<Self>;
}

/// The interceptor of a [`CapacityMeter`].
#[derive(Debug, Clone)]
pub struct CapacityInterceptor {
    meter: CapacityMeter,
}

macro_rules! capture {
    ($input:expr, $ask:expr, $($variant:ident($ty:ty)),+ $(,)?) => {{
        $(
            if let Some(input) = $input.downcast_mut::<$ty>() {
                if $ask {
                    input.return_consumed_capacity.get_or_insert(ReturnConsumedCapacity::Total);
                }
                Pending::$variant(input.clone())
            } else
        )+
        { Pending::Free }
    }};
}

impl Intercept for CapacityInterceptor {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let pending = capture!(
            input,
            self.meter.ask_reported,
            Get(GetItemInput),
            Put(PutItemInput),
            Update(UpdateItemInput),
            Delete(DeleteItemInput),
            Query(QueryInput),
            Scan(ScanInput),
            TransactWrite(TransactWriteItemsInput),
            TransactGet(TransactGetItemsInput),
            BatchGet(BatchGetItemInput),
            BatchWrite(BatchWriteItemInput),
        );
        cfg.interceptor_state().store_put(PendingRequest(pending));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(PendingRequest(pending)) = cfg.load::<PendingRequest>().cloned() else { return Ok(()) };
        let answer = match context.output_or_error() {
            Some(Ok(output)) => Answer::Done(output),
            Some(Err(error)) => {
                let op = error.as_operation_error();
                let refused = op.is_some_and(|e| {
                    e.downcast_ref::<PutItemError>().is_some_and(PutItemError::is_conditional_check_failed_exception)
                        || e.downcast_ref::<UpdateItemError>()
                            .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
                        || e.downcast_ref::<DeleteItemError>()
                            .is_some_and(DeleteItemError::is_conditional_check_failed_exception)
                        || e.downcast_ref::<TransactWriteItemsError>()
                            .is_some_and(TransactWriteItemsError::is_transaction_canceled_exception)
                });
                if refused { Answer::Refused } else { Answer::Failed }
            }
            None => Answer::Failed,
        };
        let (op, cost, reported) = cost_of(&mut self.meter.state().shadow, &pending, &answer);
        if let Some(op) = op {
            self.meter.record(op, cost, matches!(answer, Answer::Refused), reported);
        }
        Ok(())
    }
}

/// How a request ended.
enum Answer<'a> {
    Done(&'a Output),
    /// Refused on a condition: charged, not applied.
    Refused,
    /// Any other error (throttled, invalid, unreachable): not charged.
    Failed,
}

fn reported_sum<'c>(capacities: impl IntoIterator<Item = &'c ConsumedCapacity>) -> Option<f64> {
    let units: Vec<f64> = capacities.into_iter().filter_map(ConsumedCapacity::capacity_units).collect();
    (!units.is_empty()).then(|| units.iter().sum())
}

fn consistency(consistent: Option<bool>, index: Option<&str>) -> Consistency {
    if consistent == Some(true) && index.is_none() { Consistency::Strong } else { Consistency::Eventual }
}

fn names(names: Option<&std::collections::HashMap<String, String>>) -> std::collections::HashMap<String, String> {
    names.cloned().unwrap_or_default()
}

fn batch_writes(
    requests: &std::collections::HashMap<String, Vec<WriteRequest>>,
    skip: Option<&std::collections::HashMap<String, Vec<WriteRequest>>>,
) -> Vec<Write> {
    let mut writes = Vec::new();
    for (table, list) in requests {
        let unprocessed = skip.and_then(|s| s.get(table));
        for request in list.iter().filter(|r| !unprocessed.is_some_and(|u| u.contains(r))) {
            if let Some(put) = &request.put_request {
                writes.push(Write::Put { table: table.clone(), item: put.item.clone() });
            } else if let Some(delete) = &request.delete_request {
                writes.push(Write::Delete { table: table.clone(), key: delete.key.clone() });
            }
        }
    }
    writes
}

/// The operation's name, the model's cost and the reported units of one finished request.
fn cost_of(shadow: &mut Shadow, pending: &Pending, answer: &Answer<'_>) -> (Option<&'static str>, Cost, Option<f64>) {
    let output = match answer {
        Answer::Done(output) => Some(*output),
        Answer::Refused => None,
        Answer::Failed => return (pending_name(pending), Cost::default(), None),
    };
    let applied = output.is_some();
    let out = |_: ()| output;
    match pending {
        Pending::Free => (None, Cost::default(), None),
        Pending::Get(input) => {
            let answer = out(()).and_then(|o| o.downcast_ref::<GetItemOutput>());
            let table = input.table_name.as_deref().unwrap_or_default();
            let answered: Vec<Item> = answer.and_then(|a| a.item.clone()).into_iter().collect();
            let how = consistency(input.consistent_read, None);
            let cost = shadow.read(table, &answered, 0, input.projection_expression.is_none(), how);
            (Some("GetItem"), cost, answer.and_then(|a| reported_sum(a.consumed_capacity.as_ref())))
        }
        Pending::Query(input) => {
            let answer = out(()).and_then(|o| o.downcast_ref::<QueryOutput>());
            let table = input.table_name.as_deref().unwrap_or_default();
            let items = answer.map(|a| a.items().to_vec()).unwrap_or_default();
            let filtered = answer.map_or(0, |a| (a.scanned_count - a.count).max(0) as u64);
            let how = consistency(input.consistent_read, input.index_name.as_deref());
            let cost = shadow.read(table, &items, filtered, input.projection_expression.is_none(), how);
            (Some("Query"), cost, answer.and_then(|a| reported_sum(a.consumed_capacity.as_ref())))
        }
        Pending::Scan(input) => {
            let answer = out(()).and_then(|o| o.downcast_ref::<ScanOutput>());
            let table = input.table_name.as_deref().unwrap_or_default();
            let items = answer.map(|a| a.items().to_vec()).unwrap_or_default();
            let filtered = answer.map_or(0, |a| (a.scanned_count - a.count).max(0) as u64);
            let how = consistency(input.consistent_read, input.index_name.as_deref());
            let cost = shadow.read(table, &items, filtered, input.projection_expression.is_none(), how);
            (Some("Scan"), cost, answer.and_then(|a| reported_sum(a.consumed_capacity.as_ref())))
        }
        Pending::TransactGet(input) => {
            let answer = out(()).and_then(|o| o.downcast_ref::<TransactGetItemsOutput>());
            let mut cost = Cost::default();
            for (i, get) in input.transact_items().iter().enumerate() {
                let Some(get) = get.get() else { continue };
                let item: Vec<Item> = answer
                    .and_then(|a| a.responses().get(i))
                    .and_then(|r| r.item.clone())
                    .map_or_else(|| vec![get.key().clone()], |item| vec![item]);
                cost += shadow.read_each(get.table_name(), &item, Consistency::Transactional);
            }
            (Some("TransactGetItems"), cost, answer.and_then(|a| reported_sum(a.consumed_capacity())))
        }
        Pending::BatchGet(input) => {
            let answer = out(()).and_then(|o| o.downcast_ref::<BatchGetItemOutput>());
            let mut cost = Cost::default();
            for (table, request) in input.request_items.iter().flatten() {
                let items = answer.and_then(|a| a.responses.as_ref()).and_then(|r| r.get(table)).cloned();
                let how = consistency(request.consistent_read, None);
                cost += shadow.read_each(table, &items.unwrap_or_default(), how);
            }
            (Some("BatchGetItem"), cost, answer.and_then(|a| reported_sum(a.consumed_capacity())))
        }
        Pending::Put(input) => {
            let write = Write::Put {
                table: input.table_name.clone().unwrap_or_default(),
                item: input.item.clone().unwrap_or_default(),
            };
            let reported = out(()).and_then(|o| o.downcast_ref::<PutItemOutput>());
            (
                Some("PutItem"),
                shadow.write(&[write], 1, applied),
                reported.and_then(|a| reported_sum(a.consumed_capacity.as_ref())),
            )
        }
        Pending::Update(input) => {
            let write = Write::Update {
                table: input.table_name.clone().unwrap_or_default(),
                key: input.key.clone().unwrap_or_default(),
                expression: input.update_expression.clone().unwrap_or_default(),
                names: names(input.expression_attribute_names.as_ref()),
                values: input.expression_attribute_values.clone().unwrap_or_default(),
            };
            let reported = out(()).and_then(|o| o.downcast_ref::<UpdateItemOutput>());
            (
                Some("UpdateItem"),
                shadow.write(&[write], 1, applied),
                reported.and_then(|a| reported_sum(a.consumed_capacity.as_ref())),
            )
        }
        Pending::Delete(input) => {
            let write = Write::Delete {
                table: input.table_name.clone().unwrap_or_default(),
                key: input.key.clone().unwrap_or_default(),
            };
            let reported = out(()).and_then(|o| o.downcast_ref::<DeleteItemOutput>());
            (
                Some("DeleteItem"),
                shadow.write(&[write], 1, applied),
                reported.and_then(|a| reported_sum(a.consumed_capacity.as_ref())),
            )
        }
        Pending::TransactWrite(input) => {
            let writes: Vec<Write> = input.transact_items().iter().filter_map(Write::of_transact).collect();
            let reported = out(()).and_then(|o| o.downcast_ref::<TransactWriteItemsOutput>());
            (
                Some("TransactWriteItems"),
                shadow.write(&writes, 2, applied),
                reported.and_then(|a| reported_sum(a.consumed_capacity())),
            )
        }
        Pending::BatchWrite(input) => {
            let answer = out(()).and_then(|o| o.downcast_ref::<BatchWriteItemOutput>());
            let requests = input.request_items.clone().unwrap_or_default();
            let writes = batch_writes(&requests, answer.and_then(|a| a.unprocessed_items.as_ref()));
            (
                Some("BatchWriteItem"),
                shadow.write(&writes, 1, applied),
                answer.and_then(|a| reported_sum(a.consumed_capacity())),
            )
        }
    }
}

fn pending_name(pending: &Pending) -> Option<&'static str> {
    Some(match pending {
        Pending::Get(_) => "GetItem",
        Pending::Put(_) => "PutItem",
        Pending::Update(_) => "UpdateItem",
        Pending::Delete(_) => "DeleteItem",
        Pending::Query(_) => "Query",
        Pending::Scan(_) => "Scan",
        Pending::TransactWrite(_) => "TransactWriteItems",
        Pending::TransactGet(_) => "TransactGetItems",
        Pending::BatchGet(_) => "BatchGetItem",
        Pending::BatchWrite(_) => "BatchWriteItem",
        Pending::Free => return None,
    })
}
