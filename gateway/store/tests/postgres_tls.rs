//! TLS to PostgreSQL, against the machine's own server (Debian's has TLS on
//! with its "snakeoil" certificate for `localhost`): verified by name, and
//! refused when the certificate's authority is not trusted.

use std::path::PathBuf;
use std::time::Duration;

use gateway_store::test_support::ScratchSchema;
use gateway_store::{PostgresSettings, PostgresStore, Store};

const SERVER_CERTIFICATE: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn settings(url: String, ca_file: Option<PathBuf>) -> PostgresSettings {
    PostgresSettings {
        url,
        max_connections: 2,
        connect_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
        ca_file,
    }
}

#[tokio::test]
async fn a_database_over_tls_is_verified_by_name_against_the_trusted_authority() {
    let schema = ScratchSchema::create().await;
    let url = schema
        .url()
        .replace("127.0.0.1", "localhost")
        .replace("?", "?sslmode=require&");
    assert!(
        std::path::Path::new(SERVER_CERTIFICATE).exists(),
        "this test needs the local PostgreSQL to serve TLS with {SERVER_CERTIFICATE}"
    );

    // Its certificate is self-signed: unknown to the public roots.
    let refused = PostgresStore::open(&settings(url.clone(), None)).await;
    let error = refused.err().expect("an untrusted certificate is refused");
    assert!(
        error.to_string().contains("UnknownIssuer"),
        "refused for its issuer: {error:?}"
    );

    // Trusted through `ca_file`, and the name matches: the store opens.
    let trusted = settings(url, Some(PathBuf::from(SERVER_CERTIFICATE)));
    let store = PostgresStore::open(&trusted)
        .await
        .expect("a verified TLS connection");
    store.probe().await.expect("writes commit over TLS");
}

#[tokio::test]
async fn a_ca_file_that_is_not_a_certificate_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").expect("written");
    let schema = ScratchSchema::create().await;
    let opened = PostgresStore::open(&settings(schema.url(), Some(path))).await;
    let error = opened.err().expect("refused").to_string();
    assert!(error.contains("ca.pem"), "names the file: {error}");
}
