//! The services the orchestrator drives: one lazily connected channel each, and the
//! lifecycle calls it makes on them.

use std::{collections::BTreeMap, sync::Arc};

use micros_platform::{
    auth::{GRANT_HEADER, Grant, ServiceSigner},
    client::{Clients, Identity, ServiceChannel},
    ids::{OperationId, SiteId},
    lifecycle::{Target, grpc::target_to_proto},
};
use micros_proto::{
    catalog::v1::catalog_service_client::CatalogServiceClient,
    lifecycle::v1::{
        CopyRequest, DescribeRequest, Justification, PurgeRequest, RestoreRequest, SetHoldRequest,
        SiteCopy, SoftDeleteRequest, TargetOutcome, restore_request::Source,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
};
use tonic::Status;

use crate::error::OrchestratorError;

/// The service every site is created in first and restored in first.
pub const CATALOG: &str = "catalog";

/// Messages of thousands of outcomes exceed tonic's 4 MiB default.
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Clone)]
pub struct Fleet {
    /// Every lifecycle service, the catalog first (see [`Fleet::new`]).
    services: Vec<String>,
    /// The catalog's channel, held apart: the orchestrator cannot run without it.
    catalog: ServiceChannel,
    channels: BTreeMap<String, ServiceChannel>,
    /// The orchestrator's own key, which signs grants.
    signer: Option<Arc<ServiceSigner>>,
}

/// How long a signed grant is good for: each call gets a fresh one.
const GRANT_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Why a destructive call is made, as the services audit it.
#[derive(Debug, Clone)]
pub struct Why {
    pub reason: String,
    pub ticket: String,
}

/// One operation's soft delete as every service is asked it: the operation and why, its
/// runner's fencing token, which of its calls it is, and its grant if it was approved.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub operation_id: OperationId,
    pub why: Why,
    pub lease_token: i64,
    pub call_key: &'static str,
    pub grant: Option<String>,
}

impl Why {
    fn to_proto(&self) -> Option<Justification> {
        Some(Justification {
            reason: self.reason.clone(),
            ticket: self.ticket.clone(),
        })
    }
}

impl Fleet {
    /// Channels to `services` through `clients`; the catalog must come first (sites are
    /// deleted in it first and restored in it first).
    pub fn new(clients: &Clients, services: &[String]) -> anyhow::Result<Self> {
        if services.first().map(String::as_str) != Some(CATALOG) {
            anyhow::bail!("the orchestrator's services must start with the catalog: {services:?}");
        }
        let mut channels = BTreeMap::new();
        for service in services {
            channels.insert(service.clone(), clients.channel(service)?);
        }
        let catalog = channels[CATALOG].clone();
        let signer = match clients.identity() {
            Identity::Service(signer) => Some(signer.clone()),
            Identity::Anonymous | Identity::Token(_) => None,
        };
        Ok(Self {
            services: services.to_vec(),
            catalog,
            channels,
            signer,
        })
    }

    /// `grant`, signed with the orchestrator's key, as it travels in [`GRANT_HEADER`].
    pub fn sign_grant(&self, grant: &Grant) -> Result<String, Status> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            Status::failed_precondition("the orchestrator has no signing key to sign grants")
        })?;
        signer
            .grant(grant, GRANT_TTL)
            .map_err(|error| Status::internal(error.to_string()))
    }

    /// Every lifecycle service, catalog first.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// The services restored after the catalog, in parallel.
    pub fn after_catalog(&self) -> &[String] {
        &self.services[1..]
    }

    /// The channel to `service`, for its domain API.
    pub fn channel(
        &self,
        service: &str,
    ) -> Result<ServiceChannel, crate::error::OrchestratorError> {
        self.channels.get(service).cloned().ok_or_else(|| {
            crate::error::OrchestratorError::Downstream {
                service: service.to_owned(),
                status: Status::unavailable(format!(
                    "{service} is not among the orchestrator's services"
                )),
            }
        })
    }

    pub fn catalog(&self) -> CatalogServiceClient<ServiceChannel> {
        CatalogServiceClient::new(self.catalog.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn lifecycle(&self, service: &str) -> Result<TenantLifecycleClient<ServiceChannel>, Status> {
        let channel = self.channels.get(service).ok_or_else(|| {
            Status::unavailable(format!(
                "{service} is not among the orchestrator's services"
            ))
        })?;
        Ok(TenantLifecycleClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    pub async fn describe(
        &self,
        service: &str,
        targets: &[Target],
    ) -> Result<Vec<TargetOutcome>, Status> {
        let request = DescribeRequest {
            targets: targets.iter().map(target_to_proto).collect(),
        };
        Ok(self
            .lifecycle(service)?
            .describe(request)
            .await?
            .into_inner()
            .outcomes)
    }

    pub async fn soft_delete(
        &self,
        service: &str,
        targets: &[Target],
        deletion: &Deletion,
    ) -> Result<Vec<TargetOutcome>, Status> {
        let mut request = tonic::Request::new(SoftDeleteRequest {
            targets: targets.iter().map(target_to_proto).collect(),
            operation_id: deletion.operation_id.to_string(),
            justification: deletion.why.to_proto(),
            validate_only: false,
            lease_token: deletion.lease_token,
            call_key: deletion.call_key.to_owned(),
        });
        if let Some(grant) = &deletion.grant {
            let value = grant
                .parse()
                .map_err(|_| Status::internal("a signed grant is not a valid header value"))?;
            request.metadata_mut().insert(GRANT_HEADER, value);
        }
        Ok(self
            .lifecycle(service)?
            .soft_delete(request)
            .await?
            .into_inner()
            .outcomes)
    }

    pub async fn restore(
        &self,
        service: &str,
        targets: &[Target],
        operation_id: OperationId,
        source: Source,
        why: &Why,
        lease_token: i64,
    ) -> Result<Vec<TargetOutcome>, Status> {
        let request = RestoreRequest {
            targets: targets.iter().map(target_to_proto).collect(),
            operation_id: operation_id.to_string(),
            source: Some(source),
            justification: why.to_proto(),
            validate_only: false,
            lease_token,
            call_key: String::new(),
        };
        Ok(self
            .lifecycle(service)?
            .restore(request)
            .await?
            .into_inner()
            .outcomes)
    }

    pub async fn purge(
        &self,
        service: &str,
        targets: &[Target],
        operation_id: OperationId,
        why: &Why,
        validate_only: bool,
        lease_token: i64,
    ) -> Result<Vec<TargetOutcome>, Status> {
        let request = PurgeRequest {
            targets: targets.iter().map(target_to_proto).collect(),
            operation_id: operation_id.to_string(),
            justification: why.to_proto(),
            validate_only,
            lease_token,
        };
        Ok(self
            .lifecycle(service)?
            .purge(request)
            .await?
            .into_inner()
            .outcomes)
    }

    /// Copies each (site, scratch site) pair's slice in `service` into its scratch site.
    pub async fn copy(
        &self,
        service: &str,
        copies: &[(SiteId, SiteId)],
        operation_id: OperationId,
        why: &Why,
        lease_token: i64,
    ) -> Result<Vec<TargetOutcome>, Status> {
        let request = CopyRequest {
            copies: copies
                .iter()
                .map(|(site, scratch)| SiteCopy {
                    site_id: site.to_string(),
                    scratch_site_id: scratch.to_string(),
                })
                .collect(),
            operation_id: operation_id.to_string(),
            justification: why.to_proto(),
            lease_token,
        };
        Ok(self
            .lifecycle(service)?
            .copy(request)
            .await?
            .into_inner()
            .outcomes)
    }

    pub async fn set_hold(
        &self,
        service: &str,
        targets: &[Target],
        operation_id: OperationId,
        why: &Why,
        hold: bool,
    ) -> Result<Vec<TargetOutcome>, Status> {
        let request = SetHoldRequest {
            targets: targets.iter().map(target_to_proto).collect(),
            hold,
            operation_id: operation_id.to_string(),
            justification: why.to_proto(),
            lease_token: 0,
        };
        Ok(self
            .lifecycle(service)?
            .set_hold(request)
            .await?
            .into_inner()
            .outcomes)
    }

    /// Describes `targets` on every service, answering per service.
    pub async fn describe_everywhere(
        &self,
        targets: &[Target],
    ) -> Result<BTreeMap<String, Vec<TargetOutcome>>, OrchestratorError> {
        let calls = self.services.iter().map(|service| async move {
            self.describe(service, targets)
                .await
                .map(|outcomes| (service.clone(), outcomes))
                .map_err(|status| OrchestratorError::Downstream {
                    service: service.clone(),
                    status,
                })
        });
        futures::future::try_join_all(calls)
            .await
            .map(|all| all.into_iter().collect())
    }
}
