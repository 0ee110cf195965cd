//! `/status` and `streamsync status`: a node's health under the guide's
//! names ("Health Indicators", `GetStreamHealthStats`, "Stream Status
//! Monitoring"), as JSON for tools and as a table for operators.
//!
//! `streamsync status --addr HOST:PORT` asks a node started with
//! `--metrics HOST:PORT` for its `/status` over plain HTTP (the small
//! client `localnet` polls its node with) and prints the table, or the raw
//! JSON with `--json`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamsync::node::NodeStatus;
use streamsync::stream::{DiscoveryState, RemovalReason};

use super::CliError;

/// Largest `/status` answer read, bytes: past it the answer is refused.
const MAX_ANSWER: u64 = 16 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's `--metrics` address.
    #[arg(long, value_name = "HOST:PORT")]
    addr: String,
    /// Print the raw `/status` JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Give up on the node after this many seconds.
    #[arg(long, default_value_t = 5, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let v = get_json(&a.addr, "/status", Duration::from_secs(a.timeout))?;
    if a.json {
        println!("{v}");
    } else {
        print!("{}", render_table(&v));
    }
    Ok(())
}

/// The `/status` JSON of a node, with cooldowns' time left counted to now.
pub fn status_json(s: &NodeStatus) -> Value {
    status_json_at(s, Instant::now())
}

/// Whole seconds from `now` to `end`, rounded up (0 once `end` passed).
fn secs_until(now: Instant, end: Instant) -> u64 {
    let left = end.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// [`status_json`] as of `now`. The fields before `stream_count` are the
/// sync's own (`localnet` reads some); the rest carry the guide's health
/// indicators, one object or number each, each said once.
pub fn status_json_at(s: &NodeStatus, now: Instant) -> Value {
    let peer_of: HashMap<u64, String> = s
        .host
        .streams
        .iter()
        .map(|i| (i.id, i.peer_id.to_string()))
        .collect();
    let peer = |id: &u64| peer_of.get(id).cloned().unwrap_or_default();
    let h = &s.host.health;
    let distribution: serde_json::Map<String, Value> = h
        .failure_distribution
        .iter()
        .map(|(failures, streams)| (failures.to_string(), json!(streams)))
        .collect();
    let failures: Vec<Value> = h
        .stream_failures
        .iter()
        .map(|(id, f)| json!({ "stream": id, "peer": peer(id), "failures": f }))
        .collect();
    let per_stream: Vec<Value> = s
        .sync
        .stream_blocks
        .iter()
        .map(|b| {
            json!({
                "stream": b.stream,
                "peer": b.peer.map_or_else(|| peer(&b.stream), |p| p.to_string()),
                "blocks": b.blocks,
                "blocks_per_sec": b.blocks_per_sec,
            })
        })
        .collect();
    // The snapshot may be older than now: cooldowns ended since are over.
    let cooldowns: Vec<Value> = s
        .host
        .in_cooldown
        .iter()
        .filter(|(_, end)| *end > now)
        .map(|(p, end)| json!({ "peer": p.to_string(), "seconds_left": secs_until(now, *end) }))
        .collect();
    let reasons: serde_json::Map<String, Value> = RemovalReason::ALL
        .into_iter()
        .map(|r| {
            (
                r.label().to_string(),
                json!(s.host.stream_stats.removals(r)),
            )
        })
        .collect();
    let failing = h.stream_failures.iter().filter(|(_, f)| *f > 0).count();
    let mut discovery = json!({
        "state": match s.host.discovery {
            DiscoveryState::Idle => "idle",
            DiscoveryState::Running(_) => "running",
            DiscoveryState::BackingOff(_) => "backing_off",
        },
        "hmy_stream_discover": s.host.stream_stats.discover,
        "hmy_stream_discover_peers": s.host.stream_stats.discover_peers,
    });
    if let DiscoveryState::BackingOff(until) = s.host.discovery {
        discovery["seconds_left"] = json!(secs_until(now, until));
    }
    json!({
        "stage": s.sync.stage,
        "head": s.sync.head,
        "target": s.sync.target,
        "hashes_staged_to": s.sync.hashes_staged_to,
        "bodies_staged_to": s.sync.bodies_staged_to,
        "synced": s.sync.synced,
        "blocks_per_sec": s.sync.blocks_per_sec,
        "blocks_synced": s.sync.blocks_synced,
        "bytes_synced": s.sync.bytes_synced,
        "sigs_verified": s.sync.sigs_verified,
        "invalid_blocks": s.sync.invalid_blocks,
        "unwinds": s.sync.unwinds,
        "liars_proven": s.sync.liars_proven,
        "streams_serve_only": s.host.serve_only,
        "cycles": s.sync.cycles,
        "last_error": s.sync.last_error,
        "beacon_helper": {
            "offered": s.sync.offered,
            "inserted": s.sync.beacon_inserted,
        },
        "stream_count": s.host.active,
        "reserved_stream_count": s.host.reserved,
        "sync_progress": {
            "stage": s.sync.stage.unwrap_or("idle"),
            "head": s.sync.head,
            "target": s.sync.target,
            "percent": s.progress_percent(),
        },
        "peer_connections": s.peer_connections(),
        "download_speed": {
            "blocks_per_sec": s.sync.blocks_per_sec,
            "streams": per_stream,
        },
        "stream_health_stats": {
            "totalStreams": h.total_streams,
            "availableStreams": h.available_streams,
            "totalFailures": h.total_failures,
            "failureDistribution": distribution,
            "averageFailures": h.average_failures,
            "streams": failures,
        },
        "stream_failures": {
            "streams_with_failures": failing,
            "hmy_stream_stream_removal_reasons": reasons,
        },
        "cooldown_status": {
            "streams_in_cooldown": s.host.cooling,
            "streams": cooldowns,
        },
        "discovery_status": discovery,
    })
}

/// A JSON number or string as shown; `?` if absent (an older node).
fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

fn plural(n: &Value, one: &str, many: &str) -> String {
    let word = if n.as_u64() == Some(1) { one } else { many };
    format!("{} {word}", show(n))
}

/// The table `streamsync status` prints for a `/status` answer `v`:
/// one row per health indicator of the guide (its names), then the streams (blocks,
/// blocks/s, failures) and the peers in cooldown with their time left.
/// Whatever the answer lacks shows as `?`.
pub fn render_table(v: &Value) -> String {
    let mut out = String::new();
    let mut row = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<22} {value}");
    };
    let p = &v["sync_progress"];
    let progress = match p["percent"].as_f64() {
        Some(pct) => format!(
            "{}: head {} of target {} ({pct:.1} %)",
            show(&p["stage"]),
            show(&p["head"]),
            show(&p["target"])
        ),
        None => format!(
            "{}: head {}, target not decided",
            show(&p["stage"]),
            show(&p["head"])
        ),
    };
    row("Sync Progress", progress);
    row("Stream Count", show(&v["stream_count"]));
    row("Reserved Stream Count", show(&v["reserved_stream_count"]));
    row("Peer Connections", show(&v["peer_connections"]));
    let d = &v["download_speed"];
    row(
        "Download Speed",
        format!("{} blocks/s", show(&d["blocks_per_sec"])),
    );
    let h = &v["stream_health_stats"];
    row(
        "Stream Health",
        format!(
            "totalStreams {}, availableStreams {}, totalFailures {}, averageFailures {:.2}",
            show(&h["totalStreams"]),
            show(&h["availableStreams"]),
            show(&h["totalFailures"]),
            h["averageFailures"].as_f64().unwrap_or(f64::NAN),
        ),
    );
    let dist = match h["failureDistribution"].as_object() {
        Some(m) if m.is_empty() => "no streams".to_string(),
        Some(m) => {
            let mut kv: Vec<(u64, &Value)> = m
                .iter()
                .map(|(k, n)| (k.parse().unwrap_or(u64::MAX), n))
                .collect();
            kv.sort_by_key(|(k, _)| *k);
            kv.iter()
                .map(|(k, n)| format!("{k} failures: {}", plural(n, "stream", "streams")))
                .collect::<Vec<_>>()
                .join(", ")
        }
        None => "?".into(),
    };
    row(
        "Failure Distribution",
        format!("failureDistribution {dist}"),
    );
    let f = &v["stream_failures"];
    let removals = match f["hmy_stream_stream_removal_reasons"].as_object() {
        Some(m) => {
            let named: Vec<String> = m
                .iter()
                .filter(|(_, n)| n.as_u64() != Some(0))
                .map(|(reason, n)| format!("{reason} {}", show(n)))
                .collect();
            if named.is_empty() {
                "none".to_string()
            } else {
                named.join(", ")
            }
        }
        None => "?".into(),
    };
    row(
        "Stream Failures",
        format!(
            "{} of {} with failures now; removals by reason \
             (hmy_stream_stream_removal_reasons): {removals}",
            show(&f["streams_with_failures"]),
            plural(&h["totalStreams"], "stream", "streams"),
        ),
    );
    let ds = &v["discovery_status"];
    let mut state = show(&ds["state"]);
    if let Some(left) = ds["seconds_left"].as_u64() {
        let _ = write!(state, " ({left} s left)");
    }
    row(
        "Discovery Status",
        format!(
            "{state}; attempts {} (hmy_stream_discover), peers connected {} (hmy_stream_discover_peers)",
            show(&ds["hmy_stream_discover"]),
            show(&ds["hmy_stream_discover_peers"]),
        ),
    );
    let c = &v["cooldown_status"];
    row(
        "Cooldown Status",
        format!(
            "{} in cooldown",
            plural(&c["streams_in_cooldown"], "peer", "peers")
        ),
    );
    // Streams: those the request manager has (with failures) and those
    // that served committed blocks, by stream id.
    let mut streams: std::collections::BTreeMap<u64, [String; 4]> = Default::default();
    let dash = || "-".to_string();
    for s in h["streams"].as_array().into_iter().flatten() {
        let Some(id) = s["stream"].as_u64() else {
            continue;
        };
        let e = streams
            .entry(id)
            .or_insert_with(|| [show(&s["peer"]), "0".into(), "0.0".into(), dash()]);
        e[3] = show(&s["failures"]);
    }
    for s in d["streams"].as_array().into_iter().flatten() {
        let Some(id) = s["stream"].as_u64() else {
            continue;
        };
        let e = streams
            .entry(id)
            .or_insert_with(|| [show(&s["peer"]), dash(), dash(), dash()]);
        e[1] = show(&s["blocks"]);
        e[2] = format!("{:.1}", s["blocks_per_sec"].as_f64().unwrap_or(f64::NAN));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:<54} {:>8} {:>10} {:>8}",
        "STREAM", "PEER", "BLOCKS", "BLOCKS/S", "FAILURES"
    );
    for (id, [peer, blocks, rate, failures]) in &streams {
        let peer = if peer.is_empty() { "?" } else { peer };
        let _ = writeln!(
            out,
            "{id:<8} {peer:<54} {blocks:>8} {rate:>10} {failures:>8}"
        );
    }
    let cooling = c["streams"].as_array().map_or(&[][..], Vec::as_slice);
    if !cooling.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<63} {:>12}", "IN COOLDOWN (PEER)", "SECONDS LEFT");
        for e in cooling {
            let _ = writeln!(
                out,
                "{:<63} {:>12}",
                show(&e["peer"]),
                show(&e["seconds_left"])
            );
        }
    }
    out
}

/// GETs `path` from `addr` (HOST:PORT) over HTTP/1.0 within `timeout` and
/// parses the answer's body as JSON; says plainly what went wrong (no
/// node there, not a `/status`, not JSON).
pub fn get_json(addr: &str, path: &str, timeout: Duration) -> Result<Value, CliError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: not a HOST:PORT address: {e}"))?
        .collect();
    let body = http_get(&addrs, path, timeout).map_err(|e| match e {
        HttpError::Connect(e) => {
            format!("cannot reach a node at {addr}: {e} (is it running with --metrics {addr}?)")
        }
        HttpError::Io(e) => format!("{addr}{path}: the answer broke off: {e}"),
        HttpError::Status(line) => {
            format!("{addr}{path} answered \"{line}\": not a streamsync node's --metrics address?")
        }
        HttpError::TooLarge => format!("{addr}{path}: answer larger than {MAX_ANSWER} bytes"),
        HttpError::Timeout => format!("{addr}{path}: no complete answer within {timeout:?}"),
    })?;
    serde_json::from_str(&body).map_err(|e| {
        let head: String = body.chars().take(80).collect();
        format!("the answer of {addr}{path} is not JSON ({e}): {head:?}").into()
    })
}

/// Like [`get_json`] for `localnet`'s polling: `None` on any failure.
pub fn http_get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    let body = http_get(&[addr], path, Duration::from_millis(700)).ok()?;
    serde_json::from_str(&body).ok()
}

#[derive(Debug)]
enum HttpError {
    Connect(std::io::Error),
    Io(std::io::Error),
    Status(String),
    TooLarge,
    Timeout,
}

/// The body of a `200` answer to `GET path` from the first of `addrs` that
/// accepts a connection, all within `timeout`.
fn http_get(addrs: &[SocketAddr], path: &str, timeout: Duration) -> Result<String, HttpError> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HttpError::Timeout)
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut conn = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, left()?) {
            Ok(s) => {
                conn = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut s = conn.ok_or(HttpError::Connect(last))?;
    s.set_write_timeout(Some(left()?)).map_err(HttpError::Io)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(HttpError::Io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.set_read_timeout(Some(left()?)).map_err(HttpError::Io)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() as u64 > MAX_ANSWER {
                    return Err(HttpError::TooLarge);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HttpError::Timeout)
            }
            Err(e) => return Err(HttpError::Io(e)),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").trim();
    let ok = status.starts_with("HTTP/") && status.split_whitespace().nth(1) == Some("200");
    if !ok {
        let shown: String = status.chars().take(80).collect();
        return Err(HttpError::Status(if shown.is_empty() {
            "nothing".into()
        } else {
            shown
        }));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The table's row labels: the guide's health indicator names.
    const LABELS: [&str; 10] = [
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
    ];

    /// A `/status` answer as a syncing node gives it (fixed values).
    fn sample() -> Value {
        json!({
            "stage": "block_bodies", "head": 1234, "target": 5000,
            "stream_count": 4,
            "reserved_stream_count": 2,
            "sync_progress": {"stage": "block_bodies", "head": 1234, "target": 5000, "percent": 24.68},
            "peer_connections": 7,
            "download_speed": {
                "blocks_per_sec": 812.3,
                "streams": [
                    {"stream": 3, "peer": "12D3KooWPeerThree", "blocks": 600, "blocks_per_sec": 200.5},
                    {"stream": 9, "peer": "12D3KooWGoneNine", "blocks": 34, "blocks_per_sec": 11.0},
                ],
            },
            "stream_health_stats": {
                "totalStreams": 4, "availableStreams": 3, "totalFailures": 5,
                "failureDistribution": {"0": 2, "1": 1, "4": 1},
                "averageFailures": 1.25,
                "streams": [
                    {"stream": 3, "peer": "12D3KooWPeerThree", "failures": 0},
                    {"stream": 5, "peer": "12D3KooWPeerFive", "failures": 4},
                    {"stream": 6, "peer": "12D3KooWPeerSix", "failures": 1},
                    {"stream": 8, "peer": "12D3KooWPeerEight", "failures": 0},
                ],
            },
            "cooldown_status": {
                "streams_in_cooldown": 1,
                "streams": [{"peer": "12D3KooWCooling", "seconds_left": 287}],
            },
            "stream_failures": {
                "streams_with_failures": 2,
                "hmy_stream_stream_removal_reasons": {"critical error": 1, "slow": 0, "connection failure": 3},
            },
            "discovery_status": {
                "state": "backing_off", "seconds_left": 12,
                "hmy_stream_discover": 3, "hmy_stream_discover_peers": 5,
            },
        })
    }

    fn line<'a>(table: &'a str, label: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{table}"))
    }

    #[test]
    fn the_table_shows_every_guide_indicator_with_its_value() {
        let t = render_table(&sample());
        for label in LABELS {
            line(&t, label);
        }
        assert!(
            line(&t, "Sync Progress").ends_with("block_bodies: head 1234 of target 5000 (24.7 %)")
        );
        assert!(line(&t, "Stream Count").ends_with(" 4"));
        assert!(line(&t, "Reserved Stream Count").ends_with(" 2"));
        assert!(line(&t, "Peer Connections").ends_with(" 7"));
        assert!(line(&t, "Download Speed").ends_with(" 812.3 blocks/s"));
        assert!(line(&t, "Stream Health").ends_with(
            "totalStreams 4, availableStreams 3, totalFailures 5, averageFailures 1.25"
        ));
        assert!(line(&t, "Failure Distribution").ends_with(
            "failureDistribution 0 failures: 2 streams, 1 failures: 1 stream, 4 failures: 1 stream"
        ));
        assert!(line(&t, "Discovery Status").ends_with(
            "backing_off (12 s left); attempts 3 (hmy_stream_discover), \
             peers connected 5 (hmy_stream_discover_peers)"
        ));
        assert!(line(&t, "Cooldown Status").ends_with(" 1 peer in cooldown"));
        assert!(line(&t, "Stream Failures").ends_with(
            "2 of 4 streams with failures now; removals by reason \
             (hmy_stream_stream_removal_reasons): connection failure 3, critical error 1"
        ));
        let cols = |id: &str| -> Vec<String> {
            line(&t, &format!("{id} "))
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        // Stream, peer, blocks, blocks/s, failures.
        assert_eq!(cols("3"), ["3", "12D3KooWPeerThree", "600", "200.5", "0"]);
        assert_eq!(cols("5"), ["5", "12D3KooWPeerFive", "0", "0.0", "4"]);
        // Served blocks, then left: no failures known.
        assert_eq!(cols("9"), ["9", "12D3KooWGoneNine", "34", "11.0", "-"]);
        let cooling = line(&t, "12D3KooWCooling");
        assert!(cooling.ends_with(" 287"), "{cooling}");
    }

    #[test]
    fn the_table_of_an_answer_without_the_fields_shows_question_marks() {
        let t = render_table(&json!({"stage": null}));
        assert!(line(&t, "Stream Count").ends_with(" ?"));
        assert!(line(&t, "Sync Progress").contains("target not decided"));
    }

    /// Serves one connection with `answer`, on a port of its own.
    fn serve_once(answer: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                // The whole request first: closing with unread bytes
                // would reset the connection under the answer.
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer.as_bytes());
            }
        });
        addr
    }

    #[test]
    fn get_json_says_what_is_wrong_with_the_node() {
        let t = Duration::from_secs(5);
        let ok = serve_once("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}");
        let v = get_json(&ok.to_string(), "/status", t).expect("JSON");
        assert_eq!(v["a"], 1);
        let html = serve_once("HTTP/1.1 200 OK\r\n\r\n<html>hello</html>");
        let e = get_json(&html.to_string(), "/status", t).expect_err("not JSON");
        assert!(e.to_string().contains("is not JSON"), "{e}");
        let missing = serve_once("HTTP/1.1 404 Not Found\r\n\r\nnot found\n");
        let e = get_json(&missing.to_string(), "/status", t).expect_err("404");
        assert!(e.to_string().contains("HTTP/1.1 404 Not Found"), "{e}");
        let closed = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let e = get_json(&closed.to_string(), "/status", t).expect_err("nobody");
        assert!(e.to_string().contains("cannot reach a node at"), "{e}");
        let e = get_json("no-port-here", "/status", t).expect_err("bad addr");
        assert!(e.to_string().contains("not a HOST:PORT address"), "{e}");
    }
}
