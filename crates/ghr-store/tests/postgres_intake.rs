//! Webhook intake on PostgreSQL with two store instances on one schema (two replicas): the same burst of
//! deliveries, duplicates and out-of-order statuses included, sent through both at once is applied exactly
//! once; a delivery the database refuses fails alone; a deadlock inside a delivery's savepoint retries the
//! whole batch instead of failing that delivery.
//!
//! `GHR_TEST_SEED` replays the random burst of a failed run (its seed is printed).

use ghr_core::ids::{DeliveryId, InstallationId, JobId, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome};
use ghr_core::job::{JobChange, JobObservation, JobStatus, event_kind};
use ghr_core::ports::{DeliveryRecord, Store};
use ghr_core::reason::Reason;
use ghr_store::PgStore;
use ghr_store::conformance::{at, queued};
use ghr_store::testing::{fresh_postgres_url, open_postgres_store};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The variable that fixes the burst's seed.
const SEED_ENV: &str = "GHR_TEST_SEED";
/// Jobs of the burst; each is reported queued, in progress and completed.
const JOBS: u64 = 80;
/// Deliveries of the burst: one per (job, status), the rest redeliveries of some of them.
const DELIVERIES: usize = 300;
/// Concurrent senders per replica, each sending batches of up to [`MAX_BATCH`] deliveries.
const SENDERS_PER_REPLICA: usize = 3;
const MAX_BATCH: usize = 12;
/// Every fifth job matches no tier, so its queued delivery creates it with an initial wait reason.
const UNMATCHED_EVERY: u64 = 5;
/// Repository whose jobs the fault trigger refuses.
const REFUSED_REPOSITORY: &str = "fault/refused";
/// How long the deadlock test waits for the intake to block on the row it holds.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(10);

fn seed() -> u64 {
    let seed = std::env::var(SEED_ENV).ok().and_then(|text| text.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("burst seed {seed} (replay with {SEED_ENV}={seed})");
    seed
}

fn delivery(id: &str, action: &str) -> DeliveryRecord {
    DeliveryRecord {
        delivery_id: DeliveryId::from(id),
        event: "workflow_job".to_owned(),
        action: Some(action.to_owned()),
        installation_id: Some(InstallationId(1)),
        received_at: at(0),
    }
}

/// A delivery reporting `observation`, with no runner of ours to bind.
fn item(id: &str, observation: JobObservation, initial_wait_reason: Option<Reason>) -> JobIntake {
    JobIntake {
        delivery: delivery(id, observation.status.as_str()),
        job: Some(JobIntakeChange { observation, initial_wait_reason, runner: None }),
    }
}

/// The job reported at `status`: queued at `job` seconds, started one second later, completed two.
fn observed(job: u64, status: JobStatus) -> JobObservation {
    let secs = job as i64;
    let tier = (!job.is_multiple_of(UNMATCHED_EVERY)).then_some("small");
    let base = queued(job, 1, "acme/app", tier, secs);
    let runner = Some(RunnerName::from(format!("hosted-{job}").as_str()));
    match status {
        JobStatus::Queued => base,
        JobStatus::InProgress => JobObservation {
            status,
            runner_name: runner,
            started_at: Some(at(secs + 1)),
            observed_at: at(secs + 1),
            ..base
        },
        JobStatus::Completed => JobObservation {
            status,
            runner_name: runner,
            started_at: Some(at(secs + 1)),
            conclusion: Some("success".to_owned()),
            completed_at: Some(at(secs + 2)),
            observed_at: at(secs + 2),
            ..base
        },
    }
}

/// The burst: every (job, status) once, plus redeliveries of random ones (same id, same content).
fn burst(rng: &mut StdRng) -> Vec<JobIntake> {
    let statuses = [JobStatus::Queued, JobStatus::InProgress, JobStatus::Completed];
    let mut items: Vec<JobIntake> = (1..=JOBS)
        .flat_map(|job| {
            statuses.into_iter().map(move |status| {
                let reason = (status == JobStatus::Queued && job.is_multiple_of(UNMATCHED_EVERY))
                    .then_some(Reason::NoMatchingTier);
                item(&format!("d-{job}-{status}"), observed(job, status), reason)
            })
        })
        .collect();
    while items.len() < DELIVERIES {
        let again = items[rng.random_range(0..items.len())].clone();
        items.push(again);
    }
    items.shuffle(rng);
    items
}

/// What one sender saw: (delivery id, job id, outcome) per item.
type Seen = Arc<Mutex<Vec<(String, u64, JobIntakeOutcome)>>>;

/// Send `items` through `store` from several concurrent senders, in random batches.
fn send(
    store: Arc<PgStore>,
    mut items: Vec<JobIntake>,
    rng: &mut StdRng,
    seen: &Seen,
) -> Vec<tokio::task::JoinHandle<()>> {
    items.shuffle(rng);
    let mut batches: Vec<Vec<JobIntake>> = Vec::new();
    while !items.is_empty() {
        let size = rng.random_range(1..=MAX_BATCH).min(items.len());
        batches.push(items.drain(..size).collect());
    }
    let queue = Arc::new(Mutex::new(batches));
    (0..SENDERS_PER_REPLICA)
        .map(|_| {
            let (store, queue, seen) = (store.clone(), queue.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let Some(batch) = queue.lock().expect("queue").pop() else { return };
                    let keys: Vec<(String, u64)> = batch
                        .iter()
                        .map(|i| {
                            (
                                i.delivery.delivery_id.as_str().to_owned(),
                                i.job.as_ref().map_or(0, |c| c.observation.job_id.0),
                            )
                        })
                        .collect();
                    let results = store.intake_jobs(batch).await;
                    assert_eq!(results.len(), keys.len(), "one outcome per item");
                    let mut seen = seen.lock().expect("seen");
                    for ((delivery, job), result) in keys.into_iter().zip(results) {
                        let outcome = result.unwrap_or_else(|e| panic!("delivery {delivery} failed: {e}"));
                        seen.push((delivery, job, outcome));
                    }
                }
            })
        })
        .collect()
}

async fn recount(store: &PgStore) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let read = |sql: &'static str| async move {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(store.pool()).await.expect("read counts");
        rows.into_iter().filter(|(_, n)| *n != 0).collect::<BTreeMap<_, _>>()
    };
    (
        read("SELECT status, n FROM job_status_counts").await,
        read("SELECT status, count(*) FROM jobs GROUP BY status").await,
    )
}

/// Two replicas take the same burst at once, each in its own random order and batching: every delivery id
/// is recorded exactly once across both, every job is created once and moved once per status, ends at the
/// furthest status reported, and its timeline holds each transition once; the kept counts match a recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_apply_a_burst_exactly_once() {
    let mut rng = StdRng::seed_from_u64(seed());
    let url = fresh_postgres_url().await;
    let replicas = [Arc::new(open_postgres_store(&url).await), Arc::new(open_postgres_store(&url).await)];
    let items = burst(&mut rng);
    let seen: Seen = Arc::default();
    let mut senders = Vec::new();
    for replica in &replicas {
        senders.extend(send(replica.clone(), items.clone(), &mut rng, &seen));
    }
    for sender in senders {
        sender.await.expect("a sender panicked");
    }
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    assert_eq!(seen.len(), 2 * DELIVERIES, "every item of both replicas has an outcome");

    let mut recorded: HashMap<String, usize> = HashMap::new();
    let mut changes: BTreeMap<u64, Vec<JobChange>> = BTreeMap::new();
    for (delivery, job, outcome) in &seen {
        match outcome {
            JobIntakeOutcome::Duplicate => {}
            JobIntakeOutcome::Recorded { job: reported, change, .. } => {
                *recorded.entry(delivery.clone()).or_default() += 1;
                assert_eq!(*reported, Some(JobId(*job)), "delivery {delivery} names its job");
                changes.entry(*job).or_default().extend(*change);
            }
        }
    }
    let distinct = items.iter().map(|i| i.delivery.delivery_id.as_str()).collect::<std::collections::HashSet<_>>();
    assert_eq!(recorded.len(), distinct.len(), "every delivery id is recorded");
    let twice: Vec<_> = recorded.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "deliveries recorded more than once across replicas: {twice:?}");

    let store = &replicas[0];
    for job in 1..=JOBS {
        let stored = store.job_get(JobId(job)).await.expect("job_get").expect("every job is recorded");
        assert_eq!(stored.status, JobStatus::Completed, "job {job} ends at the furthest status reported");
        assert_eq!((stored.conclusion.as_deref(), stored.wait_reason), (Some("success"), None), "job {job}");
        let job_changes = &changes[&job];
        let created = job_changes.iter().filter(|c| **c == JobChange::Created).count();
        assert_eq!(created, 1, "job {job} created once: {job_changes:?}");

        let timeline = store.job_timeline(JobId(job)).await.expect("job_timeline");
        let transitions: Vec<&str> =
            timeline.iter().map(|e| e.kind.as_str()).filter(|kind| *kind != event_kind::WAITING).collect();
        let moved = job_changes.iter().filter(|c| **c != JobChange::Unchanged).count();
        assert_eq!(transitions.len(), moved, "job {job}: one timeline entry per change: {timeline:?}");
        let order = |kind: &str| kind.parse::<JobStatus>().unwrap_or_else(|_| panic!("unknown entry {kind}"));
        assert!(
            transitions.windows(2).all(|pair| order(pair[0]) < order(pair[1])),
            "job {job}: transitions move forward, each once: {transitions:?}"
        );
        assert_eq!(transitions.last(), Some(&event_kind::COMPLETED), "job {job}");
        let waits = timeline.iter().filter(|e| e.kind == event_kind::WAITING).count();
        let created_queued = transitions.first() == Some(&event_kind::QUEUED);
        let expect_wait = usize::from(job.is_multiple_of(UNMATCHED_EVERY) && created_queued);
        assert_eq!(waits, expect_wait, "job {job}: the initial wait reason only when created queued unmatched");
    }
    let (kept, counted) = recount(store).await;
    assert_eq!(kept, counted, "the kept job counts match a recount");
    assert_eq!(counted, BTreeMap::from([(JobStatus::Completed.as_str().to_owned(), JOBS as i64)]));
}

/// A delivery the database refuses after its delivery record was written (a trigger stands in for a
/// constraint or a full disk) is rolled back to its savepoint alone: it stays unrecorded, so a redelivery
/// applies it, and its batch-mates before and after it commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_fails_alone() {
    let url = fresh_postgres_url().await;
    let store = open_postgres_store(&url).await;
    for ddl in [
        "CREATE FUNCTION refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'simulated refusal'; END $$",
        "CREATE TRIGGER refuse_job BEFORE INSERT ON jobs FOR EACH ROW \
         WHEN (NEW.repository = 'fault/refused') EXECUTE FUNCTION refuse_job()",
    ] {
        sqlx::raw_sql(ddl).execute(store.pool()).await.expect("install the fault");
    }
    let refused = JobObservation { repository: REFUSED_REPOSITORY.to_owned(), ..queued(2, 1, "x/y", Some("small"), 2) };
    let batch = vec![
        item("r1", queued(1, 1, "acme/app", Some("small"), 1), None),
        item("r2", refused, None),
        item("r3", queued(3, 1, "acme/app", Some("small"), 3), None),
        item("r1", queued(1, 1, "acme/app", Some("small"), 4), None),
    ];
    let results = store.intake_jobs(batch).await;
    assert_eq!(results.len(), 4, "one outcome per item");
    let error = results[1].as_ref().expect_err("the refused delivery fails");
    assert!(ghr_core::error::ErrorChain(error).to_string().contains("simulated refusal"), "{error}");
    for index in [0, 2] {
        match &results[index] {
            Ok(JobIntakeOutcome::Recorded { change: Some(JobChange::Created), .. }) => {}
            other => panic!("batch-mate {index} must be applied: {other:?}"),
        }
    }
    assert!(matches!(results[3], Ok(JobIntakeOutcome::Duplicate)), "{:?}", results[3]);
    let store = &store;
    let seen = |id: &'static str| async move { store.delivery_seen(&DeliveryId::from(id)).await };
    assert!(seen("r1").await.expect("seen") && seen("r3").await.expect("seen"), "batch-mates are recorded");
    assert!(!seen("r2").await.expect("seen"), "the refused delivery's record is rolled back with it");
    assert_eq!(store.job_get(JobId(2)).await.expect("job_get"), None);

    let redelivered = item("r2", queued(2, 1, "acme/app", Some("small"), 5), None);
    let again = store.intake_jobs(vec![redelivered]).await;
    assert!(matches!(again[0], Ok(JobIntakeOutcome::Recorded { change: Some(JobChange::Created), .. })), "{again:?}");
}

/// A deadlock between a batch and another writer aborts the batch's whole transaction: the batch is run again
/// and every delivery of it is applied, none reported failed. The other writer holds job 2 while the batch
/// holds job 1 and waits for job 2, then asks for job 1; it waits longer before checking for deadlocks, so
/// the server aborts the batch's transaction, inside the savepoint of its second delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_inside_a_delivery_retries_the_whole_batch() {
    let url = fresh_postgres_url().await;
    let store = Arc::new(open_postgres_store(&url).await);
    let created = store
        .intake_jobs(vec![
            item("q1", observed(1, JobStatus::Queued), None),
            item("q2", observed(2, JobStatus::Queued), None),
        ])
        .await;
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let other = open_postgres_store(&url).await;
    let mut blocker = other.pool().begin().await.expect("begin");
    sqlx::raw_sql("SET LOCAL deadlock_timeout = '60s'").execute(&mut *blocker).await.expect("deadlock_timeout");
    sqlx::query("SELECT job_id FROM jobs WHERE job_id = 2 FOR UPDATE").execute(&mut *blocker).await.expect("lock 2");

    let batch = vec![
        item("s1", observed(1, JobStatus::InProgress), None),
        item("s2", observed(2, JobStatus::InProgress), None),
    ];
    let intake = tokio::spawn({
        let store = store.clone();
        async move { store.intake_jobs(batch).await }
    });
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *blocker).await.expect("pid");
    let waiting = async {
        loop {
            let blocked: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks AS waiter JOIN pg_locks AS holder \
                     ON holder.locktype = 'transactionid' AND holder.transactionid = waiter.transactionid \
                 WHERE NOT waiter.granted AND holder.granted AND holder.pid = $1)",
            )
            .bind(blocker_pid)
            .fetch_one(other.pool())
            .await
            .expect("read pg_locks");
            if blocked {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(BLOCK_TIMEOUT, waiting).await.expect("the batch blocks on job 2");
    // Closes the cycle; the batch's transaction is the one the server aborts (after its deadlock_timeout).
    sqlx::query("SELECT job_id FROM jobs WHERE job_id = 1 FOR UPDATE").execute(&mut *blocker).await.expect("lock 1");
    blocker.commit().await.expect("commit the other writer");

    let results = intake.await.expect("the intake task");
    for (index, result) in results.iter().enumerate() {
        match result {
            Ok(JobIntakeOutcome::Recorded {
                change: Some(JobChange::Advanced { from: JobStatus::Queued }), ..
            }) => {}
            other => panic!("delivery {index} must be applied by the retried batch: {other:?}"),
        }
    }
    for job in [1, 2] {
        let timeline = store.job_timeline(JobId(job)).await.expect("job_timeline");
        let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec![event_kind::QUEUED, event_kind::IN_PROGRESS], "job {job} moved once");
    }
}
