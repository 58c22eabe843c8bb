//! The function process under measurement: the release `bootstrap`, started as Lambda starts it (a clean
//! environment with the Lambda variables and the function's own), and its CPU time from `/proc/<pid>/stat`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where the bench looks for the binary: `GHR_LAMBDA_BIN` (relative to the workspace root), else the release build
/// of `scripts/lambda-build.sh`.
pub const BINARY_ENV: &str = "GHR_LAMBDA_BIN";
/// The memory size the process is told it has (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; nothing here enforces it).
pub const MEMORY_MB: u32 = 256;

/// The binary to measure.
pub fn binary() -> Result<PathBuf, String> {
    // `cargo bench` runs the bench in the package's directory: relative paths are taken from the workspace root.
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = match std::env::var(BINARY_ENV).ok().filter(|v| !v.is_empty()) {
        Some(path) => workspace.join(path),
        None => {
            let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| workspace.join("target"), PathBuf::from);
            workspace.join(target).join("lambda/ghr-lambda/bootstrap")
        }
    };
    let path = path.canonicalize().unwrap_or(path);
    if !path.is_file() {
        return Err(format!(
            "{} does not exist: build the release binary with scripts/lambda-build.sh, or point {BINARY_ENV} at one",
            path.display()
        ));
    }
    Ok(path)
}

/// A running function process; killed on drop.
pub struct FunctionProcess {
    child: Child,
}

impl FunctionProcess {
    /// Start `binary` with exactly `env` (nothing inherited from the bench), its output to `log`.
    pub fn spawn(binary: &Path, env: &[(String, String)], log: &Path) -> Result<FunctionProcess, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| format!("opening {}: {e}", log.display()))?;
        let child = Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        Ok(FunctionProcess { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's user + system CPU time so far (all its threads, live and exited).
    pub fn cpu(&self) -> Result<Duration, String> {
        cpu_of(self.pid())
    }

    /// CPU time of the process's live threads, to the nanosecond (`/proc/<pid>/task/*/schedstat`): exact while no
    /// thread has exited, as at a cold start's first answer (`/proc/<pid>/stat` counts in 10 ms ticks).
    pub fn cpu_of_live_threads(&self) -> Result<Duration, String> {
        let dir = format!("/proc/{}/task", self.pid());
        let tasks = std::fs::read_dir(&dir).map_err(|e| format!("reading {dir}: {e}"))?;
        let mut total = 0_u64;
        for task in tasks.flatten() {
            let path = task.path().join("schedstat");
            let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            total += text.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
        }
        Ok(Duration::from_nanos(total))
    }

    /// Peak resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, String> {
        peak_rss_kib(self.pid())
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`): `getconf CLK_TCK`, 100 on Linux x86_64 and arm64.
fn ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|ticks| *ticks > 0)
            .unwrap_or(100)
    })
}

/// `utime + stime` of `pid`, from `/proc/<pid>/stat` (fields 14 and 15, after the parenthesised command name).
pub fn cpu_of(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let after_name = text.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| format!("{path}: no command name"))?;
    // After the name: state (field 3) ... utime is field 14, stime field 15, i.e. the 12th and 13th here.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| -> Result<u64, String> {
        fields.get(index).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{path}: field {} unreadable", index + 3))
    };
    let ticks = field(11)? + field(12)?;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / ticks_per_second()))
}

/// The process's peak resident memory (`VmHWM` of `/proc/<pid>/status`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path}: no VmHWM"))
}
