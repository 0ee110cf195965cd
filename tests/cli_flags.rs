//! The `--sync.*` flags of `node` and `dump-config`: every `[Sync]` and
//! `[Sync.StagedSyncCfg]` key has one, each reaches the effective
//! configuration `--print-config` prints, booleans take the bare form, and
//! the guide's examples work as written. Nothing starts: no network.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use toml::{Table, Value};

fn streamsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs")
}

/// A datadir path that `--print-config` must never create.
struct NoDatadir(tempfile::TempDir, PathBuf);

impl NoDatadir {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("never");
        NoDatadir(tmp, dir)
    }

    fn path(&self) -> &str {
        self.1.to_str().expect("utf-8 path")
    }

    fn assert_untouched(&self) {
        assert!(!self.1.exists(), "--print-config created the datadir");
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8 path").to_string()
    }
}

/// `node --print-config` on mainnet with `args`: the keys under `[Sync]`
/// (`Concurrency`, `StagedSyncCfg.UseMemDB`, …) and their values.
fn print_config(args: &[&str]) -> Result<BTreeMap<String, Value>, String> {
    let d = NoDatadir::new();
    let mut all = vec!["node", "--datadir", d.path(), "--network", "mainnet"];
    all.extend_from_slice(args);
    all.push("--print-config");
    let out = streamsync(&all);
    d.assert_untouched();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(sync_keys(&String::from_utf8_lossy(&out.stdout)))
}

/// The `[Sync]` keys of a dump, flattened (`StagedSyncCfg.X` for staged ones).
fn sync_keys(dump: &str) -> BTreeMap<String, Value> {
    let root: Table = dump.parse().expect("the printed config is TOML");
    let mut keys = BTreeMap::new();
    for (k, v) in root["Sync"].as_table().expect("[Sync]") {
        match v.as_table() {
            Some(t) => keys.extend(t.iter().map(|(s, v)| (format!("{k}.{s}"), v.clone()))),
            None => {
                keys.insert(k.clone(), v.clone());
            }
        }
    }
    keys
}

fn toml_value(literal: &str) -> Value {
    let t: Table = format!("v = {literal}").parse().expect("a TOML value");
    t["v"].clone()
}

/// Every flag with a value that differs from mainnet's default, the key it
/// must set and the value the dump must then show.
const FLAGS: &[(&[&str], &str, &str)] = &[
    (&["--sync=false"], "Enabled", "false"),
    (&["--sync.downloader"], "Client", "true"),
    (&["--sync.concurrency", "8"], "Concurrency", "8"),
    (&["--sync.min-peers", "8"], "MinPeers", "8"),
    (&["--sync.init-peers", "10"], "InitStreams", "10"),
    (&["--sync.heads-votes-per-ip", "3"], "HeadsVotesPerIP", "3"),
    (
        &["--sync.max-advertise-wait-time", "30"],
        "MaxAdvertiseWaitTime",
        "30",
    ),
    (&["--sync.disc.soft-low-cap", "10"], "DiscSoftLowCap", "10"),
    (&["--sync.disc.hard-low-cap", "7"], "DiscHardLowCap", "7"),
    (&["--sync.disc.hi-cap", "200"], "DiscHighCap", "200"),
    (&["--sync.disc.batch", "16"], "DiscBatch", "16"),
    (
        &["--sync.max-reserved-streams", "50"],
        "MaxReservedStreams",
        "50",
    ),
    (
        &["--sync.removal-cooldown-duration", "2m"],
        "RemovalCooldownDuration",
        "\"2m\"",
    ),
    (
        &["--sync.max-removal-cooldown-duration", "2h"],
        "MaxRemovalCooldownDuration",
        "\"2h\"",
    ),
    (&["--sync.setup-concurrency", "4"], "SetupConcurrency", "4"),
    (
        &["--sync.check-interval", "45s"],
        "CheckInterval",
        "\"45s\"",
    ),
    (
        &["--sync.discovery-timeout", "20s"],
        "DiscoveryTimeout",
        "\"20s\"",
    ),
    (
        &["--sync.connect-timeout", "2m"],
        "ConnectTimeout",
        "\"2m\"",
    ),
    (
        &["--sync.max-inbound-streams", "100"],
        "MaxInboundStreams",
        "100",
    ),
    (
        &["--sync.max-outbound-streams", "32"],
        "MaxOutboundStreams",
        "32",
    ),
    (&["--sync.streams-per-ip", "2"], "StreamsPerIP", "2"),
    (
        &["--sync.max-pending-handshakes", "16"],
        "MaxPendingHandshakes",
        "16",
    ),
    (&["--sync.handshakes-per-ip", "0"], "HandshakesPerIP", "0"),
    (
        &["--sync.handshake-timeout", "5s"],
        "HandshakeTimeout",
        "\"5s\"",
    ),
    (&["--sync.frame-timeout", "15s"], "FrameTimeout", "\"15s\""),
    (
        &["--sync.write-progress-timeout", "20s"],
        "WriteProgressTimeout",
        "\"20s\"",
    ),
    (
        &["--sync.read-buffer-budget", "33554432"],
        "ReadBufferBudget",
        "33554432",
    ),
    (&["--sync.server-workers", "3"], "ServerWorkers", "3"),
    (&["--sync.server-queue", "100"], "ServerQueue", "100"),
    (
        &["--sync.stream-request-rate", "250"],
        "StreamRequestRate",
        "250",
    ),
    (
        &["--sync.stream-request-burst", "2000"],
        "StreamRequestBurst",
        "2000",
    ),
    (
        &["--sync.stream-byte-rate", "1048576"],
        "StreamByteRate",
        "1048576",
    ),
    (
        &["--sync.stream-byte-burst", "2097152"],
        "StreamByteBurst",
        "2097152",
    ),
    (
        &["--sync.stream-block-rate", "1000"],
        "StreamBlockRate",
        "1000",
    ),
    (
        &["--sync.stream-block-burst", "500"],
        "StreamBlockBurst",
        "500",
    ),
    (
        &["--sync.global-request-rate", "6000"],
        "GlobalRequestRate",
        "6000",
    ),
    (
        &["--sync.global-request-burst", "12000"],
        "GlobalRequestBurst",
        "12000",
    ),
    (
        &["--sync.global-byte-rate", "4194304"],
        "GlobalByteRate",
        "4194304",
    ),
    (
        &["--sync.global-byte-burst", "8388608"],
        "GlobalByteBurst",
        "8388608",
    ),
    (
        &["--sync.global-block-rate", "7000"],
        "GlobalBlockRate",
        "7000",
    ),
    (
        &["--sync.global-block-burst", "9000"],
        "GlobalBlockBurst",
        "9000",
    ),
    (
        &["--sync.rate-limit-tolerance", "8"],
        "RateLimitTolerance",
        "8",
    ),
    (
        &["--sync.staged.double-check-block-hashes"],
        "StagedSyncCfg.DoubleCheckBlockHashes",
        "true",
    ),
    (
        &["--sync.staged.max-blocks-per-sync-cycle", "64"],
        "StagedSyncCfg.MaxBlocksPerSyncCycle",
        "64",
    ),
    (
        &["--sync.staged.max-background-blocks", "256"],
        "StagedSyncCfg.MaxBackgroundBlocks",
        "256",
    ),
    (
        &["--sync.staged.insert-chain-batch-size", "32"],
        "StagedSyncCfg.InsertChainBatchSize",
        "32",
    ),
    (
        &["--sync.staged.verify-all-sig=true"],
        "StagedSyncCfg.VerifyAllSig",
        "true",
    ),
    (
        &["--sync.staged.verify-header-batch-size", "50"],
        "StagedSyncCfg.VerifyHeaderBatchSize",
        "50",
    ),
    (
        &["--sync.staged.max-mem-sync-cycle-size", "2048"],
        "StagedSyncCfg.MaxMemSyncCycleSize",
        "2048",
    ),
    (
        &["--sync.staged.use-mem-db=false"],
        "StagedSyncCfg.UseMemDB",
        "false",
    ),
    (
        &["--sync.staged.max-staged-bytes", "67108864"],
        "StagedSyncCfg.MaxStagedBytes",
        "67108864",
    ),
    (
        &["--sync.staged.log-progress", "true"],
        "StagedSyncCfg.LogProgress",
        "true",
    ),
    (
        &["--sync.staged.debug-mode"],
        "StagedSyncCfg.DebugMode",
        "true",
    ),
];

/// Each flag alone changes exactly its key, to the value given; `SyncMode`
/// has one accepted value only, the default (see the guide's test).
#[test]
fn every_sync_flag_reaches_the_printed_config() {
    let defaults = print_config(&[]).expect("defaults print");
    let mut covered: Vec<&str> = vec!["SyncMode"];
    for (args, key, want) in FLAGS {
        let flag = args.join(" ");
        let got = print_config(args).unwrap_or_else(|e| panic!("{flag}: refused: {e}"));
        let changed: BTreeMap<&String, &Value> = got
            .iter()
            .filter(|(k, v)| defaults.get(*k) != Some(*v))
            .collect();
        let want = toml_value(want);
        let expected: BTreeMap<&String, &Value> = got
            .get_key_value(*key)
            .into_iter()
            .map(|(k, _)| (k, &want))
            .collect();
        assert_eq!(
            changed,
            expected,
            "{flag}: should set only {key} (default {:?})",
            defaults.get(*key)
        );
        covered.push(key);
    }
    covered.sort_unstable();
    let all: Vec<&str> = defaults.keys().map(String::as_str).collect();
    assert_eq!(
        covered, all,
        "keys without a flag in FLAGS, or listed twice"
    );
}

/// `node --help` lists no `--sync*` flag this file does not test.
#[test]
fn every_flag_in_help_is_tested() {
    let out = streamsync(&["node", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = help
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("--sync"))
        .collect();
    assert!(listed.len() >= FLAGS.len(), "help lists {listed:?}");
    for flag in listed {
        let tested = flag == "--sync.mode"
            || FLAGS
                .iter()
                .any(|(args, _, _)| args[0].split('=').next() == Some(flag));
        assert!(tested, "{flag} is listed by --help but not tested");
    }
}

/// The guide's "Command Line Flags" section, verbatim; the file turns the
/// sync off so that the bare `--sync` visibly turns it on again.
#[test]
fn the_guides_six_flags_work_verbatim() {
    let d = NoDatadir::new();
    let file = d.file("off.toml", "[Sync]\nEnabled = false\n");
    #[rustfmt::skip]
    let got = print_config(&[
        "--config", &file,
        "--sync",
        "--sync.mode", "0",
        "--sync.concurrency", "8",
        "--sync.min-peers", "8",
        "--sync.init-peers", "10",
        "--sync.disc.batch", "16",
    ])
    .expect("the guide's flags are accepted");
    for (key, want) in [
        ("Enabled", "true"),
        ("SyncMode", "0"),
        ("Concurrency", "8"),
        ("MinPeers", "8"),
        ("InitStreams", "10"),
        ("DiscBatch", "16"),
    ] {
        assert_eq!(got[key], toml_value(want), "{key}");
    }
}

#[test]
fn boolean_flags_take_the_bare_form_and_an_explicit_value() {
    let client = |args: &[&str]| print_config(args).expect("accepted")["Client"].clone();
    assert_eq!(client(&["--sync.downloader"]), Value::Boolean(true));
    // Bare, then another flag: the next flag is not taken as its value.
    let got = print_config(&["--sync.downloader", "--sync.concurrency", "9"]).expect("accepted");
    assert_eq!(
        (&got["Client"], &got["Concurrency"]),
        (&Value::Boolean(true), &Value::Integer(9))
    );
    // `=false` and `false` override a file that turns the client on.
    let d = NoDatadir::new();
    let file = d.file("on.toml", "[Sync]\nClient = true\n");
    for off in [
        &["--sync.downloader=false"][..],
        &["--sync.downloader", "false"],
    ] {
        let mut args = vec!["--config", file.as_str()];
        args.extend_from_slice(off);
        assert_eq!(client(&args), Value::Boolean(false), "{off:?}");
    }
    assert_eq!(
        client(&["--config", &file, "--sync.downloader=true"]),
        Value::Boolean(true)
    );
    let e = print_config(&["--sync.downloader=yes"]).expect_err("not a boolean");
    assert!(e.contains("--sync.downloader"), "{e}");
}

/// FastSync and SnapSync are refused with the reason, before anything
/// starts (with and without `--print-config`).
#[test]
fn sync_mode_1_and_2_are_refused_as_reserved() {
    for mode in ["1", "2"] {
        let e = print_config(&["--sync.mode", mode]).expect_err("refused");
        assert!(
            e.contains("--sync.mode")
                && e.contains("reserved")
                && e.contains("only 0 (FullSync) is implemented"),
            "{e}"
        );
        let d = NoDatadir::new();
        let out = streamsync(&["node", "--datadir", d.path(), "--sync.mode", mode]);
        assert!(!out.status.success(), "--sync.mode {mode} ran a node");
        assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
        d.assert_untouched();
    }
}

#[test]
fn an_out_of_range_flag_names_the_flag_the_key_and_the_range() {
    let e = print_config(&["--sync.concurrency", "0"]).expect_err("refused");
    assert!(
        e.contains("--sync.concurrency")
            && e.contains("Sync.Concurrency")
            && e.contains("1..=1024"),
        "{e}"
    );
    // Rules between keys apply after the flags too.
    let e = print_config(&["--sync.disc.hard-low-cap", "100"]).expect_err("refused");
    assert!(e.contains("DiscHardLowCap"), "{e}");
}

/// `node --print-config` and `dump-config` print the same thing for the
/// same network, file and flags.
#[test]
fn print_config_and_dump_config_agree_and_start_nothing() {
    let d = NoDatadir::new();
    let file = d.file("c.toml", "[Sync]\nConcurrency = 5\nServerWorkers = 4\n");
    let common = [
        "--network",
        "testnet",
        "--config",
        &file,
        "--sync.downloader",
        "--sync.min-peers",
        "2",
    ];
    let mut node = vec!["node", "--datadir", d.path(), "--print-config"];
    node.extend_from_slice(&common);
    let mut dump = vec!["dump-config"];
    dump.extend_from_slice(&common);
    let (a, b) = (streamsync(&node), streamsync(&dump));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(a.stdout, b.stdout);
    d.assert_untouched();
    let keys = sync_keys(&String::from_utf8_lossy(&a.stdout));
    for (key, want) in [
        ("Concurrency", 5),
        ("ServerWorkers", 4),
        ("MinPeers", 2),
        ("InitStreams", 3),
    ] {
        assert_eq!(keys[key], Value::Integer(want), "{key}");
    }
    assert_eq!(keys["Client"], Value::Boolean(true));
}

/// The server limits are `[Sync]` keys of the file like the guide's own;
/// an unknown key is still refused by name.
#[test]
fn server_limits_load_from_the_file() {
    let d = NoDatadir::new();
    let file = d.file(
        "limits.toml",
        "[Sync]\nServerWorkers = 5\nServerQueue = 99\nStreamRequestRate = 7\n\
         GlobalByteBurst = 2097152\nMaxInboundStreams = 12\nHandshakeTimeout = \"3s\"\n",
    );
    let got = print_config(&["--config", &file]).expect("loads");
    for (key, want) in [
        ("ServerWorkers", "5"),
        ("ServerQueue", "99"),
        ("StreamRequestRate", "7"),
        ("GlobalByteBurst", "2097152"),
        ("MaxInboundStreams", "12"),
        ("HandshakeTimeout", "\"3s\""),
    ] {
        assert_eq!(got[key], toml_value(want), "{key}");
    }
    let bad = d.file("bad.toml", "[Sync]\nServerWorker = 5\n");
    let e = print_config(&["--config", &bad]).expect_err("unknown key");
    assert!(e.contains("unknown key Sync.ServerWorker"), "{e}");
}

/// The staged flags' former names (`--sync.<key>`, used by scripts) still
/// work, as hidden aliases of `--sync.staged.<key>`.
#[test]
fn former_staged_flag_names_still_work() {
    let got = print_config(&[
        "--sync.max-blocks-per-cycle",
        "64",
        "--sync.use-mem-db",
        "false",
        "--sync.verify-all-sig",
        "true",
        "--sync.log-progress",
        "--sync.debug-mode",
    ])
    .expect("accepted");
    for (key, want) in [
        ("StagedSyncCfg.MaxBlocksPerSyncCycle", "64"),
        ("StagedSyncCfg.UseMemDB", "false"),
        ("StagedSyncCfg.VerifyAllSig", "true"),
        ("StagedSyncCfg.LogProgress", "true"),
        ("StagedSyncCfg.DebugMode", "true"),
    ] {
        assert_eq!(got[key], toml_value(want), "{key}");
    }
}

/// `--print-config` needs no datadir (it opens nothing); running a node
/// without one is refused by name.
#[test]
fn print_config_needs_no_datadir_but_a_node_does() {
    let out = streamsync(&["node", "--print-config", "--sync.concurrency", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Concurrency = 7"));
    let out = streamsync(&["node"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--datadir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
