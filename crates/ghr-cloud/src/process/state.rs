//! The on-disk state of the process provider: one JSON file per live instance under
//! `state_dir/instances/`, written atomically, and the runner logs under `state_dir/logs/`.
//!
//! The state files are what lets a restarted ghr find the runners it started before.

use super::error::ProcessError;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, InstanceId, MachineId, RunnerName, TierName};
use ghr_core::ports::{Instance, InstanceState};
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Prefix of every instance id of this provider: `proc-<pid>-<start-ticks>`.
pub const INSTANCE_ID_PREFIX: &str = "proc";
/// Sub-directory of the state dir holding one state file per instance.
pub const INSTANCES_DIR: &str = "instances";
/// Sub-directory of the state dir holding the runner logs.
pub const LOGS_DIR: &str = "logs";
/// Extension of instance state files.
const STATE_EXTENSION: &str = "json";
/// Extension of state files being written (renamed into place when complete).
const TEMP_EXTENSION: &str = "json.tmp";
/// Suffix appended to a state file that cannot be read, to keep it for an operator and out of scans.
const CORRUPT_SUFFIX: &str = "corrupt";
/// Extension of runner log files.
const LOG_EXTENSION: &str = "log";
/// Version of the state file format, for a future migration.
const STATE_FORMAT_VERSION: u32 = 1;

/// The parts of a process instance id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessKey {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcessKey {
    pub fn instance_id(&self) -> InstanceId {
        InstanceId(format!("{INSTANCE_ID_PREFIX}-{}-{}", self.pid, self.start_ticks))
    }

    /// Parse `proc-<pid>-<start-ticks>`; `None` for anything else (another provider's id, a typo).
    pub fn parse(id: &InstanceId) -> Option<Self> {
        let rest = id.as_str().strip_prefix(INSTANCE_ID_PREFIX)?.strip_prefix('-')?;
        let (pid, start_ticks) = rest.split_once('-')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(pid) || !all_digits(start_ticks) {
            return None;
        }
        Some(Self { pid: pid.parse().ok()?, start_ticks: start_ticks.parse().ok()? })
    }
}

/// What ghr knows about one instance it launched; the content of its state file.
///
/// Holds no secret: the JIT config is never written to disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub format: u32,
    pub instance_id: InstanceId,
    pub pid: u32,
    /// Process group of the runner and everything it starts (the runner leads it: equal to `pid`).
    pub pgid: u32,
    /// Start time of `pid` in clock ticks after boot (`/proc/<pid>/stat` field 22), against pid reuse.
    pub start_ticks: u64,
    pub environment: String,
    /// The runner; for a warm-pool machine, set when it is bound.
    #[serde(default)]
    pub runner_name: Option<RunnerName>,
    /// The tenant; for a warm-pool machine, set when it is bound.
    #[serde(default)]
    pub installation_id: Option<InstallationId>,
    pub tier: TierName,
    pub launched_at: Timestamp,
    pub log_file: PathBuf,
    /// A warm-pool machine: its id (its agent waits for an assignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_machine: Option<MachineId>,
    /// The bound tenant's org and plan (the process provider's "tags").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_tier: Option<TierName>,
}

impl InstanceRecord {
    pub fn new(
        key: ProcessKey,
        environment: &str,
        runner_name: RunnerName,
        installation_id: InstallationId,
        tier: TierName,
        launched_at: Timestamp,
        log_file: PathBuf,
    ) -> Self {
        Self {
            format: STATE_FORMAT_VERSION,
            instance_id: key.instance_id(),
            pid: key.pid,
            pgid: key.pid,
            start_ticks: key.start_ticks,
            environment: environment.to_owned(),
            runner_name: Some(runner_name),
            installation_id: Some(installation_id),
            tier,
            launched_at,
            log_file,
            pool_machine: None,
            org: None,
            tenant_tier: None,
        }
    }

    pub fn key(&self) -> ProcessKey {
        ProcessKey { pid: self.pid, start_ticks: self.start_ticks }
    }

    /// The port's view of this instance, which is running.
    pub fn to_instance(&self) -> Instance {
        Instance {
            id: self.instance_id.clone(),
            runner_name: self.runner_name.clone(),
            installation_id: self.installation_id,
            tier: Some(self.tier.clone()),
            state: InstanceState::Running,
            launched_at: Some(self.launched_at),
            instance_type: None,
        }
    }
}

/// The provider's directories.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    instances: PathBuf,
    logs: PathBuf,
}

/// A state file that could not be used, with why; the caller logs it.
#[derive(Debug)]
pub(crate) struct UnreadableState {
    pub path: PathBuf,
    /// The instance the file is named after, if its name is an instance id.
    pub key: Option<ProcessKey>,
    pub problem: String,
}

impl UnreadableState {
    fn new(path: &Path, problem: String) -> Self {
        let key = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(&format!(".{STATE_EXTENSION}")))
            .and_then(|stem| ProcessKey::parse(&InstanceId::from(stem)));
        Self { path: path.to_path_buf(), key, problem }
    }
}

impl StateDir {
    /// Create (if needed) the instance and log directories under `root`.
    pub fn create(root: &Path) -> Result<Self, std::io::Error> {
        let dirs = Self { instances: root.join(INSTANCES_DIR), logs: root.join(LOGS_DIR) };
        std::fs::create_dir_all(&dirs.instances)?;
        std::fs::create_dir_all(&dirs.logs)?;
        Ok(dirs)
    }

    pub fn state_path(&self, key: ProcessKey) -> PathBuf {
        self.instances.join(format!("{}.{STATE_EXTENSION}", key.instance_id()))
    }

    /// The log file of a runner: its name, reduced to file-name-safe characters.
    pub fn log_path(&self, runner_name: &RunnerName) -> PathBuf {
        let safe: String = runner_name
            .as_str()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
            .collect();
        let safe = safe.trim_start_matches('.');
        let stem = if safe.is_empty() { "runner" } else { safe };
        self.logs.join(format!("{stem}.{LOG_EXTENSION}"))
    }

    /// Write a record atomically: a temporary file in the same directory, synced, then renamed over.
    pub fn write(&self, record: &InstanceRecord) -> Result<(), ProcessError> {
        let path = self.state_path(record.key());
        let temp = self.instances.join(format!("{}.{TEMP_EXTENSION}", record.instance_id));
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|source| ProcessError::StateEncode { instance: record.instance_id.to_string(), source })?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            // Make the rename itself durable.
            std::fs::File::open(&self.instances)?.sync_all()
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&temp);
            ProcessError::StateWrite { path: path.clone(), source }
        })
    }

    /// Read one instance's record; `None` when there is no readable state file for it.
    pub fn read(&self, key: ProcessKey) -> Result<Option<InstanceRecord>, UnreadableState> {
        let path = self.state_path(key);
        match std::fs::read(&path) {
            Ok(bytes) => decode(&path, &bytes).map(Some),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(UnreadableState::new(&path, error.to_string())),
        }
    }

    /// Remove an instance's state file; a missing file is fine.
    pub fn remove(&self, key: ProcessKey) -> Result<(), ProcessError> {
        remove_if_present(&self.state_path(key))
    }

    /// Every state file: the records that could be read, and the files that could not.
    pub fn read_all(&self) -> Result<(Vec<InstanceRecord>, Vec<UnreadableState>), ProcessError> {
        let entries = std::fs::read_dir(&self.instances)
            .map_err(|source| ProcessError::StateRead { path: self.instances.clone(), source })?;
        let mut records = Vec::new();
        let mut unreadable = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ProcessError::StateRead { path: self.instances.clone(), source })?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else { continue };
            if !name.ends_with(&format!(".{STATE_EXTENSION}")) {
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => match decode(&path, &bytes) {
                    Ok(record) => records.push(record),
                    Err(problem) => unreadable.push(problem),
                },
                // Removed by a concurrent terminate or reaper: nothing to report.
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => unreadable.push(UnreadableState::new(&path, error.to_string())),
            }
        }
        records.sort_by(|a, b| a.launched_at.cmp(&b.launched_at).then_with(|| a.instance_id.cmp(&b.instance_id)));
        Ok((records, unreadable))
    }

    /// Move an unreadable state file aside (`<name>.corrupt`): it is reported once and kept for an operator.
    pub fn quarantine(&self, path: &Path) -> Result<PathBuf, ProcessError> {
        let mut target = path.as_os_str().to_owned();
        target.push(format!(".{CORRUPT_SUFFIX}"));
        let target = PathBuf::from(target);
        std::fs::rename(path, &target).map_err(|source| ProcessError::StateWrite { path: target.clone(), source })?;
        Ok(target)
    }

    /// Remove temporary files left by a write that was interrupted (ghr crashed mid-write).
    pub fn remove_temp_files(&self) -> Result<usize, ProcessError> {
        self.remove_matching(&self.instances.clone(), |name, _| name.ends_with(&format!(".{TEMP_EXTENSION}")))
    }

    /// Remove runner logs not written to for `retention`.
    pub fn prune_logs(&self, retention: Duration) -> Result<usize, ProcessError> {
        let now = SystemTime::now();
        self.remove_matching(&self.logs.clone(), |name, metadata| {
            let old = metadata
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > retention);
            name.ends_with(&format!(".{LOG_EXTENSION}")) && metadata.is_file() && old
        })
    }

    fn remove_matching(
        &self,
        dir: &Path,
        matches: impl Fn(&str, &std::fs::Metadata) -> bool,
    ) -> Result<usize, ProcessError> {
        let read_error = |source| ProcessError::StateRead { path: dir.to_path_buf(), source };
        let mut removed = 0;
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let Ok(metadata) = entry.metadata() else { continue };
            let path = entry.path();
            if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| matches(name, &metadata)) {
                remove_if_present(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<InstanceRecord, UnreadableState> {
    let record: InstanceRecord =
        serde_json::from_slice(bytes).map_err(|error| UnreadableState::new(path, error.to_string()))?;
    if record.format != STATE_FORMAT_VERSION {
        let problem = format!("state format {} is not the supported {STATE_FORMAT_VERSION}", record.format);
        return Err(UnreadableState::new(path, problem));
    }
    Ok(record)
}

fn remove_if_present(path: &Path) -> Result<(), ProcessError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ProcessError::StateRemove { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dirs: &StateDir, pid: u32) -> InstanceRecord {
        let name = RunnerName::from("ghr-test-7-small-1");
        InstanceRecord::new(
            ProcessKey { pid, start_ticks: 99 },
            "test",
            name.clone(),
            InstallationId(7),
            TierName::from("small"),
            chrono::Utc::now(),
            dirs.log_path(&name),
        )
    }

    #[test]
    fn instance_ids_round_trip_and_reject_foreign_ids() {
        let key = ProcessKey { pid: 1234, start_ticks: 56789 };
        assert_eq!(key.instance_id().as_str(), "proc-1234-56789");
        assert_eq!(ProcessKey::parse(&key.instance_id()), Some(key));
        for bad in ["i-0123456789abcdef0", "proc-12", "proc-12-", "proc--5", "proc-1-2-3", "proc-../x-1", "proc-+1-2"] {
            assert_eq!(ProcessKey::parse(&InstanceId::from(bad)), None, "{bad}");
        }
    }

    #[test]
    fn records_are_written_read_listed_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDir::create(root.path()).unwrap();
        let first = record(&dirs, 10);
        let second = record(&dirs, 11);
        dirs.write(&first).unwrap();
        dirs.write(&second).unwrap();
        std::fs::write(dirs.instances.join("garbage.json"), b"{").unwrap();
        std::fs::write(dirs.instances.join("proc-5-6.json"), b"[]").unwrap();
        std::fs::write(dirs.instances.join("leftover.json.tmp"), b"{").unwrap();

        assert_eq!(dirs.read(first.key()).unwrap(), Some(first.clone()));
        let (records, unreadable) = dirs.read_all().unwrap();
        assert_eq!(records.len(), 2);
        let mut unreadable: Vec<_> = unreadable.into_iter().map(|u| (u.path, u.key)).collect();
        unreadable.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            unreadable,
            vec![
                (dirs.instances.join("garbage.json"), None),
                (dirs.instances.join("proc-5-6.json"), Some(ProcessKey { pid: 5, start_ticks: 6 })),
            ]
        );

        let kept = dirs.quarantine(&unreadable[0].0).unwrap();
        assert!(kept.ends_with("garbage.json.corrupt") && kept.exists());
        assert_eq!(dirs.read_all().unwrap().1.len(), 1);

        assert_eq!(dirs.remove_temp_files().unwrap(), 1);
        dirs.remove(first.key()).unwrap();
        dirs.remove(first.key()).unwrap();
        assert_eq!(dirs.read(first.key()).unwrap(), None);
    }

    #[test]
    fn log_names_are_file_name_safe() {
        let dirs = StateDir { instances: PathBuf::from("/s/instances"), logs: PathBuf::from("/s/logs") };
        assert_eq!(
            dirs.log_path(&RunnerName::from("ghr-prod-7-small-1")),
            PathBuf::from("/s/logs/ghr-prod-7-small-1.log")
        );
        assert_eq!(dirs.log_path(&RunnerName::from("../../etc/x")), PathBuf::from("/s/logs/_.._etc_x.log"));
        assert_eq!(dirs.log_path(&RunnerName::from("")), PathBuf::from("/s/logs/runner.log"));
    }
}
