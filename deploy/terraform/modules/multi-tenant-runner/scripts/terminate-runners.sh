#!/usr/bin/env bash
# Terminate every runner instance of one ghr deployment (tag ghr:environment=$GHR_PREFIX) and wait until they
# are gone. Run by `terraform destroy` (terraform_data.runner_cleanup) after the functions are deleted; also
# usable by hand:  GHR_PREFIX=my-saas GHR_REGION=us-east-1 bash terminate-runners.sh
set -euo pipefail

: "${GHR_PREFIX:?set GHR_PREFIX to the module prefix}"
: "${GHR_REGION:?set GHR_REGION to the deployment region}"
settle="${GHR_SETTLE_SECONDS:-60}"

command -v aws >/dev/null || {
    echo "terminate-runners: the AWS CLI is needed to terminate the runners of $GHR_PREFIX; install it, or run" >&2
    echo "  aws ec2 describe-instances --region $GHR_REGION --filters Name=tag:ghr:environment,Values=$GHR_PREFIX Name=instance-state-name,Values=pending,running,stopping,stopped --query 'Reservations[].Instances[].InstanceId' --output text" >&2
    echo "and terminate what it lists" >&2
    exit 1
}

live_runners() {
    aws ec2 describe-instances --region "$GHR_REGION" \
        --filters "Name=tag:ghr:environment,Values=$GHR_PREFIX" \
        "Name=instance-state-name,Values=pending,running,stopping,stopped" \
        --query 'Reservations[].Instances[].InstanceId' --output text
}

terminate_all() {
    local ids
    ids="$(live_runners)"
    if [[ -z "${ids//[[:space:]]/}" || "$ids" == "None" ]]; then
        return 1
    fi
    echo "terminate-runners: terminating $(wc -w <<<"$ids") runner(s) of $GHR_PREFIX: $ids" >&2
    # shellcheck disable=SC2086 # one instance id per word
    aws ec2 terminate-instances --region "$GHR_REGION" --instance-ids $ids >/dev/null
    # shellcheck disable=SC2086
    aws ec2 wait instance-terminated --region "$GHR_REGION" --instance-ids $ids
    return 0
}

terminate_all || true
# A function invocation still running when its function was deleted may launch until its timeout: wait that
# long, then sweep again.
sleep "$settle"
while terminate_all; do :; done
echo "terminate-runners: no runner of $GHR_PREFIX is left in $GHR_REGION" >&2
