//! `ghr demo` end to end as an operator runs it: it passes its invariants, and with `--keep-running` the
//! server stays up with the latency histograms on `/metrics` until Ctrl-C, then exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO_DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn demo_passes_and_keeps_serving_metrics() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(["demo", "--keep-running"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ghr demo starts");
    // The report is on stdout, progress and the `--keep-running` hints on stderr: one channel reads both.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    forward_lines(stdout, lines_tx.clone());
    forward_lines(stderr, lines_tx);

    let started = Instant::now();
    let mut output = Vec::new();
    let metrics_url = loop {
        let line = lines_rx.recv_timeout(DEMO_DEADLINE.saturating_sub(started.elapsed())).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the demo did not reach --keep-running in time:\n{}", output.join("\n"))
        });
        output.push(line.clone());
        if let Some(url) = line.trim().strip_prefix("metrics    curl ") {
            break url.to_owned();
        }
    };
    // The report was written before the hints; its last line may still be on its way through the reader.
    while !output.iter().any(|line| line.starts_with("invariants:")) {
        match lines_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => output.push(line),
            Err(_) => break,
        }
    }
    let report = output.join("\n");
    assert!(report.contains("invariants: PASS"), "{report}");
    for tenant in ["acme", "globex", "initech", "jane"] {
        assert!(report.contains(tenant), "the report lists {tenant}:\n{report}");
    }

    let body = reqwest::blocking::get(&metrics_url).and_then(|r| r.text()).expect("metrics answer");
    for histogram in [
        "ghr_job_queued_to_launched_seconds_bucket",
        "ghr_job_queued_to_in_progress_seconds_bucket",
        "ghr_dispatch_overhead_seconds_bucket",
        "ghr_webhook_ack_seconds_bucket",
    ] {
        assert!(body.contains(histogram), "/metrics lacks {histogram}");
    }
    for series in ["ghr_runners_launched_total", "ghr_github_api_calls_total", "ghr_jobs{status=\"completed\"}"] {
        assert!(body.contains(series), "/metrics lacks {series}");
    }

    // Ctrl-C ends it; a passing report means exit status 0.
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("waiting for the demo") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not stop after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "ghr demo exited with {exit}");
}

/// Send each line `from` writes into `to`, on a thread of its own.
fn forward_lines(from: impl std::io::Read + Send + 'static, to: std::sync::mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}
