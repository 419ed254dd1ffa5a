//! Loading whole files: the shipped example, defaults, and every kind of error
//! reported at once with its file, line, entry and field.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::*;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str(text, Path::new("gw.toml"))
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[backend_pool]]
name = "pool01"
addresses = ["127.0.0.1:9000"]

[[backend_http_settings]]
name = "setting01"

[[rule]]
name = "rule01"
listener = "public"
backend_pool = "pool01"
backend_http_settings = "setting01"
"#;

#[test]
fn shipped_example_is_valid_and_means_what_it_says() {
    let text = include_str!("../../../../examples/ringgate.toml");
    // Error pages are read relative to the file's own directory.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ringgate.toml");
    let cfg = load_str(text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.listeners.len(), 4);
    assert_eq!(cfg.rules.len(), 4);
    assert_eq!(cfg.pools.len(), 4);
    assert_eq!(cfg.pools[0].servers.len(), 3);
    assert_eq!(cfg.pools[0].servers[2].host, ServerHost::Name("app.internal".into()));
    assert_eq!(cfg.pools[0].servers[2].port, Some(8081));
    assert_eq!(cfg.settings[1].request_timeout, Duration::from_millis(2500));
    assert!(cfg.settings[1].cookie_based_affinity);
    let p = &cfg.probes[0];
    assert_eq!(p.path, "/health");
    assert_eq!(p.body.as_deref(), Some("ok"));
    assert_eq!(p.status_codes, vec![200..=399]);
    let groups = cfg.socket_groups();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[1].listeners, vec![ListenerId(1), ListenerId(2)]);
    assert_eq!(cfg.listeners[2].host_names[1], HostPattern::Glob("b-??.example.*".into()));
    assert_eq!(cfg.listeners[1].host_names[1], HostPattern::Wildcard(".a.example.com".into()));

    // Routing: a path-based rule, priorities on the shared address, a
    // redirect rule.
    let RuleKind::PathBased(m) = cfg.rules[0].kind else { panic!("{:?}", cfg.rules[0].kind) };
    let map = &cfg.url_path_maps[m.0];
    let paths: Vec<String> = map.path_rules.iter().flat_map(|r| r.paths.iter().map(ToString::to_string)).collect();
    assert_eq!(paths, ["/api/*", "/static/*", "/docs/*", "/help"]);
    assert_eq!(map.path_rules[2].action, Action::Redirect(RedirectId(1)));
    assert_eq!((cfg.rules[1].priority, cfg.rules[2].priority, cfg.rules[0].priority), (Some(100), Some(200), None));
    assert_eq!(cfg.rules[3].kind, RuleKind::Basic(Action::Redirect(RedirectId(0))));
    let r = &cfg.redirects[0];
    assert_eq!(
        (r.status, &r.target, r.include_path, r.include_query_string),
        (301, &RedirectTarget::Listener(ListenerId(0)), true, true)
    );
    let r = &cfg.redirects[1];
    assert_eq!(
        (r.status, &r.target, r.include_path, r.include_query_string),
        (302, &RedirectTarget::Url("https://docs.example.com/".into()), false, true)
    );
    let names: Vec<&str> = cfg.targets.iter().map(|t| t.display.as_str()).collect();
    assert_eq!(names, ["rule01", "rule01/api", "rule01/static", "rule-a", "rule-b"]);
    let with_rewrite: Vec<bool> = cfg.targets.iter().map(|t| t.rewrite_set.is_some()).collect();
    assert_eq!(with_rewrite, [true, true, false, true, false]);
    let set = &cfg.rewrite_rule_sets[0].set;
    assert_eq!(
        set.rules_in_order().collect::<Vec<_>>(),
        [("hsts", 10), ("legacy-articles", 20), ("forwarded-host", 30)]
    );

    // The settings that shape forwarded requests.
    assert_eq!(cfg.settings[2].override_backend_path.as_deref(), Some("/assets/"));
    assert_eq!(cfg.settings[1].connection_draining, Some(ConnectionDraining { timeout: Duration::from_secs(60) }));
    assert_eq!(cfg.settings[2].connection_draining, None);
    assert!(cfg.settings[3].pick_host_name_from_backend_address);
    assert_eq!(cfg.settings[3].host_name, None);

    // Error pages: the gateway's 502, the public listener's 404.
    assert_eq!(cfg.gateway.error_pages.len(), 1);
    assert_eq!(
        (cfg.gateway.error_pages[0].status, cfg.gateway.error_pages[0].content_type.as_str()),
        (502, "text/html; charset=utf-8")
    );
    assert!(std::str::from_utf8(&cfg.gateway.error_pages[0].body).unwrap().contains("right back"));
    assert_eq!(cfg.listeners[0].error_pages.iter().map(|p| p.status).collect::<Vec<_>>(), [404]);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn defaults_follow_the_reference() {
    let cfg = load(MINIMAL).unwrap();
    let s = &cfg.settings[0];
    assert_eq!(s.port, 80);
    assert_eq!(s.protocol, Protocol::Http);
    assert_eq!(s.request_timeout, Duration::from_secs(30));
    assert!(!s.cookie_based_affinity);
    assert_eq!(s.probe, None);
    let p = cfg.probe_for(SettingsId(0));
    assert_eq!((p.interval, p.timeout, p.unhealthy_threshold), (Duration::from_secs(30), Duration::from_secs(30), 3));
    assert_eq!(cfg.probe_host(SettingsId(0)), "127.0.0.1");
    assert_eq!(cfg.gateway.admin_listen, Some("127.0.0.1:9901".parse::<SocketAddr>().unwrap()));
    assert_eq!(cfg.gateway.limits.max_request_head, 16 * 1024);
}

#[test]
fn every_error_is_reported_at_once_with_its_location() {
    let text = r#"
[gateway]
workerz = 2

[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[backend_pool]]
name = "pool01"
addresses = ["10.0.0.300", "app.internal:99999"]

[[backend_pool]]
name = "pool01"
addresses = []

[[backend_http_settings]]
name = "setting01"
protocol = "ftp"
probe = "prob01"
request_timeout = 0

[[probe]]
name = "probe01"
path = "health"
interval = 90000
unhealthy_threshold = 21

[[rule]]
name = "rule01"
listener = "public"
backend_pool = "pool02"
backend_http_settings = "setting01"
"#;
    let errs = errors(text);
    let expect = [
        "gw.toml:3: [gateway], field `workerz`: unknown field (known fields: workers, worker_cpus, prober_cpu, admin_listen, recent_window, drain_timeout, shutdown_delay, dns_refresh, watch_config, watch_interval, error_detail, trusted_proxies, allow_trace, unknown_version_status, log_format, access_log, access_log_format, limits, io_uring, splice, http2, error_pages, allow_subsecond_timers, unprobed_servers); did you mean `workers`?",
        "gw.toml:11: [[backend_pool]] \"pool01\", field `addresses[0]`: \"10.0.0.300\" is neither an IP address nor a valid host name",
        "gw.toml:11: [[backend_pool]] \"pool01\", field `addresses[1]`: \"app.internal:99999\": port \"99999\" is not a number from 1 to 65535",
        "gw.toml:19: [[backend_http_settings]] \"setting01\", field `protocol`: \"ftp\" is not a protocol (use \"http\" or \"https\")",
        "gw.toml:21: [[backend_http_settings]] \"setting01\", field `request_timeout`: 0 s is out of range (allowed: 1 to 86400 seconds, or a string down to \"10ms\")",
        "gw.toml:25: [[probe]] \"probe01\", field `path`: must start with '/' (got \"health\"); the probe is sent to <protocol>://<host>:<port><path>",
        "gw.toml:26: [[probe]] \"probe01\", field `interval`: 90000 s is out of range (allowed: 1 to 86400 whole seconds, as Application Gateway v2)",
        "gw.toml:27: [[probe]] \"probe01\", field `unhealthy_threshold`: 21 is out of range (allowed: 1 to 20)",
        "gw.toml:14: [[backend_pool]] \"pool01\", field `name`: duplicate name: another [[backend_pool]] \"pool01\" is defined on line 10",
        "gw.toml:20: [[backend_http_settings]] \"setting01\", field `probe`: refers to [[probe]] \"prob01\", which does not exist (defined: probe01); did you mean \"probe01\"?",
        "gw.toml:32: [[rule]] \"rule01\", field `backend_pool`: refers to [[backend_pool]] \"pool02\", which does not exist (defined: pool01); did you mean \"pool01\"?",
    ];
    for e in &expect {
        assert!(errs.contains(&e.to_string()), "missing:\n  {e}\ngot:\n  {}", errs.join("\n  "));
    }
    assert_eq!(errs.len(), expect.len(), "got:\n  {}", errs.join("\n  "));
}

#[test]
fn splice_settings_defaults_and_errors() {
    let cfg = load(MINIMAL).unwrap();
    assert_eq!(
        cfg.gateway.splice,
        SpliceSettings { enabled: true, min_body: crate::validate::DEFAULT_SPLICE_MIN_BODY, pipe_size: 256 * 1024 }
    );
    let text = format!("[gateway.splice]\nenabled = false\nmin_body = \"1MiB\"\npipe_size = \"64KiB\"\n{MINIMAL}");
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.splice, SpliceSettings { enabled: false, min_body: 1 << 20, pipe_size: 64 * 1024 });
    let text = format!("[gateway.splice]\nmin_body = 0\npipe_size = \"4MiB\"\nsplice = true\n{MINIMAL}");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with("gw.toml:2: [gateway.splice], field `min_body`:"), "{errs:?}");
    assert!(errs[1].starts_with("gw.toml:3: [gateway.splice], field `pipe_size`:"), "{errs:?}");
    assert_eq!(
        errs[2],
        "gw.toml:4: [gateway.splice], field `splice`: unknown field (known fields: enabled, min_body, pipe_size)"
    );
}

#[test]
fn io_uring_tuning_defaults_and_errors() {
    let cfg = load(MINIMAL).unwrap();
    assert_eq!(
        cfg.gateway.io_uring,
        IoUringTuning { entries: 1024, coop_taskrun: true, defer_taskrun: true, multishot_recv: true }
    );
    let text = format!("[gateway.io_uring]\nentries = 256\nmultishot_recv = false\n{MINIMAL}");
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cfg.gateway.io_uring.entries, cfg.gateway.io_uring.multishot_recv), (256, false));
    assert!(cfg.gateway.io_uring.defer_taskrun);
    let text = format!("[gateway.io_uring]\nentries = 300\nmultishot_recv = \"yes\"\nmultishot = true\n{MINIMAL}");
    assert_eq!(
        errors(&text),
        [
            "gw.toml:2: [gateway.io_uring], field `entries`: 300 is not a power of two",
            "gw.toml:3: [gateway.io_uring], field `multishot_recv`: expected true or false, found a string",
            "gw.toml:4: [gateway.io_uring], field `multishot`: unknown field (known fields: entries, coop_taskrun, defer_taskrun, multishot_recv)",
        ]
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let errs = errors("[gateway]\nworkers = \n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("gw.toml:2: file: not valid TOML"), "{}", errs[0]);
}

#[test]
fn wrong_types_and_shapes() {
    let text =
        MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nport = \"80\"\ncookie_based_affinity = \"yes\"");
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("field `port`: expected an integer, found a string")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("field `cookie_based_affinity`: expected true or false, found a string")));
    let errs = errors("[listener]\nname = \"x\"\n");
    assert_eq!(errs, vec!["gw.toml:1: [listener]: must be an array of tables: write `[[listener]]` for each entry"]);
    let errs = errors("[[listners]]\nname = \"x\"\n");
    assert!(errs[0].contains("unknown section") && errs[0].contains("did you mean `listener`?"), "{errs:?}");
}

#[test]
fn durations_accept_strings_down_to_10ms() {
    let ok = MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nrequest_timeout = \"250ms\"");
    assert_eq!(load(&ok).unwrap().settings[0].request_timeout, Duration::from_millis(250));
    let low = MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nrequest_timeout = \"5ms\"");
    let errs = errors(&low);
    assert!(errs[0].contains("\"5ms\" is out of range (allowed: 10ms to 86400 s)"), "{errs:?}");
}

#[test]
fn recent_window_is_five_minutes_unless_set_between_a_second_and_an_hour() {
    assert_eq!(load(MINIMAL).unwrap().gateway.recent_window, Duration::from_secs(300));
    let set = |v: &str| format!("[gateway]\nrecent_window = {v}\n{MINIMAL}");
    assert_eq!(load(&set("\"10s\"")).unwrap().gateway.recent_window, Duration::from_secs(10));
    assert_eq!(load(&set("\"1h\"")).unwrap().gateway.recent_window, Duration::from_secs(3600));
    assert_eq!(
        errors(&set("\"500ms\"")),
        ["gw.toml:2: [gateway], field `recent_window`: \"500ms\" is out of range (allowed: 1000ms to 3600 s)"]
    );
    assert_eq!(
        errors(&set("7200")),
        [
            "gw.toml:2: [gateway], field `recent_window`: 7200 s is out of range (allowed: 1 to 3600 seconds, or a string down to \"1000ms\")"
        ]
    );
}

#[test]
fn empty_pool_is_a_warning_not_an_error() {
    let cfg = load(&MINIMAL.replace("addresses = [\"127.0.0.1:9000\"]", "addresses = []")).unwrap();
    assert!(cfg.pools[0].servers.is_empty());
    let w: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.contains(&"gw.toml:8: [[backend_pool]] \"pool01\", field `addresses`: the pool is empty: every request routed to it is answered 502 POOL_EMPTY".to_string()),
        "{w:?}"
    );
}

#[test]
fn multi_site_listeners_must_not_overlap() {
    let text = format!(
        "{MINIMAL}\n[[listener]]\nname = \"other\"\nlisten = \"127.0.0.1:8080\"\n\n[[rule]]\nname = \"rule02\"\nlistener = \"other\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("listener \"public\" already answers every host on 127.0.0.1:8080")),
        "{errs:?}"
    );

    let text = format!(
        "{MINIMAL}\n[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:8080\"\nhost_names = [\"a.example.com\"]\n[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:8080\"\nhost_names = [\"A.example.com\"]\n[[rule]]\nname = \"ra\"\nlistener = \"a\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n[[rule]]\nname = \"rb\"\nlistener = \"b\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("\"a.example.com\" on 127.0.0.1:8080 is already answered by listener \"a\"")),
        "{errs:?}"
    );
}

#[test]
fn a_listener_takes_exactly_one_rule() {
    let twice = format!(
        "{MINIMAL}\n[[rule]]\nname = \"rule02\"\nlistener = \"public\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n"
    );
    let errs = errors(&twice);
    assert!(errs[0].contains("listener \"public\" is already used by rule \"rule01\""), "{errs:?}");
    let none = format!("{MINIMAL}\n[[listener]]\nname = \"spare\"\nlisten = \"127.0.0.1:8081\"\n");
    let errs = errors(&none);
    assert!(errs[0].contains("[[listener]] \"spare\": no [[rule]] uses this listener"), "{errs:?}");
}

#[test]
fn missing_names_and_required_fields() {
    let errs = errors("[[listener]]\nlisten = \"127.0.0.1:1\"\n[[rule]]\nname = \"r\"\n");
    assert!(
        errs.contains(&"gw.toml:1: [[listener]] #1, field `name`: missing: every entry needs a name".to_string()),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("[[rule]] \"r\", field `listener`: missing (required)")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains(
            "[[rule]] \"r\", field `backend_pool`: missing: set `backend_pool` and `backend_http_settings` (to forward), or `redirect` (to redirect)"
        )),
        "{errs:?}"
    );
}

#[test]
fn probe_host_choices() {
    let text = format!(
        "{}\n[[probe]]\nname = \"p\"\npick_host_name_from_backend_http_settings = true\n",
        MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nprobe = \"p\"\nhost_name = \"App.Example.com\"")
    );
    let cfg = load(&text).unwrap();
    assert_eq!(cfg.probe_host(SettingsId(0)), "app.example.com");
    let missing = text.replace("host_name = \"App.Example.com\"\n", "");
    let errs = errors(&missing);
    assert!(
        errs[0].contains("probe \"p\" picks its host name from these settings, but `host_name` is not set"),
        "{errs:?}"
    );
}

#[test]
fn timeout_longer_than_interval_is_a_warning() {
    let text = format!(
        "{}\n[[probe]]\nname = \"p\"\ninterval = 5\ntimeout = 10\n",
        MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nprobe = \"p\"")
    );
    let cfg = load(&text).unwrap();
    assert!(cfg.warnings.iter().any(|w| w.message.contains("longer than the interval")), "{:?}", cfg.warnings);
}

/// MINIMAL with its settings using probe `p`, made of `probe_lines`, and
/// `gateway` lines in a `[gateway]` table.
fn with_probe(gateway: &str, settings_extra: &str, probe_lines: &str) -> String {
    format!(
        "[gateway]\n{gateway}\n{}\n[[probe]]\nname = \"p\"\n{probe_lines}\n",
        MINIMAL.replace("name = \"setting01\"", &format!("name = \"setting01\"\nprobe = \"p\"\n{settings_extra}"))
    )
}

fn warnings(cfg: &Config) -> Vec<String> {
    cfg.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn probe_timers_are_whole_seconds_from_1_to_86400_as_v2() {
    // Whole seconds, as integers or strings, at both ends of the range.
    let cfg = load(&with_probe("", "", "interval = 1\ntimeout = \"86400s\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cfg.probes[0].interval, cfg.probes[0].timeout), (Duration::from_secs(1), Duration::from_secs(86_400)));
    let cfg = load(&with_probe("", "", "interval = \"2m\"\ntimeout = 30")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.probes[0].interval, Duration::from_secs(120));

    // Out of range, sub-second and fractional: each refused with its line.
    let errs = errors(&with_probe("", "", "interval = 0\ntimeout = 86401"));
    assert_eq!(
        errs,
        [
            "gw.toml:25: [[probe]] \"p\", field `interval`: 0 s is out of range (allowed: 1 to 86400 whole seconds, as Application Gateway v2)",
            "gw.toml:26: [[probe]] \"p\", field `timeout`: 86401 s is out of range (allowed: 1 to 86400 whole seconds, as Application Gateway v2)",
        ]
    );
    let errs = errors(&with_probe("", "", "interval = \"100ms\"\ntimeout = \"1500ms\""));
    assert_eq!(
        errs,
        [
            "gw.toml:25: [[probe]] \"p\", field `interval`: 100ms is not a whole number of seconds: Application Gateway v2 takes 1 to 86400 s; for sub-second probes (tests, labs) set [gateway] allow_subsecond_timers = true",
            "gw.toml:26: [[probe]] \"p\", field `timeout`: 1500ms is not a whole number of seconds: Application Gateway v2 takes 1 to 86400 s; for sub-second probes (tests, labs) set [gateway] allow_subsecond_timers = true",
        ]
    );
    let errs = errors(&with_probe("allow_subsecond_timers = true", "", "interval = \"5ms\"\ntimeout = 1.5"));
    assert_eq!(
        errs,
        [
            "gw.toml:25: [[probe]] \"p\", field `interval`: \"5ms\" is out of range (allowed: 1 to 86400 s; with [gateway] allow_subsecond_timers = true, down to \"10ms\")",
            "gw.toml:26: [[probe]] \"p\", field `timeout`: expected seconds as an integer or a string such as \"30s\", found a float",
        ]
    );
    let errs = errors(&with_probe("allow_subsecond_timers = \"yes\"", "", "interval = 5"));
    assert_eq!(errs, ["gw.toml:2: [gateway], field `allow_subsecond_timers`: expected true or false, found a string"]);
}

#[test]
fn subsecond_probe_timers_need_the_flag_and_are_warned_about() {
    // The flag may come after the probes in the file: it is read first.
    let text = with_probe("", "request_timeout = 5", "interval = \"100ms\"\ntimeout = \"50ms\"")
        .replace("[gateway]\n\n", "")
        + "\n[gateway]\nallow_subsecond_timers = true\n";
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.gateway.allow_subsecond_timers);
    assert_eq!(
        (cfg.probes[0].interval, cfg.probes[0].timeout),
        (Duration::from_millis(100), Duration::from_millis(50))
    );
    assert_eq!(
        warnings(&cfg),
        [
            "gw.toml:23: [[probe]] \"p\", field `interval`: 100ms is not a whole number of seconds (Application Gateway v2 takes 1 to 86400 s); accepted because [gateway] allow_subsecond_timers = true",
            "gw.toml:24: [[probe]] \"p\", field `timeout`: 50ms is not a whole number of seconds (Application Gateway v2 takes 1 to 86400 s); accepted because [gateway] allow_subsecond_timers = true",
        ]
    );
    assert!(cfg.describe().contains("allow_subsecond_timers = true"), "{}", cfg.describe());
    // Whole seconds with the flag: nothing to warn about.
    let cfg = load(&with_probe("allow_subsecond_timers = true", "", "interval = 5\ntimeout = \"3s\"")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // The flag covers probe timers only.
    let cfg = load(&with_probe("", "request_timeout = \"250ms\"", "interval = 5\ntimeout = 5")).unwrap();
    assert_eq!(cfg.settings[0].request_timeout, Duration::from_millis(250));
}

#[test]
fn a_probe_speaks_the_protocol_of_every_settings_that_use_it() {
    // An https probe on http settings, and the default (http) probe
    // protocol on https settings: each named with both sides.
    let text = with_probe("", "", "protocol = \"https\"")
        + "\n[[backend_http_settings]]\nname = \"tls\"\nprotocol = \"https\"\nprobe = \"q\"\n\n[[probe]]\nname = \"q\"\n";
    let errs = errors(&text);
    assert_eq!(
        errs,
        [
            "gw.toml:14: [[backend_http_settings]] \"setting01\", field `probe`: probe \"p\" uses protocol https but these settings use http: a probe must use the protocol of every [[backend_http_settings]] that uses it (set `protocol = \"http\"` in the probe, or use another probe)",
            "gw.toml:30: [[backend_http_settings]] \"tls\", field `probe`: probe \"q\" uses protocol http but these settings use https: a probe must use the protocol of every [[backend_http_settings]] that uses it (set `protocol = \"https\"` in the probe, or use another probe)",
        ]
    );
    let ok = with_probe("", "protocol = \"https\"", "protocol = \"https\"");
    assert_eq!(load(&ok).unwrap_or_else(|e| panic!("{e}")).probes[0].protocol, Protocol::Https);
}

#[test]
fn a_probe_timeout_beyond_the_request_timeout_is_a_warning() {
    let cfg = load(&with_probe("", "request_timeout = 5", "interval = 30\ntimeout = 10")).unwrap();
    assert_eq!(
        warnings(&cfg),
        [
            "gw.toml:26: [[probe]] \"p\", field `timeout`: the time-out (10s) is longer than request_timeout (5s) of [[backend_http_settings]] \"setting01\", which uses this probe: a server too slow to answer requests still passes its probe"
        ]
    );
    let cfg = load(&with_probe("", "request_timeout = 10", "interval = 30\ntimeout = 10")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn a_match_body_is_at_most_4090_characters() {
    // Characters, not bytes: 4090 two-byte characters are allowed.
    let body = "é".repeat(4090);
    let cfg = load(&with_probe("", "", &format!("match = {{ body = \"{body}\" }}"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.probes[0].body.as_deref(), Some(body.as_str()));
    let errs = errors(&with_probe("", "", &format!("match = {{ body = \"{}\" }}", "x".repeat(4091))));
    assert_eq!(
        errs,
        [
            "gw.toml:25: [[probe]] \"p\" match, field `body`: 4091 characters is too long (at most 4090, as Application Gateway v2)"
        ]
    );
}

#[test]
fn a_probe_port_overrides_the_servers_for_probes_only() {
    let cfg = load(&with_probe("", "port = 8080", "port = 8081")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cfg.probes[0].port, cfg.settings[0].port), (Some(8081), 8080));
    assert!(cfg.describe().contains("(sent to port 8081 of each server)"), "{}", cfg.describe());
    assert_eq!(load(MINIMAL).unwrap().probe_for(SettingsId(0)).port, None, "the default probe has none");
    let errs = errors(&with_probe("", "", "port = 0"));
    assert_eq!(errs, ["gw.toml:25: [[probe]] \"p\", field `port`: 0 is out of range (allowed: 1 to 65535)"]);
    let errs = errors(&with_probe("", "", "port = \"8081\""));
    assert_eq!(errs, ["gw.toml:25: [[probe]] \"p\", field `port`: expected an integer, found a string"]);
}

#[test]
fn unreadable_file_is_one_clear_error() {
    let e = load_file(Path::new("/nonexistent/ringgate.toml")).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert!(e.to_string().contains("/nonexistent/ringgate.toml: file: cannot read the configuration"), "{e}");
}

#[test]
fn port_zero_listeners_get_a_socket_each() {
    let text = format!(
        "{MINIMAL}\n[[listener]]\nname = \"second\"\nlisten = \"127.0.0.1:0\"\n[[rule]]\nname = \"rule02\"\nlistener = \"second\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n"
    )
    .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.socket_groups().len(), 2, "two basic listeners on port 0 do not share a socket");
}

mod routing;

#[test]
fn http2_settings_defaults_ranges_and_listener_fields() {
    let cfg = load(MINIMAL).unwrap();
    assert_eq!(
        cfg.gateway.http2,
        crate::model::Http2Settings {
            max_concurrent_streams: 100,
            initial_stream_window: 65_535,
            initial_connection_window: 1 << 20,
            max_frame_size: 16_384,
        }
    );
    assert!(!cfg.listeners[0].http2 && !cfg.listeners[0].http2_cleartext, "plain listener: neither by default");

    let text = format!("[gateway.http2]\nmax_concurrent_streams = 10\ninitial_stream_window = \"1MiB\"\n{MINIMAL}")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:8080\"\nhttp2_cleartext = true");
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cfg.gateway.http2.max_concurrent_streams, cfg.gateway.http2.initial_stream_window), (10, 1 << 20));
    assert!(cfg.listeners[0].http2_cleartext);

    let text = format!(
        "[gateway.http2]\nmax_concurrent_streams = 0\nmax_frame_size = 1000\ninitial_stream_window = 4294967296\nstreams = 5\n{MINIMAL}"
    )
    .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:8080\"\nhttp2 = true");
    let errs = errors(&text);
    for needle in [
        "[gateway.http2], field `max_concurrent_streams`",
        "[gateway.http2], field `max_frame_size`",
        "[gateway.http2], field `initial_stream_window`",
        "[gateway.http2], field `streams`: unknown field",
        "field `http2`: only used with protocol = \"https\" (ALPN); for HTTP/2 on a plain listener set http2_cleartext = true",
    ] {
        assert!(errs.iter().any(|e| e.contains(needle)), "no error containing {needle:?} in {errs:#?}");
    }

    // Listeners sharing an address choose the protocol together.
    let text = format!(
        "{MINIMAL}\n[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:8080\"\nhost_names = [\"b.example.com\"]\nhttp2_cleartext = true\n[[rule]]\nname = \"rb\"\nlistener = \"b\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n"
    )
    .replace("listen = \"127.0.0.1:8080\"\n\n[[backend_pool]]", "listen = \"127.0.0.1:8080\"\nhost_names = [\"a.example.com\"]\n\n[[backend_pool]]");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("sets http2_cleartext differently: listeners sharing an address must agree")),
        "{errs:#?}"
    );
}

#[test]
fn server_weights_parse_and_are_checked() {
    let text = MINIMAL
        .replace("addresses = [\"127.0.0.1:9000\"]", "addresses = [\"127.0.0.1:9000 weight=3\", \"127.0.0.1:9001\"]");
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.pools[0].weights, [3, 1]);
    let text = MINIMAL.replace(
        "addresses = [\"127.0.0.1:9000\"]",
        "addresses = [\"127.0.0.1:9000 weight=0\", \"127.0.0.1:9001 backup\"]",
    );
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("\"weight=0\": a weight is a whole number from 1 to 100")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("\"backup\" after the address: only weight=N may follow it")), "{errs:#?}");
}

#[test]
fn load_distribution_choices() {
    let cfg = load(MINIMAL).unwrap();
    assert_eq!(cfg.settings[0].load_distribution, crate::model::LoadDistribution::RoundRobin);
    let text = MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nload_distribution = \"random_two\"");
    assert_eq!(load(&text).unwrap().settings[0].load_distribution, crate::model::LoadDistribution::RandomTwo);
    let text = MINIMAL.replace("name = \"setting01\"", "name = \"setting01\"\nload_distribution = \"fastest\"");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("\"fastest\" is not \"round_robin\", \"least_connections\" or \"random_two\"")),
        "{errs:#?}"
    );
}

#[test]
fn proxy_protocol_and_trusted_proxies() {
    let cfg = load(MINIMAL).unwrap();
    assert!(!cfg.listeners[0].proxy_protocol, "off by default");
    assert_eq!(cfg.gateway.trusted_proxies, None, "unset: every client's X-Forwarded-For is kept");

    let text = format!("[gateway]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\"]\n{MINIMAL}")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:8080\"\nproxy_protocol = true");
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.listeners[0].proxy_protocol);
    let nets = cfg.gateway.trusted_proxies.as_deref().unwrap();
    let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);

    let text = format!("[gateway]\ntrusted_proxies = [\"10.0.0/8\", \"10.1.2.3/8\", 7]\n{MINIMAL}")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:8080\"\nproxy_protocol = \"yes\"");
    let errs = errors(&text);
    for needle in [
        "field `trusted_proxies[0]`: \"10.0.0/8\" is not an IP address or CIDR range",
        "field `trusted_proxies[1]`: \"10.1.2.3/8\" has host bits set: write the range as \"10.0.0.0/8\", or the address alone",
        "field `trusted_proxies[2]`: expected a string, found",
        "field `proxy_protocol`",
    ] {
        assert!(errs.iter().any(|e| e.contains(needle)), "no error containing {needle:?} in {errs:#?}");
    }

    // Listeners sharing an address read the header, or not, together.
    let text = format!(
        "{MINIMAL}\n[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:8080\"\nhost_names = [\"b.example.com\"]\nproxy_protocol = true\n[[rule]]\nname = \"rb\"\nlistener = \"b\"\nbackend_pool = \"pool01\"\nbackend_http_settings = \"setting01\"\n"
    )
    .replace("listen = \"127.0.0.1:8080\"\n\n[[backend_pool]]", "listen = \"127.0.0.1:8080\"\nhost_names = [\"a.example.com\"]\n\n[[backend_pool]]");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("sets proxy_protocol differently: listeners sharing an address must agree")),
        "{errs:#?}"
    );
}

#[test]
fn slow_start_attempt_timeout_and_timeout_status() {
    let cfg = load(MINIMAL).unwrap();
    let s = &cfg.settings[0];
    assert_eq!((s.slow_start, s.attempt_timeout, s.timeout_status), (Duration::ZERO, s.request_timeout, 502));

    let text = MINIMAL.replace(
        "name = \"setting01\"\n",
        "name = \"setting01\"\nslow_start = \"30s\"\nattempt_timeout = \"2s\"\nrequest_timeout = 10\ntimeout_status = 504\n",
    );
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &cfg.settings[0];
    assert_eq!(
        (s.slow_start, s.attempt_timeout, s.timeout_status),
        (Duration::from_secs(30), Duration::from_secs(2), 504)
    );

    let text = MINIMAL.replace(
        "name = \"setting01\"\n",
        "name = \"setting01\"\nslow_start = \"2h\"\nattempt_timeout = \"40s\"\ntimeout_status = 503\n",
    );
    let errs = errors(&text);
    for needle in [
        "field `slow_start`",
        "field `attempt_timeout`: 40s is longer than request_timeout (30s): one attempt cannot outlast the request",
        "field `timeout_status`: 503 is not 502 (the reference's) or 504 (Gateway Timeout)",
    ] {
        assert!(errs.iter().any(|e| e.contains(needle)), "no error containing {needle:?} in {errs:#?}");
    }
}

#[test]
fn min_servers_defaults_to_0_and_warns_when_it_covers_a_whole_pool() {
    assert_eq!(load(MINIMAL).unwrap().probe_for(SettingsId(0)).min_servers, 0);
    let two =
        MINIMAL.replace("addresses = [\"127.0.0.1:9000\"]", "addresses = [\"127.0.0.1:9000\", \"127.0.0.1:9001\"]");
    let probed = |n: &str| {
        format!(
            "{}\n[[probe]]\nname = \"p\"\nmin_servers = {n}\n",
            two.replace("name = \"setting01\"", "name = \"setting01\"\nprobe = \"p\"")
        )
    };
    let cfg = load(&probed("1")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.probes[0].min_servers, 1);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(
        cfg.describe().contains(", min_servers 1 (kept in rotation whatever their probes say)"),
        "{}",
        cfg.describe()
    );
    let cfg = load(&probed("2")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        warnings(&cfg),
        [
            "gw.toml:22: [[probe]] \"p\", field `min_servers`: 2 is at least the 2 servers of backend pool \"pool01\": all of them stay in rotation whatever their probes say"
        ]
    );
    let errs = errors(&probed("-1"));
    assert_eq!(errs, ["gw.toml:22: [[probe]] \"p\", field `min_servers`: -1 is out of range (allowed: 0 to 10000)"]);
}

#[test]
fn unprobed_servers_serve_by_default_or_wait() {
    assert_eq!(load(MINIMAL).unwrap().gateway.unprobed_servers, UnprobedServers::Serve);
    let cfg = load(&format!("[gateway]\nunprobed_servers = \"wait\"\n{MINIMAL}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.unprobed_servers, UnprobedServers::Wait);
    assert!(cfg.describe().contains("unprobed_servers = wait"), "{}", cfg.describe());
    let errs = errors(&format!("[gateway]\nunprobed_servers = \"later\"\n{MINIMAL}"));
    assert_eq!(
        errs,
        [
            "gw.toml:2: [gateway], field `unprobed_servers`: \"later\" is not \"serve\" (a server takes requests before its first probe) or \"wait\" (not until a probe succeeds)"
        ]
    );
}
