//! Input hygiene at the orchestrator, over real gRPC against a real catalog on every
//! backend: CreatePlan and GetSite take inputs exactly as sent. A whitespace-padded,
//! empty or blank input is refused naming its index, never trimmed or dropped; an
//! over-long one is refused with its length and a bounded echo.

use micros_catalog::{Catalog, CatalogSettings};
use micros_orchestrator::{Orchestrator, OrchestratorSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::TestClock,
    input::ECHO_CHARS,
    store::Backend,
    testing::{self, TestService, refused},
};
use micros_proto::{
    catalog::v1::{CreateSiteRequest, catalog_service_client::CatalogServiceClient},
    orchestrator::v1::{
        CreatePlanRequest, GetSiteRequest, PlanKind,
        orchestrator_service_client::OrchestratorServiceClient,
    },
};
use tonic::Code;

struct Suite {
    _catalog: TestService<Catalog>,
    _orchestrator: TestService<Orchestrator>,
    sites: Vec<String>,
    operator: OrchestratorServiceClient<ServiceChannel>,
}

async fn suite(backend: Backend) -> Suite {
    let clock = TestClock::new();
    let catalog = testing::spawn_with::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
        clock.clone(),
        |_| {},
    )
    .await;
    let catalog_url = catalog.server.url();
    let orchestrator = testing::spawn_with::<Orchestrator>(
        backend,
        OrchestratorSettings {
            services: vec!["catalog".to_owned()],
            ..OrchestratorSettings::default()
        },
        clock,
        |config| config.clients = testing::catalog_clients(catalog_url),
    )
    .await;
    let mut sites = Vec::new();
    let mut admin = CatalogServiceClient::new(catalog.channel(&[Role::Admin]));
    for host in ["alpha", "beta"] {
        let site = admin
            .create_site(CreateSiteRequest {
                name: host.to_owned(),
                url: format!("https://{host}.example.com"),
                region: "eu-west".to_owned(),
                site_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        sites.push(site.site_id);
    }
    let operator = OrchestratorServiceClient::new(orchestrator.channel(&[Role::Operator]));
    Suite {
        _catalog: catalog,
        _orchestrator: orchestrator,
        sites,
        operator,
    }
}

fn deletion(inputs: Vec<String>) -> CreatePlanRequest {
    CreatePlanRequest {
        kind: PlanKind::DeleteSites as i32,
        inputs,
        reason: "test".to_owned(),
        ticket: "INC-10".to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_plan_refuses_each_lookalike_input_instead_of_trimming_it() {
    for backend in testing::backends() {
        let mut s = suite(backend).await;
        let (alpha, beta) = (s.sites[0].clone(), s.sites[1].clone());
        let made = s
            .operator
            .create_plan(deletion(vec![alpha.clone(), beta.clone()]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(made.targets.len(), 2, "{made:?}");

        let cases = [
            (
                vec![alpha.clone(), format!("{beta} ")],
                "INPUT_HAS_SURROUNDING_WHITESPACE",
                1,
            ),
            (
                vec![format!("\t{alpha}"), beta.clone()],
                "INPUT_HAS_SURROUNDING_WHITESPACE",
                0,
            ),
            (
                vec![alpha.clone(), String::new(), beta.clone()],
                "EMPTY_INPUT",
                1,
            ),
            (
                vec![alpha.clone(), " ".to_owned(), beta.clone()],
                "BLANK_INPUT",
                1,
            ),
        ];
        for (inputs, reason, index) in cases {
            let status = s
                .operator
                .create_plan(deletion(inputs.clone()))
                .await
                .unwrap_err();
            let info = refused(&status, Code::InvalidArgument, reason);
            assert_eq!(info.metadata["field"], "inputs", "{inputs:?}");
            assert_eq!(info.metadata["index"], index.to_string(), "{inputs:?}");
            assert_eq!(info.metadata["value"], inputs[index], "{inputs:?}");
        }

        let canary = s
            .operator
            .create_plan(CreatePlanRequest {
                canary: vec![format!("{alpha}\n")],
                ..deletion(vec![alpha.clone(), beta.clone()])
            })
            .await
            .unwrap_err();
        let info = refused(
            &canary,
            Code::InvalidArgument,
            "INPUT_HAS_SURROUNDING_WHITESPACE",
        );
        assert_eq!(info.metadata["field"], "canary");

        let huge = format!("{alpha}{}", "0".repeat(1 << 20));
        let status = s
            .operator
            .create_plan(deletion(vec![alpha.clone(), huge.clone()]))
            .await
            .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "INPUT_TOO_LONG");
        assert_eq!(info.metadata["index"], "1");
        assert_eq!(info.metadata["length"], huge.len().to_string());
        assert!(info.metadata["value"].starts_with(&huge[..ECHO_CHARS]));
        let trailer = status.message().len() + status.details().len();
        assert!(trailer < 1024, "a 1 MB input got a {trailer} byte refusal");
        println!("{backend:?}: CreatePlan refuses every lookalike");
    }
}

#[tokio::test]
async fn get_site_refuses_each_lookalike_input_instead_of_trimming_it() {
    for backend in testing::backends() {
        let mut s = suite(backend).await;
        let alpha = s.sites[0].clone();
        let get = |site: String| GetSiteRequest { site };
        let found = s.operator.get_site(get(alpha.clone())).await.unwrap();
        assert_eq!(found.get_ref().site_id, alpha);

        for (site, reason) in [
            (format!(" {alpha}"), "INPUT_HAS_SURROUNDING_WHITESPACE"),
            (format!("{alpha}\r\n"), "INPUT_HAS_SURROUNDING_WHITESPACE"),
            ("   ".to_owned(), "BLANK_INPUT"),
            (String::new(), "MISSING_FIELD"),
        ] {
            let status = s.operator.get_site(get(site.clone())).await.unwrap_err();
            let info = refused(&status, Code::InvalidArgument, reason);
            assert_eq!(info.metadata["field"], "site", "{site:?}");
        }

        let huge = "h".repeat(1 << 20);
        let status = s.operator.get_site(get(huge.clone())).await.unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "INPUT_TOO_LONG");
        assert_eq!(info.metadata["length"], huge.len().to_string());
        let trailer = status.message().len() + status.details().len();
        assert!(trailer < 1024, "a 1 MB input got a {trailer} byte refusal");
        println!("{backend:?}: GetSite refuses every lookalike");
    }
}
