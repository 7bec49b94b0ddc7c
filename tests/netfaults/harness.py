#!/usr/bin/env python3
"""The multi-host fault harness: every role on its own host, faults between them, money checked.

    sudo tests/netfaults/run.sh            # what .ci/run runs (builds nothing; see run.sh)
    harness.py --bin target/debug/cocoon [--python .venv/bin/python] [--only 1,3] [--keep]

Hosts are Linux network namespaces this script creates and removes: three proxy hosts (p0-p2)
and a spare (p3), four worker hosts (w0-w3, each with its own mock backend) and two client
hosts (c0, c1), joined by a bridge inside a namespace of its own. Their addresses come from the
benchmarking range 198.18.0.0/15 and exist only inside those namespaces; nothing is reachable
from, or reaches, the machine's own network. The chain is the devnet's local chain directory,
which every process opens (the journal is shared under a file lock).

Setup: `cocoon devnet --mock --proxies 4 --workers 4` creates the chain, keys, contracts and
configs on loopback and stops; the root's entries are then moved to the namespace addresses
(`cocoon root update-proxy`), the spare is unregistered, and each role runs alone from its
written config (`cocoon proxy|worker|client --config …`). Clients and workers have no proxy list:
they follow the root, re-read every 2 s here.

Scenarios, each under load from both clients (the real `openai` SDK, load.py):
  1. a proxy host partitioned (detached from the bridge: every packet dropped) for 10 s, healed;
  2. a proxy SIGKILLed and restarted;
  3. a worker SIGKILLed mid-stream and restarted;
  4. a proxy unregistered from the root and the spare registered, traffic running;
  5. 100 ms latency and 1 % loss on one proxy (userspace relay, impair.py: no netem here).
After each: no request lost without a clear error, nothing left running or reserved on any
proxy, and every proxy's books balance to the nano-TON. A table per scenario; exit 1 if any
check failed. Everything created is removed on exit, Ctrl-C and failures included.
"""

import argparse
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NET = "198.18.0"
HOSTS = {"p0": 10, "p1": 11, "p2": 12, "p3": 13, "w0": 20, "w1": 21, "w2": 22, "w3": 23, "c0": 30, "c1": 31}
IMPAIRED = "p1"  # the proxy host behind impair.py
API_PORT = 8080
BACKEND_PORT = 8000
TOKENS = 30  # per answer; with 20 ms between tokens a stream lasts about 0.6 s
TOKEN_DELAY_MS = 20
LOAD_THREADS = 4  # per client host
PROMPT = "Count to thirty."  # what load.py asks


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def set_keys(path: Path, values: dict[str, str]) -> None:
    """Sets `key = value` (value as TOML text) wherever a line of the config assigns key."""
    lines = []
    for line in path.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in values:
            line = f"{key} = {values[key]}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bin = str(Path(args.bin).resolve())
        # Not resolved: a venv's python is a symlink, and resolving it leaves the venv.
        self.python = os.path.abspath(args.python)
        self.prefix = f"cnf{os.getpid()}"
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="cocoon-netfaults-"))
        self.data = self.tmp / "devnet"
        self.proxy_ports: dict[str, dict[str, int]] = {}
        self.failures: list[str] = []
        self.tables: list[str] = []

    # ------------------------------------------------------------------ plumbing

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def run(self, *cmd: str, host: str | None = None, check: bool = True, timeout: float = 60) -> str:
        full = (["ip", "netns", "exec", self.ns(host)] if host else []) + list(cmd)
        result = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return result.stdout

    def start(self, name: str, host: str | None, *cmd: str) -> subprocess.Popen:
        full = (["ip", "netns", "exec", self.ns(host)] if host else []) + list(cmd)
        logfile = open(self.tmp / f"{name}.log", "ab")
        # `ip netns exec` execs the command, so the pid is the role's own (SIGKILL reaches it).
        proc = subprocess.Popen(full, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def get_json(self, host: str, url: str, timeout: float = 10) -> dict:
        out = self.run("curl", "-sf", "--max-time", str(timeout), url, host=host, timeout=timeout + 5)
        return json.loads(out)

    def wait_for(self, what: str, check, timeout: float) -> None:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                if check():
                    return
            except Exception as error:  # not up yet
                last = error
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")

    def cleanup(self) -> None:
        for name in list(self.procs):
            self.stop(name, signal.SIGKILL, wait=10)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            subprocess.run(["rm", "-rf", str(self.tmp)])

    # ------------------------------------------------------------------ network

    def make_network(self) -> None:
        switch = self.ns("sw")
        self.run("ip", "netns", "add", switch)
        self.namespaces.append(switch)
        self.run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        self.run("ip", "-n", switch, "link", "set", "br0", "up")
        for host, last in HOSTS.items():
            ns = self.ns(host)
            self.run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            # Both ends are born inside namespaces: nothing appears in the machine's own.
            self.run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"s-{host}", "netns", switch)
            self.run("ip", "-n", switch, "link", "set", f"s-{host}", "master", "br0", "up")
            self.run("ip", "-n", ns, "addr", "add", f"{NET}.{last}/24", "dev", "eth0")
            self.run("ip", "-n", ns, "link", "set", "eth0", "up")
            self.run("ip", "-n", ns, "link", "set", "lo", "up")
        log(f"network: {len(HOSTS)} hosts on {NET}.0/24 behind one bridge (namespaces {self.prefix}-*)")

    def partition(self, host: str, cut: bool) -> None:
        if cut:
            self.run("ip", "-n", self.ns("sw"), "link", "set", f"s-{host}", "nomaster")
        else:
            self.run("ip", "-n", self.ns("sw"), "link", "set", f"s-{host}", "master", "br0")

    # ------------------------------------------------------------------ setup

    def devnet_setup(self) -> None:
        log("devnet: creating the chain, keys, contracts and configs (on loopback, then stopped)")
        out = self.tmp / "devnet-setup.log"
        with open(out, "wb") as logfile:
            proc = subprocess.Popen(
                [self.bin, "devnet", "--mock", "--proxies", "4", "--workers", "4", "--data-dir", str(self.data),
                 "--client-port", "0", "--pow-difficulty", "12", "--log", "warn"],
                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self.wait_for("the devnet's configs", lambda: "configs" in out.read_text(errors="replace"), 300)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        status = self.cocoon_root("status")
        seqnos = {}
        for line in status.splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[1] == "workers" and parts[0].isdigit():
                seqnos[int(parts[2].rsplit(":", 1)[1])] = int(parts[0])
        for k in range(4):
            config = tomllib.loads((self.data / f"proxy-{k}.toml").read_text())
            ports = {key: int(config[f"{key}_listen"].rsplit(":", 1)[1]) for key in ("client", "worker", "http")}
            ports["seqno"] = seqnos[ports["worker"]]
            self.proxy_ports[f"p{k}"] = ports
        # The proxies' configs: their hosts' addresses (the impaired one listens on loopback
        # behind its relay); /stats on loopback, read from inside each host.
        for k in range(4):
            host = f"p{k}"
            ip = "127.0.0.1" if host == IMPAIRED else f"{NET}.{HOSTS[host]}"
            path = self.data / f"proxy-{k}.toml"
            text = path.read_text()
            for key in ("client", "worker"):
                port = self.proxy_ports[host][key]
                text = text.replace(f'{key}_listen = "127.0.0.1:{port}"', f'{key}_listen = "{ip}:{port}"')
            path.write_text(text)
        for n in range(4):
            set_keys(self.data / f"worker-{n}.toml", {
                "backend_url": f'"http://127.0.0.1:{BACKEND_PORT}"', "root_refresh_secs": "2.0"})
        set_keys(self.data / "client.toml", {
            "listen": f'"127.0.0.1:{API_PORT}"', "root_refresh_secs": "2.0"})
        for name in ["worker-0.toml", "client.toml"]:
            config = tomllib.loads((self.data / name).read_text())
            if config.get("proxies"):
                raise RuntimeError(f"{name} written by the devnet still lists proxies: {config['proxies']}")
        # The root: the three proxies at their hosts' addresses, the spare unregistered.
        for k in range(3):
            host = f"p{k}"
            self.cocoon_root("update-proxy", str(self.proxy_ports[host]["seqno"]), self.entry(host))
        self.cocoon_root("unregister-proxy", str(self.proxy_ports["p3"]["seqno"]))
        log("root: " + ", ".join(f"{h} = {self.entry(h)}" for h in ("p0", "p1", "p2")) + "; p3 unregistered")

    def entry(self, host: str) -> str:
        ip = f"{NET}.{HOSTS[host]}"
        ports = self.proxy_ports[host]
        return f"{ip}:{ports['worker']} {ip}:{ports['client']}"

    def cocoon_root(self, *args: str) -> str:
        return self.run(self.bin, "root", "--data-dir", str(self.data), "--log", "warn", *args, timeout=120)

    def start_proxy(self, host: str) -> None:
        k = host[1:]
        self.start(f"proxy-{host}", host, self.bin, "proxy", "--config", str(self.data / f"proxy-{k}.toml"), "--log", "info")
        http = self.proxy_ports[host]["http"]
        self.wait_for(f"proxy {host}", lambda: self.get_json(host, f"http://127.0.0.1:{http}/stats", 2) is not None, 120)

    def start_worker(self, host: str) -> None:
        n = host[1:]
        self.start(f"worker-{host}", host, self.bin, "worker", "--config", str(self.data / f"worker-{n}.toml"), "--log", "info")

    def start_client(self, host: str) -> None:
        self.start(f"client-{host}", host, self.bin, "client", "--config", str(self.data / "client.toml"), "--log", "info")

    def proxy_stats(self, host: str) -> dict:
        return self.get_json(host, f"http://127.0.0.1:{self.proxy_ports[host]['http']}/stats")

    def models(self, host: str) -> dict:
        return self.get_json(host, f"http://127.0.0.1:{API_PORT}/v1/models")

    def start_all(self) -> None:
        for n in range(4):
            host = f"w{n}"
            self.start(f"backend-{host}", host, self.bin, "mock-backend", "--listen", f"127.0.0.1:{BACKEND_PORT}",
                       "--tokens", str(TOKENS), "--token-delay-ms", str(TOKEN_DELAY_MS), "--log", "warn")
        ports = self.proxy_ports[IMPAIRED]
        ip = f"{NET}.{HOSTS[IMPAIRED]}"
        self.control = self.tmp / "impair"
        self.start("impair", IMPAIRED, self.python, str(HERE / "impair.py"),
                   "--listen", f"{ip}:{ports['client']}", "--target", f"127.0.0.1:{ports['client']}",
                   "--listen", f"{ip}:{ports['worker']}", "--target", f"127.0.0.1:{ports['worker']}",
                   "--control", str(self.control))
        for host in ("p0", "p1", "p2"):
            self.start_proxy(host)
        for n in range(4):
            self.start_worker(f"w{n}")
        self.wait_for("4 workers on each proxy", lambda: all(
            self.proxy_stats(h)["connections"]["workers"] >= 4 for h in ("p0", "p1", "p2")), 180)
        # One client first: it deploys the client contracts; the second shares its wallet.
        for host in ("c0", "c1"):
            self.start_client(host)
            self.wait_for(f"client {host} on 3 proxies", lambda: self.client_proxies(host) >= 3, 180)
        log("up: 3 proxies, 4 workers, 2 clients, each alone on its host")

    def client_proxies(self, host: str) -> int:
        for model in self.models(host).get("data", []):
            if model.get("id") == "mock-model":
                return int((model.get("cocoon") or {}).get("proxies", 0))
        return 0

    # ------------------------------------------------------------------ scenarios

    def live_proxies(self) -> list[str]:
        return [h for h in ("p0", "p1", "p2", "p3") if f"proxy-{h}" in self.procs]

    def served(self) -> dict[str, int]:
        counts = {}
        for host in self.live_proxies():
            try:
                counts[host] = int(self.proxy_stats(host)["requests"]["total"])
            except Exception:
                counts[host] = -1
        return counts

    def scenario(self, number: int, title: str, inject, heal, hold: float, check=None) -> None:
        if self.args.only and number not in self.args.only:
            return
        log(f"scenario {number}: {title}")
        stop_file = self.tmp / f"stop-{number}"
        outs = {host: self.tmp / f"load-{number}-{host}.jsonl" for host in ("c0", "c1")}
        before = self.served()
        charged_before = self.charged()
        for host, out in outs.items():
            self.start(f"load-{host}", host, self.python, str(HERE / "load.py"),
                       "--url", f"http://127.0.0.1:{API_PORT}/v1", "--workers", str(LOAD_THREADS),
                       "--stop-file", str(stop_file), "--max-seconds", str(hold + 60), "--out", str(out))
        time.sleep(4)
        mid = self.served()
        t_fault = time.time()
        inject()
        time.sleep(hold)
        during = self.served()
        heal()
        t_heal = time.time()
        time.sleep(8)
        stop_file.touch()
        for host in outs:
            proc = self.procs.pop(f"load-{host}")
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.failures.append(f"scenario {number}: the load on {host} did not finish within 90 s")
            if proc.returncode:
                tail = (self.tmp / f"load-{host}.log").read_text(errors="replace").splitlines()[-5:]
                raise RuntimeError(f"the load on {host} failed ({proc.returncode}): " + " / ".join(tail))
        after = self.served()
        records = []
        for host, out in outs.items():
            if out.exists():
                for line in out.read_text().splitlines():
                    record = json.loads(line)
                    record["client"] = host
                    records.append(record)
        books = self.check_books(number)
        books["billing"] = self.check_billing(number, records, charged_before, self.charged())
        self.report(number, title, records, t_fault, t_heal, before, mid, during, after, books)
        if check:
            check(records, before, mid, during, after, t_fault, t_heal)

    def charged(self) -> dict[str, int]:
        """Tokens each live proxy has charged its clients so far."""
        totals = {}
        for host in self.live_proxies():
            clients = self.proxy_stats(host)["ledger"]["clients"]
            totals[host] = sum(c["charged_tokens"] for c in clients.values())
        return totals

    def check_billing(self, number: int, records: list, before: dict, after: dict) -> str:
        """What the proxies charged against what the apps received: every whole answer exactly
        its usage (all multipliers are 1x on the devnet), every cut one at most the documented
        estimate (cocoon-proxy's billing.rs): its prompt by OpenAI's rule and one token per event
        that reached the app (+2: the role event, a part in flight when it was cut)."""
        charged = sum(after[h] - before.get(h, 0) for h in after)
        ok = [r for r in records if r["outcome"] == "ok"]
        cut = [r for r in records if r["outcome"] == "stream_error"]
        ok_usage = sum(r["usage"] for r in ok)
        prompts = sorted(r["usage"] - r["chunks"] for r in ok)
        prompt = prompts[len(prompts) // 2] if prompts else 0
        # load.py's one message: its text at 4 bytes a token, + 3 for the message, + 3 for the reply.
        estimated_prompt = -(-len(PROMPT) // 4) + 3 + 3
        bound = sum(max(prompt, estimated_prompt) + r["chunks"] + 2 for r in cut)
        full = sum(prompt + TOKENS for r in cut)
        text = (f"{charged} tokens charged: {len(ok)} whole answers {ok_usage} (their usage), "
                f"{len(cut)} cut answers {charged - ok_usage} (at most {bound} for the "
                f"{sum(r['chunks'] for r in cut)} tokens they delivered; in full they were {full})")
        if not ok_usage <= charged <= ok_usage + bound:
            self.failures.append(f"scenario {number}: billing: {text}")
            return "FAIL: " + text
        return "ok: " + text

    def check_books(self, number: int) -> dict[str, str]:
        """Waits until no proxy runs a request, then checks every proxy's books."""
        results = {}
        for host in self.live_proxies():
            try:
                self.wait_for(f"{host} to finish its requests",
                              lambda: self.proxy_stats(host)["requests"]["in_flight"] == 0, 60)
                stats = self.proxy_stats(host)
            except Exception as error:
                results[host] = f"unreadable: {error}"
                self.failures.append(f"scenario {number}: {host}'s /stats: {error}")
                continue
            ledger = stats["ledger"]
            problems = []
            charged_tokens = sum(c["charged_tokens"] for c in ledger["clients"].values())
            earned_tokens = sum(w["earned_tokens"] for w in ledger["workers"].values())
            reserved = sum(c["reserved_tokens"] for c in ledger["clients"].values())
            charged = int(ledger["charged_nano"])
            earned = int(ledger["earned_nano"])
            commission = int(ledger["commission_nano"])
            if charged_tokens != earned_tokens:
                problems.append(f"clients charged {charged_tokens} tokens, workers credited {earned_tokens}")
            if charged != earned + commission:
                problems.append(f"charged {charged} != earned {earned} + commission {commission}")
            if charged_tokens and (charged % charged_tokens or earned % charged_tokens):
                problems.append("nano-TON not a whole price per token")
            if sum(int(c["charged_nano"]) for c in ledger["clients"].values()) != charged:
                problems.append("clients' charges do not add up to the total")
            if sum(int(w["earned_nano"]) for w in ledger["workers"].values()) != earned:
                problems.append("workers' earnings do not add up to the total")
            if reserved:
                problems.append(f"{reserved} tokens still reserved")
            if problems:
                self.failures.extend(f"scenario {number}: {host}: {p}" for p in problems)
                results[host] = "FAIL: " + "; ".join(problems)
            else:
                results[host] = (f"ok: {charged_tokens} tokens, client paid {charged} n = worker earned {earned} n"
                                 f" + commission {commission} n; 0 reserved")
        return results

    def report(self, number, title, records, t_fault, t_heal, before, mid, during, after, books) -> None:
        kinds: dict[str, int] = {}
        for r in records:
            kinds[r["outcome"]] = kinds.get(r["outcome"], 0) + 1
        ok = [r for r in records if r["outcome"] == "ok"]
        bad = [r for r in records if r["outcome"] != "ok"]
        # A clear error is an HTTP error with its code or an error event in the stream; a
        # stream that just ends, a client-side timeout or a dropped connection is not.
        unclear = [r for r in bad if not (r["outcome"] == "stream_error" or r["outcome"].startswith("http_"))]
        if unclear:
            kinds_unclear = sorted({r["outcome"] for r in unclear})
            self.failures.append(f"scenario {number}: {len(unclear)} requests failed without a clear error ({', '.join(kinds_unclear)})")
        base = [r["end"] - r["start"] for r in ok if r["end"] < t_fault]
        normal = statistics.median(base) if base else 0.6
        slow = [r for r in ok if r["end"] - r["start"] > max(2.0, 3 * normal)]
        affected = bad + slow
        # Failover: how long after the fault requests still failed or stalled.
        starts = [r["start"] for r in affected if r["end"] >= t_fault]
        failover = max(0.0, max(starts) - t_fault) if starts else 0.0
        longest = max((r["end"] - r["start"] for r in affected), default=0.0)
        after_heal = [r for r in records if r["start"] >= t_heal + 2]
        after_heal_ok = sum(r["outcome"] == "ok" for r in after_heal)

        def delta(a, b):
            return ", ".join(f"{h} {b[h] - a[h]}" for h in sorted(b) if h in a and a[h] >= 0 and b[h] >= 0)

        lines = [
            f"scenario {number}: {title}",
            f"  requests          {len(records)} (ok {len(ok)}, failed {len(bad)}, slow > {max(2.0, 3 * normal):.1f} s: {len(slow)}; normal {normal * 1000:.0f} ms)",
            f"  errors by kind    {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()) if k != 'ok') or 'none'}",
            f"  failover time     {failover:.1f} s after the fault the last failed or stalled request started (0: only requests already running were hit); longest of them {longest:.1f} s",
            f"  after healing     {after_heal_ok}/{len(after_heal)} ok (started 2 s or more after)",
            f"  served per proxy  before {delta(before, mid)} | fault {delta(mid, during)} | after {delta(during, after)}",
        ]
        lines += [f"  money {h:<11} {v}" for h, v in sorted(books.items()) if h != "billing"]
        lines.append(f"  billing           {books['billing']}")
        table = "\n".join(lines)
        print(table, flush=True)
        self.tables.append(table)
        if after_heal and after_heal_ok < len(after_heal):
            self.failures.append(f"scenario {number}: {len(after_heal) - after_heal_ok} requests failed after healing")
        if not after_heal:
            self.failures.append(f"scenario {number}: no request after healing")

    # ------------------------------------------------------------------ the five

    def run_scenarios(self) -> None:
        self.scenario(1, "proxy host p2 partitioned for 10 s, then healed",
                      lambda: self.partition("p2", True), lambda: self.partition("p2", False), 10)

        def kill_proxy():
            self.stop("proxy-p2", signal.SIGKILL)

        self.scenario(2, "proxy p2 SIGKILLed, restarted 3 s later",
                      kill_proxy, lambda: self.start_proxy("p2"), 3)

        def kill_worker():
            self.stop("worker-w0", signal.SIGKILL)

        self.scenario(3, "worker w0 SIGKILLed mid-stream, restarted 3 s later",
                      kill_worker, lambda: self.start_worker("w0"), 3)

        def swap():
            self.start_proxy("p3")
            self.cocoon_root("unregister-proxy", str(self.proxy_ports["p0"]["seqno"]))
            self.cocoon_root("register-proxy", self.entry("p3"))

        def swap_check(records, before, mid, during, after, t_fault, t_heal):
            # The last part of the run: p0 gets nothing new, p3 gets its share.
            if after.get("p0", 0) - during.get("p0", 0) > 0:
                self.failures.append(f"scenario 4: the removed proxy p0 still got {after['p0'] - during['p0']} requests after the change settled")
            if after.get("p3", 0) - during.get("p3", 0) <= 0:
                self.failures.append("scenario 4: the newly registered proxy p3 got no requests")

        self.scenario(4, "proxy p0 unregistered and p3 registered in the root, traffic running",
                      swap, lambda: None, 8, swap_check)

        def impair():
            self.control.write_text("100 0.01")

        def unimpair():
            self.control.unlink(missing_ok=True)

        def impair_check(records, before, mid, during, after, t_fault, t_heal):
            share_before = self.share(before, mid, IMPAIRED)
            share_during = self.share(mid, during, IMPAIRED)
            fair = 1 / len([h for h in during if h in mid and during[h] - mid[h] > 0] or [IMPAIRED])
            log(f"scenario 5: {IMPAIRED}'s share of requests {share_before:.2f} before, {share_during:.2f} while impaired (fair share {fair:.2f})")
            if share_during > fair / 2:
                self.failures.append(f"scenario 5: the clients did not move away from the slow proxy: {share_during:.2f} of requests, fair share {fair:.2f}")

        self.scenario(5, f"100 ms latency and 1 % loss on proxy {IMPAIRED}",
                      impair, unimpair, 12, impair_check)

    @staticmethod
    def share(a: dict, b: dict, host: str) -> float:
        total = sum(b[h] - a[h] for h in b if h in a)
        return (b.get(host, 0) - a.get(host, 0)) / total if total > 0 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / "target/debug/cocoon"))
    parser.add_argument("--python", default=str(REPO / ".venv/bin/python"))
    parser.add_argument("--only", type=lambda s: {int(x) for x in s.split(",")}, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("netfaults: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    harness = Harness(args)
    atexit.register(harness.cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    started = time.time()
    try:
        harness.make_network()
        harness.devnet_setup()
        harness.start_all()
        harness.run_scenarios()
    except Exception as error:
        harness.failures.append(f"harness: {error}")
        print(f"netfaults: {error}", file=sys.stderr)
        for name in sorted(os.listdir(harness.tmp)):
            if name.endswith(".log"):
                tail = (harness.tmp / name).read_text(errors="replace").splitlines()[-15:]
                print(f"--- {name} (tail)\n" + "\n".join(tail), file=sys.stderr)
    print(f"netfaults: {time.time() - started:.0f} s", flush=True)
    if harness.failures:
        print("netfaults FAILED:\n  " + "\n  ".join(harness.failures), file=sys.stderr)
        return 1
    print("netfaults: every scenario passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
