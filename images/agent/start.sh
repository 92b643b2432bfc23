#!/usr/bin/env bash
# Entrypoint of the Azure Pipelines agent image.
#
# 1. Configures the agent from the environment (unattended, replacing an agent of the same name).
# 2. Runs it with this script's arguments: the operator's pods pass --once, so the agent runs one job and exits.
# 3. Removes the agent's registration when the agent exits or the container is asked to stop (TERM/INT). Removal
#    fails while the agent runs a job, so it is retried; on TERM the job therefore gets to finish within the pod's
#    termination grace period before the agent is stopped.
#
# Environment:
#   AZP_URL          organization URL, e.g. https://dev.azure.com/my-organization (required)
#   AZP_TOKEN        personal access token (Agent Pools: Read & manage), or
#   AZP_TOKEN_FILE   a file holding it (e.g. a mounted Secret), or, without a token,
#   VSTS_AGENT_INPUT_AUTH=SP with VSTS_AGENT_INPUT_CLIENTID, _TENANTID and _CLIENTSECRET: a service principal
#                    (the agent's own unattended inputs; the operator sets them for Entra ID client secrets)
#   AZP_POOL         agent pool (default: Default)
#   AZP_AGENT_NAME   agent name (default: the host name; the operator sets the pod name)
#   AZP_WORK         work folder (default: _work below the agent folder)
#   AZP_AGENT_DIR    where the agent is installed (default: /azp)
#   AZP_REMOVE_RETRY_SECONDS  pause between removal attempts (default: 5)
#   AZP_REMOVE_ATTEMPTS       removal attempts after the agent exited by itself (default: 5); after TERM the
#                             attempts go on until they succeed or the container is killed
set -euo pipefail

log() { printf '%s start-agent: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ -n "${AZP_URL:-}" ]] || die "AZP_URL is not set (e.g. https://dev.azure.com/my-organization)"
if [[ -z "${AZP_TOKEN:-}" && -n "${AZP_TOKEN_FILE:-}" ]]; then
  [[ -r "${AZP_TOKEN_FILE}" ]] || die "AZP_TOKEN_FILE ${AZP_TOKEN_FILE} is not readable"
  AZP_TOKEN="$(tr -d '[:space:]' <"${AZP_TOKEN_FILE}")"
  [[ -n "${AZP_TOKEN}" ]] || die "AZP_TOKEN_FILE ${AZP_TOKEN_FILE} is empty"
fi
if [[ -z "${AZP_TOKEN:-}" && -z "${VSTS_AGENT_INPUT_AUTH:-}" ]]; then
  die "set AZP_TOKEN or AZP_TOKEN_FILE (or VSTS_AGENT_INPUT_AUTH and its inputs for a service principal)"
fi

agent_dir="${AZP_AGENT_DIR:-/azp}"
pool="${AZP_POOL:-Default}"
agent_name="${AZP_AGENT_NAME:-$(hostname)}"
work="${AZP_WORK:-_work}"
retry_seconds="${AZP_REMOVE_RETRY_SECONDS:-5}"
remove_attempts="${AZP_REMOVE_ATTEMPTS:-5}"

# Credentials stay in this shell only. config.sh gets them as its unattended inputs (VSTS_AGENT_INPUT_*) in its
# environment, never on a command line that `ps` shows; the agent (and so the jobs' steps) never gets them.
inputs=()
while IFS= read -r name; do
  inputs+=("${name}=${!name}")
  unset "${name}"
done < <(compgen -e | grep '^VSTS_AGENT_INPUT_' || true)
if [[ -n "${AZP_TOKEN:-}" ]]; then
  inputs+=("VSTS_AGENT_INPUT_AUTH=PAT" "VSTS_AGENT_INPUT_TOKEN=${AZP_TOKEN}")
fi
unset AZP_TOKEN
# Every environment variable becomes an agent capability; these must not.
ignore="AZP_TOKEN,AZP_TOKEN_FILE"
for input in "${inputs[@]}"; do
  [[ ",${ignore}," == *",${input%%=*},"* ]] || ignore+=",${input%%=*}"
done
export VSO_AGENT_IGNORE="${ignore}${VSO_AGENT_IGNORE:+,${VSO_AGENT_IGNORE}}"

# Runs config.sh with the credentials (the later of two same-named inputs wins: AZP_TOKEN over the environment's).
agent_config() (
  ((${#inputs[@]} == 0)) || export "${inputs[@]}"
  exec ./config.sh "$@"
)

cd "${agent_dir}"
[[ -x ./config.sh && -x ./run.sh ]] || die "no agent in ${agent_dir} (config.sh and run.sh are missing)"

configured=false
agent_pid=""

# Removes the registration; $1 = attempts (0: until it succeeds). Returns 1 when every attempt failed.
remove_registration() {
  local attempts="$1" attempt=1
  "${configured}" || return 0
  while :; do
    if agent_config remove --unattended; then
      configured=false
      log "agent ${agent_name} removed from pool ${pool}"
      return 0
    fi
    if ((attempts > 0 && attempt >= attempts)); then
      log "could not remove agent ${agent_name} after ${attempt} attempts"
      return 1
    fi
    log "removing agent ${agent_name} failed (attempt ${attempt}; a job may still be running): retrying in ${retry_seconds}s"
    attempt=$((attempt + 1))
    sleep "${retry_seconds}"
  done
}

# Called by the TERM and INT traps below (shellcheck cannot see that and would call the body unreachable).
# shellcheck disable=SC2317
on_signal() {
  local signal="$1" code="$2"
  trap '' TERM INT
  log "received ${signal}: removing the agent's registration (waits for a running job)"
  remove_registration 0 || true
  if [[ -n "${agent_pid}" ]] && kill -0 "${agent_pid}" 2>/dev/null; then
    kill -TERM "${agent_pid}" 2>/dev/null || true
    wait "${agent_pid}" 2>/dev/null || true
  fi
  exit "${code}"
}

log "configuring agent ${agent_name} for pool ${pool} at ${AZP_URL}"
agent_config --unattended \
  --url "${AZP_URL}" \
  --pool "${pool}" \
  --agent "${agent_name}" \
  --work "${work}" \
  --replace \
  --acceptTeeEula
configured=true

trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT

log "starting the agent${*:+ with arguments: $*}"
# In the background, so that the traps run while the agent works.
./run.sh "$@" &
agent_pid=$!
set +e
wait "${agent_pid}"
code=$?
set -e
agent_pid=""
log "agent exited with code ${code}"

trap '' TERM INT
remove_registration "${remove_attempts}" || true
exit "${code}"
