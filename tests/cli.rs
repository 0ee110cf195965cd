//! The `streamsync` binary: gen-chain, inspect, dump-config, the datadir
//! lock, and how `node` and `localnet` stop on signals.

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

/// `kill -SIG -- -pgid`: the signal to every process of a group, as a
/// terminal sends Ctrl-C to its foreground job.
fn send_to_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Whether process `pid` is no longer running (gone, or a zombie nobody
/// reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

/// Whether process `pid` has a SIGTERM handler (`SigCgt` in its status).
fn catches_sigterm(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let mask = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// The pid of a running `streamsync node` whose command line names a path
/// under `dir`.
fn node_process_under(dir: &Path) -> Option<u32> {
    let dir = dir.to_str()?.as_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args.get(1) == Some(&&b"node"[..]) && args.iter().any(|a| a.starts_with(dir));
        (ours && !process_gone(pid)).then_some(pid)
    })
}

/// `streamsync localnet` with a chain small enough to start in seconds and
/// a link slow enough (300 ms one way) that its node syncs for much longer,
/// in its own process group as a shell runs a job; its work directory is
/// `keep` (`--keep`), else under `tmp` (`TMPDIR`). Stderr lines arrive on
/// the receiver.
fn slow_localnet(
    tmp: &Path,
    keep: Option<&Path>,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::path::PathBuf,
) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamsync"));
    cmd.args(["localnet", "--blocks", "300", "--peers", "2", "--committee"])
        .args(["4", "--epoch-len", "100", "--latency", "300", "--json"])
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "warn")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(k) = keep {
        cmd.arg("--keep").arg(k);
    }
    let mut child = cmd.spawn().expect("spawn localnet");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let work = match keep {
        Some(k) => k.to_path_buf(),
        None => tmp.join(format!("streamsync-localnet-{}", child.id())),
    };
    (child, rx, work)
}

/// A `slow_localnet` whose syncing node process is up: the reaper holds
/// both (localnet first), with localnet's and the node's pids.
struct Started {
    reaper: Reaper,
    rx: std::sync::mpsc::Receiver<String>,
    work: std::path::PathBuf,
    localnet: u32,
    node: u32,
}

fn localnet_with_node(tmp: &Path, keep: Option<&Path>) -> Started {
    let (child, rx, work) = slow_localnet(tmp, keep);
    let mut reaper = Reaper::default();
    let localnet = child.id();
    reaper.children.push(child);
    let node = poll(
        std::time::Duration::from_secs(120),
        "syncing node process",
        || node_process_under(&work),
    );
    reaper.pids.push(node);
    Started {
        reaper,
        rx,
        work,
        localnet,
        node,
    }
}

/// Every stderr line received so far.
fn drain(rx: &std::sync::mpsc::Receiver<String>, into: &mut Vec<String>) {
    into.extend(rx.try_iter());
}

/// Every stderr line up to the end of the stream (the process has exited;
/// its reader may still be behind); fails after 10 s without one.
fn drain_to_eof(rx: &std::sync::mpsc::Receiver<String>, into: &mut Vec<String>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(line) => into.push(line),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => panic!("stderr still open 10 s after the exit"),
        }
    }
}

/// SIGTERM to `streamsync localnet` while its node syncs: it stops the node
/// (a child process) and its serving peers, removes its work directory, and
/// exits with 143.
#[test]
fn localnet_stopped_by_sigterm_stops_its_node_and_removes_its_work_dir() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().expect("tmp");
    let Started {
        mut reaper,
        rx,
        work,
        localnet,
        node,
    } = localnet_with_node(tmp.path(), None);
    assert!(work.is_dir(), "the work directory exists while it runs");

    send(localnet, "TERM");
    let status = poll(Duration::from_secs(60), "localnet exit", || {
        reaper.children[0].try_wait().expect("wait")
    });
    let mut stderr = Vec::new();
    drain_to_eof(&rx, &mut stderr);
    assert_eq!(status.code(), Some(143), "{status}; stderr: {stderr:?}");
    assert!(
        stderr.iter().any(|l| l.contains("interrupted by SIGTERM")),
        "{stderr:?}"
    );
    assert!(process_gone(node), "the syncing node {node} still runs");
    assert!(!work.exists(), "{} left behind", work.display());
}

/// A second SIGTERM exits at once, with 143 and a line saying so, while the
/// graceful stop the first one started is stuck (here: waiting for a node
/// that is SIGSTOPped and cannot exit).
#[test]
fn a_second_sigterm_exits_at_once_while_the_graceful_stop_hangs() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().expect("tmp");
    let Started {
        mut reaper,
        rx,
        localnet,
        node,
        ..
    } = localnet_with_node(tmp.path(), None);
    send(node, "STOP");

    let mut stderr = Vec::new();
    send(localnet, "TERM");
    poll(Duration::from_secs(30), "first-signal line", || {
        drain(&rx, &mut stderr);
        stderr
            .iter()
            .any(|l| l.contains("SIGTERM received: stopping gracefully"))
            .then_some(())
    });
    // The graceful stop now waits up to 15 s for the stopped node; the
    // second signal must not.
    send(localnet, "TERM");
    let status = poll(Duration::from_secs(8), "localnet exit", || {
        reaper.children[0].try_wait().expect("wait")
    });
    drain_to_eof(&rx, &mut stderr);
    assert_eq!(status.code(), Some(143), "{status}; stderr: {stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("second signal (SIGTERM): exiting at once")),
        "{stderr:?}"
    );
}

/// Even killed outright (SIGKILL: nothing of it runs), `streamsync
/// localnet` leaves no node behind: the kernel sends it SIGTERM.
#[test]
fn localnet_killed_outright_leaves_no_node_running() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().expect("tmp");
    let Started {
        mut reaper,
        work,
        node,
        ..
    } = localnet_with_node(tmp.path(), None);
    // Once its handler is in place, SIGTERM leaves a line in its log.
    poll(
        Duration::from_secs(60),
        "the node's SIGTERM handler",
        || catches_sigterm(node).then_some(()),
    );
    reaper.children[0].kill().expect("SIGKILL");
    reaper.children[0].wait().expect("reaped");
    poll(Duration::from_secs(30), "the orphaned node's exit", || {
        process_gone(node).then_some(())
    });
    // It was told to stop, not merely left without peers: its log (the
    // work directory stays, nothing of localnet ran) has its handler's line.
    let log = std::fs::read_to_string(work.join("sync.log")).expect("sync.log");
    assert!(
        log.contains("SIGTERM received: stopping gracefully"),
        "the node was not sent SIGTERM; its log:\n{log}"
    );
}

/// Ctrl-C at the terminal (SIGINT to the job's process group) stops
/// localnet's node once, gracefully: the node is in a group of its own and
/// gets a single SIGTERM from localnet, not SIGINT and then SIGTERM, which
/// it would take as a second signal and exit without its graceful stop.
/// With `--keep DIR` the work directory stays.
#[test]
fn ctrl_c_stops_localnets_node_with_one_signal_and_keep_keeps_the_work_dir() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().expect("tmp");
    let keep = tmp.path().join("kept");
    let Started {
        mut reaper,
        rx,
        work,
        localnet,
        node,
    } = localnet_with_node(tmp.path(), Some(&keep));
    poll(
        Duration::from_secs(60),
        "the node's SIGTERM handler",
        || catches_sigterm(node).then_some(()),
    );

    send_to_group(localnet, "INT");
    let status = poll(Duration::from_secs(60), "localnet exit", || {
        reaper.children[0].try_wait().expect("wait")
    });
    let mut stderr = Vec::new();
    drain_to_eof(&rx, &mut stderr);
    assert_eq!(status.code(), Some(130), "{status}; stderr: {stderr:?}");
    assert!(process_gone(node), "the syncing node {node} still runs");
    let log = std::fs::read_to_string(work.join("sync.log")).expect("--keep kept sync.log");
    assert!(
        log.contains("SIGTERM received: stopping gracefully") && !log.contains("second signal"),
        "the node was not stopped by exactly one SIGTERM; its log:\n{log}"
    );
}

/// `localnet --plot FILE.svg` draws the run: each stage's line and a bar
/// per serving peer, named.
#[test]
fn localnet_plot_draws_each_stage_and_each_serving_peer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let svg = tmp.path().join("run.svg");
    let out = streamsync(&[
        "localnet",
        "--blocks",
        "300",
        "--peers",
        "2",
        "--committee",
        "4",
        "--json",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).expect("the picture was written");
    for name in [
        "BlockHashes (staged)",
        "BlockBodies (staged)",
        "States (committed)",
        "peer 0",
        "peer 1",
    ] {
        assert!(text.contains(name), "{name} missing from the picture");
    }
}

/// `/status` of `addr` (HOST:PORT), if it answers with JSON.
fn status_of(addr: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(s, "GET /status HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()
}

/// `streamsync node ARGS` with stdout piped, held by `reaper`; returns
/// its first `n` stdout lines.
fn node_lines(args: &[&str], n: usize, reaper: &mut Reaper) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .arg("node")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let out = child.stdout.take().expect("stdout");
    reaper.children.push(child);
    let lines: Vec<String> = BufReader::new(out)
        .lines()
        .take(n)
        .map_while(Result::ok)
        .collect();
    assert_eq!(lines.len(), n, "node {args:?} printed only {lines:?}");
    lines
}

/// A node that synced from two serving nodes shows the guide's health
/// indicators in `/status` with values the sync produced (the committed
/// blocks by the streams that served them, adding up to all blocks synced,
/// failures of every stream, discovery counts), and `streamsync status`
/// prints them as a table; an address with no node is a clear error.
#[test]
fn status_shows_the_guides_health_indicators_of_a_node_that_synced() {
    use std::time::Duration;
    let chain = ["--committee", "8", "--epoch-len", "50"];
    let mut reaper = Reaper::default();
    let mut servers = Vec::new();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    for dir in &dirs[..2] {
        gen(dir.path(), "120");
        let d = dir.path().to_str().expect("utf-8");
        let mut args = vec!["--datadir", d, "--network", "localnet"];
        args.extend(["--sync.downloader", "false"]);
        args.extend(chain);
        let first = node_lines(&args, 1, &mut reaper).remove(0);
        let addr = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        servers.push(addr);
    }
    let peer_ids: Vec<String> = servers
        .iter()
        .map(|a| a.rsplit('/').next().expect("p2p id").to_string())
        .collect();
    let d = dirs[2].path().to_str().expect("utf-8");
    let mut args = vec!["--datadir", d, "--network", "localnet"];
    args.extend(["--boot", &servers[0], "--boot", &servers[1]]);
    args.extend(["--sync.downloader", "true", "--sync.init-peers", "1"]);
    args.extend(["--sync.min-peers", "1", "--metrics", "127.0.0.1:0"]);
    args.extend(chain);
    let lines = node_lines(&args, 2, &mut reaper);
    // "metrics http://ADDR/metrics status http://ADDR/status"
    let addr = lines[1]
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_string();

    // The request manager's health is published twice a second: wait for
    // it too.
    let v = poll(Duration::from_secs(120), "a synced /status", || {
        status_of(&addr).filter(|v| {
            v["sync_progress"]["percent"] == 100.0
                && v["stream_health_stats"]["totalStreams"].as_u64() > Some(0)
        })
    });
    let blocks_synced = v["blocks_synced"].as_u64().expect("blocks_synced");
    assert_eq!(v["head"], 120);
    assert_eq!(blocks_synced, 120, "{v:#}");
    assert_eq!(v["sync_progress"]["head"], 120);
    assert_eq!(v["sync_progress"]["target"], 120);
    let per_stream = v["download_speed"]["streams"].as_array().expect("streams");
    assert!(!per_stream.is_empty(), "{v:#}");
    for s in per_stream {
        assert!(
            peer_ids.iter().any(|p| s["peer"] == p.as_str()),
            "served by a peer that is not a server: {s}"
        );
        assert!(s["blocks"].as_u64() > Some(0), "{s}");
        assert!(s["blocks_per_sec"].as_f64() > Some(0.0), "{s}");
    }
    let served: u64 = per_stream.iter().filter_map(|s| s["blocks"].as_u64()).sum();
    assert_eq!(
        served, blocks_synced,
        "every committed block has its stream"
    );
    let h = &v["stream_health_stats"];
    let total = h["totalStreams"].as_u64().expect("totalStreams");
    assert!(total >= 1, "{h}");
    let failures = h["streams"].as_array().expect("per-stream failures");
    assert_eq!(failures.len() as u64, total, "{h}");
    assert!(failures
        .iter()
        .all(|s| peer_ids.iter().any(|p| s["peer"] == p.as_str()) && s["failures"].is_u64()));
    let dist = h["failureDistribution"].as_object().expect("distribution");
    assert_eq!(dist.values().filter_map(|n| n.as_u64()).sum::<u64>(), total);
    let sum: u64 = failures.iter().filter_map(|s| s["failures"].as_u64()).sum();
    assert_eq!(h["totalFailures"], sum);
    assert!(h["averageFailures"].is_f64() && h["availableStreams"].is_u64());
    assert!(v["stream_count"].as_u64() >= Some(1), "{v:#}");
    assert!(v["peer_connections"].as_u64() >= v["stream_count"].as_u64());
    assert!(v["reserved_stream_count"].is_u64());
    let disc = &v["discovery_status"];
    assert!(disc["hmy_stream_discover"].as_u64() >= Some(1), "{disc}");
    assert!(
        disc["hmy_stream_discover_peers"].as_u64() >= Some(1),
        "{disc}"
    );
    assert!(v["cooldown_status"]["streams"].is_array());
    assert!(v["cooldown_status"]["streams_in_cooldown"].is_u64());

    let out = streamsync(&["status", "--addr", &addr]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "Sync Progress",
        "Stream Count",
        "Reserved Stream Count",
        "Peer Connections",
        "Download Speed",
        "Stream Health",
        "Failure Distribution",
        "Stream Failures",
        "Discovery Status",
        "Cooldown Status",
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(label)),
            "no {label}:\n{table}"
        );
    }
    assert!(
        table.contains("head 120 of target 120 (100.0 %)"),
        "{table}"
    );
    assert!(table.contains("hmy_stream_discover"), "{table}");
    // The synced node's per-stream blocks no longer change.
    for s in per_stream {
        let row: Vec<&str> = table
            .lines()
            .find(|l| l.starts_with(&format!("{} ", s["stream"])))
            .unwrap_or_else(|| panic!("no row for {s}:\n{table}"))
            .split_whitespace()
            .collect();
        assert_eq!(row[1], s["peer"].as_str().expect("peer"), "{table}");
        assert_eq!(row[2], s["blocks"].to_string(), "{table}");
    }
    let json = json_last_line(&streamsync(&["status", "--addr", &addr, "--json"]));
    assert_eq!(json["blocks_synced"], 120);

    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let out = streamsync(&["status", "--addr", &nobody, "--timeout", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot reach a node at"), "{stderr}");
}
