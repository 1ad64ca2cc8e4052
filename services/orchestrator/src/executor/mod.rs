//! The durable, fenced executor. An operation's state and each target's step live in the
//! orchestrator's database; the executor only ever moves them forward, one wave at a
//! time, with lifecycle calls that are idempotent by operation ID.
//!
//! * **Claims.** A runner (one orchestrator process) drives an operation only while it
//!   holds a claim on it: a lease renewed every third of `runner_lease`, with a fencing
//!   token that grows with every claim. Every write the executor makes checks the token,
//!   and every lifecycle call carries it, so a runner that lost the operation (a stale
//!   replica, a killed process's call still in flight) can change nothing anywhere.
//!   Replicas sweep for operations nobody holds and take them over.
//! * **Steps recorded before they happen.** A wave's targets are durably `in_flight`
//!   before the first service call that changes them; a resumed or aborted operation
//!   knows what may have changed even when no answer came back.
//! * **Abort** undoes deletions (in-flight and done) in every service, catalog first;
//!   for restores and purges it finishes the steps under way and stops. A halted abort
//!   resumes as an abort.

mod abort;
mod copies;
mod rehearsal;
mod waves;

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use micros_platform::{
    clock::SharedClock,
    ids::OperationId,
    lifecycle::{Target, grpc::target_to_proto},
    store::unix_micros,
};
use micros_proto::lifecycle::v1::{TargetOutcome, restore_request::Source};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    error::OrchestratorError,
    fleet::{Fleet, Why},
    model::{OperationState, PlanKind, TargetStatus},
    settings::OrchestratorSettings,
    store::{Claim, OperationRecord, OrchestratorStore, PlanRecord, StepRecord, TargetRecord},
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
    /// This process's name among the runners.
    runner: String,
    /// Operations this process is driving (or about to).
    driving: Mutex<HashSet<OperationId>>,
}

/// Why a step stopped short.
enum Stop {
    /// Paused, halted or aborting: someone changed the state; stop driving.
    Interrupted,
    /// Another runner holds the operation now; stop without writing anything.
    Fenced,
    Failed(OrchestratorError),
}

impl From<OrchestratorError> for Stop {
    fn from(error: OrchestratorError) -> Self {
        match error {
            OrchestratorError::Fenced { .. } => Stop::Fenced,
            error => Stop::Failed(error),
        }
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

/// A service refused the call because a newer lease token has reached the site: this
/// runner lost the operation.
fn stale_lease(status: &Status) -> bool {
    status.code() == Code::Aborted
        && status
            .get_error_details()
            .error_info()
            .is_some_and(|info| info.reason == "STALE_LEASE")
}

/// Wall-clock now, in unix µs: runner claims measure process liveness, not the service
/// clock that tests move to make retention pass.
fn wall_now() -> i64 {
    unix_micros(SystemTime::now())
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// What the lifecycle calls act on for `target`: its scratch copy in a drill on copies,
/// else the site or app installation itself.
fn lifecycle_target(target: &TargetRecord) -> Target {
    if let Some(scratch) = target.scratch_site_id {
        return Target::Site(scratch);
    }
    match target.app_installation_id {
        Some(app_installation_id) => Target::AppInstallation {
            site_id: target.site_id,
            app_installation_id,
        },
        None => Target::Site(target.site_id),
    }
}

fn lifecycle_targets(records: &[&TargetRecord]) -> Vec<Target> {
    records
        .iter()
        .map(|target| lifecycle_target(target))
        .collect()
}

fn positions(targets: &[&TargetRecord]) -> Vec<i64> {
    targets.iter().map(|target| target.position).collect()
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

impl Executor {
    pub fn new(
        store: OrchestratorStore,
        fleet: Fleet,
        settings: OrchestratorSettings,
        clock: SharedClock,
    ) -> Self {
        let runner = settings.runner();
        Self {
            inner: Arc::new(Inner {
                store,
                fleet,
                settings,
                clock,
                runner,
                driving: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Creates the operation of an applicable plan (its sites leased, its targets
    /// assigned to waves) and starts driving it.
    pub async fn start(
        &self,
        plan: &PlanRecord,
        now: i64,
    ) -> Result<(OperationRecord, Vec<TargetRecord>), OrchestratorError> {
        let operation_id = OperationId::new();
        let settings = &self.inner.settings;
        let waves = match plan.kind {
            PlanKind::RestoreSites | PlanKind::PurgeSites => (0..plan.body.targets.len())
                .map(|index| (index / settings.restore_batch as usize) as i64)
                .collect(),
            PlanKind::DeleteSites | PlanKind::UninstallApp | PlanKind::RestoreDrill => {
                match plan.body.canary {
                    0 => settings.waves(plan.body.targets.len()),
                    canary => settings.waves_after(plan.body.targets.len(), canary),
                }
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
                changed_time: None,
                done_time: None,
                scratch_site_id: None,
            })
            .collect();
        let operation = OperationRecord {
            operation_id,
            plan_id: plan.plan_id,
            kind: plan.kind,
            state: OperationState::Running,
            restore_source: plan.restore_source,
            requested_by: plan.requested_by.clone(),
            approved_by: plan.approved_by.clone(),
            reason: plan.reason.clone(),
            ticket: plan.ticket.clone(),
            waves: waves.last().map_or(0, |last| last + 1),
            halt_reason: None,
            revert_operation_id: (plan.kind == PlanKind::RestoreDrill).then(OperationId::new),
            abort_requested: false,
            on_copies: plan.kind == PlanKind::RestoreDrill && !plan.body.drill_real_sites,
            rehearsal: crate::store::Rehearsal {
                operation_id: plan.kind.rehearses().then(OperationId::new),
                ..Default::default()
            },
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

    /// Takes over, now and then every half `runner_lease`, every operation left running
    /// or aborting that no live runner holds (after a restart, or a replica's death).
    pub fn sweep(&self) {
        let executor = self.clone();
        let period = self.inner.settings.runner_lease / 2;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match executor
                    .inner
                    .store
                    .claimable(&executor.inner.runner, wall_now())
                    .await
                {
                    Ok(operations) => {
                        for operation_id in operations {
                            executor.spawn(operation_id);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "looking for operations to drive failed"),
                }
            }
        });
    }

    /// Drives the operation in the background unless this process already does.
    pub fn spawn(&self, operation_id: OperationId) {
        if !self.mark_driving(operation_id) {
            return;
        }
        let executor = self.clone();
        tokio::spawn(async move {
            loop {
                let claimed = match executor.drive_claimed(operation_id).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::error!(%operation_id, %error, "operation stopped on an error");
                        false
                    }
                };
                executor
                    .inner
                    .driving
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&operation_id);
                // A resume or abort that arrived while this task was on its way out found
                // it still registered and did not start another: look once more.
                let again = claimed
                    && match executor.inner.store.operation(operation_id).await {
                        Ok(operation) => matches!(
                            operation.state,
                            OperationState::Running | OperationState::Aborting
                        ),
                        Err(_) => false,
                    };
                if !(again && executor.mark_driving(operation_id)) {
                    return;
                }
            }
        });
    }

    fn mark_driving(&self, operation_id: OperationId) -> bool {
        self.inner
            .driving
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(operation_id)
    }

    /// Claims the operation, drives it while the claim holds (renewing it), and gives it
    /// back; false when another runner holds it.
    async fn drive_claimed(&self, operation_id: OperationId) -> Result<bool, OrchestratorError> {
        let store = &self.inner.store;
        let lease = micros(self.inner.settings.runner_lease);
        let now = wall_now();
        let Some(claim) = store
            .claim(operation_id, &self.inner.runner, now, now + lease)
            .await?
        else {
            return Ok(false);
        };
        tracing::info!(%operation_id, runner = self.inner.runner, token = claim.token, "driving operation");
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (store, lost) = (store.clone(), lost.clone());
            let period = self.inner.settings.runner_lease / 3;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(period).await;
                    match store.renew(claim, wall_now() + lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%operation_id, "another runner took the operation over");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%operation_id, %error, "renewing the claim failed")
                        }
                    }
                }
            })
        };
        let driven = self.drive(claim, &lost).await;
        heartbeat.abort();
        if !lost.load(Ordering::SeqCst) {
            store.release(claim).await?;
        }
        driven.map(|()| true)
    }

    async fn drive(&self, claim: Claim, lost: &AtomicBool) -> Result<(), OrchestratorError> {
        micros_platform::failpoint!("executor::after_claim");
        loop {
            if lost.load(Ordering::SeqCst) {
                return Ok(());
            }
            let operation = self.inner.store.operation(claim.operation_id).await?;
            let run = Run {
                executor: self,
                claim,
                operation,
                lost,
            };
            let outcome = match run.operation.state {
                OperationState::Running => run.step().await,
                OperationState::Aborting => run.abort().await,
                _ => return Ok(()),
            };
            match outcome {
                Ok(true) => continue,
                Ok(false) | Err(Stop::Interrupted) | Err(Stop::Fenced) => return Ok(()),
                Err(Stop::Failed(error)) => {
                    let reason = error.to_string();
                    tracing::warn!(operation_id = %claim.operation_id, %reason, "halting operation");
                    return match self
                        .inner
                        .store
                        .transition(
                            claim.operation_id,
                            run.operation.state,
                            OperationState::Halted,
                            Some(&reason),
                            Some(claim),
                            run.now(),
                        )
                        .await
                    {
                        Ok(_) | Err(OrchestratorError::Fenced { .. }) => Ok(()),
                        Err(error) => Err(error),
                    };
                }
            }
        }
    }
}

/// A restore the executor sends: under which operation, from which source, and why.
struct RestoreCall<'a> {
    operation: OperationId,
    source: Source,
    why: &'a Why,
}

/// One runner's drive of one operation, under its claim.
struct Run<'a> {
    executor: &'a Executor,
    claim: Claim,
    operation: OperationRecord,
    lost: &'a AtomicBool,
}

impl Run<'_> {
    fn store(&self) -> &OrchestratorStore {
        &self.executor.inner.store
    }

    fn fleet(&self) -> &Fleet {
        &self.executor.inner.fleet
    }

    /// The service clock, for what the operation records.
    fn now(&self) -> i64 {
        unix_micros(self.executor.inner.clock.now())
    }

    fn operation_id(&self) -> OperationId {
        self.operation.operation_id
    }

    fn token(&self) -> i64 {
        self.claim.token
    }

    fn why(&self) -> Why {
        Why {
            reason: self.operation.reason.clone(),
            ticket: self.operation.ticket.clone(),
        }
    }

    /// The targets of `wave` as recorded now.
    async fn wave_targets(&self, wave: i64) -> Result<Vec<TargetRecord>, Stop> {
        Ok(self.store().wave_targets(self.operation_id(), wave).await?)
    }

    async fn set_status(
        &self,
        records: &[&TargetRecord],
        status: TargetStatus,
        fingerprints: Option<&BTreeMap<i64, BTreeMap<String, String>>>,
    ) -> Result<(), Stop> {
        if records.is_empty() {
            return Ok(());
        }
        self.store()
            .set_status(
                self.claim,
                &positions(records),
                status,
                fingerprints,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// Calls `call` until it succeeds, retrying a service that is down with backoff;
    /// stops when the operation is paused or aborted meanwhile, or when this runner lost
    /// it.
    async fn persist<T, F, Fut>(&self, service: &str, mut call: F) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut delay = Duration::from_millis(100);
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(status) if stale_lease(&status) => {
                    // Fenced by a newer runner of ours, or by a token no runner of ours
                    // issued (a caller holding the orchestrator's key): the second must
                    // halt with the reason, or every new claim would be fenced again.
                    let lease =
                        i64::try_from(self.executor.inner.settings.runner_lease.as_micros())
                            .unwrap_or(i64::MAX);
                    if self.store().renew(self.claim, wall_now() + lease).await? {
                        tracing::error!(operation_id = %self.operation_id(), service, "a lease token no runner issued has reached the sites; halting");
                        return Err(Stop::Failed(OrchestratorError::Downstream {
                            service: service.to_owned(),
                            status,
                        }));
                    }
                    tracing::warn!(operation_id = %self.operation_id(), service, "a newer runner has reached the sites; stopping");
                    return Err(Stop::Fenced);
                }
                Err(status) if retryable(&status) => {
                    tracing::warn!(operation_id = %self.operation_id(), service, code = ?status.code(), ?delay, "service unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.executor.inner.settings.max_backoff);
                    if self.lost.load(Ordering::SeqCst) {
                        return Err(Stop::Fenced);
                    }
                    let current = self.store().operation(self.operation_id()).await?;
                    if current.state != self.operation.state {
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

    /// Calls `service` through [`Self::persist`] and records the call as a step of
    /// `wave`, with when it began and when it answered.
    async fn logged<F, Fut>(
        &self,
        wave: i64,
        service: &str,
        action: &str,
        count: usize,
        call: F,
    ) -> Result<Vec<TargetOutcome>, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<TargetOutcome>, Status>>,
    {
        let started = self.now();
        let outcomes = self.persist(service, call).await?;
        let step = StepRecord {
            wave,
            service: service.to_owned(),
            action: action.to_owned(),
            targets: count as i64,
            rows_affected: outcomes.iter().map(|outcome| outcome.rows_affected).sum(),
            start_time: Some(started),
            step_time: self.now(),
        };
        self.store()
            .log_step(self.claim, &step, step.step_time)
            .await?;
        Ok(outcomes)
    }

    /// Describes `targets` in every service: per service, the outcomes in target order.
    async fn describe_all(
        &self,
        targets: &[Target],
    ) -> Result<BTreeMap<String, Vec<TargetOutcome>>, Stop> {
        let fleet = self.fleet();
        let calls = fleet.services().iter().map(|service| async move {
            let outcomes = self
                .persist(service, || fleet.describe(service, targets))
                .await?;
            paired(service, targets, &outcomes)?;
            Ok::<_, Stop>((service.clone(), outcomes))
        });
        Ok(futures::future::try_join_all(calls)
            .await?
            .into_iter()
            .collect())
    }

    /// Describes `records` in every service, checks every answer with `check` (see
    /// [`Self::check_all`]) and, when all pass, moves the records to `status`.
    async fn verify_and_mark(
        &self,
        records: &[&TargetRecord],
        status: TargetStatus,
        check: impl Fn(&str, &TargetRecord, &TargetOutcome) -> Option<String>,
    ) -> Result<(), Stop> {
        if records.is_empty() {
            return Ok(());
        }
        let described = self.describe_all(&lifecycle_targets(records)).await?;
        self.check_all(records, &described, check).await?;
        self.set_status(records, status, None).await
    }

    /// Checks every service's answer for every target with `check`, which says what is
    /// wrong, if anything: the first problem is recorded on its target and halts the
    /// operation.
    async fn check_all(
        &self,
        targets: &[&TargetRecord],
        described: &BTreeMap<String, Vec<TargetOutcome>>,
        check: impl Fn(&str, &TargetRecord, &TargetOutcome) -> Option<String>,
    ) -> Result<(), Stop> {
        for (service, outcomes) in described {
            for (target, outcome) in targets.iter().zip(outcomes) {
                if let Some(problem) = check(service, target, outcome) {
                    self.store()
                        .set_error(self.claim, target.position, &problem, self.now())
                        .await?;
                    return Err(Stop::Failed(OrchestratorError::Unexpected(problem)));
                }
            }
        }
        Ok(())
    }

    /// Restores `targets` under `call` in the catalog alone, logged as `action`: the site
    /// record and placement come back first, so the other services find the site.
    async fn restore_in_catalog(
        &self,
        wave: i64,
        action: &str,
        targets: &[Target],
        call: &RestoreCall<'_>,
    ) -> Result<(), Stop> {
        let (fleet, token) = (self.fleet(), self.token());
        self.logged(wave, "catalog", action, targets.len(), || {
            fleet.restore(
                "catalog",
                targets,
                call.operation,
                call.source.clone(),
                call.why,
                token,
            )
        })
        .await?;
        Ok(())
    }

    /// Restores `targets` under `call` in every service but the catalog, in parallel
    /// (after [`Self::restore_in_catalog`]).
    async fn restore_in_others(
        &self,
        wave: i64,
        action: &str,
        targets: &[Target],
        call: &RestoreCall<'_>,
    ) -> Result<(), Stop> {
        let (fleet, token) = (self.fleet(), self.token());
        self.on_other_services(wave, action, targets.len(), |service| {
            let source = call.source.clone();
            async move {
                fleet
                    .restore(&service, targets, call.operation, source, call.why, token)
                    .await
            }
        })
        .await?;
        Ok(())
    }

    /// Runs `call` on every service but the catalog, in parallel, logging each answer.
    async fn on_other_services<F, Fut>(
        &self,
        wave: i64,
        action: &str,
        count: usize,
        call: F,
    ) -> Result<Vec<(String, Vec<TargetOutcome>)>, Stop>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<TargetOutcome>, Status>>,
    {
        let calls = self.fleet().after_catalog().iter().map(|service| {
            let call = &call;
            async move {
                let outcomes = self
                    .logged(wave, service, action, count, || call(service.clone()))
                    .await?;
                Ok::<_, Stop>((service.clone(), outcomes))
            }
        });
        futures::future::try_join_all(calls).await
    }
}

impl From<micros_platform::failpoints::Injected> for Stop {
    fn from(injected: micros_platform::failpoints::Injected) -> Self {
        Stop::Failed(injected.into())
    }
}
