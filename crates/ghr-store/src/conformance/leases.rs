//! Contract of leases on singleton work: one holder at a time, renewable by the holder, released at once by
//! it alone, and taken over by another holder once it expires.
//!
//! Backends judge expiry by different clocks: SQLite by the request's `now` (processes sharing a file share
//! a host), PostgreSQL by the database's own clock (replicas on several hosts). The expiry step therefore
//! lets a short lease run out for real *and* moves `now` past it, so it holds on either clock; every other
//! step uses a lease long enough never to run out during the contract.

use super::fixtures::{at, ok};
use ghr_core::ports::{LeaseRequest, LeaseState, Store};
use std::sync::Arc;
use std::time::Duration;

/// The lease every step works on.
const LEASE: &str = "conformance-lease";
/// A lease that outlives the contract on any clock.
const LONG_TTL: Duration = Duration::from_secs(600);
/// A lease the expiry step lets run out.
const SHORT_TTL: Duration = Duration::from_millis(500);
/// How long the expiry step waits on the real clock: well past [`SHORT_TTL`].
const EXPIRY_WAIT: Duration = Duration::from_millis(900);

fn request(holder: &str, ttl: Duration, secs: i64) -> LeaseRequest {
    LeaseRequest { name: LEASE.to_owned(), holder: holder.to_owned(), ttl, now: at(secs) }
}

async fn acquire(store: &dyn Store, holder: &str, ttl: Duration, secs: i64) -> LeaseState {
    ok(store.lease_acquire(request(holder, ttl, secs)).await, &format!("lease_acquire({holder})"))
}

/// A free lease goes to the first asker; others are refused (and told who holds it) until the holder
/// releases it or lets it expire; the holder renews it; a non-holder's release changes nothing.
pub async fn lease_has_one_holder_until_released_or_expired(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let first = acquire(store, "replica-a", LONG_TTL, 0).await;
    assert!(first.held_by("replica-a"), "a free lease goes to the asker: {first:?}");
    assert!(first.expires_at > at(0), "the lease runs past the request's time: {first:?}");

    let refused = acquire(store, "replica-b", LONG_TTL, 1).await;
    assert!(!refused.held_by("replica-b"), "an unexpired lease is not taken by another holder: {refused:?}");
    assert_eq!(refused.holder, "replica-a", "a refused asker sees who holds the lease");

    let renewed = acquire(store, "replica-a", LONG_TTL, 2).await;
    assert!(renewed.held_by("replica-a"), "the holder renews its lease: {renewed:?}");
    assert!(renewed.expires_at >= first.expires_at, "a renewal never shortens the lease: {first:?} then {renewed:?}");

    ok(store.lease_release(LEASE, "replica-b").await, "lease_release(non-holder)");
    let still = acquire(store, "replica-b", LONG_TTL, 3).await;
    assert_eq!(still.holder, "replica-a", "a release by a non-holder changes nothing");
    ok(store.lease_release("no-such-lease", "replica-a").await, "lease_release(unknown lease)");

    ok(store.lease_release(LEASE, "replica-a").await, "lease_release(holder)");
    let taken = acquire(store, "replica-b", SHORT_TTL, 4).await;
    assert!(taken.held_by("replica-b"), "a released lease is free at once: {taken:?}");

    // replica-b stops renewing: once its lease has run out (on the database clock and on the request's),
    // replica-c takes it.
    let refused = acquire(store, "replica-c", LONG_TTL, 4).await;
    assert_eq!(refused.holder, "replica-b", "the new holder's lease is unexpired at first");
    tokio::time::sleep(EXPIRY_WAIT).await;
    let expired_at = 5 + i64::try_from(LONG_TTL.as_secs()).unwrap_or(i64::MAX / 2);
    let moved = acquire(store, "replica-c", LONG_TTL, expired_at).await;
    assert!(moved.held_by("replica-c"), "an expired lease goes to the next asker: {moved:?}");
    let late = acquire(store, "replica-b", LONG_TTL, expired_at + 1).await;
    assert_eq!(late.holder, "replica-c", "the former holder does not get its expired lease back");
}
