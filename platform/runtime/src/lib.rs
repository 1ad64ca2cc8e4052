//! The Micros platform: what every service shares, written once.
//!
//! * [`admission`]: a site's first data only for a site the catalog has active;
//! * [`ids`]: typed, prefixed UUIDv7 identifiers;
//! * [`input`]: the input rules of every API edge (no trimming, size limits, bounded echoes);
//! * [`config`]: defaults, file, `MICROS__…` environment, validation;
//! * [`telemetry`]: tracing and OTLP export;
//! * [`metrics`]: RPC metrics and the Prometheus endpoint;
//! * [`server`] and [`layers`]: the gRPC server with health, reflection, trace,
//!   load shedding, deadlines and auth; graceful drain;
//! * [`paging`]: page tokens and sizes for list RPCs;
//! * [`client`]: calling other services by name;
//! * [`clock`]: the injectable clock behind retention and expiry;
//! * [`auth`]: bearer tokens, principals and roles;
//! * [`error`]: the one mapping from errors to `tonic::Status` with `ErrorInfo`;
//! * [`failpoints`]: crash and failure points for tests (feature `failpoints`);
//! * [`store`]: SQLite and PostgreSQL pools with per-backend migrations;
//! * [`lifecycle`]: tenant registry, soft delete, restore, purge, point in time, fingerprints;
//! * [`service`]: what a service declares and how it runs;
//! * [`testing`] (feature `testing`): fresh databases and real servers for tests.

pub mod admission;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod failpoints;
pub mod ids;
pub mod input;
pub mod layers;
pub mod lifecycle;
pub mod metrics;
pub mod paging;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
