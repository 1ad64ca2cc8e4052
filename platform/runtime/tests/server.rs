//! The server builder's behaviour under drain, deadlines, overload and missing
//! credentials, through real gRPC on 127.0.0.1:0 with the test-only probe service.

use std::time::Duration;

use micros_platform::{
    auth::{Issuer, Role, SigningKey},
    client::{self, ServiceChannel},
    config::{AuthConfig, ClientConfig, ServerConfig},
    server::{RunningServer, ServerBuilder},
    testing::{test_auth, test_token},
};
use micros_proto::testing::v1::{
    SleepRequest, SleepResponse,
    probe_service_client::ProbeServiceClient,
    probe_service_server::{ProbeService, ProbeServiceServer},
};
use secrecy::SecretString;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

struct Probe;

#[tonic::async_trait]
impl ProbeService for Probe {
    async fn sleep(
        &self,
        request: Request<SleepRequest>,
    ) -> Result<Response<SleepResponse>, Status> {
        let millis = request.into_inner().millis;
        tokio::time::sleep(Duration::from_millis(millis.into())).await;
        Ok(Response::new(SleepResponse {
            slept_millis: millis,
        }))
    }
}

fn auth() -> AuthConfig {
    test_auth("probe")
}

async fn start(config: ServerConfig) -> RunningServer {
    ServerBuilder::new(&config, &auth())
        .add_service(ProbeServiceServer::new(Probe))
        .bind()
        .await
        .expect("bind")
        .spawn()
}

fn channel(server: &RunningServer, token: Option<String>) -> ServiceChannel {
    let config = ClientConfig {
        url: server.url(),
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
    };
    client::connect("probe", &config, token.map(SecretString::from).as_ref()).unwrap()
}

fn probe(server: &RunningServer) -> ProbeServiceClient<ServiceChannel> {
    let token = test_token("tester", &[Role::Viewer]);
    ProbeServiceClient::new(channel(server, Some(token)))
}

async fn health(server: &RunningServer, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(channel(server, None));
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health answers without a token");
    response.into_inner().status()
}

fn sleep_for(millis: u32) -> SleepRequest {
    SleepRequest { millis }
}

type Call = tokio::task::JoinHandle<Result<Response<SleepResponse>, Status>>;

/// Starts `calls` calls of `millis` each and waits until they hold the server's whole
/// concurrency limit of `calls`: the observable sign is another call shed while none of
/// them has finished. A call that lost the race for a slot is started again.
async fn fill_the_limit(server: &RunningServer, calls: usize, millis: u32) -> Vec<Call> {
    let long_call = || {
        let mut client = probe(server);
        tokio::spawn(async move { client.sleep(sleep_for(millis)).await })
    };
    let mut busy: Vec<Call> = (0..calls).map(|_| long_call()).collect();
    for _ in 0..200 {
        let shed = matches!(
            probe(server).sleep(sleep_for(0)).await,
            Err(status) if status.code() == Code::ResourceExhausted
        );
        if shed && busy.iter().all(|call| !call.is_finished()) {
            return busy;
        }
        for call in &mut busy {
            if call.is_finished() {
                *call = long_call();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{calls} calls of {millis} ms never filled the limit");
}

#[tokio::test]
async fn drain_reports_not_serving_and_finishes_calls_in_flight() {
    let mut server = start(ServerConfig {
        shutdown_delay: Duration::from_millis(500),
        concurrency_limit: 1,
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(health(&server, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&server, "micros.testing.v1.ProbeService").await,
        ServingStatus::Serving
    );

    let in_flight = fill_the_limit(&server, 1, 1200).await.remove(0);
    server.begin_shutdown();
    let mut status = ServingStatus::Serving;
    for _ in 0..40 {
        status = health(&server, "").await;
        if status == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        status,
        ServingStatus::NotServing,
        "within the shutdown delay"
    );
    assert_eq!(
        health(&server, "micros.testing.v1.ProbeService").await,
        ServingStatus::NotServing
    );

    let finished = in_flight
        .await
        .unwrap()
        .expect("the in-flight call completes");
    assert_eq!(finished.into_inner().slept_millis, 1200);
    server.shutdown().await.expect("clean exit");
}

#[tokio::test]
async fn server_deadline_answers_deadline_exceeded() {
    let server = start(ServerConfig {
        request_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    })
    .await;
    let status = probe(&server).sleep(sleep_for(5000)).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DEADLINE_EXCEEDED");
    assert_eq!(info.metadata["deadline_ms"], "200");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_deadline_is_reported_as_deadline_exceeded() {
    let server = start(ServerConfig::default()).await;
    let mut request = Request::new(sleep_for(600));
    request.set_timeout(Duration::from_millis(150));
    let status = probe(&server).sleep(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn overload_is_shed_with_resource_exhausted() {
    let server = start(ServerConfig {
        concurrency_limit: 2,
        ..ServerConfig::default()
    })
    .await;
    let busy = fill_the_limit(&server, 2, 1000).await;

    let status = probe(&server).sleep(sleep_for(0)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "OVERLOADED");
    assert_eq!(info.metadata["concurrency_limit"], "2");

    for call in busy {
        call.await.unwrap().expect("calls within the limit finish");
    }
    probe(&server)
        .sleep(sleep_for(0))
        .await
        .expect("capacity is back once calls finish");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_answers_while_the_concurrency_limit_is_exhausted() {
    let server = start(ServerConfig {
        concurrency_limit: 1,
        ..ServerConfig::default()
    })
    .await;
    let busy = fill_the_limit(&server, 1, 3000).await.remove(0);

    // Kubernetes probes and load balancers must still see the truth.
    assert_eq!(health(&server, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&server, "micros.testing.v1.ProbeService").await,
        ServingStatus::Serving
    );
    let status = probe(&server).sleep(sleep_for(0)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "still at the limit");

    busy.await
        .unwrap()
        .expect("the call within the limit finishes");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn probes_need_no_token_but_services_do() {
    let server = start(ServerConfig::default()).await;
    assert_eq!(health(&server, "").await, ServingStatus::Serving);

    let status = ProbeServiceClient::new(channel(&server, None))
        .sleep(sleep_for(0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "MISSING_CREDENTIALS"
    );

    let forged = Issuer::new(&SigningKey::generate(), "micros")
        .issue("mallory", &[Role::Viewer], Duration::from_secs(60))
        .unwrap();
    let status = ProbeServiceClient::new(channel(&server, Some(forged)))
        .sleep(sleep_for(0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "INVALID_CREDENTIALS"
    );
    server.shutdown().await.unwrap();
}
