//! External clients the end-to-end tests drive (curl, nghttp, h2load, and a
//! Python with the `h2` and `httpx` packages): found, or installed by
//! `tools/install-test-tools.sh` on first use. A tool that cannot be had
//! fails the test that needs it, loudly; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root (this crate lives in `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

/// Runs the installer once per test process; concurrent test processes
/// serialize on a lock file so that apt and pip run one at a time.
fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let root = repo_root();
        let script = root.join("tools/install-test-tools.sh");
        let lock = target_dir().join("install-test-tools.lock");
        let _ = std::fs::create_dir_all(target_dir());
        let status = Command::new("flock")
            .arg(&lock)
            .arg("bash")
            .arg(&script)
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(status.success(), "{} failed ({status}): the HTTP/2 client tests need its tools", script.display());
    });
}

/// The target directory the test binaries run from.
fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("target directory").to_path_buf()
}

/// The path of `name`, installing it if missing: `curl`, `nghttp`, `h2load`,
/// `promtool`, or `python-h2` (a Python interpreter that can import `h2` and
/// `httpx`).
pub fn require_tool(name: &str) -> PathBuf {
    let found = |n: &str| -> Option<PathBuf> {
        let out = Command::new("sh").arg("-c").arg(format!("command -v {n}")).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    match name {
        "curl" | "nghttp" | "h2load" | "promtool" => {
            if let Some(p) = found(name) {
                return p;
            }
            install();
            found(name).unwrap_or_else(|| panic!("{name} is still missing after tools/install-test-tools.sh"))
        }
        "python-h2" => {
            let py = target_dir().join("test-venv/bin/python");
            let ok =
                |p: &Path| Command::new(p).args(["-c", "import h2, httpx"]).output().is_ok_and(|o| o.status.success());
            if !ok(&py) {
                install();
            }
            assert!(ok(&py), "{} cannot import h2 and httpx after tools/install-test-tools.sh", py.display());
            py
        }
        other => panic!("unknown test tool {other:?}"),
    }
}
