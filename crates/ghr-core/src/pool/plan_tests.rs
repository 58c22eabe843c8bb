//! The pool plan as a table: snapshot in, actions out.

use super::*;
use crate::ids::{InstanceId, MachineId, RunnerName, TierName};
use crate::planner::fixtures::{ago, now, stray_instance};
use std::collections::BTreeMap;
use std::time::Duration;

const GRACE: i64 = 300;

fn machine(id: &str, tier: &str, state: MachineState, created: i64) -> PoolMachine {
    let mut m = PoolMachine::new(MachineId::new(id), TierName::from(tier), "00".repeat(32), ago(created));
    m.state = state;
    m.instance_id = Some(InstanceId::new(format!("i-{id}")));
    if state != MachineState::Starting {
        m.ready_at = Some(ago(created - 10));
    }
    if matches!(state, MachineState::Bound | MachineState::Delivered) {
        m.runner_name = Some(RunnerName::new(format!("r-{id}")));
        m.bound_at = Some(ago(created - 20));
    }
    m
}

fn retire(id: &str, reason: RetireReason) -> PoolAction {
    PoolAction::Retire { machine: MachineId::new(id), instance: Some(InstanceId::new(format!("i-{id}"))), reason }
}

fn launch(tier: &str, count: u32) -> PoolAction {
    PoolAction::Launch { tier: TierName::from(tier), count }
}

fn settings(pools: &[(&str, u32)]) -> PoolSettings {
    PoolSettings {
        pools: pools
            .iter()
            .map(|(tier, size)| {
                let pool = WarmPool {
                    max_idle: Duration::from_secs(3600),
                    boot_timeout: Duration::from_secs(600),
                    ..WarmPool::of_size(*size)
                };
                (TierName::from(*tier), pool)
            })
            .collect::<BTreeMap<_, _>>(),
        orphan_grace: Duration::from_secs(GRACE as u64),
    }
}

fn listed(machines: &[&PoolMachine]) -> Option<Vec<crate::ports::Instance>> {
    Some(
        machines
            .iter()
            .map(|m| stray_instance(m.instance_id.as_ref().unwrap().as_str(), None, Some(m.created_at)))
            .collect(),
    )
}

#[test]
fn pool_table() {
    let ready = machine("a", "small", MachineState::Ready, 100);
    let starting = machine("b", "small", MachineState::Starting, 30);
    let stuck = machine("c", "small", MachineState::Starting, 700);
    let stale = machine("d", "small", MachineState::Ready, 4000);
    let bound = machine("e", "small", MachineState::Bound, 50);
    let delivered_done = machine("f", "small", MachineState::Delivered, 900);
    let dead = machine("g", "small", MachineState::Ready, GRACE + 1);
    let young_unlisted = machine("h", "small", MachineState::Starting, 5);
    let other_tier = machine("k", "gone", MachineState::Ready, 100);
    let mut bound_stuck = machine("m", "small", MachineState::Bound, 500);
    bound_stuck.bound_at = Some(ago(DELIVERY_TIMEOUT.as_secs() as i64 + 1));
    let mut delivered_long = machine("n", "small", MachineState::Delivered, 5000);
    delivered_long.bound_at = Some(ago(4000));

    type Case = (
        &'static str,
        Vec<PoolMachine>,
        Option<Vec<crate::ports::Instance>>,
        Vec<&'static str>,
        Vec<(&'static str, u32)>,
        Vec<PoolAction>,
    );
    let cases: Vec<Case> = vec![
        ("no pool configured: nothing", vec![], Some(vec![]), vec![], vec![], vec![]),
        ("an empty pool fills up", vec![], Some(vec![]), vec![], vec![("small", 3)], vec![launch("small", 3)]),
        (
            "starting machines count toward the size; bound ones do not",
            vec![ready.clone(), starting.clone(), bound.clone()],
            listed(&[&ready, &starting, &bound]),
            vec!["r-e"],
            vec![("small", 3)],
            vec![launch("small", 1)],
        ),
        (
            "a machine whose agent never said hello is replaced",
            vec![ready.clone(), stuck.clone()],
            listed(&[&ready, &stuck]),
            vec![],
            vec![("small", 2)],
            vec![retire("c", RetireReason::BootTimeout), launch("small", 1)],
        ),
        (
            "a machine ready too long is recycled",
            vec![stale.clone()],
            listed(&[&stale]),
            vec![],
            vec![("small", 1)],
            vec![retire("d", RetireReason::IdleTooLong), launch("small", 1)],
        ),
        (
            "a machine the provider lost is replaced; a young one missing from the list is not judged yet",
            vec![dead.clone(), young_unlisted.clone()],
            Some(vec![]),
            vec![],
            vec![("small", 2)],
            vec![retire("g", RetireReason::InstanceGone), launch("small", 1)],
        ),
        (
            "without an instance list nothing is judged gone",
            vec![dead.clone()],
            None,
            vec![],
            vec![("small", 1)],
            vec![],
        ),
        (
            "a bound machine whose runner ended is retired; one whose runner lives stays",
            vec![bound.clone(), delivered_done.clone()],
            listed(&[&bound, &delivered_done]),
            vec!["r-e"],
            vec![("small", 0)],
            vec![retire("f", RetireReason::RunnerDone)],
        ),
        (
            "a bound machine whose agent never fetched its config is given up; a delivered one is not",
            vec![bound_stuck.clone(), delivered_long.clone()],
            listed(&[&bound_stuck, &delivered_long]),
            vec!["r-m", "r-n"],
            vec![("small", 0)],
            vec![retire("m", RetireReason::DeliveryTimeout)],
        ),
        (
            "a smaller target retires ready machines before starting ones",
            vec![starting.clone(), ready.clone()],
            listed(&[&ready, &starting]),
            vec![],
            vec![("small", 1)],
            vec![retire("a", RetireReason::Surplus)],
        ),
        (
            "a tier without a pool keeps no machine",
            vec![other_tier.clone()],
            listed(&[&other_tier]),
            vec![],
            vec![("small", 0)],
            vec![retire("k", RetireReason::PoolRemoved)],
        ),
        (
            "launches per pass are capped",
            vec![],
            Some(vec![]),
            vec![],
            vec![("small", MAX_POOL_LAUNCHES_PER_PASS + 5)],
            vec![launch("small", MAX_POOL_LAUNCHES_PER_PASS)],
        ),
    ];
    for (name, machines, instances, live, pools, expected) in cases {
        let snapshot =
            PoolSnapshot { machines, instances, live_runners: live.into_iter().map(RunnerName::new).collect() };
        assert_eq!(plan_pool(&snapshot, &settings(&pools), now()), expected, "{name}");
    }
}

#[test]
fn lifecycle_moves_forward_only() {
    use MachineState::*;
    for from in MachineState::ALL {
        for to in MachineState::ALL {
            let allowed = from.can_become(to);
            let forward =
                MachineState::ALL.iter().position(|s| *s == to) > MachineState::ALL.iter().position(|s| *s == from);
            if allowed {
                assert!(forward, "{from} → {to} goes back");
            }
        }
        assert_eq!(MachineState::parse(from.as_str()), Some(from));
    }
    assert!(!Ready.can_become(Delivered), "a machine is bound before its config is delivered");
    assert!(!Retired.can_become(Retired), "retired once");
}

#[test]
fn pool_cost_runs_from_launch_to_binding_or_retirement_within_the_range() {
    let mut bound = machine("a", "small", MachineState::Bound, 600);
    bound.bound_at = Some(ago(300));
    let mut retired = machine("b", "large", MachineState::Retired, 400);
    retired.retired_at = Some(ago(100));
    let waiting = machine("c", "small", MachineState::Ready, 50);
    let seconds = pool_idle_seconds(&[bound, retired, waiting], ago(500), now(), now());
    assert_eq!(
        seconds.get(&TierName::from("small")),
        Some(&(200 + 50)),
        "from the range's start to binding, plus still idle"
    );
    assert_eq!(seconds.get(&TierName::from("large")), Some(&300));
}
