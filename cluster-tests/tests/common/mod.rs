//! Starting the real binaries: where they are, and a child process that is killed when its
//! handle is dropped (also when an assertion fails).

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A built binary: `target/debug/NAME`, or `$TOLLGATE_BIN_DIR/NAME`.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("TOLLGATE_BIN_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

/// `tollgate serve` with `config` and its store in `data`, on 127.0.0.1 with a free port and a
/// free admin port.
pub fn serve_command(config: &Path, data: &Path) -> Command {
    let mut command = Command::new(bin("tollgate"));
    command
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--admin-port",
            "0",
        ])
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data);
    command
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started server: its process, base URL, and the rest of what it prints on stdout.
pub struct Started {
    pub proc: Proc,
    pub url: String,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts a server binary that announces `listening on http://ADDR` on stdout; its stderr
/// goes to `log` (never an unread pipe, which would block it once full).
pub fn start(mut command: Command, log: &Path) -> Started {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = stdout.next().unwrap().unwrap();
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}; see {}", log.display()))
        .to_owned();
    Started {
        proc: Proc(child),
        url,
        stdout,
    }
}
