//! What Prometheus needs from the manifests: where to scrape each pod (the
//! `prometheus.io/*` annotations, on the descriptor's metrics port) and the alert rules,
//! a Prometheus rule file kept in a ConfigMap of fixed name that a Prometheus mounts.
//!
//! The rules watch what the April 2022 deletion would have shown: sites soft-deleted
//! faster than any routine change, deletions refused by a service's guard (someone is
//! deleting outside an approved operation), an operation that halted on an unexpected
//! result and waits for an operator, and a scheduled restore drill that failed or was
//! slow (the restore path broken before an incident needs it).

use micros_platform::service::ServiceDescriptor;
use serde_json::{Value, json};

/// The rule file under the output directory; `tests/telemetry.rs` checks that every
/// metric its expressions name is one a service exports.
pub const RULES_FILE: &str = "base/monitoring/alert-rules.yaml";
/// The ConfigMap that holds [`RULES_FILE`] as `alert-rules.yaml`.
pub const RULES_CONFIG_MAP: &str = "micros-alert-rules";

/// Sites soft-deleted by one service within [`SPIKE_WINDOW`] above which an operator is
/// paged: the catalog lets 5 an hour through without an approved operation, so more
/// than that in minutes is a bulk deletion, approved or not, and someone should watch it.
const SPIKE_SITES: u32 = 5;
const SPIKE_WINDOW: &str = "10m";

pub fn scrape_annotations(service: &ServiceDescriptor) -> Value {
    json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": service.metrics_port.to_string(),
        "prometheus.io/path": "/metrics",
    })
}

/// The kustomize `configMapGenerator` entry for the rules.
pub fn rules_config_map() -> Value {
    json!({
        "name": RULES_CONFIG_MAP,
        "files": [format!("alert-rules.yaml={}", RULES_FILE.trim_start_matches("base/"))],
        "options": { "disableNameSuffixHash": true },
    })
}

/// The rule file's YAML.
pub fn alert_rules() -> anyhow::Result<String> {
    let rules = json!({
        "groups": [{
            "name": "micros-tenant-lifecycle",
            "rules": [
                {
                    "alert": "MicrosSiteDeletionSpike",
                    "expr": format!(
                        "sum by (service_name) (increase(micros_lifecycle_sites_soft_deleted_total[{SPIKE_WINDOW}])) > {SPIKE_SITES}"
                    ),
                    "labels": { "severity": "page" },
                    "annotations": {
                        "summary": "{{ $labels.service_name }} soft-deleted {{ $value | humanize }} sites in the last 10 minutes",
                        "description": "A bulk site deletion is under way. Check that it is an approved operation (`micros report`) and pause or abort it if not.",
                    },
                },
                {
                    "alert": "MicrosSiteDeletionRefused",
                    "expr": "sum by (service_name, reason) (increase(micros_lifecycle_refusals_total{reason=~\"DELETION_RATE_EXCEEDED|DELETION_BUDGET_EXCEEDED\"}[10m])) > 0",
                    "labels": { "severity": "warning" },
                    "annotations": {
                        "summary": "{{ $labels.service_name }} refused site deletions ({{ $labels.reason }})",
                        "description": "Someone is deleting sites beyond the rolling rate or an operation's approved budget; the audit log names the principal and operation.",
                    },
                },
                {
                    "alert": "MicrosRestoreDrillFailed",
                    "expr": "max(micros_orchestrator_drill_last_ok) == 0",
                    "labels": { "severity": "warning" },
                    "annotations": {
                        "summary": "The last restore drill did not bring its copies back",
                        "description": "A drill on scratch copies halted or was aborted: the restore path is broken before any incident needs it. `micros report` on the drill names the site and service.",
                    },
                },
                {
                    "alert": "MicrosRestoreDrillSlow",
                    "expr": "max(micros_orchestrator_drill_last_duration_seconds) > 600",
                    "labels": { "severity": "warning" },
                    "annotations": {
                        "summary": "The last restore drill took {{ $value | humanizeDuration }}",
                        "description": "Restoring a handful of sites took over ten minutes; an incident's hundreds would take far longer. `micros report` on the drill shows each wave's time per service.",
                    },
                },
                {
                    "alert": "MicrosOperationHalted",
                    "expr": "max(micros_orchestrator_operations{state=\"halted\"}) > 0",
                    "for": "1m",
                    "labels": { "severity": "page" },
                    "annotations": {
                        "summary": "{{ $value }} orchestrator operation(s) halted",
                        "description": "An operation stopped on an unexpected result and waits: `micros watch` names it and the reason; resume or abort it.",
                    },
                },
            ],
        }],
    });
    super::to_yaml(RULES_FILE, &rules)
}
