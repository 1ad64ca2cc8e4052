//! A real S3-protocol server for tests: `s3s-fs` (crates.io; `cargo install
//! s3s-fs@0.14.1 --features binary`), an S3 API over a directory, so the object store's
//! S3 path (multipart uploads, signing, listing) runs against the protocol itself.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Set in CI: a missing `s3s-fs` fails the S3 tests instead of skipping them.
pub const REQUIRE_S3S_ENV: &str = "MICROS_REQUIRE_S3S";

const INSTALL: &str = "cargo install s3s-fs@0.14.1 --features binary";

/// One `s3s-fs` on 127.0.0.1 over a temporary directory; killed when dropped.
pub struct S3Server {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts `s3s-fs` accepting `access_key`/`secret_key` (AWS SigV4) with `bucket`
    /// created; `None` (the caller skips) when `s3s-fs` is not on PATH, unless
    /// [`REQUIRE_S3S_ENV`] is set, in which case that is a failure.
    pub fn start(bucket: &str, access_key: &str, secret_key: &str) -> Option<Self> {
        let Some(exe) = s3s_fs() else {
            assert!(
                std::env::var_os(REQUIRE_S3S_ENV).is_none(),
                "s3s-fs is not on PATH but {REQUIRE_S3S_ENV} is set: {INSTALL}"
            );
            eprintln!("skipped: s3s-fs is not on PATH ({INSTALL})");
            return None;
        };
        let dir = tempfile::tempdir().expect("a directory for the S3 server");
        std::fs::create_dir(dir.path().join(bucket)).expect("create the bucket");
        // A free port, released for the server to take.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port");
        let mut child = Command::new(exe)
            .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--access-key", access_key, "--secret-key", secret_key])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("s3s-fs exited with {status} before it listened on {addr}");
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {addr} within 20s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, addr, dir })
    }

    /// `http://127.0.0.1:<port>`, for `service.s3.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the server keeps `bucket`'s objects: a file per key under this directory.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join(bucket)
    }

    /// The keys of every object in `bucket`.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let root = self.bucket_dir(bucket);
        let mut keys = Vec::new();
        collect_files(&root, &root, &mut keys);
        keys.sort();
        keys
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_files(root: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, keys);
        } else if let Ok(key) = path.strip_prefix(root) {
            keys.push(key.to_string_lossy().into_owned());
        }
    }
}

fn s3s_fs() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("s3s-fs"))
            .find(|candidate| candidate.is_file())
    })
}
