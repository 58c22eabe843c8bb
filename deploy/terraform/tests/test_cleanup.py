"""The destroy-time cleanup (modules/multi-tenant-runner/scripts/terminate-runners.sh) against the moto EC2 emulator.

`terraform destroy` runs that script after deleting the functions: it must terminate every instance tagged
ghr:environment=<prefix> — including one launched meanwhile by an invocation that was still running — and nothing
else (another deployment's runners, untagged instances). The script runs for real, with the AWS CLI, against a moto
server started by this test on a free port. moto, boto3 and the AWS CLI come from the venv that
scripts/terraform-check.sh prepares; without them the test fails and says so.
"""

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "modules" / "multi-tenant-runner" / "scripts" / "terminate-runners.sh"
REGION = "us-east-1"
PREFIX = "my-saas"
# The cleanup sweeps, waits this long for invocations still running, then sweeps again.
SETTLE_SECONDS = 3
# A late launch lands in that wait: the test polls for the first sweep's terminations this often.
LATE_LAUNCH_POLL_SECONDS = 0.1
SCRIPT_TIMEOUT_SECONDS = 240

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError as error:  # pragma: no cover - reported as a failure below
    IMPORT_ERROR = error
else:
    IMPORT_ERROR = None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TerminateRunners(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if IMPORT_ERROR is not None:
            raise AssertionError(
                f"moto and boto3 are needed ({IMPORT_ERROR}): run scripts/terraform-check.sh, which installs them"
            )
        cls.aws_cli = Path(sys.executable).parent / "aws"
        if not cls.aws_cli.exists():
            raise AssertionError(f"the AWS CLI is needed in {cls.aws_cli.parent}: run scripts/terraform-check.sh")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        cls.port = free_port()
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=cls.port, verbose=False)
        cls.server.start()
        cls.endpoint = f"http://127.0.0.1:{cls.port}"
        cls.credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        cls.ec2 = boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=cls.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def launch(self, tags):
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
        answer = self.ec2.run_instances(
            ImageId="ami-12c6146b", InstanceType="t3.medium", MinCount=1, MaxCount=1, TagSpecifications=spec
        )
        return answer["Instances"][0]["InstanceId"]

    def state(self, instance_id):
        answer = self.ec2.describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]

    def runner_tags(self, environment, tenant):
        return {"ghr:environment": environment, "ghr:tenant_id": tenant, "ghr:tenant_tier": "small"}

    def test_terminates_the_deployments_runners_and_nothing_else(self):
        ours = [self.launch(self.runner_tags(PREFIX, tenant)) for tenant in ("111", "222", "333")]
        stopped = self.launch(self.runner_tags(PREFIX, "444"))
        self.ec2.stop_instances(InstanceIds=[stopped])
        other_deployment = self.launch(self.runner_tags(f"{PREFIX}-staging", "111"))
        untagged = self.launch({})
        late = []

        def late_launch():
            # Once the first sweep has terminated what it found, during the wait for invocations still running.
            deadline = time.monotonic() + SCRIPT_TIMEOUT_SECONDS
            while any(self.state(i) != "terminated" for i in ours) and time.monotonic() < deadline:
                time.sleep(LATE_LAUNCH_POLL_SECONDS)
            late.append(self.launch(self.runner_tags(PREFIX, "555")))

        launcher = threading.Thread(target=late_launch)
        env = dict(
            os.environ,
            **self.credentials,
            GHR_PREFIX=PREFIX,
            GHR_REGION=REGION,
            GHR_SETTLE_SECONDS=str(SETTLE_SECONDS),
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_DEFAULT_REGION=REGION,
            PATH=f"{self.aws_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        env.pop("AWS_PROFILE", None)
        launcher.start()
        result = subprocess.run(
            ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS
        )
        launcher.join()
        self.assertEqual(result.returncode, 0, f"stdout: {result.stdout}\nstderr: {result.stderr}")
        self.assertEqual(len(late), 1, "the late launch happened")
        for instance in ours + [stopped] + late:
            self.assertEqual(self.state(instance), "terminated", f"{instance} of {PREFIX}\n{result.stderr}")
        self.assertEqual(self.state(other_deployment), "running", "another deployment's runner is not touched")
        self.assertEqual(self.state(untagged), "running", "an untagged instance is not touched")
        self.assertIn(f"no runner of {PREFIX} is left", result.stderr)

    def test_without_the_aws_cli_it_fails_and_prints_the_manual_command(self):
        env = {"PATH": "/nonexistent", "GHR_PREFIX": PREFIX, "GHR_REGION": REGION, "HOME": os.environ.get("HOME", "/")}
        bash = subprocess.run(["bash", "-c", "command -v bash"], capture_output=True, text=True).stdout.strip()
        result = subprocess.run([bash, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0, "a cleanup that cannot run must fail the destroy")
        self.assertIn(f"Name=tag:ghr:environment,Values={PREFIX}", result.stderr)


if __name__ == "__main__":
    unittest.main()
