//! `sqlx::migrate!` embeds the migration files when the crate compiles, but cargo does
//! not know a new file in the directory changes the crate: without this, a migration
//! added after the last build is silently left out.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
