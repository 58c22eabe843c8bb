//! The `PoolStore` contract: pool machines' lifecycle, the atomic claim and the one-time delivery. Run by
//! [`super::run_pool`] on every backend that keeps pool machines.

use super::fixtures::at;
use ghr_core::ids::{InstanceId, MachineId, RunnerName, TierName};
use ghr_core::pool::{MachineState, PoolFilter, PoolMachine, PoolTransition};
use ghr_core::ports::PoolStore;
use std::sync::Arc;

fn machine(id: &str, tier: &str, created: i64) -> PoolMachine {
    let mut m = PoolMachine::new(MachineId::new(id), TierName::from(tier), format!("hash-of-{id}"), at(created));
    m.instance_id = Some(InstanceId::new(format!("i-{id}")));
    m
}

async fn ready(store: &dyn PoolStore, id: &str, ready_at: i64) {
    let t = PoolTransition::to(MachineState::Ready, at(ready_at));
    let after = store.pool_transition(&MachineId::new(id), &[MachineState::Starting], t).await.unwrap();
    assert_eq!(after.map(|m| m.state), Some(MachineState::Ready), "{id} becomes ready");
}

/// Insert, read back, list; a duplicate id is an error and changes nothing.
pub async fn pool_machines_round_trip(store: Arc<dyn PoolStore>) {
    let a = machine("pool-small-a", "small", 10);
    store.pool_insert(&a).await.expect("insert");
    assert_eq!(store.pool_get(&a.id).await.unwrap(), Some(a.clone()), "read back as written");
    assert_eq!(store.pool_get(&MachineId::new("pool-small-nope")).await.unwrap(), None);
    let mut twin = machine("pool-small-a", "large", 99);
    twin.secret_hash = "other".into();
    assert!(store.pool_insert(&twin).await.is_err(), "a duplicate id is refused");
    assert_eq!(store.pool_get(&a.id).await.unwrap(), Some(a.clone()), "and changes nothing");
    store.pool_insert(&machine("pool-small-b", "small", 5)).await.unwrap();
    let listed: Vec<String> =
        store.pool_list(PoolFilter::default()).await.unwrap().into_iter().map(|m| m.id.0).collect();
    assert_eq!(listed, ["pool-small-b", "pool-small-a"], "oldest first");
}

/// Transitions move forward only, from the states asked, stamping their instant; only a claim binds.
pub async fn pool_transitions_follow_the_lifecycle(store: Arc<dyn PoolStore>) {
    use MachineState::*;
    let id = MachineId::new("pool-small-t");
    store.pool_insert(&machine(id.as_str(), "small", 0)).await.unwrap();
    let cases: [(&[MachineState], MachineState, bool); 6] = [
        (&[Ready], Ready, false),        // not in `from`
        (&[Starting], Bound, false),     // only a claim binds
        (&[Starting], Delivered, false), // skips a state
        (&[Starting], Ready, true),
        (&[Ready], Starting, false), // backwards
        (&[Ready], Ready, false),    // not a change
    ];
    for (i, (from, to, applies)) in cases.into_iter().enumerate() {
        let t = PoolTransition { instance_id: None, ..PoolTransition::to(to, at(10 + i as i64)) };
        let after = store.pool_transition(&id, from, t).await.unwrap();
        assert_eq!(after.is_some(), applies, "case {i}: {from:?} → {to}");
    }
    let m = store.pool_get(&id).await.unwrap().unwrap();
    assert_eq!((m.state, m.ready_at), (Ready, Some(at(13))), "ready, stamped when it became so");
    let retired = store.pool_transition(&id, &[Ready], PoolTransition::retire(at(20), "surplus")).await.unwrap();
    let retired = retired.expect("a ready machine retires");
    assert_eq!(
        (retired.state, retired.retired_at, retired.retire_reason.as_deref()),
        (Retired, Some(at(20)), Some("surplus"))
    );
    let again = store.pool_transition(&id, &[Retired], PoolTransition::retire(at(21), "twice")).await.unwrap();
    assert!(again.is_none(), "retired once");
    let nope = MachineId::new("nope");
    assert!(store.pool_transition(&nope, &[Starting], PoolTransition::to(Ready, at(1))).await.unwrap().is_none());
}

/// A claim binds the longest-ready machine of the tier, once; none ready is None.
pub async fn pool_claim_takes_the_longest_ready_of_its_tier(store: Arc<dyn PoolStore>) {
    let small = TierName::from("small");
    assert!(store.pool_claim(&small, &RunnerName::new("r0"), at(1)).await.unwrap().is_none(), "empty pool");
    for (id, tier, ready_at) in [("p-new", "small", 30), ("p-old", "small", 20), ("p-large", "large", 1)] {
        store.pool_insert(&machine(id, tier, 0)).await.unwrap();
        ready(store.as_ref(), id, ready_at).await;
    }
    store.pool_insert(&machine("p-starting", "small", 0)).await.unwrap();
    let first = store.pool_claim(&small, &RunnerName::new("r1"), at(40)).await.unwrap().expect("a ready machine");
    assert_eq!(first.id.as_str(), "p-old", "the longest-ready machine of the tier");
    assert_eq!(
        (first.state, first.runner_name.clone(), first.bound_at),
        (MachineState::Bound, Some(RunnerName::new("r1")), Some(at(40)))
    );
    let second = store.pool_claim(&small, &RunnerName::new("r2"), at(41)).await.unwrap().expect("another");
    assert_eq!(second.id.as_str(), "p-new");
    assert!(store.pool_claim(&small, &RunnerName::new("r3"), at(42)).await.unwrap().is_none(), "no other tier's");
    let bound_again =
        store.pool_transition(&first.id, &[MachineState::Ready], PoolTransition::to(MachineState::Ready, at(43)));
    assert!(bound_again.await.unwrap().is_none(), "a bound machine never goes back to the pool");
}

/// Concurrent claims never share a machine; concurrent deliveries of one machine: exactly one wins.
pub async fn pool_claims_and_deliveries_are_atomic(store: Arc<dyn PoolStore>) {
    let small = TierName::from("small");
    for i in 0..5 {
        let id = format!("p-{i}");
        store.pool_insert(&machine(&id, "small", 0)).await.unwrap();
        ready(store.as_ref(), &id, i).await;
    }
    let mut claims = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (store, tier) = (store.clone(), small.clone());
        claims
            .spawn(async move { store.pool_claim(&tier, &RunnerName::new(format!("r-{i}")), at(100)).await.unwrap() });
    }
    let mut won = Vec::new();
    let mut none = 0;
    while let Some(result) = claims.join_next().await {
        match result.unwrap() {
            Some(m) => won.push(m.id),
            None => none += 1,
        }
    }
    won.sort();
    won.dedup();
    assert_eq!((won.len(), none), (5, 11), "5 machines, 5 distinct winners, 11 without");

    let target = MachineId::new("p-0");
    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (store, id) = (store.clone(), target.clone());
        deliveries.spawn(async move {
            let t = PoolTransition::to(MachineState::Delivered, at(200));
            store.pool_transition(&id, &[MachineState::Bound], t).await.unwrap()
        });
    }
    let mut delivered = 0;
    while let Some(result) = deliveries.join_next().await {
        delivered += usize::from(result.unwrap().is_some());
    }
    assert_eq!(delivered, 1, "the runner's config is handed over once");
}

/// Retired machines are listed only when asked for (since an instant) and pruned after.
pub async fn pool_retired_machines_are_listed_on_request_and_pruned(store: Arc<dyn PoolStore>) {
    for (id, retired) in [("p-old", Some(10)), ("p-new", Some(50)), ("p-live", None)] {
        store.pool_insert(&machine(id, "small", 0)).await.unwrap();
        if let Some(t) = retired {
            let id = MachineId::new(id);
            store.pool_transition(&id, &[MachineState::Starting], PoolTransition::retire(at(t), "test")).await.unwrap();
        }
    }
    let ids = |machines: Vec<PoolMachine>| machines.into_iter().map(|m| m.id.0).collect::<Vec<_>>();
    assert_eq!(ids(store.pool_list(PoolFilter::default()).await.unwrap()), ["p-live"]);
    let since = PoolFilter { retired_since: Some(at(50)) };
    let mut listed = ids(store.pool_list(since).await.unwrap());
    listed.sort();
    assert_eq!(listed, ["p-live", "p-new"]);
    assert_eq!(store.pool_prune(at(50)).await.unwrap(), 1, "retired before the instant");
    assert!(store.pool_get(&MachineId::new("p-old")).await.unwrap().is_none());
    assert!(store.pool_get(&MachineId::new("p-new")).await.unwrap().is_some());
}
