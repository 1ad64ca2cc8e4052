//! `micros.lifecycle.v1.TenantLifecycle`, generic over a service's declaration: a service
//! registers it with one line, `LifecycleService::server(lifecycle)`, or, with tenants
//! spread over shard databases, `LifecycleService::sharded(shards, locator)`. Only a
//! principal with the `lifecycle` role (the orchestrator's service identity) may call it.

use std::{collections::BTreeMap, sync::Arc};

use micros_proto::lifecycle::v1::{
    self as pb,
    restore_request::Source,
    target::Kind,
    tenant_lifecycle_server::{TenantLifecycle, TenantLifecycleServer},
};
use tonic::{Request, Response, Status};

use super::{
    Justification, Lifecycle, LifecycleError, LifecycleRequest, RestoreSource, SiteCopy, Target,
    TargetOutcome, TenantState, metrics,
};
use crate::{
    auth::{Grant, Role, require_role},
    error::{InvalidArgument, parse_id, parse_timestamp},
    ids::SiteId,
    store::timestamp,
};

/// Says which shard database holds each site (product-data asks the catalog's placement).
#[tonic::async_trait]
pub trait ShardLocator: Send + Sync + 'static {
    /// The shard index of each site, in the order given.
    async fn locate(&self, sites: &[SiteId]) -> Result<Vec<usize>, LifecycleError>;
}

pub struct LifecycleService {
    shards: Vec<Lifecycle>,
    locator: Option<Arc<dyn ShardLocator>>,
}

/// One lifecycle call, applied to each shard's part of the targets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Call {
    SoftDelete,
    Restore(RestoreSource),
    Purge,
    SetHold(bool),
}

impl LifecycleService {
    /// The gRPC server for `lifecycle`, ready for `ServerBuilder::add_service`.
    pub fn server(lifecycle: Lifecycle) -> TenantLifecycleServer<LifecycleService> {
        TenantLifecycleServer::new(LifecycleService {
            shards: vec![lifecycle],
            locator: None,
        })
    }

    /// The gRPC server over tenants spread across `shards`; `locator` places each site.
    /// The shards share one deletion guard, kept in the first shard's database.
    pub fn sharded(
        shards: Vec<Lifecycle>,
        locator: Arc<dyn ShardLocator>,
    ) -> TenantLifecycleServer<LifecycleService> {
        let shards = match shards.first() {
            Some(ledger) => {
                let ledger = ledger.clone();
                shards
                    .iter()
                    .enumerate()
                    .map(|(index, shard)| match index {
                        0 => shard.clone(),
                        _ => shard.guarded_by(&ledger),
                    })
                    .collect()
            }
            None => shards,
        };
        TenantLifecycleServer::new(LifecycleService {
            shards,
            locator: Some(locator),
        })
    }

    /// Target indices grouped by the shard that holds them.
    async fn partition(
        &self,
        targets: &[Target],
    ) -> Result<BTreeMap<usize, Vec<usize>>, LifecycleError> {
        if targets.is_empty() {
            return Err(InvalidArgument::missing("targets").into());
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        match &self.locator {
            None => {
                groups.insert(0, (0..targets.len()).collect());
            }
            Some(locator) => {
                let sites: Vec<SiteId> = targets.iter().map(Target::site_id).collect();
                let shards = locator.locate(&sites).await?;
                for (index, shard) in shards.into_iter().enumerate() {
                    if shard >= self.shards.len() {
                        return Err(LifecycleError::Misuse(format!(
                            "site {} is placed on shard {shard}, beyond the {} configured",
                            sites[index],
                            self.shards.len()
                        )));
                    }
                    groups.entry(shard).or_default().push(index);
                }
            }
        }
        Ok(groups)
    }

    /// [`Self::dispatch_to_shards`], with a refusal counted in the metrics.
    async fn dispatch(
        &self,
        request: &LifecycleRequest,
        call: Call,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let result = self.dispatch_to_shards(request, call).await;
        if let Err(error) = &result
            && !request.validate_only
        {
            metrics::record_refusal(call, error);
        }
        result
    }

    /// Applies `call` shard by shard, answering in the order of the targets. Across
    /// several shards every part is validated first, so a refusal anywhere changes
    /// nothing anywhere. What each part did to sites is counted in the metrics.
    async fn dispatch_to_shards(
        &self,
        request: &LifecycleRequest,
        call: Call,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let groups = self.partition(&request.targets).await?;
        let part = |indices: &[usize], validate_only: bool| LifecycleRequest {
            targets: indices
                .iter()
                .map(|index| request.targets[*index])
                .collect(),
            validate_only,
            ..request.clone()
        };
        if groups.len() > 1 && !request.validate_only {
            for (shard, indices) in &groups {
                apply(&self.shards[*shard], &part(indices, true), call).await?;
            }
            if matches!(call, Call::SoftDelete) {
                let mut taken_down = Vec::new();
                for (shard, indices) in &groups {
                    taken_down.extend(
                        self.shards[*shard]
                            .customer_targets_now(&part(indices, true).targets)
                            .await?,
                    );
                }
                self.shards[0].admit_deletions(&taken_down, request).await?;
            }
        }
        let mut outcomes: Vec<Option<TargetOutcome>> = vec![None; request.targets.len()];
        for (shard, indices) in &groups {
            let lifecycle = &self.shards[*shard];
            let part = part(indices, request.validate_only);
            let before = match call {
                Call::SoftDelete | Call::Restore(_) | Call::Purge if !request.validate_only => {
                    metrics::states_before(lifecycle, &part.targets).await
                }
                _ => None,
            };
            let done = apply(lifecycle, &part, call).await?;
            if let Some(before) = &before {
                metrics::record_applied(call, &metrics::site_changes(call, before, &done));
            }
            for (index, outcome) in indices.iter().zip(done) {
                outcomes[*index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                LifecycleError::Misuse("a shard answered for fewer targets than asked".to_owned())
            })
    }

    /// Copies shard by shard (a scratch copy lands in its origin's shard: the catalog's
    /// copy of the site record keeps the shard), answering in the order of `copies`.
    async fn copy_all(
        &self,
        request: &LifecycleRequest,
        copies: &[SiteCopy],
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let origins: Vec<Target> = copies
            .iter()
            .map(|copy| Target::Site(copy.origin))
            .collect();
        let groups = self.partition(&origins).await?;
        let mut outcomes: Vec<Option<TargetOutcome>> = vec![None; copies.len()];
        for (shard, indices) in &groups {
            let part: Vec<SiteCopy> = indices.iter().map(|index| copies[*index]).collect();
            let part_request = LifecycleRequest {
                targets: part.iter().map(|copy| Target::Site(copy.scratch)).collect(),
                ..request.clone()
            };
            let done = self.shards[*shard].copy(&part_request, &part).await?;
            for (index, outcome) in indices.iter().zip(done) {
                outcomes[*index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                LifecycleError::Misuse("a shard answered for fewer copies than asked".to_owned())
            })
    }

    async fn describe_all(&self, targets: &[Target]) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let groups = self.partition(targets).await?;
        let mut outcomes: Vec<Option<TargetOutcome>> = vec![None; targets.len()];
        for (shard, indices) in &groups {
            let part: Vec<Target> = indices.iter().map(|index| targets[*index]).collect();
            let done = self.shards[*shard].describe(&part).await?;
            for (index, outcome) in indices.iter().zip(done) {
                outcomes[*index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                LifecycleError::Misuse("a shard answered for fewer targets than asked".to_owned())
            })
    }
}

async fn apply(
    lifecycle: &Lifecycle,
    request: &LifecycleRequest,
    call: Call,
) -> Result<Vec<TargetOutcome>, LifecycleError> {
    match call {
        Call::SoftDelete => lifecycle.soft_delete(request).await,
        Call::Restore(source) => lifecycle.restore(request, source).await,
        Call::Purge => lifecycle.purge(request).await,
        Call::SetHold(hold) => lifecycle.set_hold(request, hold).await,
    }
}

/// Parses proto targets into typed ones; the field path names the offending entry.
pub fn parse_targets(targets: &[pb::Target]) -> Result<Vec<Target>, InvalidArgument> {
    targets
        .iter()
        .enumerate()
        .map(|(index, target)| match &target.kind {
            Some(Kind::Site(site)) => Ok(Target::Site(parse_id(
                &format!("targets[{index}].site.site_id"),
                &site.site_id,
            )?)),
            Some(Kind::AppInstallation(app)) => Ok(Target::AppInstallation {
                site_id: parse_id(
                    &format!("targets[{index}].app_installation.site_id"),
                    &app.site_id,
                )?,
                app_installation_id: parse_id(
                    &format!("targets[{index}].app_installation.app_installation_id"),
                    &app.app_installation_id,
                )?,
            }),
            None => Err(InvalidArgument::missing(format!("targets[{index}]"))),
        })
        .collect()
}

/// The proto form of a typed target.
pub fn target_to_proto(target: &Target) -> pb::Target {
    pb::Target {
        kind: Some(match target {
            Target::Site(site_id) => Kind::Site(pb::SiteTarget {
                site_id: site_id.to_string(),
            }),
            Target::AppInstallation {
                site_id,
                app_installation_id,
            } => Kind::AppInstallation(pb::AppInstallationTarget {
                site_id: site_id.to_string(),
                app_installation_id: app_installation_id.to_string(),
            }),
        }),
    }
}

pub fn outcome_to_proto(outcome: TargetOutcome) -> pb::TargetOutcome {
    pb::TargetOutcome {
        target: Some(target_to_proto(&outcome.target)),
        state: match outcome.state {
            TenantState::Active => pb::TenantState::Active,
            TenantState::Deleted => pb::TenantState::Deleted,
            TenantState::Purging => pb::TenantState::Purging,
            TenantState::Purged => pb::TenantState::Purged,
            TenantState::Absent => pb::TenantState::Absent,
        } as i32,
        counts: outcome
            .counts
            .into_iter()
            .map(|count| pb::TableCount {
                table: count.table,
                live: count.live,
                deleted: count.deleted,
            })
            .collect(),
        fingerprint: outcome.fingerprint,
        delete_time: outcome.delete_time.map(timestamp),
        expire_time: outcome.expire_time.map(timestamp),
        hold: outcome.hold,
        rows_affected: outcome.rows_affected,
        origin_site_id: outcome
            .origin
            .map(|origin| origin.to_string())
            .unwrap_or_default(),
        deleted_by: outcome.deleted_by.unwrap_or_default(),
    }
}

/// The fields every destructive call carries.
struct Common<'a> {
    targets: &'a [pb::Target],
    operation_id: &'a str,
    justification: Option<&'a pb::Justification>,
    validate_only: bool,
    lease_token: i64,
    call_key: &'a str,
}

fn lifecycle_request<T>(
    request: &Request<T>,
    common: Common<'_>,
) -> Result<LifecycleRequest, LifecycleError> {
    let principal = require_role(request, Role::Lifecycle)?;
    let lease_token = match common.lease_token {
        0 => None,
        token if token > 0 => Some(token),
        token => {
            return Err(InvalidArgument::field(
                "lease_token",
                "INVALID_LEASE_TOKEN",
                token.to_string(),
                "a lease token is positive (or 0 for none)",
            )
            .into());
        }
    };
    let well_formed = common.call_key.len() <= 64
        && common
            .call_key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(InvalidArgument::field(
            "call_key",
            "INVALID_CALL_KEY",
            common.call_key.chars().take(64).collect::<String>(),
            "is at most 64 of [a-z0-9_-]",
        )
        .into());
    }
    Ok(LifecycleRequest {
        targets: parse_targets(common.targets)?,
        operation_id: parse_id("operation_id", common.operation_id)?,
        justification: Justification {
            principal: principal.name,
            reason: common
                .justification
                .map(|j| j.reason.clone())
                .unwrap_or_default(),
            ticket: common
                .justification
                .map(|j| j.ticket.clone())
                .unwrap_or_default(),
        },
        validate_only: common.validate_only,
        lease_token,
        call_key: common.call_key.to_owned(),
        grant: request.extensions().get::<Grant>().cloned(),
    })
}

fn outcomes(outcomes: Vec<TargetOutcome>) -> Vec<pb::TargetOutcome> {
    outcomes.into_iter().map(outcome_to_proto).collect()
}

#[tonic::async_trait]
impl TenantLifecycle for LifecycleService {
    async fn soft_delete(
        &self,
        request: Request<pb::SoftDeleteRequest>,
    ) -> Result<Response<pb::SoftDeleteResponse>, Status> {
        let body = request.get_ref();
        let call = lifecycle_request(
            &request,
            Common {
                targets: &body.targets,
                operation_id: &body.operation_id,
                justification: body.justification.as_ref(),
                validate_only: body.validate_only,
                lease_token: body.lease_token,
                call_key: &body.call_key,
            },
        )?;
        let done = self.dispatch(&call, Call::SoftDelete).await?;
        Ok(Response::new(pb::SoftDeleteResponse {
            outcomes: outcomes(done),
        }))
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        let body = request.get_ref();
        let call = lifecycle_request(
            &request,
            Common {
                targets: &body.targets,
                operation_id: &body.operation_id,
                justification: body.justification.as_ref(),
                validate_only: body.validate_only,
                lease_token: body.lease_token,
                call_key: &body.call_key,
            },
        )?;
        let source = match &body.source {
            Some(Source::UndoOperationId(operation)) => RestoreSource::Operation(
                parse_id("undo_operation_id", operation).map_err(LifecycleError::from)?,
            ),
            Some(Source::PointInTime(at)) => RestoreSource::PointInTime(
                parse_timestamp("point_in_time", *at).map_err(LifecycleError::from)?,
            ),
            None => {
                return Err(LifecycleError::from(InvalidArgument::missing(
                    "undo_operation_id | point_in_time",
                ))
                .into());
            }
        };
        let done = self.dispatch(&call, Call::Restore(source)).await?;
        Ok(Response::new(pb::RestoreResponse {
            outcomes: outcomes(done),
        }))
    }

    async fn purge(
        &self,
        request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeResponse>, Status> {
        let body = request.get_ref();
        let call = lifecycle_request(
            &request,
            Common {
                targets: &body.targets,
                operation_id: &body.operation_id,
                justification: body.justification.as_ref(),
                validate_only: body.validate_only,
                lease_token: body.lease_token,
                call_key: "",
            },
        )?;
        let done = self.dispatch(&call, Call::Purge).await?;
        Ok(Response::new(pb::PurgeResponse {
            outcomes: outcomes(done),
        }))
    }

    async fn describe(
        &self,
        request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        require_role(&request, Role::Lifecycle).map_err(LifecycleError::from)?;
        let targets = parse_targets(&request.get_ref().targets).map_err(LifecycleError::from)?;
        let done = self.describe_all(&targets).await?;
        Ok(Response::new(pb::DescribeResponse {
            outcomes: outcomes(done),
        }))
    }

    async fn copy(
        &self,
        request: Request<pb::CopyRequest>,
    ) -> Result<Response<pb::CopyResponse>, Status> {
        let body = request.get_ref();
        let copies = body
            .copies
            .iter()
            .enumerate()
            .map(|(index, copy)| {
                Ok(SiteCopy {
                    origin: parse_id(&format!("copies[{index}].site_id"), &copy.site_id)?,
                    scratch: parse_id(
                        &format!("copies[{index}].scratch_site_id"),
                        &copy.scratch_site_id,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, InvalidArgument>>()
            .map_err(LifecycleError::from)?;
        let scratch_targets: Vec<pb::Target> = copies
            .iter()
            .map(|copy| target_to_proto(&Target::Site(copy.scratch)))
            .collect();
        let call = lifecycle_request(
            &request,
            Common {
                targets: &scratch_targets,
                operation_id: &body.operation_id,
                justification: body.justification.as_ref(),
                validate_only: false,
                lease_token: body.lease_token,
                call_key: "",
            },
        )?;
        let done = self.copy_all(&call, &copies).await?;
        Ok(Response::new(pb::CopyResponse {
            outcomes: outcomes(done),
        }))
    }

    async fn set_hold(
        &self,
        request: Request<pb::SetHoldRequest>,
    ) -> Result<Response<pb::SetHoldResponse>, Status> {
        let body = request.get_ref();
        let call = lifecycle_request(
            &request,
            Common {
                targets: &body.targets,
                operation_id: &body.operation_id,
                justification: body.justification.as_ref(),
                validate_only: false,
                lease_token: body.lease_token,
                call_key: "",
            },
        )?;
        let done = self.dispatch(&call, Call::SetHold(body.hold)).await?;
        Ok(Response::new(pb::SetHoldResponse {
            outcomes: outcomes(done),
        }))
    }
}
