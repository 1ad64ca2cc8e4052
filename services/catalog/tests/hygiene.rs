//! Input hygiene at the catalog, through gRPC on every backend: Resolve takes inputs
//! exactly as sent (a lookalike is refused naming it, never trimmed or dropped), a huge
//! input gets a small refusal, GetPlacement answers NOT_FOUND for a deleted site as
//! GetSite does, and GetPlacements answers each site as GetPlacement would.

use micros_catalog::{Catalog, CatalogSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::{OperationId, SiteId},
    input::{ECHO_CHARS, MAX_INPUT_BYTES, MAX_INPUTS},
    store::Backend,
    testing::{self, TestService, refused},
};
use micros_proto::{
    catalog::v1::{
        CreateSiteRequest, GetPlacementRequest, GetPlacementsRequest, GetSiteRequest,
        PlacementStatus, ResolveRequest, catalog_service_client::CatalogServiceClient,
    },
    lifecycle::v1::{
        Justification, SiteTarget, SoftDeleteRequest, Target, target::Kind,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
};
use tonic::{Code, Status};

struct Harness {
    _service: TestService<Catalog>,
    catalog: CatalogServiceClient<ServiceChannel>,
    lifecycle: TenantLifecycleClient<ServiceChannel>,
}

async fn harness(backend: Backend) -> Harness {
    let service = testing::spawn::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    let catalog = CatalogServiceClient::new(service.channel(&[Role::Admin, Role::Operator]));
    let lifecycle = TenantLifecycleClient::new(service.channel(&[Role::Lifecycle]));
    Harness {
        _service: service,
        catalog,
        lifecycle,
    }
}

impl Harness {
    async fn soft_delete(&mut self, site: &str) {
        self.lifecycle
            .soft_delete(SoftDeleteRequest {
                targets: vec![Target {
                    kind: Some(Kind::Site(SiteTarget {
                        site_id: site.to_owned(),
                    })),
                }],
                operation_id: OperationId::new().to_string(),
                justification: Some(Justification {
                    reason: "test".to_owned(),
                    ticket: "INC-10".to_owned(),
                }),
                ..SoftDeleteRequest::default()
            })
            .await
            .unwrap();
    }

    async fn site(&mut self, host: &str) -> String {
        self.catalog
            .create_site(CreateSiteRequest {
                name: host.to_owned(),
                url: format!("https://{host}.example.com"),
                region: "eu-west".to_owned(),
                site_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .site_id
    }

    async fn resolve(&mut self, inputs: Vec<String>) -> Result<usize, Status> {
        self.catalog
            .resolve(ResolveRequest { inputs })
            .await
            .map(|response| response.into_inner().results.len())
    }
}

/// What a refusal costs on the wire: its message and its details (the trailers).
fn trailer_bytes(status: &Status) -> usize {
    status.message().len() + status.details().len()
}

#[tokio::test]
async fn resolve_refuses_each_lookalike_input_naming_it() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("lookalikes").await;
        assert_eq!(h.resolve(vec![site.clone()]).await.unwrap(), 1);

        let cases = [
            (
                vec![site.clone(), format!(" {site}")],
                "INPUT_HAS_SURROUNDING_WHITESPACE",
                1,
            ),
            (
                vec![format!("{site}\n")],
                "INPUT_HAS_SURROUNDING_WHITESPACE",
                0,
            ),
            (vec![site.clone(), String::new()], "EMPTY_INPUT", 1),
            (
                vec![site.clone(), "   ".to_owned(), site.clone()],
                "BLANK_INPUT",
                1,
            ),
        ];
        for (inputs, reason, index) in cases {
            let status = h.resolve(inputs.clone()).await.unwrap_err();
            let info = refused(&status, Code::InvalidArgument, reason);
            assert_eq!(info.metadata["field"], "inputs", "{inputs:?}");
            assert_eq!(info.metadata["index"], index.to_string(), "{inputs:?}");
            assert_eq!(info.metadata["value"], inputs[index], "{inputs:?}");
        }

        let empty = h.resolve(Vec::new()).await.unwrap_err();
        refused(&empty, Code::InvalidArgument, "MISSING_FIELD");
        let too_many = h
            .resolve(vec![site.clone(); MAX_INPUTS + 1])
            .await
            .unwrap_err();
        let info = refused(&too_many, Code::InvalidArgument, "TOO_MANY_INPUTS");
        assert_eq!(info.metadata["value"], (MAX_INPUTS + 1).to_string());
        println!("{backend:?}: every lookalike refused by Resolve");
    }
}

#[tokio::test]
async fn an_over_long_input_is_refused_with_its_length_and_a_small_trailer() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let megabyte = format!("site_{}", "7".repeat(1 << 20));

        let status = h.resolve(vec![megabyte.clone()]).await.unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "INPUT_TOO_LONG");
        assert_eq!(info.metadata["length"], megabyte.len().to_string());
        assert_eq!(info.metadata["index"], "0");
        let prefix: String = megabyte.chars().take(ECHO_CHARS).collect();
        assert_eq!(
            info.metadata["value"],
            format!("{prefix}…[{} bytes]", megabyte.len())
        );
        assert!(
            trailer_bytes(&status) < 1024,
            "{} bytes",
            trailer_bytes(&status)
        );

        // Just over the limit is refused too; at the limit it is resolved (as malformed).
        let over = "x".repeat(MAX_INPUT_BYTES + 1);
        let status = h.resolve(vec![over]).await.unwrap_err();
        refused(&status, Code::InvalidArgument, "INPUT_TOO_LONG");
        assert_eq!(
            h.resolve(vec!["x".repeat(MAX_INPUT_BYTES)]).await.unwrap(),
            1
        );

        // A single ID field: GetSite.
        let status = h
            .catalog
            .get_site(GetSiteRequest {
                site_id: megabyte.clone(),
                show_deleted: false,
            })
            .await
            .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "INPUT_TOO_LONG");
        assert_eq!(info.metadata["length"], megabyte.len().to_string());
        assert!(
            trailer_bytes(&status) < 1024,
            "{} bytes",
            trailer_bytes(&status)
        );
        println!(
            "{backend:?}: a 1 MB input got a {} byte refusal",
            trailer_bytes(&status)
        );
    }
}

#[tokio::test]
async fn get_placement_is_not_found_for_a_deleted_site_as_get_site_is() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("placed").await;
        let placement = |show_deleted| GetPlacementRequest {
            site_id: site.clone(),
            show_deleted,
        };
        let active = h.catalog.get_placement(placement(false)).await.unwrap();
        assert_eq!(active.get_ref().site_id, site);

        h.soft_delete(&site).await;

        let status = h.catalog.get_placement(placement(false)).await.unwrap_err();
        let info = refused(&status, Code::NotFound, "SITE_DELETED");
        let get_site = h
            .catalog
            .get_site(GetSiteRequest {
                site_id: site.clone(),
                show_deleted: false,
            })
            .await
            .unwrap_err();
        let same = refused(&get_site, Code::NotFound, "SITE_DELETED");
        assert_eq!(info.domain, same.domain);

        // Asked for explicitly (product-data restoring the site's rows), it answers.
        let deleted = h.catalog.get_placement(placement(true)).await.unwrap();
        assert_eq!(deleted.get_ref().shard, active.get_ref().shard);

        let unknown = h
            .catalog
            .get_placement(GetPlacementRequest {
                site_id: SiteId::new().to_string(),
                show_deleted: true,
            })
            .await
            .unwrap_err();
        refused(&unknown, Code::NotFound, "SITE_NOT_FOUND");
        println!("{backend:?}: GetPlacement refuses a deleted site");
    }
}

#[tokio::test]
async fn get_placements_answers_each_site_in_order_as_get_placement_would() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let active = h.site("batch-active").await;
        let deleted = h.site("batch-deleted").await;
        h.soft_delete(&deleted).await;
        let unknown = SiteId::new().to_string();
        let site_ids = vec![
            deleted.clone(),
            unknown.clone(),
            active.clone(),
            active.clone(),
        ];

        let single = |site_id: &str, show_deleted| {
            let mut catalog = h.catalog.clone();
            let request = GetPlacementRequest {
                site_id: site_id.to_owned(),
                show_deleted,
            };
            async move { catalog.get_placement(request).await }
        };
        let active_shard = single(&active, false).await.unwrap().into_inner().shard;
        let deleted_shard = single(&deleted, true).await.unwrap().into_inner().shard;

        for (show_deleted, deleted_answer) in [
            (false, (PlacementStatus::Deleted, 0)),
            (true, (PlacementStatus::Placed, deleted_shard)),
        ] {
            let answer = h
                .catalog
                .get_placements(GetPlacementsRequest {
                    site_ids: site_ids.clone(),
                    show_deleted,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.shard_count, 4);
            let got: Vec<(String, PlacementStatus, i32)> = answer
                .placements
                .iter()
                .map(|placement| {
                    (
                        placement.site_id.clone(),
                        placement.status(),
                        placement.shard,
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (deleted.clone(), deleted_answer.0, deleted_answer.1),
                    (unknown.clone(), PlacementStatus::NotFound, 0),
                    (active.clone(), PlacementStatus::Placed, active_shard),
                    (active.clone(), PlacementStatus::Placed, active_shard),
                ],
                "show_deleted {show_deleted}"
            );
        }

        let refusal = |site_ids: Vec<String>| {
            let mut catalog = h.catalog.clone();
            async move {
                catalog
                    .get_placements(GetPlacementsRequest {
                        site_ids,
                        show_deleted: true,
                    })
                    .await
                    .unwrap_err()
            }
        };
        refused(
            &refusal(Vec::new()).await,
            Code::InvalidArgument,
            "MISSING_FIELD",
        );
        let app = micros_platform::ids::AppInstallationId::new().to_string();
        let info = refused(
            &refusal(vec![active.clone(), app]).await,
            Code::InvalidArgument,
            "WRONG_ID_KIND",
        );
        assert_eq!(info.metadata["field"], "site_ids[1]");
        let info = refused(
            &refusal(vec![active.clone(), format!(" {active}")]).await,
            Code::InvalidArgument,
            "INPUT_HAS_SURROUNDING_WHITESPACE",
        );
        assert_eq!(info.metadata["index"], "1");
        let info = refused(
            &refusal(vec![active.clone(); MAX_INPUTS + 1]).await,
            Code::InvalidArgument,
            "TOO_MANY_INPUTS",
        );
        assert_eq!(info.metadata["value"], (MAX_INPUTS + 1).to_string());
        println!("{backend:?}: GetPlacements answers per site and refuses bad input");
    }
}
