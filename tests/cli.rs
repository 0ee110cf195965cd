//! The `streamsync` binary: gen-chain, inspect, dump-config, the datadir
//! lock.

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

/// Kills (SIGKILL) and reaps what a test started, however the test ends.
#[derive(Default)]
struct Reaper {
    children: Vec<std::process::Child>,
    pids: Vec<u32>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.pids {
            send(*pid, "KILL");
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `kill -SIG pid`.
fn send(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Polls `f` every 20 ms until it gives a value; fails after `limit`.
fn poll<T>(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} after {limit:?}"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
}

/// `streamsync ARGS`, which must exit within `limit` (else it is killed
/// and the test fails).
fn finished_within(limit: std::time::Duration, args: &[&str], reaper: &mut Reaper) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let text = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { stderr }, &mut s);
        s
    });
    reaper.children.push(child);
    let i = reaper.children.len() - 1;
    let status = poll(limit, &format!("exit of {args:?}"), || {
        reaper.children[i].try_wait().expect("wait")
    });
    Output {
        status,
        stdout: Vec::new(),
        stderr: text.join().expect("stderr reader"),
    }
}

/// A datadir is one process': a second `node` or `inspect` on it is refused
/// with the holder's pid, and a holder killed with SIGKILL releases it.
#[test]
fn a_datadir_in_use_by_another_process_is_refused_naming_its_pid() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    let node_args = [
        "node",
        "--datadir",
        d,
        "--network",
        "localnet",
        "--committee",
        "8",
        "--epoch-len",
        "50",
    ];
    let mut holder = Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .args(node_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = holder.id();
    let out = holder.stdout.take().expect("stdout");
    let mut reaper = Reaper::default();
    reaper.children.push(holder);
    let first = BufReader::new(out)
        .lines()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    assert!(first.starts_with("listening"), "{first}");

    let expected = format!("datadir {d} is in use by another streamsync process (pid {pid})");
    for args in [&node_args[..], &["inspect", "--datadir", d][..]] {
        let out = finished_within(std::time::Duration::from_secs(30), args, &mut reaper);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran beside the holder");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }

    reaper.children[0].kill().expect("SIGKILL");
    reaper.children[0].wait().expect("reaped");
    let out = streamsync(&["inspect", "--datadir", d]);
    assert!(
        out.status.success(),
        "still locked after the holder died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
