//! The image and the commands that build and load it, as a user copies them: the
//! runtime stage can verify TLS certificates (S3 over https), and every `docker build`
//! a document prints makes an image that `kind load` accepts on current Docker.
//!
//! Neither Docker nor kind runs where these tests run, so they read the Dockerfile and
//! the documents instead of building.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The instructions after the last `FROM`, continuation lines joined.
fn runtime_stage(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|line| line.starts_with("FROM "))
        .expect("the Dockerfile has a FROM");
    lines[last_from..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect()
}

#[test]
fn the_runtime_image_carries_ca_certificates() {
    let stage = runtime_stage(&read("Dockerfile"));
    assert!(
        stage.iter().any(|line| line.starts_with("RUN ")
            && line.contains("apt-get install")
            && line
                .split_whitespace()
                .any(|word| word == "ca-certificates")),
        "the runtime stage installs no ca-certificates, so https to S3 fails certificate \
         checks:\n{}",
        stage.join("\n")
    );
}

/// Docker 29 keeps images in containerd and `docker build` attaches a provenance
/// attestation; `kind load docker-image` then fails with `content digest … not found`.
#[test]
fn every_documented_image_build_can_be_loaded_into_kind() {
    let mut builds = 0;
    for document in ["README.md", "k8s/README.md", "Dockerfile"] {
        for line in read(document)
            .lines()
            .filter(|line| line.contains("docker build"))
        {
            builds += 1;
            assert!(
                line.contains("--provenance=false"),
                "{document}: `{}` makes an image kind cannot load on Docker 29 \
                 (add --provenance=false)",
                line.trim()
            );
        }
    }
    assert!(
        builds >= 2,
        "the documents no longer show how to build the image"
    );
}
