#!/usr/bin/env bash
# Send sre-agent what Alertmanager would: a warning alert, a critical alert, then the
# warning's resolution (the critical one keeps firing). Prints each HTTP code and body;
# exits non-zero on the first answer that is not 2xx.
#
#   SERVICE_URL              default http://localhost:8080 (e.g. through
#                            `kubectl -n agent-sre port-forward svc/sre-agent-service 8080`)
#   SRE_AGENT_WEBHOOK_TOKEN  the bearer token, if the service requires one
#   ALERT_NAMESPACE          namespace label of the test alerts (default agent-sre)
#
# Each run uses new fingerprints, so each run creates two new investigations.
# Needs bash and curl only.
set -euo pipefail

SERVICE_URL="${SERVICE_URL:-http://localhost:8080}"
SERVICE_URL="${SERVICE_URL%/}"
TOKEN="${SRE_AGENT_WEBHOOK_TOKEN:-}"
NAMESPACE="${ALERT_NAMESPACE:-agent-sre}"

now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
run_id="$(printf '%08x%04x' "$(date +%s)" "$((RANDOM % 65536))")"
never="0001-01-01T00:00:00Z"

# alert STATUS ALERTNAME SEVERITY FINGERPRINT ENDS_AT
alert() {
    cat <<JSON
    {
      "status": "$1",
      "labels": {"alertname": "$2", "severity": "$3", "namespace": "$NAMESPACE",
                 "job": "sre-agent-test"},
      "annotations": {"summary": "Test alert ($3) from scripts/test-alert-webhook.sh",
                      "description": "Sent by hand to check the webhook; nothing is wrong."},
      "startsAt": "$now",
      "endsAt": "$5",
      "generatorURL": "",
      "fingerprint": "$4"
    }
JSON
}

# body GROUP_STATUS ALERT_JSON
body() {
    cat <<JSON
{
  "version": "4",
  "groupKey": "{}/{severity=~\"warning|critical\"}:{alertname=\"$2\"}",
  "truncatedAlerts": 0,
  "status": "$1",
  "receiver": "ai-agent-webhook",
  "groupLabels": {"alertname": "$2"},
  "commonLabels": {"alertname": "$2", "namespace": "$NAMESPACE"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager.test",
  "alerts": [
$3
  ]
}
JSON
}

# post TITLE BODY: prints the answer; fails on anything but 2xx.
post() {
    local title="$1" out code
    out="$(mktemp)"
    local -a auth=()
    if [[ -n "$TOKEN" ]]; then
        # The token goes through a file descriptor, not the command line (ps shows argv).
        auth=(-H "@/dev/fd/3")
    fi
    code="$(printf '%s' "$2" | curl -sS -o "$out" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' ${auth[@]+"${auth[@]}"} --data-binary @- \
        --max-time 30 "$SERVICE_URL/webhook/alert" \
        3< <(printf 'Authorization: Bearer %s\n' "$TOKEN"))" || {
        echo "$title: cannot reach $SERVICE_URL/webhook/alert" >&2
        rm -f "$out"
        return 1
    }
    echo "== $title: HTTP $code"
    cat "$out"
    echo
    rm -f "$out"
    if [[ "$code" != 2?? ]]; then
        echo "$title: expected a 2xx answer from $SERVICE_URL/webhook/alert, got $code" >&2
        return 1
    fi
}

warning_fp="${run_id}01"
critical_fp="${run_id}02"

post "warning alert firing" \
    "$(body firing SreAgentTestWarning "$(alert firing SreAgentTestWarning warning "$warning_fp" "$never")")"
post "critical alert firing" \
    "$(body firing SreAgentTestCritical "$(alert firing SreAgentTestCritical critical "$critical_fp" "$never")")"
post "warning alert resolved" \
    "$(body resolved SreAgentTestWarning "$(alert resolved SreAgentTestWarning warning "$warning_fp" "$now")")"

echo "== done: see $SERVICE_URL/investigations"
