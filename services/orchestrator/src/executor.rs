//! The durable executor. An operation's state and each target's step live in the
//! orchestrator's database; the executor only ever moves them forward, one wave at a
//! time, with lifecycle calls that are idempotent by operation ID. Killed at any point and
//! restarted, it reads where each operation stopped and goes on; a call repeated after a
//! crash is answered by the service from its own record and changes nothing twice.
//!
//! Per wave of a deletion: record every target's fingerprints in every service, delete
//! in the catalog, then in the other services in parallel, then verify (state deleted,
//! fingerprints unchanged); an unexpected result halts the operation by itself. A restore
//! goes catalog first, then the others in parallel, then checks each site against the
//! fingerprints recorded when it was deleted.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use micros_platform::{
    clock::SharedClock,
    ids::{OperationId, SiteId},
    lifecycle::{Target, grpc::target_to_proto},
    store::unix_micros,
};
use micros_proto::{
    catalog::v1::RegisterDeletionBudgetRequest,
    lifecycle::v1::{TargetOutcome, TenantState, restore_request::Source},
};
use tonic::{Code, Status};

use crate::{
    error::OrchestratorError,
    fleet::{Fleet, Why},
    model::{OperationState, PlanKind, TargetStatus},
    settings::OrchestratorSettings,
    store::{OperationRecord, OrchestratorStore, PlanRecord, StepRecord, TargetRecord},
};

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    store: OrchestratorStore,
    fleet: Fleet,
    settings: OrchestratorSettings,
    clock: SharedClock,
    driving: Mutex<HashSet<OperationId>>,
}

/// Why a wave stopped short.
enum Stop {
    /// Paused, halted or aborting: someone changed the state; stop driving.
    Interrupted,
    Failed(OrchestratorError),
}

impl From<OrchestratorError> for Stop {
    fn from(error: OrchestratorError) -> Self {
        Stop::Failed(error)
    }
}

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
    )
}

fn lifecycle_target(target: &TargetRecord) -> Target {
    match target.app_installation_id {
        Some(app_installation_id) => Target::AppInstallation {
            site_id: target.site_id,
            app_installation_id,
        },
        None => Target::Site(target.site_id),
    }
}

/// Checks that a service answered for exactly `targets`, in order: verification compares
/// answers with targets by position, so a short or reordered answer must not pass.
fn paired(service: &str, targets: &[Target], outcomes: &[TargetOutcome]) -> Result<(), Stop> {
    let matches = outcomes.len() == targets.len()
        && targets
            .iter()
            .zip(outcomes)
            .all(|(target, outcome)| outcome.target.as_ref() == Some(&target_to_proto(target)));
    if matches {
        Ok(())
    } else {
        Err(Stop::Failed(OrchestratorError::Downstream {
            service: service.to_owned(),
            status: Status::data_loss(format!(
                "answered for {} targets, not the {} asked, in order",
                outcomes.len(),
                targets.len()
            )),
        }))
    }
}

fn positions(targets: &[&TargetRecord]) -> Vec<i64> {
    targets.iter().map(|target| target.position).collect()
}

impl Executor {
    pub fn new(
        store: OrchestratorStore,
        fleet: Fleet,
        settings: OrchestratorSettings,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                fleet,
                settings,
                clock,
                driving: Mutex::new(HashSet::new()),
            }),
        }
    }

    fn now(&self) -> i64 {
        unix_micros(self.inner.clock.now())
    }

    /// Creates the operation of an applicable plan (its targets assigned to waves) and
    /// starts driving it.
    pub async fn start(
        &self,
        plan: &PlanRecord,
        now: i64,
    ) -> Result<(OperationRecord, Vec<TargetRecord>), OrchestratorError> {
        let operation_id = OperationId::new();
        let waves = match plan.kind {
            PlanKind::RestoreSites | PlanKind::PurgeSites => (0..plan.body.targets.len())
                .map(|index| (index / self.inner.settings.restore_batch as usize) as i64)
                .collect(),
            PlanKind::DeleteSites | PlanKind::UninstallApp | PlanKind::RestoreDrill => {
                self.inner.settings.waves(plan.body.targets.len())
            }
        };
        let targets: Vec<TargetRecord> = plan
            .body
            .targets
            .iter()
            .zip(&waves)
            .enumerate()
            .map(|(position, (target, wave))| TargetRecord {
                position: position as i64,
                site_id: target.site_id,
                app_installation_id: target.app_installation_id,
                site_name: target.site_name.clone(),
                site_url: target.site_url.clone(),
                wave: *wave,
                status: TargetStatus::Pending,
                fingerprints: Default::default(),
                error: None,
            })
            .collect();
        let operation = OperationRecord {
            operation_id,
            plan_id: plan.plan_id.to_string(),
            kind: plan.kind,
            state: OperationState::Running,
            undo_operation_id: plan.undo_operation_id,
            point_in_time: plan.point_in_time,
            requested_by: plan.requested_by.clone(),
            approved_by: plan.approved_by.clone(),
            reason: plan.reason.clone(),
            ticket: plan.ticket.clone(),
            waves: waves.last().map_or(0, |last| last + 1),
            halt_reason: None,
            revert_operation_id: (plan.kind == PlanKind::RestoreDrill).then(OperationId::new),
            create_time: now,
            update_time: now,
            finish_time: None,
        };
        self.inner
            .store
            .start_operation(plan, &operation, &targets)
            .await?;
        self.spawn(operation_id);
        Ok((operation, targets))
    }

    /// Picks up every operation left running or aborting (after a restart).
    pub async fn resume_all(&self) -> Result<(), OrchestratorError> {
        for operation_id in self.inner.store.unfinished().await? {
            tracing::info!(%operation_id, "resuming operation");
            self.spawn(operation_id);
        }
        Ok(())
    }

    /// Drives the operation in the background unless this process already does.
    pub fn spawn(&self, operation_id: OperationId) {
        {
            let mut driving = self
                .inner
                .driving
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !driving.insert(operation_id) {
                return;
            }
        }
        let executor = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = executor.drive(operation_id).await {
                    tracing::error!(%operation_id, %error, "operation stopped on an error");
                }
                executor
                    .inner
                    .driving
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&operation_id);
                // A resume or abort that arrived while this task was on its way out found
                // it still registered and did not start another: look once more.
                let again = match executor
                    .inner
                    .store
                    .operation(&operation_id.to_string())
                    .await
                {
                    Ok(operation) => matches!(
                        operation.state,
                        OperationState::Running | OperationState::Aborting
                    ),
                    Err(_) => false,
                };
                let reclaimed = again
                    && executor
                        .inner
                        .driving
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(operation_id);
                if !reclaimed {
                    return;
                }
            }
        });
    }

    async fn drive(&self, operation_id: OperationId) -> Result<(), OrchestratorError> {
        loop {
            let operation = self
                .inner
                .store
                .operation(&operation_id.to_string())
                .await?;
            let outcome = match operation.state {
                OperationState::Running => self.step(&operation).await,
                OperationState::Aborting => self.abort(&operation).await,
                _ => return Ok(()),
            };
            match outcome {
                Ok(true) => continue,
                Ok(false) | Err(Stop::Interrupted) => return Ok(()),
                Err(Stop::Failed(error)) => {
                    let reason = error.to_string();
                    tracing::warn!(%operation_id, %reason, "halting operation");
                    self.inner
                        .store
                        .transition(
                            operation_id,
                            operation.state,
                            OperationState::Halted,
                            Some(&reason),
                            self.now(),
                        )
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    /// One wave forward; `Ok(false)` when the operation has finished.
    async fn step(&self, operation: &OperationRecord) -> Result<bool, Stop> {
        let targets = self.inner.store.targets(operation.operation_id).await?;
        let Some(wave) = targets
            .iter()
            .filter(|target| target.status != operation.kind.done())
            .map(|target| target.wave)
            .min()
        else {
            self.inner
                .store
                .transition(
                    operation.operation_id,
                    OperationState::Running,
                    OperationState::Succeeded,
                    None,
                    self.now(),
                )
                .await?;
            tracing::info!(operation_id = %operation.operation_id, "operation succeeded");
            return Ok(false);
        };
        let in_wave: Vec<&TargetRecord> = targets
            .iter()
            .filter(|target| target.wave == wave)
            .collect();
        match operation.kind {
            PlanKind::DeleteSites | PlanKind::UninstallApp => {
                self.delete_wave(operation, wave, &in_wave).await?
            }
            PlanKind::RestoreSites => self.restore_wave(operation, wave, &in_wave).await?,
            PlanKind::PurgeSites => self.purge_wave(operation, wave, &in_wave).await?,
            PlanKind::RestoreDrill => {
                let deleting = in_wave.iter().any(|target| {
                    matches!(target.status, TargetStatus::Pending | TargetStatus::Deleted)
                });
                if deleting {
                    self.delete_wave(operation, wave, &in_wave).await?;
                }
                self.drill_restore_wave(operation, wave).await?;
            }
        }
        Ok(true)
    }

    fn why(operation: &OperationRecord) -> Why {
        Why {
            reason: operation.reason.clone(),
            ticket: operation.ticket.clone(),
        }
    }

    /// Calls `call` until it succeeds, retrying a service that is down with backoff; stops
    /// when the operation is paused or aborted meanwhile.
    async fn persist<T, F, Fut>(
        &self,
        operation: &OperationRecord,
        service: &str,
        mut call: F,
    ) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut delay = Duration::from_millis(100);
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(status) if retryable(&status) => {
                    tracing::warn!(operation_id = %operation.operation_id, service, code = ?status.code(), ?delay, "service unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.inner.settings.max_backoff);
                    let current = self
                        .inner
                        .store
                        .operation(&operation.operation_id.to_string())
                        .await?;
                    if current.state != operation.state {
                        return Err(Stop::Interrupted);
                    }
                }
                Err(status) => {
                    return Err(Stop::Failed(OrchestratorError::Downstream {
                        service: service.to_owned(),
                        status,
                    }));
                }
            }
        }
    }

    async fn log(
        &self,
        operation: &OperationRecord,
        wave: i64,
        service: &str,
        action: &str,
        targets: usize,
        outcomes: &[TargetOutcome],
    ) -> Result<(), Stop> {
        let step = StepRecord {
            wave,
            service: service.to_owned(),
            action: action.to_owned(),
            targets: targets as i64,
            rows_affected: outcomes.iter().map(|outcome| outcome.rows_affected).sum(),
        };
        self.inner
            .store
            .log_step(operation.operation_id, &step, self.now())
            .await?;
        Ok(())
    }

    /// Describes `targets` in every service: per service, the outcomes in target order.
    async fn describe_all(
        &self,
        operation: &OperationRecord,
        targets: &[Target],
    ) -> Result<BTreeMap<String, Vec<TargetOutcome>>, Stop> {
        let fleet = &self.inner.fleet;
        let calls = fleet.services().iter().map(|service| async move {
            let outcomes = self
                .persist(operation, service, || fleet.describe(service, targets))
                .await?;
            paired(service, targets, &outcomes)?;
            Ok::<_, Stop>((service.clone(), outcomes))
        });
        Ok(futures::future::try_join_all(calls)
            .await?
            .into_iter()
            .collect())
    }

    /// Describes `targets` (the lifecycle form of `records`) in every service, checks
    /// every answer with `check` (see [`Self::check_all`]) and, when all pass, moves the
    /// records to `status`.
    async fn verify_and_mark(
        &self,
        operation: &OperationRecord,
        records: &[&TargetRecord],
        targets: &[Target],
        status: TargetStatus,
        check: impl Fn(&str, &TargetRecord, &TargetOutcome) -> Option<String>,
    ) -> Result<(), Stop> {
        let described = self.describe_all(operation, targets).await?;
        self.check_all(operation, records, &described, check)
            .await?;
        self.inner
            .store
            .set_status(
                operation.operation_id,
                &positions(records),
                status,
                None,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// Checks every service's answer for every target with `check`, which says what is
    /// wrong, if anything: the first problem is recorded on its target and halts the
    /// operation.
    async fn check_all(
        &self,
        operation: &OperationRecord,
        targets: &[&TargetRecord],
        described: &BTreeMap<String, Vec<TargetOutcome>>,
        check: impl Fn(&str, &TargetRecord, &TargetOutcome) -> Option<String>,
    ) -> Result<(), Stop> {
        for (service, outcomes) in described {
            for (target, outcome) in targets.iter().zip(outcomes) {
                if let Some(problem) = check(service, target, outcome) {
                    self.inner
                        .store
                        .set_error(operation.operation_id, target.position, &problem)
                        .await?;
                    return Err(Stop::Failed(OrchestratorError::Unexpected(problem)));
                }
            }
        }
        Ok(())
    }

    /// Runs `call` on every service but the catalog, in parallel.
    async fn on_other_services<F, Fut>(
        &self,
        operation: &OperationRecord,
        wave: i64,
        action: &str,
        count: usize,
        call: F,
    ) -> Result<Vec<(String, Vec<TargetOutcome>)>, Stop>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<TargetOutcome>, Status>>,
    {
        let fleet = &self.inner.fleet;
        let calls = fleet.after_catalog().iter().map(|service| {
            let call = &call;
            async move {
                let outcomes = self
                    .persist(operation, service, || call(service.clone()))
                    .await?;
                self.log(operation, wave, service, action, count, &outcomes)
                    .await?;
                Ok::<_, Stop>((service.clone(), outcomes))
            }
        });
        futures::future::try_join_all(calls).await
    }

    async fn delete_wave(
        &self,
        operation: &OperationRecord,
        wave: i64,
        in_wave: &[&TargetRecord],
    ) -> Result<(), Stop> {
        let store = &self.inner.store;
        let fleet = &self.inner.fleet;
        let why = Self::why(operation);
        let operation_id = operation.operation_id;
        // Only an approved operation gets a budget; anything else stays within the
        // catalog's hourly rate, whoever runs it.
        if operation.kind.deletes_sites() && operation.approved_by.is_some() {
            let planned_sites = store.targets(operation_id).await?.len();
            let budget = RegisterDeletionBudgetRequest {
                operation_id: operation_id.to_string(),
                sites: i32::try_from(planned_sites).unwrap_or(i32::MAX),
                approved_by: operation.approved_by.clone().unwrap_or_default(),
            };
            self.persist(operation, "catalog", || {
                let mut catalog = fleet.catalog();
                let budget = budget.clone();
                async move { catalog.register_deletion_budget(budget).await }
            })
            .await?;
        }

        // Each service's SoftDelete answers with the target's fingerprint from inside
        // its delete transaction: exactly what a restore must bring back. Those are
        // recorded, not a Describe made earlier, which a write in between would spoil.
        let pending: Vec<&TargetRecord> = in_wave
            .iter()
            .copied()
            .filter(|target| target.status == TargetStatus::Pending)
            .collect();
        if !pending.is_empty() {
            let targets: Vec<Target> = pending
                .iter()
                .map(|target| lifecycle_target(target))
                .collect();
            let catalog = self
                .persist(operation, "catalog", || {
                    fleet.soft_delete("catalog", &targets, operation_id, &why)
                })
                .await?;
            self.log(
                operation,
                wave,
                "catalog",
                "soft_delete",
                targets.len(),
                &catalog,
            )
            .await?;
            let mut answers = self
                .on_other_services(operation, wave, "soft_delete", targets.len(), |service| {
                    let (targets, why) = (targets.clone(), why.clone());
                    async move {
                        fleet
                            .soft_delete(&service, &targets, operation_id, &why)
                            .await
                    }
                })
                .await?;
            answers.push(("catalog".to_owned(), catalog));
            let mut prints: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
            for (service, outcomes) in &answers {
                paired(service, &targets, outcomes)?;
                for (target, outcome) in pending.iter().zip(outcomes) {
                    prints
                        .entry(target.position)
                        .or_default()
                        .insert(service.clone(), outcome.fingerprint.clone());
                }
            }
            store
                .set_status(
                    operation_id,
                    &positions(&pending),
                    TargetStatus::Deleted,
                    Some(&prints),
                    self.now(),
                )
                .await?;
        }

        let current = store.targets(operation_id).await?;
        let to_verify: Vec<&TargetRecord> = current
            .iter()
            .filter(|target| target.wave == wave)
            .collect();
        let targets: Vec<Target> = to_verify
            .iter()
            .map(|target| lifecycle_target(target))
            .collect();
        self.verify_and_mark(operation, &to_verify, &targets, TargetStatus::Verified, |service, target, outcome| {
            let deleted = match target.app_installation_id {
                None => {
                    outcome.state == TenantState::Deleted as i32
                        && target.fingerprints.get(service) == Some(&outcome.fingerprint)
                }
                Some(_) => outcome.counts.iter().all(|count| count.live == 0),
            };
            (!deleted).then(|| {
                format!(
                "{} in {service} is not as planned after the delete: state {}, fingerprint {} (recorded {})",
                lifecycle_target(target),
                outcome.state().as_str_name(),
                outcome.fingerprint,
                target
                    .fingerprints
                    .get(service)
                    .cloned()
                    .unwrap_or_default()
            )
            })
        })
            .await?;
        tracing::info!(%operation_id, wave, targets = to_verify.len(), "wave deleted and verified");
        Ok(())
    }

    async fn restore_wave(
        &self,
        operation: &OperationRecord,
        wave: i64,
        in_wave: &[&TargetRecord],
    ) -> Result<(), Stop> {
        let store = &self.inner.store;
        let fleet = &self.inner.fleet;
        let why = Self::why(operation);
        let operation_id = operation.operation_id;
        let source = match (operation.undo_operation_id, operation.point_in_time) {
            (Some(undo), _) => Source::UndoOperationId(undo.to_string()),
            (None, Some(at)) => Source::PointInTime(micros_platform::store::timestamp(at)),
            (None, None) => {
                return Err(Stop::Failed(OrchestratorError::Platform(
                    micros_platform::lifecycle::LifecycleError::Misuse(
                        "a restore without a source".to_owned(),
                    ),
                )));
            }
        };

        let pending: Vec<&TargetRecord> = in_wave
            .iter()
            .copied()
            .filter(|target| target.status == TargetStatus::Pending)
            .collect();
        if !pending.is_empty() {
            let targets: Vec<Target> = pending
                .iter()
                .map(|target| lifecycle_target(target))
                .collect();
            let outcomes = self
                .persist(operation, "catalog", || {
                    fleet.restore("catalog", &targets, operation_id, source.clone(), &why)
                })
                .await?;
            self.log(
                operation,
                wave,
                "catalog",
                "restore",
                targets.len(),
                &outcomes,
            )
            .await?;
            store
                .set_status(
                    operation_id,
                    &positions(&pending),
                    TargetStatus::CatalogRestored,
                    None,
                    self.now(),
                )
                .await?;
        }
        let catalog_done: Vec<&TargetRecord> = in_wave
            .iter()
            .copied()
            .filter(|target| {
                matches!(
                    target.status,
                    TargetStatus::Pending | TargetStatus::CatalogRestored
                )
            })
            .collect();
        if !catalog_done.is_empty() {
            let targets: Vec<Target> = catalog_done
                .iter()
                .map(|target| lifecycle_target(target))
                .collect();
            self.on_other_services(operation, wave, "restore", targets.len(), |service| {
                let (targets, why, source) = (targets.clone(), why.clone(), source.clone());
                async move {
                    fleet
                        .restore(&service, &targets, operation_id, source, &why)
                        .await
                }
            })
            .await?;
            store
                .set_status(
                    operation_id,
                    &positions(&catalog_done),
                    TargetStatus::Restored,
                    None,
                    self.now(),
                )
                .await?;
        }

        let recorded: BTreeMap<SiteId, BTreeMap<String, String>> = match operation.undo_operation_id
        {
            Some(undo) => store.recorded_fingerprints(undo).await?,
            None => BTreeMap::new(),
        };
        let targets: Vec<Target> = in_wave
            .iter()
            .map(|target| lifecycle_target(target))
            .collect();
        self.verify_and_mark(operation, in_wave, &targets, TargetStatus::Verified, |service, target, outcome| {
            let expected = recorded
                .get(&target.site_id)
                .and_then(|prints| prints.get(service));
            let active = outcome.state == TenantState::Active as i32;
            // When the orchestrator made the deletion, every site must match what it
            // recorded; a missing record is a failure, not a pass.
            let matches = match expected {
                Some(print) => *print == outcome.fingerprint,
                None => recorded.is_empty(),
            };
            (!(active && matches)).then(|| {
                format!(
                "{} in {service} did not come back as recorded: state {}, fingerprint {} (recorded at deletion {})",
                target.site_id,
                outcome.state().as_str_name(),
                outcome.fingerprint,
                expected.cloned().unwrap_or_else(|| "none".to_owned())
            )
            })
        })
            .await?;
        tracing::info!(%operation_id, wave, targets = in_wave.len(), "wave restored and verified");
        Ok(())
    }

    /// A drill's second half for one wave: restore what the wave deleted (catalog first),
    /// then check every service's fingerprint against the one recorded before.
    async fn drill_restore_wave(&self, operation: &OperationRecord, wave: i64) -> Result<(), Stop> {
        let store = &self.inner.store;
        let fleet = &self.inner.fleet;
        let why = Self::why(operation);
        let operation_id = operation.operation_id;
        let revert = operation.revert_operation_id.ok_or_else(|| {
            Stop::Failed(OrchestratorError::Platform(
                micros_platform::lifecycle::LifecycleError::Misuse(
                    "a drill without its restore operation".to_owned(),
                ),
            ))
        })?;
        let current = store.targets(operation_id).await?;
        let in_wave: Vec<&TargetRecord> = current
            .iter()
            .filter(|target| target.wave == wave)
            .collect();
        let targets: Vec<Target> = in_wave
            .iter()
            .map(|target| lifecycle_target(target))
            .collect();
        let source = Source::UndoOperationId(operation_id.to_string());
        let waiting: Vec<&TargetRecord> = in_wave
            .iter()
            .copied()
            .filter(|target| target.status == TargetStatus::Verified)
            .collect();
        if !waiting.is_empty() {
            let outcomes = self
                .persist(operation, "catalog", || {
                    fleet.restore("catalog", &targets, revert, source.clone(), &why)
                })
                .await?;
            self.log(
                operation,
                wave,
                "catalog",
                "restore",
                targets.len(),
                &outcomes,
            )
            .await?;
            store
                .set_status(
                    operation_id,
                    &positions(&waiting),
                    TargetStatus::CatalogRestored,
                    None,
                    self.now(),
                )
                .await?;
        }
        self.on_other_services(operation, wave, "restore", targets.len(), |service| {
            let (targets, why, source) = (targets.clone(), why.clone(), source.clone());
            async move {
                fleet
                    .restore(&service, &targets, revert, source, &why)
                    .await
            }
        })
        .await?;
        self.verify_and_mark(operation, &in_wave, &targets, TargetStatus::Reverted, |service, target, outcome| {
            let back = outcome.state == TenantState::Active as i32
                && target.fingerprints.get(service) == Some(&outcome.fingerprint);
            (!back).then(|| {
                format!(
                "{} in {service} did not come back from the drill: state {}, fingerprint {} (recorded {})",
                target.site_id,
                outcome.state().as_str_name(),
                outcome.fingerprint,
                target
                    .fingerprints
                    .get(service)
                    .cloned()
                    .unwrap_or_default()
            )
            })
        })
            .await?;
        tracing::info!(%operation_id, wave, targets = in_wave.len(), "drill wave deleted, restored and verified");
        Ok(())
    }

    /// Purges a wave: every service validates first (a hold or an unexpired site
    /// anywhere stops the wave before anything is deleted), then the other services purge
    /// and the catalog last; then every service must report the sites purged.
    async fn purge_wave(
        &self,
        operation: &OperationRecord,
        wave: i64,
        in_wave: &[&TargetRecord],
    ) -> Result<(), Stop> {
        let fleet = &self.inner.fleet;
        let why = Self::why(operation);
        let operation_id = operation.operation_id;
        let targets: Vec<Target> = in_wave
            .iter()
            .map(|target| lifecycle_target(target))
            .collect();
        for service in fleet.services() {
            self.persist(operation, service, || {
                fleet.purge(service, &targets, operation_id, &why, true)
            })
            .await?;
        }
        self.on_other_services(operation, wave, "purge", targets.len(), |service| {
            let (targets, why) = (targets.clone(), why.clone());
            async move {
                fleet
                    .purge(&service, &targets, operation_id, &why, false)
                    .await
            }
        })
        .await?;
        let outcomes = self
            .persist(operation, "catalog", || {
                fleet.purge("catalog", &targets, operation_id, &why, false)
            })
            .await?;
        self.log(
            operation,
            wave,
            "catalog",
            "purge",
            targets.len(),
            &outcomes,
        )
        .await?;
        self.verify_and_mark(
            operation,
            in_wave,
            &targets,
            TargetStatus::Verified,
            |service, target, outcome| {
                let gone = outcome.state == TenantState::Purged as i32
                    || outcome.state == TenantState::Absent as i32;
                (!gone).then(|| {
                    format!(
                        "{} in {service} is {} after the purge",
                        target.site_id,
                        outcome.state().as_str_name()
                    )
                })
            },
        )
        .await?;
        Ok(())
    }

    /// Undoes what the operation deleted (catalog first), then marks it aborted.
    async fn abort(&self, operation: &OperationRecord) -> Result<bool, Stop> {
        let store = &self.inner.store;
        let fleet = &self.inner.fleet;
        let why = Why {
            reason: format!("abort of {}: {}", operation.operation_id, operation.reason),
            ticket: operation.ticket.clone(),
        };
        let operation_id = operation.operation_id;
        let touched: Vec<TargetRecord> = store
            .targets(operation_id)
            .await?
            .into_iter()
            .filter(|target| {
                matches!(
                    operation.kind,
                    PlanKind::DeleteSites | PlanKind::UninstallApp
                ) && matches!(
                    target.status,
                    TargetStatus::Deleted | TargetStatus::Verified
                )
            })
            .collect();
        if !touched.is_empty() {
            let revert = operation.revert_operation_id.ok_or_else(|| {
                Stop::Failed(OrchestratorError::Platform(
                    micros_platform::lifecycle::LifecycleError::Misuse(
                        "aborting without a revert operation".to_owned(),
                    ),
                ))
            })?;
            let targets: Vec<Target> = touched.iter().map(lifecycle_target).collect();
            let source = Source::UndoOperationId(operation_id.to_string());
            let outcomes = self
                .persist(operation, "catalog", || {
                    fleet.restore("catalog", &targets, revert, source.clone(), &why)
                })
                .await?;
            self.log(operation, -1, "catalog", "revert", targets.len(), &outcomes)
                .await?;
            self.on_other_services(operation, -1, "revert", targets.len(), |service| {
                let (targets, why, source) = (targets.clone(), why.clone(), source.clone());
                async move {
                    fleet
                        .restore(&service, &targets, revert, source, &why)
                        .await
                }
            })
            .await?;
            let reverted: Vec<i64> = touched.iter().map(|target| target.position).collect();
            store
                .set_status(
                    operation_id,
                    &reverted,
                    TargetStatus::Reverted,
                    None,
                    self.now(),
                )
                .await?;
        }
        store
            .transition(
                operation_id,
                OperationState::Aborting,
                OperationState::Aborted,
                None,
                self.now(),
            )
            .await?;
        tracing::info!(%operation_id, reverted = touched.len(), "operation aborted and undone");
        Ok(false)
    }
}
