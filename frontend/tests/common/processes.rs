//! `ferrograd worker` processes on loopback for tests: a cluster made with `ferrograd cluster
//! init`, workers paired with `cluster token` / `worker --join` (mutual TLS), killed on drop.
#![allow(dead_code)]

use ferrograd::distributed::cluster::Identity;
use ferrograd::distributed::{remote, Security};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `ferrograd` CLI built for these tests.
pub fn ferrograd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrograd"))
}

/// Runs the CLI and returns its standard output; panics if it fails.
pub fn run(args: &[&str]) -> String {
    let out = ferrograd().args(args).output().expect("ferrograd runs");
    assert!(
        out.status.success(),
        "ferrograd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A worker process, killed (after a SIGCONT, in case it is stopped) when dropped.
pub struct WorkerProcess {
    pub child: Child,
    pub addr: String,
}

impl WorkerProcess {
    /// Starts a worker joined to `cluster` with its state in `state`; waits until it listens.
    pub fn start(cluster: &Path, state: &Path) -> WorkerProcess {
        let token = run(&[
            "cluster",
            "token",
            cluster.to_str().unwrap(),
            "--ttl-secs",
            "600",
        ]);
        let mut child = ferrograd()
            .args(["worker", "--listen", "127.0.0.1:0", "--join", token.trim()])
            .arg("--state")
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("ferrograd worker listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected worker output: {line:?}"))
            .to_string();
        assert!(line.contains("mutual TLS"), "{line}");
        WorkerProcess { child, addr }
    }

    /// Sends `signal` with `kill` (Debian package `procps`, installed by `.ci/run`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// The worker's CPU as a remote device name.
    pub fn device(&self) -> String {
        format!("remote:{}/cpu", self.addr)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a cluster in `dir` and secures this process's remote devices with its client
/// identity (process-wide).
pub fn init_cluster(dir: &Path) {
    let out = run(&["cluster", "init", dir.to_str().unwrap()]);
    assert!(out.contains("FERROGRAD_CLUSTER_DIR"), "{out}");
    ferrograd::device::init();
    remote::set_client_security(Security::MutualTls(Identity::load_client(dir).unwrap()));
}

/// The cluster the tests of one test binary share (made once; the client's security is
/// process-wide), with `cpu` as the default device.
pub fn shared_cluster() -> &'static Path {
    static CLUSTER: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            init_cluster(dir.path());
            ferrograd::device::set_default_device("cpu").unwrap();
            dir
        })
        .path()
}
