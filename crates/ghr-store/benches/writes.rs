//! The cost of the database-file identity check on the write path: one `stat` of the database file
//! (what every write transaction now does before COMMIT) next to whole write transactions on a WAL
//! file store (`delivery_record`, `check_writable`), which include that stat.

use criterion::{Criterion, criterion_group, criterion_main};
use ghr_core::ids::{DeliveryId, InstallationId};
use ghr_core::ports::{DeliveryRecord, Store};
use ghr_store::SqliteStore;
use std::hint::black_box;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const WARM_UP: Duration = Duration::from_millis(500);
const MEASUREMENT: Duration = Duration::from_secs(3);

fn writes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    let store = runtime
        .block_on(SqliteStore::open(&path.display().to_string()))
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));

    let mut group = c.benchmark_group("write_path");
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT);
    group.bench_function("stat_database_file", |b| {
        b.iter(|| {
            let metadata = std::fs::metadata(&path).expect("stat the database file");
            black_box((metadata.dev(), metadata.ino()))
        })
    });
    let mut next = 0u64;
    group.bench_function("delivery_record", |b| {
        b.iter(|| {
            next += 1;
            let delivery = DeliveryRecord {
                delivery_id: DeliveryId::from(format!("bench-{next}").as_str()),
                event: "workflow_job".to_owned(),
                action: Some("queued".to_owned()),
                installation_id: Some(InstallationId(1)),
                received_at: chrono::Utc::now(),
            };
            black_box(runtime.block_on(store.delivery_record(&delivery)).expect("delivery_record"))
        })
    });
    group.bench_function("check_writable", |b| {
        b.iter(|| runtime.block_on(store.check_writable()).expect("check_writable"))
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, writes);
criterion_main!(benches);
