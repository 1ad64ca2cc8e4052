//! The committed `k8s/` is exactly what `micros render` writes from the service
//! descriptors: a descriptor changed (or a service added) without re-rendering fails
//! here, naming each file that drifted.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

const MICROS: &str = env!("CARGO_BIN_EXE_micros");

/// The trees `micros render` owns under `k8s/`; `k8s/README.md` is written by hand.
const GENERATED_DIRS: [&str; 2] = ["base", "overlays/kind"];

fn committed_k8s() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s")
}

fn render_into(out: &Path) {
    let output = Command::new(MICROS)
        .arg("render")
        .arg("--out")
        .arg(out)
        .output()
        .expect("run micros render");
    assert!(
        output.status.success(),
        "micros render failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every file under the generated trees of `root`, by its path relative to `root`.
fn generated_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("list a k8s directory").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy();
                files.insert(
                    relative.into_owned(),
                    std::fs::read(&path).expect("read a manifest"),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    for dir in GENERATED_DIRS {
        walk(root, &root.join(dir), &mut files);
    }
    files
}

/// One line per file that differs between the committed tree and a fresh render.
fn drift(committed: &Path, rendered: &Path) -> Vec<String> {
    let committed = generated_files(committed);
    let rendered = generated_files(rendered);
    let mut drift = Vec::new();
    for (path, body) in &rendered {
        match committed.get(path) {
            None => drift.push(format!("k8s/{path} is missing")),
            Some(old) if old != body => {
                drift.push(format!("k8s/{path} differs from what micros render writes"));
            }
            Some(_) => {}
        }
    }
    for path in committed
        .keys()
        .filter(|path| !rendered.contains_key(*path))
    {
        drift.push(format!("k8s/{path} is not written by micros render"));
    }
    drift
}

#[test]
fn committed_manifests_match_a_fresh_render() {
    let out = tempfile::tempdir().unwrap();
    render_into(out.path());
    let rendered = generated_files(out.path());
    assert!(
        rendered.contains_key("base/kustomization.yaml")
            && rendered.contains_key("overlays/kind/kustomization.yaml"),
        "micros render wrote no kustomizations: {:?}",
        rendered.keys()
    );
    let drift = drift(&committed_k8s(), out.path());
    assert!(
        drift.is_empty(),
        "k8s/ does not match the service descriptors:\n  {}\n\
         Run `cargo run -p micros -- render` and commit k8s/.",
        drift.join("\n  ")
    );
}

#[test]
fn drift_names_each_file_that_changed() {
    let committed = tempfile::tempdir().unwrap();
    let rendered = tempfile::tempdir().unwrap();
    render_into(committed.path());
    render_into(rendered.path());
    assert!(drift(committed.path(), rendered.path()).is_empty());

    let edited = committed.path().join("base/catalog/deployment.yaml");
    let body = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, body.replace("replicas: 2", "replicas: 3")).unwrap();
    std::fs::remove_file(committed.path().join("overlays/kind/kind-config.yaml")).unwrap();
    std::fs::write(
        committed.path().join("base/leftover.yaml"),
        "kind: Secret\n",
    )
    .unwrap();

    let drift = drift(committed.path(), rendered.path());
    assert_eq!(
        drift,
        [
            "k8s/base/catalog/deployment.yaml differs from what micros render writes",
            "k8s/overlays/kind/kind-config.yaml is missing",
            "k8s/base/leftover.yaml is not written by micros render",
        ]
    );
}

#[test]
fn rendering_again_changes_nothing() {
    let out = tempfile::tempdir().unwrap();
    render_into(out.path());
    let first = generated_files(out.path());
    render_into(out.path());
    assert_eq!(first, generated_files(out.path()));
}
