//! Randomized concurrent operations, from a fixed seed: each round plans deletes,
//! restores, drills, app uninstalls and purges over overlapping sets of the same sites,
//! applies them all at once, aborts some of them at random moments, waits for every one
//! to end, and checks the whole suite against a model with an oracle:
//!
//! * every site is in one state in all five services, and it is the state the model
//!   says the operations that succeeded (or were aborted) leave it in;
//! * every site not purged holds exactly its recorded data (fingerprints per service);
//! * every operation either succeeded, or was refused at apply, or was aborted with its
//!   deletions undone; none halts; no lease outlives its operation.
//!
//! `MICROS_CHAOS_ROUNDS` (default 4) and `MICROS_CHAOS_SEED` (default 2022) pick the run;
//! it uses PostgreSQL when `MICROS_TEST_POSTGRES_URL` is set, else SQLite. The long run:
//! `MICROS_CHAOS_ROUNDS=200 MICROS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432
//! cargo test -p micros --test chaos -- --nocapture`.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{auth::Role, store::Backend, testing};
use micros_proto::{
    lifecycle::v1::TenantState,
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest,
        OperationControlRequest, PlanKind, orchestrator_service_client::OrchestratorServiceClient,
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use support::{Seeded, Snapshot, Suite, agreed_state, orchestrator_client, settle};

type Client = OrchestratorServiceClient<micros_platform::client::ServiceChannel>;

/// What the model expects of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Active,
    /// Soft-deleted by this operation.
    Deleted(String),
    Purged,
}

#[derive(Debug, Clone)]
struct Site {
    seeded: Seeded,
    expected: Expected,
    app_installed: bool,
    /// Per service, the fingerprint the site must have while not purged.
    prints: BTreeMap<String, String>,
}

/// One operation of a round, as planned.
#[derive(Debug, Clone)]
struct Planned {
    kind: PlanKind,
    sites: Vec<String>,
    undo: Option<String>,
    plan: pb::Plan,
}

#[derive(Debug, Default)]
struct Tally {
    applied: usize,
    refused: usize,
    aborted: usize,
    invariants: usize,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

struct Chaos {
    suite: Suite,
    orchestrator: testing::TestService<micros_orchestrator::Orchestrator>,
    alice: Client,
    bob: Client,
    sites: BTreeMap<String, Site>,
    /// Deletions that succeeded and whose sites are still deleted by them.
    undoable: Vec<(String, Vec<String>)>,
    rng: StdRng,
    tally: Tally,
    seeded: usize,
}

impl Chaos {
    async fn replenish(&mut self) {
        let live = self
            .sites
            .values()
            .filter(|site| site.expected != Expected::Purged)
            .count();
        if live >= 8 {
            return;
        }
        let url = self.orchestrator.server.url();
        let batch = self
            .suite
            .seed(&url, &format!("chaos{}", self.seeded), 12 - live)
            .await;
        self.seeded += 1;
        let ids: Vec<String> = batch.iter().map(|site| site.site_id.clone()).collect();
        let snapshot = self.suite.snapshot(&ids).await;
        for seeded in batch {
            let prints = snapshot[&seeded.site_id]
                .iter()
                .map(|(service, (_, print))| (service.clone(), print.clone()))
                .collect();
            self.sites.insert(
                seeded.site_id.clone(),
                Site {
                    seeded,
                    expected: Expected::Active,
                    app_installed: true,
                    prints,
                },
            );
        }
    }

    fn pick(&mut self, filter: impl Fn(&Site) -> bool, most: usize) -> Vec<String> {
        let candidates: Vec<String> = self
            .sites
            .values()
            .filter(|site| filter(site))
            .map(|site| site.seeded.site_id.clone())
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        let count = self.rng.random_range(1..=most.min(candidates.len()));
        candidates
            .choose_multiple(&mut self.rng, count)
            .cloned()
            .collect()
    }

    /// Makes (and approves) the plan of one random operation; `None` when the dice
    /// pick something with nothing to act on, or the plan has errors (refused).
    async fn plan_one(&mut self) -> Option<Planned> {
        let choice = self.rng.random_range(0..5);
        let (kind, sites, undo) = match choice {
            0 => (
                PlanKind::DeleteSites,
                self.pick(|site| site.expected == Expected::Active, 4),
                None,
            ),
            1 => {
                let (operation, sites) = self.undoable.choose(&mut self.rng)?.clone();
                (PlanKind::RestoreSites, sites, Some(operation))
            }
            2 => (
                PlanKind::RestoreDrill,
                self.pick(|site| site.expected == Expected::Active, 3),
                None,
            ),
            3 => (
                PlanKind::UninstallApp,
                self.pick(
                    |site| site.expected == Expected::Active && site.app_installed,
                    3,
                ),
                None,
            ),
            _ => (
                PlanKind::PurgeSites,
                self.pick(|site| matches!(site.expected, Expected::Deleted(_)), 3),
                None,
            ),
        };
        if sites.is_empty() {
            return None;
        }
        let inputs = match kind {
            PlanKind::UninstallApp => sites
                .iter()
                .map(|site| self.sites[site].seeded.app_installation_id.clone())
                .collect(),
            PlanKind::RestoreSites => Vec::new(),
            _ => sites.clone(),
        };
        let plan = self
            .alice
            .create_plan(CreatePlanRequest {
                kind: kind as i32,
                inputs,
                undo_operation_id: undo.clone().unwrap_or_default(),
                reason: "chaos".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if !plan.errors.is_empty() {
            // Planned over a site another operation of the round holds, or changed.
            self.tally.refused += 1;
            return None;
        }
        self.bob
            .approve_plan(ApprovePlanRequest {
                plan_id: plan.plan_id.clone(),
                fingerprint: plan.fingerprint.clone(),
            })
            .await
            .unwrap();
        Some(Planned {
            kind,
            sites,
            undo,
            plan,
        })
    }

    async fn round(&mut self, round: usize) -> Result<(), String> {
        self.replenish().await;
        if self.rng.random_bool(0.3) {
            // Retention passes for everything deleted so far: purges may go ahead.
            self.suite.clock.advance(Duration::from_secs(31 * 86_400));
        }
        let mut planned = Vec::new();
        for _ in 0..self.rng.random_range(2..=4) {
            if let Some(one) = self.plan_one().await {
                planned.push(one);
            }
        }
        let aborts: Vec<Option<u64>> = planned
            .iter()
            .map(|_| {
                self.rng
                    .random_bool(0.35)
                    .then(|| self.rng.random_range(0..400))
            })
            .collect();

        // Everything at once; each abort after its own random delay.
        let runs = planned.iter().zip(&aborts).map(|(one, abort_after)| {
            let mut client = self.alice.clone();
            let abort_after = *abort_after;
            async move {
                let applied = client
                    .apply_plan(ApplyPlanRequest {
                        plan_id: one.plan.plan_id.clone(),
                        fingerprint: one.plan.fingerprint.clone(),
                    })
                    .await;
                let operation = match applied {
                    Ok(operation) => operation.into_inner(),
                    Err(status) => return Err(status),
                };
                if let Some(delay) = abort_after {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    // It may have ended already: then the abort is refused, fine.
                    let _ = client
                        .abort_operation(OperationControlRequest {
                            operation_id: operation.operation_id.clone(),
                            reason: "chaos".to_owned(),
                        })
                        .await;
                }
                Ok(settle(&mut client, &operation.operation_id).await)
            }
        });
        let outcomes = futures::future::join_all(runs).await;

        let all: Vec<String> = self.sites.keys().cloned().collect();
        let snapshot = self.suite.snapshot(&all).await;
        for (one, outcome) in planned.iter().zip(outcomes) {
            let operation = match outcome {
                Err(status) => {
                    // Refused: another operation of the round holds a site (SITES_BUSY).
                    if status.code() != tonic::Code::FailedPrecondition {
                        return Err(format!("round {round}: apply failed: {status}"));
                    }
                    self.tally.refused += 1;
                    continue;
                }
                Ok(operation) => operation,
            };
            self.tally.applied += 1;
            self.tally.invariants += 1;
            match operation.state() {
                pb::OperationState::Succeeded => self.succeeded(one, &operation, &snapshot)?,
                pb::OperationState::Aborted => {
                    self.tally.aborted += 1;
                    self.aborted(one, &snapshot)?;
                }
                other => {
                    return Err(format!(
                        "round {round}: {:?} {} ended {}: {}",
                        one.kind,
                        operation.operation_id,
                        other.as_str_name(),
                        operation.halt_reason
                    ));
                }
            }
        }
        self.check(round, &snapshot).await
    }

    fn succeeded(
        &mut self,
        one: &Planned,
        operation: &pb::Operation,
        snapshot: &Snapshot,
    ) -> Result<(), String> {
        match one.kind {
            PlanKind::DeleteSites => {
                for site in &one.sites {
                    self.sites.get_mut(site).unwrap().expected =
                        Expected::Deleted(operation.operation_id.clone());
                }
                self.undoable
                    .push((operation.operation_id.clone(), one.sites.clone()));
            }
            PlanKind::RestoreSites => {
                for site in &one.sites {
                    self.sites.get_mut(site).unwrap().expected = Expected::Active;
                }
                self.forget_undone(one.undo.as_deref());
            }
            PlanKind::PurgeSites => {
                for site in &one.sites {
                    self.sites.get_mut(site).unwrap().expected = Expected::Purged;
                }
                self.forget_purged();
            }
            PlanKind::UninstallApp => {
                // The app's rows are gone: what remains is the site's new data.
                for site in &one.sites {
                    let entry = self.sites.get_mut(site).unwrap();
                    entry.app_installed = false;
                    entry.prints = snapshot[site]
                        .iter()
                        .map(|(service, (_, print))| (service.clone(), print.clone()))
                        .collect();
                }
            }
            PlanKind::RestoreDrill | PlanKind::Unspecified => {}
        }
        Ok(())
    }

    /// An aborted deletion changed nothing; an aborted restore or purge finished the
    /// sites under way and left the rest: read which from the services, which must agree.
    fn aborted(&mut self, one: &Planned, snapshot: &Snapshot) -> Result<(), String> {
        if !matches!(one.kind, PlanKind::RestoreSites | PlanKind::PurgeSites) {
            return Ok(());
        }
        for site in &one.sites {
            let state = agreed_state(snapshot, site)?;
            let entry = self.sites.get_mut(site).unwrap();
            match (one.kind, state) {
                (PlanKind::RestoreSites, TenantState::Active) => entry.expected = Expected::Active,
                (PlanKind::PurgeSites, TenantState::Purged) => entry.expected = Expected::Purged,
                (_, TenantState::Deleted) => {}
                (kind, state) => {
                    return Err(format!(
                        "{site} is {} after an aborted {kind:?}",
                        state.as_str_name()
                    ));
                }
            }
        }
        self.forget_purged();
        Ok(())
    }

    fn forget_undone(&mut self, undone: Option<&str>) {
        self.undoable
            .retain(|(operation, _)| Some(operation.as_str()) != undone);
    }

    /// Deletions whose sites are not all still deleted by them cannot be undone whole.
    fn forget_purged(&mut self) {
        let sites = &self.sites;
        self.undoable.retain(|(operation, deleted)| {
            deleted
                .iter()
                .all(|site| sites[site].expected == Expected::Deleted(operation.clone()))
        });
    }

    async fn check(&mut self, round: usize, snapshot: &Snapshot) -> Result<(), String> {
        for (id, site) in &self.sites {
            let state = agreed_state(snapshot, id)
                .map_err(|problem| format!("round {round}: {problem}"))?;
            self.tally.invariants += 1;
            let expected = match site.expected {
                Expected::Active => TenantState::Active,
                Expected::Deleted(_) => TenantState::Deleted,
                Expected::Purged => TenantState::Purged,
            };
            if state != expected {
                return Err(format!(
                    "round {round}: {id} is {} but the model says {:?}",
                    state.as_str_name(),
                    site.expected
                ));
            }
            self.tally.invariants += 1;
            if state == TenantState::Purged {
                continue;
            }
            for (service, (_, print)) in &snapshot[id] {
                if site.prints.get(service) != Some(print) {
                    return Err(format!(
                        "round {round}: {id} in {service} has fingerprint {print}, not {:?}: data lost or changed",
                        site.prints.get(service)
                    ));
                }
                self.tally.invariants += 1;
            }
        }
        // Every operation ended: no site may still be leased.
        let live: Vec<String> = self
            .sites
            .values()
            .filter(|site| site.expected == Expected::Active)
            .map(|site| site.seeded.site_id.clone())
            .collect();
        if !live.is_empty() {
            let probe = self
                .alice
                .create_plan(CreatePlanRequest {
                    kind: PlanKind::DeleteSites as i32,
                    inputs: live,
                    reason: "lease probe".to_owned(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if let Some(busy) = probe
                .errors
                .iter()
                .find(|error| error.reason == "SITE_BUSY")
            {
                return Err(format!(
                    "round {round}: a lease outlived its operation: {}",
                    busy.message
                ));
            }
            self.tally.invariants += 1;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_concurrent_operations_keep_every_site_whole() {
    let rounds = env_number("MICROS_CHAOS_ROUNDS", 4) as usize;
    let seed = env_number("MICROS_CHAOS_SEED", 2022);
    let backend = testing::backends()
        .into_iter()
        .find(|backend| *backend == Backend::Postgres)
        .unwrap_or(Backend::Sqlite);
    let suite = Suite::start(backend).await;
    let orchestrator = suite
        .orchestrator(
            backend,
            OrchestratorSettings {
                max_backoff: Duration::from_millis(100),
                reaper_interval: Duration::ZERO,
                // Small waves, so operations overlap in time and aborts land mid-way.
                canary: 1,
                max_wave: 2,
                restore_batch: 2,
                ..OrchestratorSettings::default()
            },
        )
        .await;
    let url = orchestrator.server.url();
    let mut chaos = Chaos {
        alice: orchestrator_client(&url, "alice", &[Role::Operator]),
        bob: orchestrator_client(&url, "bob", &[Role::Approver]),
        suite,
        orchestrator,
        sites: BTreeMap::new(),
        undoable: Vec::new(),
        rng: StdRng::seed_from_u64(seed),
        tally: Tally::default(),
        seeded: 0,
    };
    for round in 0..rounds {
        if let Err(violation) = chaos.round(round).await {
            panic!("seed {seed}: {violation}");
        }
    }
    let purged: BTreeSet<&String> = chaos
        .sites
        .iter()
        .filter(|(_, site)| site.expected == Expected::Purged)
        .map(|(id, _)| id)
        .collect();
    println!(
        "chaos on {backend:?}: seed {seed}, {rounds} rounds, {} operations applied ({} aborted), {} refused, {} sites ({} purged), {} invariants checked, 0 violations",
        chaos.tally.applied,
        chaos.tally.aborted,
        chaos.tally.refused,
        chaos.sites.len(),
        purged.len(),
        chaos.tally.invariants
    );
    assert!(chaos.tally.applied > 0, "the run applied operations");
    chaos.orchestrator.stop().await;
    chaos.suite.stop().await;
}
