//! The platform's own cost: a trivial unary RPC (the test-only probe, answering at once)
//! through the whole server stack every service runs (trace, metrics, load shed,
//! deadline, auth; [`micros_platform::server::ServerBuilder`]) against the same service
//! on a bare tonic server, in the same process, under the same telemetry a service
//! installs (log subscriber, Prometheus meter provider), with many concurrent clients.
//!
//! `cargo bench -p micros-platform --bench stack` (`MICROS_BENCH_CLIENTS`, default 64
//! concurrent callers; `MICROS_BENCH_CONNECTIONS`, default 4 HTTP/2 connections;
//! `MICROS_BENCH_SECONDS`, default 3 per round). Prints throughput and latency of each
//! round (bare and stack alternate, twice) and the ratio of the best rounds.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use micros_platform::{
    auth::Role,
    config::{ServerConfig, TelemetryConfig},
    server::ServerBuilder,
    testing::{test_auth, test_token},
};
use micros_proto::testing::v1::{
    SleepRequest, SleepResponse,
    probe_service_client::ProbeServiceClient,
    probe_service_server::{ProbeService, ProbeServiceServer},
};
use tonic::{
    Request, Response, Status,
    metadata::MetadataValue,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

struct Probe;

#[tonic::async_trait]
impl ProbeService for Probe {
    async fn sleep(
        &self,
        request: Request<SleepRequest>,
    ) -> Result<Response<SleepResponse>, Status> {
        Ok(Response::new(SleepResponse {
            slept_millis: request.into_inner().millis,
        }))
    }
}

fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
struct Round {
    calls: usize,
    errors: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

impl Round {
    fn throughput(&self) -> f64 {
        self.calls as f64 / self.seconds
    }
}

/// Presents the bearer token on every call (to both servers, so requests are alike).
#[derive(Clone)]
struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = ProbeServiceClient<InterceptedService<Channel, Bearer>>;

async fn clients(url: &str, connections: usize) -> Vec<Client> {
    let token: MetadataValue<_> = format!("Bearer {}", test_token("bench", &[Role::Viewer]))
        .parse()
        .expect("a header value");
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = Endpoint::from_shared(url.to_owned())
            .expect("a URL")
            .connect()
            .await
            .expect("connect");
        clients.push(ProbeServiceClient::with_interceptor(
            channel,
            Bearer(token.clone()),
        ));
    }
    clients
}

/// `callers` tasks calling as fast as they can for `length`, spread over the clients.
async fn round(url: &str, connections: usize, callers: usize, length: Duration) -> Round {
    let shared = clients(url, connections).await;
    // Warm the connections and the server.
    for client in &shared {
        let mut client = client.clone();
        for _ in 0..100 {
            client
                .sleep(SleepRequest { millis: 0 })
                .await
                .expect("warm-up call");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|index| {
            let mut client = shared[index % shared.len()].clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    match client.sleep(SleepRequest { millis: 0 }).await {
                        Ok(_) => latencies.push(sent.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut some, failed) = task.await.expect("a caller");
        latencies.append(&mut some);
        errors += failed;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |quantile: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * quantile) as usize)
                    .min(latencies.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or_default()
    };
    Round {
        calls: latencies.len(),
        errors,
        seconds,
        p50: at(0.50),
        p99: at(0.99),
    }
}

async fn bare_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ProbeServiceServer::new(Probe))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("the bare server");
    });
    (url, task)
}

#[tokio::main]
async fn main() {
    let callers = env_size("MICROS_BENCH_CLIENTS", 64);
    let connections = env_size("MICROS_BENCH_CONNECTIONS", 4);
    let length = Duration::from_secs(env_size("MICROS_BENCH_SECONDS", 3) as u64);
    // What every service installs first thing: the log subscriber and the meter provider
    // its metrics layer records into (served for Prometheus).
    let _telemetry =
        micros_platform::telemetry::init("bench", &TelemetryConfig::default()).expect("telemetry");

    let (bare_url, bare) = bare_server().await;
    let stack = ServerBuilder::new(
        &ServerConfig {
            port: 0,
            ..ServerConfig::default()
        },
        &test_auth("probe"),
    )
    .add_service(ProbeServiceServer::new(Probe))
    .bind()
    .await
    .expect("bind the platform server")
    .spawn();
    let stack_url = stack.url();

    let mut bare_rounds = Vec::new();
    let mut stack_rounds = Vec::new();
    for _ in 0..2 {
        bare_rounds.push(round(&bare_url, connections, callers, length).await);
        stack_rounds.push(round(&stack_url, connections, callers, length).await);
    }
    println!();
    println!(
        "platform stack benchmark: trivial unary RPC, {callers} concurrent callers over {connections} connections, {} s rounds, {} CPUs, client and server in one process (`cargo bench -p micros-platform --bench stack`)",
        length.as_secs(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{:<10} {:>12} {:>10} {:>10} {:>8}",
        "server", "calls/s", "p50", "p99", "errors"
    );
    let print = |name: &str, round: &Round| {
        println!(
            "{name:<10} {:>12.0} {:>8.0}µs {:>8.0}µs {:>8}",
            round.throughput(),
            round.p50.as_secs_f64() * 1e6,
            round.p99.as_secs_f64() * 1e6,
            round.errors
        );
    };
    for (bare, stack) in bare_rounds.iter().zip(&stack_rounds) {
        print("bare", bare);
        print("stack", stack);
    }
    let best = |rounds: &[Round]| {
        *rounds
            .iter()
            .max_by(|a, b| a.throughput().total_cmp(&b.throughput()))
            .expect("a round")
    };
    let (bare_best, stack_best) = (best(&bare_rounds), best(&stack_rounds));
    let cost = 1.0 - stack_best.throughput() / bare_best.throughput();
    println!(
        "best rounds: stack/bare throughput {:.2}x (the stack costs {:.0}% of bare tonic's throughput; target <= 20%: {}), p99 {:.0}µs vs {:.0}µs ({:.2}x)",
        stack_best.throughput() / bare_best.throughput(),
        cost * 100.0,
        if cost <= 0.20 { "met" } else { "NOT met" },
        stack_best.p99.as_secs_f64() * 1e6,
        bare_best.p99.as_secs_f64() * 1e6,
        stack_best.p99.as_secs_f64() / bare_best.p99.as_secs_f64().max(1e-9)
    );
    stack.shutdown().await.expect("drain");
    bare.abort();
}
