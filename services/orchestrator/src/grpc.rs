//! `micros.orchestrator.v1.OrchestratorService`: proto ↔ domain.

use std::{pin::Pin, time::Duration};

use micros_platform::{
    auth::{Principal, Role, require_role},
    clock::SharedClock,
    error::{InvalidArgument, parse_id},
    ids::{OperationId, PlanId, SiteId},
    paging,
    store::{timestamp, unix_micros},
};
use micros_proto::orchestrator::v1::{
    self as pb, orchestrator_service_server::OrchestratorService,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{
    approval,
    error::OrchestratorError,
    executor::Executor,
    fleet::Fleet,
    holds,
    model::{OperationState, RestoreSource},
    planner::Planner,
    progress::operation_to_proto,
    provision, report,
    settings::OrchestratorSettings,
    sites,
    store::{HoldRecord, OrchestratorStore, PlanRecord},
};

pub struct OrchestratorApi {
    pub store: OrchestratorStore,
    pub fleet: Fleet,
    pub settings: OrchestratorSettings,
    pub executor: Executor,
    pub clock: SharedClock,
}

fn role<T>(request: &Request<T>, role: Role) -> Result<Principal, OrchestratorError> {
    Ok(require_role(request, role)?)
}

fn plan_to_proto(plan: &PlanRecord) -> pb::Plan {
    pb::Plan {
        plan_id: plan.plan_id.to_string(),
        kind: plan.kind.to_proto() as i32,
        fingerprint: plan.fingerprint.clone(),
        targets: plan
            .body
            .targets
            .iter()
            .map(|target| pb::PlanTarget {
                input: target.input.clone(),
                site_id: target.site_id.to_string(),
                site_name: target.site_name.clone(),
                site_url: target.site_url.clone(),
                app_installation_id: target
                    .app_installation_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                app_key: target.app_key.clone(),
                products: target.products.clone(),
            })
            .collect(),
        already_active: plan
            .body
            .already_active
            .iter()
            .map(ToString::to_string)
            .collect(),
        errors: plan
            .body
            .errors
            .iter()
            .map(|problem| pb::PlanError {
                input: problem.input.clone(),
                reason: problem.reason.clone(),
                message: problem.message.clone(),
            })
            .collect(),
        blast_radius: Some(pb::BlastRadius {
            sites: i32::try_from(plan.body.blast.sites).unwrap_or(i32::MAX),
            app_installations: i32::try_from(plan.body.blast.app_installations).unwrap_or(i32::MAX),
            users: plan.body.blast.users,
            documents: plan.body.blast.documents,
            attachments: plan.body.blast.attachments,
            rows: plan.body.blast.rows,
        }),
        requires_approval: plan.requires_approval,
        requested_by: plan.requested_by.clone(),
        approved_by: plan.approved_by.clone().unwrap_or_default(),
        state: plan.state.to_proto() as i32,
        create_time: Some(timestamp(plan.create_time)),
        expire_time: Some(timestamp(plan.expire_time)),
        reason: plan.reason.clone(),
        ticket: plan.ticket.clone(),
        undo_operation_id: plan
            .restore_source
            .and_then(RestoreSource::undo)
            .map(|id| id.to_string())
            .unwrap_or_default(),
        point_in_time: plan
            .restore_source
            .and_then(RestoreSource::point_in_time)
            .map(timestamp),
        operation_id: plan
            .operation_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        drill_real_sites: plan.body.drill_real_sites,
    }
}

impl OrchestratorApi {
    fn now(&self) -> i64 {
        unix_micros(self.clock.now())
    }

    async fn operation_proto(
        &self,
        operation_id: OperationId,
    ) -> Result<pb::Operation, OrchestratorError> {
        let operation = self.store.operation(operation_id).await?;
        let targets = self.store.targets(operation.operation_id).await?;
        Ok(operation_to_proto(&operation, &targets, self.now()))
    }

    /// The plan a request names, as the caller reviewed it (see [`approval::check_quoted`]).
    async fn quoted_plan(
        &self,
        plan_id: &str,
        fingerprint: &str,
    ) -> Result<PlanRecord, OrchestratorError> {
        let plan = self.store.plan(parse_id("plan_id", plan_id)?).await?;
        approval::check_quoted(&plan, fingerprint, self.now())?;
        Ok(plan)
    }

    async fn control(
        &self,
        request: Request<pb::OperationControlRequest>,
        to: OperationState,
    ) -> Result<Response<pb::Operation>, Status> {
        let principal = role(&request, Role::Operator)?;
        let operation_id: OperationId = parse_id("operation_id", &request.get_ref().operation_id)?;
        let operation = self.store.operation(operation_id).await?;
        let to = approval::control_target(&operation, to)?;
        let changed = if to == OperationState::Aborting {
            self.store
                .begin_abort(
                    operation_id,
                    operation.state,
                    OperationId::new(),
                    None,
                    None,
                    self.now(),
                )
                .await?
        } else {
            self.store
                .transition(operation_id, operation.state, to, None, None, self.now())
                .await?
        };
        if !changed {
            return Err(OrchestratorError::InvalidTransition {
                operation_id,
                from: "changing",
                to: to.as_str(),
            }
            .into());
        }
        tracing::info!(%operation_id, principal = principal.name, to = to.as_str(), reason = request.get_ref().reason, "operation state changed by an operator");
        if matches!(to, OperationState::Running | OperationState::Aborting) {
            self.executor.spawn(operation_id);
        }
        Ok(Response::new(self.operation_proto(operation_id).await?))
    }
}

fn hold_to_proto(record: &HoldRecord) -> pb::SiteHold {
    pb::SiteHold {
        site_id: record.site_id.to_string(),
        held: record.held,
        reason: record.reason.clone(),
        ticket: record.ticket.clone(),
        principal: record.principal.clone(),
        update_time: Some(timestamp(record.update_time)),
    }
}

type OperationStream = Pin<Box<dyn Stream<Item = Result<pb::Operation, Status>> + Send>>;

#[tonic::async_trait]
impl OrchestratorService for OrchestratorApi {
    async fn provision_site(
        &self,
        request: Request<pb::ProvisionSiteRequest>,
    ) -> Result<Response<pb::ProvisionSiteResponse>, Status> {
        role(&request, Role::Admin)?;
        Ok(Response::new(
            provision::provision(&self.fleet, request.into_inner()).await?,
        ))
    }

    async fn change_product(
        &self,
        request: Request<pb::ChangeProductRequest>,
    ) -> Result<Response<pb::ChangeProductResponse>, Status> {
        role(&request, Role::Admin)?;
        Ok(Response::new(
            provision::change_product(&self.fleet, request.into_inner()).await?,
        ))
    }

    async fn create_plan(
        &self,
        request: Request<pb::CreatePlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let principal = role(&request, Role::Operator)?;
        let planner = Planner {
            fleet: &self.fleet,
            settings: &self.settings,
            store: &self.store,
            now: self.now(),
        };
        let plan = planner.plan(&principal.name, request.into_inner()).await?;
        self.store.insert_plan(&plan).await?;
        tracing::info!(plan_id = %plan.plan_id, kind = plan.kind.as_str(), targets = plan.body.targets.len(), errors = plan.body.errors.len(), principal = principal.name, "plan created");
        Ok(Response::new(plan_to_proto(&plan)))
    }

    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        role(&request, Role::Viewer)?;
        let plan_id: PlanId = parse_id("plan_id", &request.get_ref().plan_id)?;
        Ok(Response::new(plan_to_proto(
            &self.store.plan(plan_id).await?,
        )))
    }

    async fn approve_plan(
        &self,
        request: Request<pb::ApprovePlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let principal = role(&request, Role::Approver)?;
        let body = request.into_inner();
        let plan = self.quoted_plan(&body.plan_id, &body.fingerprint).await?;
        approval::check_approval(&plan, &principal.name)?;
        self.store
            .approve_plan(plan.plan_id, &principal.name)
            .await?;
        tracing::info!(plan_id = %plan.plan_id, approver = principal.name, "plan approved");
        Ok(Response::new(plan_to_proto(
            &self.store.plan(plan.plan_id).await?,
        )))
    }

    async fn apply_plan(
        &self,
        request: Request<pb::ApplyPlanRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let principal = role(&request, Role::Operator)?;
        let body = request.into_inner();
        let plan = self.quoted_plan(&body.plan_id, &body.fingerprint).await?;
        approval::check_apply(&plan, self.settings.approval_threshold_sites)?;
        let (operation, targets) = self.executor.start(&plan, self.now()).await?;
        tracing::info!(operation_id = %operation.operation_id, plan_id = %plan.plan_id, principal = principal.name, targets = targets.len(), "plan applied");
        Ok(Response::new(operation_to_proto(
            &operation,
            &targets,
            self.now(),
        )))
    }

    async fn get_operation(
        &self,
        request: Request<pb::GetOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        role(&request, Role::Viewer)?;
        let operation_id: OperationId = parse_id("operation_id", &request.get_ref().operation_id)?;
        Ok(Response::new(self.operation_proto(operation_id).await?))
    }

    async fn list_operations(
        &self,
        request: Request<pb::ListOperationsRequest>,
    ) -> Result<Response<pb::ListOperationsResponse>, Status> {
        role(&request, Role::Viewer)?;
        let body = request.into_inner();
        let page = paging::Page::of(body.page_size, &body.page_token)?;
        let records = self
            .store
            .operations(page.after.as_deref(), page.fetch())
            .await?;
        let (records, next_page_token) =
            page.cut(records, |record| record.operation_id.to_string());
        let mut operations = Vec::with_capacity(records.len());
        for record in &records {
            let targets = self.store.targets(record.operation_id).await?;
            operations.push(operation_to_proto(record, &targets, self.now()));
        }
        Ok(Response::new(pb::ListOperationsResponse {
            operations,
            next_page_token,
        }))
    }

    type WatchOperationStream = OperationStream;

    async fn watch_operation(
        &self,
        request: Request<pb::WatchOperationRequest>,
    ) -> Result<Response<Self::WatchOperationStream>, Status> {
        role(&request, Role::Viewer)?;
        let operation_id: OperationId = parse_id("operation_id", &request.get_ref().operation_id)?;
        let first = self.operation_proto(operation_id).await?;
        let store = self.store.clone();
        let clock = self.clock.clone();
        let stream = async_stream(first, move || {
            let store = store.clone();
            let clock = clock.clone();
            async move {
                let operation = store.operation(operation_id).await?;
                let targets = store.targets(operation_id).await?;
                Ok::<_, OrchestratorError>(operation_to_proto(
                    &operation,
                    &targets,
                    unix_micros(clock.now()),
                ))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn pause_operation(
        &self,
        request: Request<pb::OperationControlRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        self.control(request, OperationState::Paused).await
    }

    async fn resume_operation(
        &self,
        request: Request<pb::OperationControlRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        self.control(request, OperationState::Running).await
    }

    async fn abort_operation(
        &self,
        request: Request<pb::OperationControlRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        self.control(request, OperationState::Aborting).await
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        role(&request, Role::Viewer)?;
        let operation_id: OperationId = parse_id("operation_id", &request.get_ref().operation_id)?;
        let operation = self.store.operation(operation_id).await?;
        let targets = self.store.targets(operation_id).await?;
        let steps = self.store.steps(operation_id).await?;
        let undone = match operation.restore_source.and_then(RestoreSource::undo) {
            Some(undone) => self.store.targets(undone).await?,
            None => Vec::new(),
        };
        let sites: Vec<SiteId> = targets.iter().map(|target| target.site_id).collect();
        let contacts = provision::admin_contacts(&self.fleet, &sites).await;
        let facts = report::Facts {
            operation: &operation,
            targets: &targets,
            steps: &steps,
            undone: &undone,
            contacts: &contacts,
            now: self.now(),
        };
        Ok(Response::new(report::build(&self.fleet, &facts).await?))
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::SiteSummary>, Status> {
        role(&request, Role::Operator)?;
        Ok(Response::new(
            sites::summary(&self.fleet, &request.get_ref().site).await?,
        ))
    }

    async fn set_site_hold(
        &self,
        request: Request<pb::SetSiteHoldRequest>,
    ) -> Result<Response<pb::SiteHold>, Status> {
        let principal = role(&request, Role::Operator)?;
        let body = request.into_inner();
        let record = holds::set(
            &self.fleet,
            &self.store,
            holds::HoldRequest {
                site: body.site,
                hold: body.hold,
                reason: body.reason,
                ticket: body.ticket,
                principal: principal.name,
            },
            self.now(),
        )
        .await?;
        Ok(Response::new(hold_to_proto(&record)))
    }

    async fn list_site_holds(
        &self,
        request: Request<pb::ListSiteHoldsRequest>,
    ) -> Result<Response<pb::ListSiteHoldsResponse>, Status> {
        role(&request, Role::Viewer)?;
        let body = request.into_inner();
        let page = paging::Page::of(body.page_size, &body.page_token)?;
        let records = self
            .store
            .holds(page.after.as_deref(), page.fetch())
            .await?;
        let (records, next_page_token) = page.cut(records, |record| {
            format!("{}:{}", record.update_time, record.site_id)
        });
        Ok(Response::new(pb::ListSiteHoldsResponse {
            holds: records.iter().map(hold_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn find_sites_by_contact(
        &self,
        request: Request<pb::FindSitesByContactRequest>,
    ) -> Result<Response<pb::FindSitesByContactResponse>, Status> {
        role(&request, Role::Operator)?;
        let email = request.get_ref().email.trim().to_owned();
        if email.is_empty() {
            return Err(OrchestratorError::from(InvalidArgument::missing("email")).into());
        }
        Ok(Response::new(
            provision::find_sites_by_contact(&self.fleet, &email).await?,
        ))
    }
}

/// Yields `first`, then `next()` whenever it changes, until the operation stops moving
/// (succeeded, aborted, halted or paused).
fn async_stream<F, Fut>(
    first: pb::Operation,
    next: F,
) -> impl Stream<Item = Result<pb::Operation, Status>> + Send
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<pb::Operation, OrchestratorError>> + Send,
{
    let moving = |operation: &pb::Operation| {
        matches!(
            operation.state(),
            pb::OperationState::Running | pb::OperationState::Aborting
        )
    };
    futures::stream::unfold(Some((first, true)), move |state| {
        let next = next.clone();
        async move {
            let (last, send_last) = state?;
            if send_last {
                let keep = moving(&last).then(|| (last.clone(), false));
                return Some((Ok(last), keep));
            }
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                match next().await {
                    Err(error) => return Some((Err(Status::from(error)), None)),
                    Ok(current) if current != last => {
                        let keep = moving(&current).then(|| (current.clone(), false));
                        return Some((Ok(current), keep));
                    }
                    Ok(_) => {}
                }
            }
        }
    })
}
