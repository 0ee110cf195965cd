//! The `/metrics` endpoint serves every metric of the guide over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use streamsync::metrics::{build_recorder, register_all, MetricsServer, ALL_METRICS};

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn metrics_endpoint_serves_every_guide_metric() {
    let (recorder, handle) = build_recorder("streamsync/sync/testnet/0/1.0.0").expect("recorder");
    metrics::with_local_recorder(&recorder, register_all);
    let status = Arc::new(|| r#"{"stage":"idle"}"#.to_string());
    let mut server =
        MetricsServer::start("127.0.0.1:0".parse().expect("addr"), handle, Some(status))
            .expect("bind");
    let body = get(server.addr(), "/metrics");
    assert!(
        body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
        "{body}"
    );
    for m in ALL_METRICS {
        assert!(body.contains(m.name), "{} missing", m.name);
    }
    assert!(get(server.addr(), "/status").contains(r#"{"stage":"idle"}"#));
    assert!(get(server.addr(), "/nope").contains(" 404 "));
    // Returns only once the serving thread has been joined.
    server.shutdown();
}
