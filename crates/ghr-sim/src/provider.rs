//! The simulated cloud: instances that exist until terminated or until their runner exits after its job.
//!
//! Each instance carries its JIT config; the simulation boots it (an emulated runner connects to the GitHub
//! emulator with that config), lets it poll for a job and finish it, all as explicit steps. Terminating an
//! instance whose runner holds a job that GitHub still sees running is recorded as a violation: ghr must never
//! kill a customer's job.

use async_trait::async_trait;
use ghr_core::Timestamp;
use ghr_core::clock::Clock;
use ghr_core::ids::{InstallationId, InstanceId, RunnerName};
use ghr_core::ports::{Instance, InstanceState, LaunchRequest, Provider, ProviderError};
use ghr_testkit::protocol::AssignedJob;
use ghr_testkit::runner::EmulatedRunner;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where an instance's runner is in its one-job life.
pub enum RunnerPhase {
    /// Started, runner not connected yet.
    Booting(SecretString),
    /// Connected, waiting for a job.
    Waiting(Box<EmulatedRunner>),
    /// Running a job until the given (simulated) time.
    Running(Box<EmulatedRunner>, AssignedJob, Timestamp),
    /// The runner exited after its job; the machine is still powering off.
    Exiting,
    /// In the middle of a step (taken out of the map while awaiting).
    Busy,
}

pub struct SimInstance {
    pub id: InstanceId,
    pub runner_name: RunnerName,
    pub installation_id: InstallationId,
    pub launched_at: Timestamp,
    pub phase: RunnerPhase,
}

/// The simulated provider. Cheap to clone; clones share the instances.
#[derive(Clone)]
pub struct SimProvider {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    instances: BTreeMap<InstanceId, SimInstance>,
    /// Launches to fail (the provider's capacity errors).
    fail_launches: u32,
    violations: Vec<String>,
    terminations: u64,
}

impl SimProvider {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { inner: Arc::new(Mutex::new(Inner::default())), clock }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fail the next `count` launches with a capacity error.
    pub fn fail_next_launches(&self, count: u32) {
        self.lock().fail_launches = count;
    }

    /// Ids of instances in a phase matching `pick`, in id order.
    pub fn instances_where(&self, pick: impl Fn(&RunnerPhase) -> bool) -> Vec<InstanceId> {
        self.lock().instances.values().filter(|i| pick(&i.phase)).map(|i| i.id.clone()).collect()
    }

    /// Alive instances per installation.
    pub fn alive_per_installation(&self) -> BTreeMap<InstallationId, u32> {
        let mut counts = BTreeMap::new();
        for instance in self.lock().instances.values() {
            *counts.entry(instance.installation_id).or_insert(0) += 1;
        }
        counts
    }

    /// (instance, runner name) of every alive instance.
    pub fn alive(&self) -> Vec<(InstanceId, RunnerName)> {
        self.lock().instances.values().map(|i| (i.id.clone(), i.runner_name.clone())).collect()
    }

    /// Take an instance's phase out for a step; put it back with [`SimProvider::put_back`].
    pub fn take_phase(&self, id: &InstanceId) -> Option<RunnerPhase> {
        let mut inner = self.lock();
        let instance = inner.instances.get_mut(id)?;
        Some(std::mem::replace(&mut instance.phase, RunnerPhase::Busy))
    }

    /// Put a phase back; if the instance was terminated meanwhile, nothing happens.
    pub fn put_back(&self, id: &InstanceId, phase: RunnerPhase) {
        if let Some(instance) = self.lock().instances.get_mut(id) {
            instance.phase = phase;
        }
    }

    /// The machine is off: the instance is gone.
    pub fn exit(&self, id: &InstanceId) {
        self.lock().instances.remove(id);
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn terminations(&self) -> u64 {
        self.lock().terminations
    }
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.fail_launches > 0 {
            inner.fail_launches -= 1;
            return Err(ProviderError::capacity("injected: no capacity for the simulated instance type"));
        }
        inner.next += 1;
        let id = InstanceId::new(format!("sim-{:05}", inner.next));
        let instance = SimInstance {
            id: id.clone(),
            runner_name: request.runner_name.clone(),
            installation_id: request.installation_id,
            launched_at: now,
            phase: RunnerPhase::Booting(request.jit_config),
        };
        inner.instances.insert(id.clone(), instance);
        Ok(Instance {
            id,
            runner_name: Some(request.runner_name),
            installation_id: Some(request.installation_id),
            tier: Some(request.tier),
            state: InstanceState::Running,
            launched_at: Some(now),
            instance_type: None,
        })
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError> {
        let mut inner = self.lock();
        if let Some(instance) = inner.instances.remove(id) {
            inner.terminations += 1;
            if let RunnerPhase::Running(_, job, _) = &instance.phase {
                let violation = format!(
                    "busy runner terminated: {} ({}) was running job {}",
                    instance.runner_name, instance.id, job.job_id
                );
                inner.violations.push(violation);
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(self
            .lock()
            .instances
            .values()
            .map(|i| Instance {
                id: i.id.clone(),
                runner_name: Some(i.runner_name.clone()),
                installation_id: Some(i.installation_id),
                tier: None,
                state: InstanceState::Running,
                launched_at: Some(i.launched_at),
                instance_type: None,
            })
            .collect())
    }
}
