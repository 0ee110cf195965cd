//! The `streamsync` binary: gen-chain, inspect, dump-config.

use std::path::Path;
use std::process::{Command, Output};

fn streamsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs")
}

fn json_last_line(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().expect("output");
    serde_json::from_str(line).expect("JSON")
}

fn gen(dir: &Path, blocks: &str) -> serde_json::Value {
    let d = dir.to_str().expect("utf-8 path");
    json_last_line(&streamsync(&[
        "gen-chain",
        "--datadir",
        d,
        "--blocks",
        blocks,
        "--committee",
        "8",
        "--epoch-len",
        "50",
        "--json",
    ]))
}

#[test]
fn gen_chain_twice_gives_the_same_head_hash() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let ra = gen(a.path(), "120");
    let rb = gen(b.path(), "120");
    assert_eq!(ra["head_number"], 120);
    assert_eq!(ra["head_hash"], rb["head_hash"]);
}

#[test]
fn inspect_reports_what_gen_chain_wrote() {
    let dir = tempfile::tempdir().expect("tmp");
    let g = gen(dir.path(), "75");
    let i = json_last_line(&streamsync(&[
        "inspect",
        "--datadir",
        dir.path().to_str().expect("utf-8"),
        "--json",
    ]));
    assert_eq!(i["head_number"], 75);
    assert_eq!(i["blocks"], 76, "75 blocks plus genesis");
    assert_eq!(i["head_hash"], g["head_hash"]);
    assert_eq!(i["epoch"], 1);
    assert!(i["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .any(|t| t["name"] == "headers" && t["entries"] == 76));
}

#[test]
fn gen_chain_refuses_a_datadir_that_already_has_blocks() {
    let dir = tempfile::tempdir().expect("tmp");
    gen(dir.path(), "3");
    let out = streamsync(&[
        "gen-chain",
        "--datadir",
        dir.path().to_str().expect("utf-8"),
        "--blocks",
        "3",
        "--committee",
        "8",
        "--epoch-len",
        "50",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a chain"));
}

#[test]
fn inspect_refuses_a_directory_that_is_not_a_streamsync_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = streamsync(&["inspect", "--datadir", dir.path().to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a streamsync database"));
}

#[test]
fn dump_config_output_loads_back_unchanged() {
    let dir = tempfile::tempdir().expect("tmp");
    for net in ["mainnet", "testnet", "localnet", "partner"] {
        let first = streamsync(&["dump-config", "--network", net]);
        assert!(first.status.success());
        let path = dir.path().join(format!("{net}.toml"));
        std::fs::write(&path, &first.stdout).expect("write");
        let second = streamsync(&["dump-config", "--config", path.to_str().expect("utf-8")]);
        assert!(
            second.status.success(),
            "{}",
            String::from_utf8_lossy(&second.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&first.stdout),
            String::from_utf8_lossy(&second.stdout),
            "{net}"
        );
    }
    let mainnet = String::from_utf8(streamsync(&["dump-config", "--network", "mainnet"]).stdout)
        .expect("utf-8");
    for line in [
        "Concurrency = 6",
        "MinPeers = 6",
        "InitStreams = 8",
        "DiscHighCap = 128",
        "MaxAdvertiseWaitTime = 60",
    ] {
        assert!(mainnet.contains(line), "mainnet dump lacks {line}");
    }
}

#[test]
fn dump_config_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[Sync]\nDiscHighCap = -1\n").expect("write");
    let out = streamsync(&["dump-config", "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Sync.DiscHighCap") && err.contains("-1"),
        "{err}"
    );
}

/// `--exit-when-synced` exits 0 only once the node reached the target its
/// Heads quorum decided: stopped by SIGTERM before that (here it has no peer
/// at all), it exits non-zero and says why.
#[test]
fn exit_when_synced_stopped_before_synced_exits_non_zero() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .arg("node")
        .arg("--datadir")
        .arg(dir.path())
        .args(["--network", "localnet", "--sync.downloader", "true"])
        .args([
            "--committee",
            "8",
            "--epoch-len",
            "50",
            "--exit-when-synced",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.starts_with("listening"), "{first}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("exit");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited 0; stdout {rest:?}");
    assert!(stderr.contains("stopped before synced"), "stderr: {stderr}");
    assert!(
        !rest.iter().any(|l| l.contains("synced to")),
        "claims it synced: {rest:?}"
    );
}

/// WAN and block-size flags are checked before anything starts, and say why.
#[test]
fn localnet_refuses_bad_link_and_block_size_flags() {
    for (args, why) in [
        (
            &["--txs", "5", "--block-size", "2048"][..],
            "cannot be used with",
        ),
        (&["--loss", "101"][..], "percentage"),
        (&["--bandwidth", "-1"][..], "unexpected argument"),
        (&["--bandwidth", "inf"][..], "megabits per second"),
        (&["--block-size", "10"][..], "smaller than an empty block"),
        (
            &["--block-size", "100000000"][..],
            "more than 4096 transfers",
        ),
    ] {
        let mut all = vec!["localnet", "--blocks", "1", "--committee", "4"];
        all.extend_from_slice(args);
        let out = streamsync(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}
