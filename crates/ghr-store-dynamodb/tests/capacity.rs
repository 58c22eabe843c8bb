//! The capacity meter attached to a real client on the emulator: each kind of request is charged what
//! DynamoDB's on-demand rules say, index writes included, and refused writes are charged too.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use ghr_store_dynamodb::capacity::CapacityMeter;
use ghr_store_dynamodb::tables::{runner, tenant};
use ghr_store_dynamodb::testing::{TEST_REGION, endpoint, unique_prefix};
use ghr_store_dynamodb::{Tables, init_tables};
use std::collections::HashMap;

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn runner_item(name: &str, tenant_id: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (runner::RUNNER_NAME.to_owned(), s(name)),
        (runner::LIVE_TENANT.to_owned(), n(tenant_id)),
        (runner::LIVE_ORDER.to_owned(), s(&format!("small#1767225600000#{name}"))),
        ("state".to_owned(), s("reserved")),
    ])
}

#[tokio::test]
async fn each_request_is_charged_by_the_published_rules() {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "ghr-tests"))
        .endpoint_url(endpoint())
        .load()
        .await;
    let tables = Tables::new(&unique_prefix());
    let meter = CapacityMeter::new(&tables).asking_reported_capacity();
    let client = meter.client(&config);
    init_tables(&client, &tables).await.expect("create tables");
    assert_eq!(meter.total().calls, 0, "table management is not billed per request");

    // A tenant in both of its table's indexes: 1 WRU for the item, 1 per index.
    let tenant_item = HashMap::from([
        (tenant::INSTALLATION_ID.to_owned(), n(7)),
        (tenant::STATUS.to_owned(), s("active")),
        (tenant::ORG_NAME.to_owned(), s("acme")),
        (tenant::MAX_RUNNERS.to_owned(), n(3)),
    ]);
    client.put_item().table_name(&tables.tenants).set_item(Some(tenant_item)).send().await.expect("put tenant");
    let put = meter.by_operation()["PutItem"];
    assert_eq!((put.cost.write_units, put.cost.index_write_units), (1, 2), "{put:?}");
    assert_eq!(put.reported_calls, 1, "moto answers ConsumedCapacity for PutItem: {put:?}");

    // A strongly consistent read of a small item: 1 RRU; eventually consistent: half.
    for consistent in [true, false] {
        client
            .get_item()
            .table_name(&tables.tenants)
            .key(tenant::INSTALLATION_ID, n(7))
            .consistent_read(consistent)
            .send()
            .await
            .expect("get tenant");
    }
    assert_eq!(meter.by_operation()["GetItem"].rru(), 1.5);

    // Admission: a runner entering its index and the tenant's counter (a projected attribute of both tenant
    // indexes) in one transaction: 2 × 1 + 2 × 1 on the tables, 1 + 2 on the indexes.
    meter.reset();
    let admit = |name: &str| {
        let put = Put::builder()
            .table_name(&tables.runners)
            .set_item(Some(runner_item(name, 7)))
            .condition_expression("attribute_not_exists(runner_name)")
            .build()
            .expect("put");
        let update = Update::builder()
            .table_name(&tables.tenants)
            .key(tenant::INSTALLATION_ID, n(7))
            .update_expression("SET #l = if_not_exists(#l, :zero) + :one")
            .expression_attribute_names("#l", tenant::LIVE_RUNNERS)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("update");
        client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
    };
    admit("r-1").send().await.expect("admit r-1");
    let tx = meter.by_operation()["TransactWriteItems"];
    assert_eq!((tx.cost.write_units, tx.cost.index_write_units, tx.wru()), (4, 3, 7), "{tx:?}");

    // The same runner again: cancelled, charged on the existing items (twice), no index writes.
    admit("r-1").send().await.expect_err("r-1 exists");
    let tx = meter.by_operation()["TransactWriteItems"];
    assert_eq!((tx.calls, tx.refused, tx.wru()), (2, 1, 7 + 4), "{tx:?}");

    // Release: the runner leaves the sparse index (1 + 1); a failed conditional put costs 1, no index write.
    meter.reset();
    client
        .update_item()
        .table_name(&tables.runners)
        .key(runner::RUNNER_NAME, s("r-1"))
        .update_expression("SET #s = :t REMOVE live_tenant, live_order")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":t", s("terminated"))
        .send()
        .await
        .expect("release");
    let update = meter.by_operation()["UpdateItem"];
    assert_eq!((update.cost.write_units, update.cost.index_write_units, update.cost.unmodelled), (1, 1, 0));
    client
        .put_item()
        .table_name(&tables.runners)
        .set_item(Some(runner_item("r-1", 7)))
        .condition_expression("attribute_not_exists(runner_name)")
        .send()
        .await
        .expect_err("exists");
    let put = meter.by_operation()["PutItem"];
    assert_eq!((put.refused, put.wru()), (1, 1), "{put:?}");

    // An index query is eventually consistent: half a unit, even when it finds nothing.
    client
        .query()
        .table_name(&tables.runners)
        .index_name(runner::LIVE_INDEX)
        .key_condition_expression("live_tenant = :t")
        .expression_attribute_values(":t", n(7))
        .send()
        .await
        .expect("query");
    assert_eq!(meter.by_operation()["Query"].rru(), 0.5);
    let total = meter.total();
    assert_eq!((total.calls, total.wru()), (3, 3), "{total:?}");
    assert!(total.usd() > 0.0);
}
