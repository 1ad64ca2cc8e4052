//! `micros bench`: benchmarks that drive the suite from outside, through gRPC only, and
//! print figures (never pass/fail on time: speed is read, not asserted).

mod floors;
mod replay;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// The April 2022 incident replayed: sites seeded through gRPC, deleted through the
    /// orchestrator (plan, approval by a second principal, apply), restored and verified,
    /// with wall time per phase and per service against the same-run SQL floors.
    Replay(replay::ReplayArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Replay(args) => replay::run(args).await,
    }
}
