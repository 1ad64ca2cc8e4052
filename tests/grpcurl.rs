//! What an operator sees with grpcurl against a running catalog: reflection (grpcurl
//! 1.8.6 speaks only v1alpha), health, and refusals with readable `ErrorInfo` (a wrong ID
//! kind, a whitespace-padded input).

use micros_platform::{
    auth::Role,
    ids::AppInstallationId,
    testing::{ServiceProcess, grpcurl, run_grpcurl, test_token},
};

struct Grpcurl {
    binary: std::path::PathBuf,
    addr: String,
}

impl Grpcurl {
    /// (success, stdout + stderr)
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["-plaintext"];
        all.extend_from_slice(args);
        let output = run_grpcurl(&self.binary, &all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

#[test]
fn catalog_through_grpcurl() {
    let Some(binary) = grpcurl() else { return };
    let catalog = ServiceProcess::start(env!("CARGO_BIN_EXE_micros").as_ref(), "catalog", &[])
        .expect("catalog starts");
    let grpcurl = Grpcurl {
        binary,
        addr: catalog.addr().to_string(),
    };
    let addr = grpcurl.addr.as_str();
    let admin = format!(
        "authorization: Bearer {}",
        test_token("operator", &[Role::Admin])
    );

    let (ok, listed) = grpcurl.run(&[addr, "list"]);
    assert!(ok, "{listed}");
    for service in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "micros.catalog.v1.CatalogService",
    ] {
        assert!(
            listed.lines().any(|line| line == service),
            "{service} missing from:\n{listed}"
        );
    }

    let (ok, described) = grpcurl.run(&[addr, "describe", "micros.catalog.v1.CatalogService"]);
    assert!(ok, "{described}");
    assert!(
        described.contains("rpc GetSite ( .micros.catalog.v1.GetSiteRequest )"),
        "{described}"
    );

    for listed_service in listed.lines().filter(|line| !line.is_empty()) {
        let (ok, described) = grpcurl.run(&[addr, "describe", listed_service]);
        assert!(
            ok && described.contains(&format!("{listed_service} is a service")),
            "every listed service can be described; {listed_service}:\n{described}"
        );
    }

    let (ok, health) = grpcurl.run(&[addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("\"SERVING\""), "{health}");

    let create = r#"{"name": "Acme", "url": "acme.example.com", "region": "us-east"}"#;
    let (ok, refused) = grpcurl.run(&[
        "-d",
        create,
        addr,
        "micros.catalog.v1.CatalogService/CreateSite",
    ]);
    assert!(!ok, "an unauthenticated CreateSite must fail:\n{refused}");
    assert!(refused.contains("Code: Unauthenticated"), "{refused}");
    assert!(
        refused.contains("\"reason\":\"MISSING_CREDENTIALS\""),
        "{refused}"
    );

    let app = AppInstallationId::new().to_string();
    let get_app = format!(r#"{{"site_id": "{app}"}}"#);
    let (ok, wrong_kind) = grpcurl.run(&[
        "-H",
        &admin,
        "-d",
        &get_app,
        addr,
        "micros.catalog.v1.CatalogService/GetSite",
    ]);
    assert!(!ok, "{wrong_kind}");
    assert!(wrong_kind.contains("Code: InvalidArgument"), "{wrong_kind}");
    assert!(
        wrong_kind.contains("\"reason\":\"WRONG_ID_KIND\""),
        "ErrorInfo decoded as JSON:\n{wrong_kind}"
    );
    assert!(
        wrong_kind.contains("\"expected_kind\":\"site\""),
        "{wrong_kind}"
    );
    assert!(
        wrong_kind.contains("\"actual_kind\":\"app\""),
        "{wrong_kind}"
    );

    let (ok, created) = grpcurl.run(&[
        "-H",
        &admin,
        "-d",
        create,
        addr,
        "micros.catalog.v1.CatalogService/CreateSite",
    ]);
    assert!(ok, "{created}");
    let site: serde_json::Value = serde_json::from_str(&created).expect("JSON site");
    let site_id = site["siteId"].as_str().expect("siteId");
    let get = format!(r#"{{"site_id": "{site_id}"}}"#);
    let (ok, fetched) = grpcurl.run(&[
        "-H",
        &admin,
        "-d",
        &get,
        addr,
        "micros.catalog.v1.CatalogService/GetSite",
    ]);
    assert!(
        ok && fetched.contains("https://acme.example.com"),
        "{fetched}"
    );

    // A pasted list with a padded line is refused naming it, not trimmed.
    let operator = format!(
        "authorization: Bearer {}",
        test_token("operator", &[Role::Operator])
    );
    let padded = format!(r#"{{"inputs": ["{site_id}", " {site_id}"]}}"#);
    let (ok, refused) = grpcurl.run(&[
        "-H",
        &operator,
        "-d",
        &padded,
        addr,
        "micros.catalog.v1.CatalogService/Resolve",
    ]);
    assert!(!ok, "{refused}");
    assert!(refused.contains("Code: InvalidArgument"), "{refused}");
    assert!(
        refused.contains("\"reason\":\"INPUT_HAS_SURROUNDING_WHITESPACE\""),
        "{refused}"
    );
    assert!(refused.contains("\"index\":\"1\""), "{refused}");
}
