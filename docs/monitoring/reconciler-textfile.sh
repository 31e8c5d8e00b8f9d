#!/bin/sh
# Prometheus node_exporter textfile collector for reconcile: writes the health `reconcile status`
# reads from the run history (no Airtable or Twenty request is made). Run it every minute or so,
# e.g. from cron next to the runs:
#
#   * * * * * cd /opt/reconciler && . /etc/reconciler.env && docs/monitoring/reconciler-textfile.sh
#
# and start node_exporter with --collector.textfile.directory=/var/lib/node_exporter/textfile.
# Needs jq. Alert on, for example:
#   reconciler_healthy == 0
#   reconciler_last_success_age_minutes > 45
#   reconciler_dead_letters > 0
set -u
DIR=${TEXTFILE_DIR:-/var/lib/node_exporter/textfile}
OUT="$DIR/reconciler.prom"
TMP="$OUT.$$"

doc=$(.venv/bin/reconcile status --json)
code=$?
if [ "$code" -gt 1 ]; then
    # 2: nothing to watch (the environment is missing), 3: the database cannot be read.
    printf '# HELP reconciler_status_up Whether reconcile status could read the history.\n' >"$TMP"
    printf '# TYPE reconciler_status_up gauge\nreconciler_status_up 0\n' >>"$TMP"
    mv "$TMP" "$OUT"
    exit 0
fi

printf '%s' "$doc" | jq -r '
  def m(name; help): "# HELP reconciler_\(name) \(help)\n# TYPE reconciler_\(name) gauge";
  m("status_up"; "Whether reconcile status could read the history."), "reconciler_status_up 1",
  m("healthy"; "1 when reconcile status exits 0."),
  "reconciler_healthy \(if .healthy then 1 else 0 end)",
  m("last_success_age_minutes"; "Minutes since the mapping last synced successfully (-1: never)."),
  (.mappings[] | select(.watched)
    | "reconciler_last_success_age_minutes{mapping=\"\(.name)\"} \(.age_minutes // -1)"),
  m("dead_letters"; "Dead-lettered records of the mapping."),
  (.mappings[] | "reconciler_dead_letters{mapping=\"\(.name)\"} \(.dead_letters)"),
  m("failing_records"; "Records that failed more than --max-failures times in a row."),
  (.mappings[] | "reconciler_failing_records{mapping=\"\(.name)\"} \(.failing_records)"),
  m("failed_runs_in_a_row"; "Runs in a row in which the mapping failed."),
  (.mappings[] | "reconciler_failed_runs_in_a_row{mapping=\"\(.name)\"} \(.failed_runs_in_a_row)"),
  m("runs"; "Runs not finished: still running, or interrupted with no finished run since."),
  "reconciler_runs{state=\"running\"} \([.runs[] | select(.state == "running")] | length)",
  "reconciler_runs{state=\"interrupted\"} \([.runs[] | select(.state == "interrupted")] | length)"
' >"$TMP" && mv "$TMP" "$OUT"
