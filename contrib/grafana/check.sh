#!/usr/bin/env bash
# Evaluates the query of every panel of contrib/grafana/streamsync.json
# against a real Prometheus scraping a real syncing node, so a renamed metric,
# a histogram exported as a summary or a wrong label shows up as a red CI run
# rather than as an empty Grafana panel.
#
#   bash contrib/grafana/check.sh [path/to/streamsync]   (default target/debug/streamsync)
#
# Starts Prometheus (Debian's package, installed if missing; the binary is run
# directly, never the service) scraping `streamsync localnet --metrics` every
# second, substitutes `$topic` with the node's topic, and polls each query
# until it returns a non-empty result with no NaN/Inf value. Stops as soon as
# every query passed; fails after CHECK_DEADLINE seconds (default 90) of the
# node serving /metrics, naming the queries that never passed.
# Everything listens on 127.0.0.1; processes and temp dirs go on exit.
set -euo pipefail
# Paths given are taken from where the script is called; defaults from the repo.
BIN=${1:+$(realpath -m -- "$1")}
DASHBOARD=${DASHBOARD:+$(realpath -m -- "$DASHBOARD")}
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/debug/streamsync}
DASHBOARD=${DASHBOARD:-contrib/grafana/streamsync.json}
DEADLINE=${CHECK_DEADLINE:-90}
# A link slow enough that the sync lasts ~45 s (release and debug builds
# alike, after ~10 s building the chain): the check normally ends a few
# scrapes after the node serves /metrics, long before the sync does.
LOCALNET_ARGS=(--blocks 15000 --latency 50 --bandwidth 0.5)

[[ -x $BIN ]] || { echo "check.sh: no executable at $BIN (build it, or pass its path)" >&2; exit 2; }

# --- Prometheus (and python3, which evaluates the queries) -------------------
PROMETHEUS=$(command -v prometheus || true)
missing=()
[[ -n $PROMETHEUS ]] || missing+=(prometheus)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  echo "installing Debian's ${missing[*]}"
  # The prometheus package would start its service on install: a policy-rc.d
  # saying "no" keeps it from doing so (unless the machine already has one).
  made_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $made_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
  fi
  [[ -n $PROMETHEUS ]] || PROMETHEUS=/usr/bin/prometheus
fi
"$PROMETHEUS" --version 2>&1 | sed -n 1p
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$DASHBOARD" ||
  { echo "check.sh: $DASHBOARD is not JSON" >&2; exit 2; }

# --- temp dir, ports, cleanup ----------------------------------------------
WORK=$(mktemp -d -t streamsync-dash.XXXXXX)
NODE_PID=
PROM_PID=
cleanup() {
  local rc=$?
  # One SIGTERM each: localnet stops its syncing child and removes its own
  # temp dir (a second signal would make it exit without doing so).
  for pid in $NODE_PID $PROM_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $NODE_PID $PROM_PID; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  # Still there after 10 s: kill localnet's whole group (it has its own).
  if [[ -n $NODE_PID ]]; then kill -KILL -- "-$NODE_PID" 2>/dev/null || true; fi
  if [[ -n $PROM_PID ]]; then kill -KILL "$PROM_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
METRICS_PORT=$(free_port)
PROM_PORT=$(free_port)
while [[ $PROM_PORT == "$METRICS_PORT" ]]; do PROM_PORT=$(free_port); done

cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: streamsync
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF

"$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!

# Prometheus first, so it scrapes the node from its first second.
if ! python3 - "$PROM_PORT" "$PROM_PID" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
end = time.monotonic() + 30
while time.monotonic() < end:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("prometheus exited")
    time.sleep(0.2)
sys.exit("prometheus not ready after 30 s")
EOF
then
  cat "$WORK/prometheus.log" >&2
  exit 1
fi

echo "localnet ${LOCALNET_ARGS[*]} --metrics 127.0.0.1:$METRICS_PORT; prometheus on 127.0.0.1:$PROM_PORT"
# In a session of its own: a Ctrl-C on the terminal reaches it only through
# the cleanup's single SIGTERM.
setsid "$BIN" localnet "${LOCALNET_ARGS[@]}" --metrics "127.0.0.1:$METRICS_PORT" \
  >"$WORK/localnet.log" 2>&1 &
NODE_PID=$!

# --- the queries -------------------------------------------------------------
status=0
python3 - "$DASHBOARD" "$METRICS_PORT" "$PROM_PORT" "$NODE_PID" "$PROM_PID" "$DEADLINE" <<'EOF' || status=$?
import json, math, os, re, sys, time, urllib.parse, urllib.request

import signal
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

dash_path, metrics_port, prom_port, node_pid, prom_pid, deadline = sys.argv[1:]
node_pid, prom_pid, deadline = int(node_pid), int(prom_pid), float(deadline)
PROM = f"http://127.0.0.1:{prom_port}"

def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()

def alive(pid):
    # A zombie still answers kill 0: read its state instead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False

def panels(ps):
    for p in ps:
        if p.get("type") == "row":
            yield from panels(p.get("panels", []))
        else:
            yield p

dash = json.load(open(dash_path))
queries = []
for p in panels(dash["panels"]):
    exprs = [t["expr"] for t in p.get("targets", []) if t.get("expr")]
    if not exprs:
        sys.exit(f"panel {p.get('title')!r} has no query")
    for e in exprs:
        queries.append((p["title"], e))
var = next(v for v in dash["templating"]["list"] if v["name"] == "topic")
var_query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var_query)
if not m:
    sys.exit(f"topic variable: unexpected query {var_query!r}")
var_metric, var_label = m.groups()

# The node serves /metrics once its chain is built: wait for it, read the topic.
topic = None
end = time.monotonic() + 120
while topic is None:
    if not alive(node_pid):
        sys.exit("localnet exited before serving /metrics")
    if time.monotonic() > end:
        sys.exit("localnet did not serve /metrics within 120 s")
    try:
        m = re.search(r'^hmy_stream_num_streams\{[^}]*topic="([^"]+)"', get(f"http://127.0.0.1:{metrics_port}/metrics"), re.M)
        topic = m.group(1) if m else None
    except OSError:
        pass
    if topic is None:
        time.sleep(0.2)
print(f"topic: {topic}")

def evaluate(expr, at):
    """(passed, shown value) of one instant query at time `at`."""
    try:
        query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        body = json.loads(get(f"{PROM}/api/v1/query?" + query))
    except OSError as e:
        return False, f"error: {e}"
    except ValueError as e:
        return False, f"bad answer: {e}"
    if body.get("status") != "success":
        return False, f"{body.get('errorType')}: {body.get('error')}"
    data = body["data"]
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    else:
        values = [s["value"][1] for s in data["result"]]
    if not values:
        return False, "empty"
    bad = [v for v in values if not math.isfinite(float(v))]
    return not bad, ", ".join(values)

def topic_values():
    """What Grafana's topic variable would list."""
    try:
        url = f"{PROM}/api/v1/label/{var_label}/values?" + urllib.parse.urlencode({"match[]": var_metric})
        return json.loads(get(url))["data"]
    except (OSError, ValueError, KeyError):
        return []

exprs = [e.replace("$topic", topic) for _, e in queries]
# Every round evaluates all queries at one timestamp: the check passes once
# one round finds every panel with a value, so the table is one snapshot.
failing, shown = set(range(len(queries))), ["not evaluated"] * len(queries)
variable_ok = False
start = time.monotonic()
while True:
    at = time.time()
    failing = set()
    for i, e in enumerate(exprs):
        ok, shown[i] = evaluate(e, at)
        if not ok:
            failing.add(i)
    variable_ok = variable_ok or topic in topic_values()
    if (not failing and variable_ok) or time.monotonic() - start > deadline:
        break
    if not alive(node_pid):
        # Once the node is gone its series turn stale: nothing more will pass.
        print("localnet finished before every query passed", file=sys.stderr)
        break
    if not alive(prom_pid):
        print("prometheus exited", file=sys.stderr)
        break
    time.sleep(0.5)
took = time.monotonic() - start

width = max(len(t) for t, _ in queries)
print(f"\n{'panel':<{width}}  {'value':<22}  query")
for i, (t, e) in enumerate(queries):
    mark = "FAIL " if i in failing else ""
    print(f"{t:<{width}}  {mark + shown[i]:<22}  {exprs[i]}")
print(f"{'variable topic':<{width}}  {'ok' if variable_ok else 'FAIL':<22}  label_values({var_metric}, {var_label}) lists {topic}")
print(f"\n{len(queries) - len(failing)}/{len(queries)} queries passed, {took:.1f} s after the node served /metrics")
if failing or not variable_ok:
    names = ", ".join(repr(queries[i][0]) for i in sorted(failing))
    sys.exit(f"empty or NaN: {names}" if failing else "the topic variable does not list the node's topic")
EOF
if [[ $status -ne 0 ]]; then
  echo "--- localnet log" >&2; tail -n 20 "$WORK/localnet.log" >&2 || true
  echo "--- prometheus log" >&2; tail -n 20 "$WORK/prometheus.log" >&2 || true
fi
exit "$status"
