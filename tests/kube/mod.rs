//! What the manifest tests share: kubectl and kubernetes-validate looked up on PATH (a
//! missing one skips, unless `MICROS_REQUIRE_K8S_TOOLS` is set, as in CI), and the kind
//! overlay as `kubectl apply -k` would send it.

// Each test crate uses its own part of these helpers.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// Set in CI: a missing kubectl or kubernetes-validate fails these tests.
pub const REQUIRE_ENV: &str = "MICROS_REQUIRE_K8S_TOOLS";

pub fn k8s() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s")
}

/// `name` on PATH, or `None` (the caller skips) unless [`REQUIRE_ENV`] is set, in which
/// case a missing tool is a failure.
pub fn tool(name: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "{name} is not on PATH but {REQUIRE_ENV} is set: {install}"
        );
        eprintln!("skipped: {name} is not on PATH ({install})");
    }
    found
}

pub fn kubectl() -> Option<PathBuf> {
    tool("kubectl", "install kubectl v1.27 or later")
}

/// `kubectl kustomize k8s/<tree>`: the YAML that `kubectl apply -k` would send.
pub fn kustomize(kubectl: &Path, tree: &str) -> String {
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(k8s().join(tree))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        output.status.success(),
        "kubectl kustomize k8s/{tree} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("kustomize writes UTF-8")
}

pub fn objects(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).expect("kustomize output is YAML")
}

pub fn describe(object: &Value) -> String {
    let field = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    format!(
        "{} {}",
        field(&object["kind"]),
        field(&object["metadata"]["name"])
    )
}

/// The object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the kind overlay has no {kind} {name}"))
}
