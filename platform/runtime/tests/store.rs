//! The store on a real PostgreSQL (when `MICROS_TEST_POSTGRES_URL` names one): a password
//! with URL delimiters in it reaches the server as the password, not as part of the host.

use micros_platform::{
    store::{Backend, Migrations, Store},
    testing::TestStore,
};
use secrecy::SecretString;

#[tokio::test]
async fn a_password_with_url_delimiters_connects() {
    if !micros_platform::testing::backends().contains(&Backend::Postgres) {
        eprintln!("skipped: MICROS_TEST_POSTGRES_URL is not set");
        return;
    }
    let mut store = TestStore::new(Backend::Postgres);
    // Spliced into the URL as it is, this would point at host `ss` (and the test
    // server's `trust` authentication would not even look at the password).
    store.config.password = SecretString::from("p@ss/w:rd?#%");
    let migrations = Migrations {
        sqlite: sqlx::migrate!("./tests/migrations/sqlite"),
        postgres: sqlx::migrate!("./tests/migrations/postgres"),
    };
    let opened = Store::open(&store.config, "password", &migrations)
        .await
        .expect("the store opens with the password escaped");
    let one: i64 = sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
        .fetch_one(opened.pool())
        .await
        .unwrap();
    assert_eq!(one, 1);
    opened.close().await;
}
