"""A user container's service through the edge and the tunnel, side by side with the same
service reached directly, and a 200 MB download through our tunnel beside the same download
through wireguard-go (kernel networking) in the same run. Also: agent start to the URL
answering (first start with the download, and a restart from the volume) and the agent's
memory.

The "container" is a network namespace joined to this one by a veth pair (these machines have
no Docker engine); nginx in it is the container's web service. Needs root.

Usage: python3 bench/containers.py PATH_TO_DEMIURGE
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

SIZE_MB = 200


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


class Netns:
    """A namespace with a veth pair to this one: `outer` here, `inner` inside."""

    def __init__(self, name, net, peer=None):
        """Joined to `peer` (another Netns) instead of this namespace, if given."""
        self.name = name
        self.outer, self.inner = f"10.{net}.0.1", f"10.{net}.0.2"
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        if peer:
            run("ip", "-n", peer.name, "link", "add", f"{name}h", "type", "veth", "peer", "name", "eth0",
                "netns", name)
            run("ip", "-n", peer.name, "addr", "add", f"{self.outer}/30", "dev", f"{name}h")
            run("ip", "-n", peer.name, "link", "set", f"{name}h", "up")
            run("ip", "-n", name, "addr", "add", f"{self.inner}/30", "dev", "eth0")
            run("ip", "-n", name, "link", "set", "eth0", "up")
            return
        run("ip", "link", "add", f"{name}h", "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "addr", "add", f"{self.outer}/30", "dev", f"{name}h")
        run("ip", "link", "set", f"{name}h", "up")
        run("ip", "-n", name, "addr", "add", f"{self.inner}/30", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.name, *args]

    def pids(self):
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def close(self):
        for p in self.pids():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def nginx(ns, work, name, listen):
    """nginx in `ns` serving /small (13 bytes) and /big (SIZE_MB) from `work/name`."""
    d = f"{work}/{name}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/nginx.conf", "w") as f:
        listens = " ".join(f"listen {a};" for a in listen)
        f.write(f"worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log; daemon off;\n"
                f"events {{ worker_connections 1024; }}\nhttp {{ access_log off; sendfile on;"
                f" client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;"
                f" uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n"
                f" server {{ {listens} root {work}/www; location = /small {{ return 200 'hello, world\\n'; }} }} }}\n")
    return subprocess.Popen(ns.cmd("nginx", "-p", d, "-c", f"{d}/nginx.conf"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wrk(url, conns, secs, headers=(), ns=None):
    args = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency"]
    for h in headers:
        args += ["-H", h]
    args.append(url)
    out = subprocess.run(ns.cmd(*args) if ns else args, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, ms(p50), int(errors.group(1)) if errors else 0


def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def download(url, headers=(), ns=None):
    """MB/s of one curl download of `url` (checks the size)."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{speed_download} %{http_code}"]
    for h in headers:
        args += ["-H", h]
    args.append(url)
    out = subprocess.run(ns.cmd(*args) if ns else args, capture_output=True, text=True).stdout.split()
    size, speed, code = int(out[0]), float(out[1]), out[2]
    assert code == "200" and size == SIZE_MB * 1024 * 1024, f"download of {url}: {out}"
    return speed / 1e6


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Site:
    """The server as a browser sees it: cookies by host, redirects by hand."""

    def __init__(self, port):
        self.port = port
        self.main = f"http://localhost:{port}"
        self.jar = {}

    def request(self, method, url, **kw):
        m = re.match(r"http://([^/]+)(.*)", url)
        host, path = m.group(1), m.group(2) or "/"
        cookies = "; ".join(f"{k}={v}" for k, v in self.jar.get(host, {}).items())
        headers = {"Host": host, **({"Cookie": cookies} if cookies else {}), **kw.pop("headers", {})}
        r = requests.request(method, f"http://127.0.0.1:{self.port}{path}", headers=headers,
                             allow_redirects=False, timeout=10, **kw)
        for c in r.raw.headers.getlist("Set-Cookie"):
            k, v = c.split(";", 1)[0].split("=", 1)
            self.jar.setdefault(host, {})[k] = v
        return r

    def cookie_header(self, host):
        return "Cookie: " + "; ".join(f"{k}={v}" for k, v in self.jar[host].items())


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="demiurge-bench-")
    os.chmod(work, 0o755)  # nginx's workers read www/ as another user
    os.makedirs(f"{work}/www")
    with open(f"{work}/www/big", "wb") as f:
        f.truncate(SIZE_MB * 1024 * 1024)
    host = Netns("dmbench", 203)
    wga = wgb = None
    procs = []
    try:
        http, vpn = free_port(), free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DEMIURGE_SERVER__DATA_DIR": f"{work}/data",
            "DEMIURGE_EDGE__HTTP": f"0.0.0.0:{http}",
            "DEMIURGE_DNS__LISTEN": "",
            "DEMIURGE_VPN__LISTEN": f"0.0.0.0:{vpn}",
            "DEMIURGE_VPN__ENDPOINT": f"{host.outer}:{vpn}",
            "DEMIURGE_CONTAINERS__HEARTBEAT": "1s",
            "DEMIURGE_LOG__LEVEL": "warn",
        }
        srv = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=open(f"{work}/server.log", "w"))
        procs.append(srv)
        site = Site(http)
        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{http}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        with open(f"{work}/data/setup-code") as f:
            setup_code = f.read().strip()
        origin = {"Origin": site.main}
        pw = "benchmark password"
        site.request("POST", f"{site.main}/api/v1/auth/signup", headers=origin,
                     json={"username": "bench", "email": "bench@example.test", "password": pw,
                           "setup_code": setup_code})
        r = site.request("POST", f"{site.main}/api/v1/auth/login", headers=origin,
                         json={"login": "bench", "password": pw})
        assert r.ok, r.text
        org = site.request("POST", f"{site.main}/api/v1/orgs", headers=origin, json={"name": "Bench"}).json()
        pid = site.request("POST", f"{site.main}/api/v1/orgs/{org['id']}/projects", headers=origin,
                           json={"name": "Bench"}).json()["id"]
        r = site.request("POST", f"{site.main}/api/v1/projects/{pid}/events", headers=origin,
                         json={"type": "user-containers:create", "name": "Bench", "image": "custom",
                               "image_ref": "nginx:stable", "services": [{"name": "web", "port": 9000}]})
        assert r.ok, r.text
        cid, label = r.json()["result"]["id"], r.json()["result"]["services"][0]["label"]
        en = site.request("POST", f"{site.main}/api/v1/projects/{pid}/containers/{cid}/enrollment",
                          headers=origin, json={}).json()
        service_host = f"{label}.containers.localhost:{http}"
        service = f"http://{service_host}"

        # The guard's flow, once: the ticket cookie then goes with every request.
        r = site.request("GET", f"{service}/small")
        assert r.status_code == 302, r.status_code
        r = site.request("GET", r.headers["Location"])
        assert r.status_code == 302, r.text
        r = site.request("GET", r.headers["Location"])
        assert r.status_code == 302, r.text
        ticket = site.cookie_header(service_host)
        through = [f"Host: {service_host}", ticket]

        procs.append(nginx(host, work, "ngx", ["127.0.0.1:9000", f"{host.inner}:9000"]))
        volume, home = f"{work}/volume", f"{work}/home"
        os.makedirs(home)
        entry = en["command"][en["command"].index(" sh -c ") + 1:]

        def start_agent(token):
            agent_env = ["env", "-i", f"PATH={os.environ.get('PATH', '')}", f"HOME={home}",
                         f"DEMIURGE_URL=http://{host.outer}:{http}", f"DEMIURGE_STATE_DIR={volume}",
                         "DEMIURGE_LOG=warn"]
            if token:
                agent_env.append(f"DEMIURGE_ENROLL={token}")
            t0 = time.monotonic()
            p = subprocess.Popen(host.cmd(*agent_env, "sh", "-c", entry),
                                 stdout=subprocess.DEVNULL, stderr=open(f"{work}/agent.log", "a"),
                                 start_new_session=True)
            while True:
                try:
                    r = requests.get(f"http://127.0.0.1:{http}/small", timeout=2,
                                     headers={"Host": service_host, "Cookie": ticket[8:]})
                    if r.status_code == 200:
                        return p, time.monotonic() - t0
                except requests.RequestException:
                    pass
                assert time.monotonic() - t0 < 60, open(f"{work}/agent.log").read()
                time.sleep(0.02)

        agent, first_start = start_agent(en["token"])
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()
        # Stale before the restart, so the restart is timed from the agent's own start.
        time.sleep(4)
        agent, restart = start_agent(None)
        agent_pid = next(p for p in host.pids()
                         if "demiurge-agent" in open(f"/proc/{p}/cmdline").read())

        time.sleep(3)  # a few heartbeats, idle
        idle_rss, idle_anon = rss_kb(agent_pid), rss_kb(agent_pid, "RssAnon")
        # Requests through the edge and the tunnel, and straight to the service.
        results = {}
        for conns in (1, 16):
            cpu0 = cpu_seconds(srv.pid), cpu_seconds(agent_pid)
            results[("edge", conns)] = wrk(f"http://127.0.0.1:{http}/small", conns, 10, through)
            cpu1 = cpu_seconds(srv.pid), cpu_seconds(agent_pid)
            results[("cpu", conns)] = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
            results[("direct", conns)] = wrk(f"http://{host.inner}:9000/small", conns, 10)
        agent_rss, agent_hwm = rss_kb(agent_pid), rss_kb(agent_pid, "VmHWM")
        agent_anon, agent_file = rss_kb(agent_pid, "RssAnon"), rss_kb(agent_pid, "RssFile")

        ours = download(f"http://127.0.0.1:{http}/big", through)
        ours_direct = download(f"http://{host.inner}:9000/big")
        agent_hwm = max(agent_hwm, rss_kb(agent_pid, "VmHWM"))

        # The same download through wireguard-go on both ends (kernel TCP over a TUN), between
        # two namespaces joined by their own veth pair.
        wga = Netns("dmbwga", 204)
        wgb = Netns("dmbwgb", 205, peer=wga)
        keys = {}
        for n in ("a", "b"):
            k = run("wg", "genkey").strip()
            keys[n] = (k, run("wg", "pubkey", input=k).strip())
        wg_port = free_port()
        for ns, me, other, addr, endpoint in ((wga, "a", "b", "10.99.0.1", f"{wgb.inner}:{wg_port}"),
                                              (wgb, "b", "a", "10.99.0.2", None)):
            conf = f"{work}/{ns.name}.conf"
            with open(conf, "w") as f:
                f.write(f"[Interface]\nPrivateKey = {keys[me][0]}\nAddress = {addr}/24\n"
                        + (f"ListenPort = {wg_port}\n" if me == "b" else "")
                        + f"\n[Peer]\nPublicKey = {keys[other][1]}\nAllowedIPs = 10.99.0.0/24\n"
                        + (f"Endpoint = {endpoint}\n" if endpoint else ""))
            run(*ns.cmd("env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go", "wg-quick", "up", conf))
        procs.append(nginx(wgb, work, "ngxwg", ["10.99.0.2:9000", f"{wgb.inner}:9000"]))
        for _ in range(100):
            if subprocess.run(wga.cmd("curl", "-s", "-m", "1", "http://10.99.0.2:9000/small"),
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        wg = download("http://10.99.0.2:9000/big", ns=wga)
        wg_direct = download(f"http://{wgb.inner}:9000/big", ns=wga)
        wg_rss = sum(rss_kb(p) for ns in (wga, wgb) for p in ns.pids()
                     if "wireguard-go" in open(f"/proc/{p}/cmdline").read())
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in (host, wga, wgb):
            if ns:
                ns.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"containers benchmark ({os.cpu_count()} cores; load tools, server, agent and nginx share them)")
    for conns in (1, 16):
        e, d = results[("edge", conns)], results[("direct", conns)]
        cpu = results[("cpu", conns)]
        print(f"GET /small, {conns:>2} conns: through edge+tunnel {e[0]:8.0f} req/s p50 {e[1]:.3f} ms"
              f" (non-2xx {e[2]}); direct {d[0]:8.0f} req/s p50 {d[1]:.3f} ms;"
              f" ratio {e[0] / d[0]:.2f}, added p50 {e[1] - d[1]:+.3f} ms;"
              f" CPU per 1,000 requests: server {1000 * cpu[0] / (e[0] * 10):.3f} s,"
              f" agent {1000 * cpu[1] / (e[0] * 10):.3f} s")
    print(f"{SIZE_MB} MB download: edge+our tunnel {ours:.0f} MB/s (same file direct {ours_direct:.0f} MB/s);"
          f" wireguard-go both ends {wg:.0f} MB/s (direct {wg_direct:.0f} MB/s); ours/wireguard-go {ours / wg:.2f}")
    print(f"agent start -> URL answers: first start (download, enroll, tunnel) {first_start:.2f} s;"
          f" restart from its volume {restart:.2f} s")
    print(f"agent memory: RSS {idle_rss / 1024:.1f} MB idle (heap and stacks {idle_anon / 1024:.1f} MB);"
          f" {agent_rss / 1024:.1f} MB after the load (heap and stacks {agent_anon / 1024:.1f} MB,"
          f" pages of the executable {agent_file / 1024:.1f} MB), peak {agent_hwm / 1024:.1f} MB;"
          f" wireguard-go (two ends) {wg_rss / 1024:.1f} MB")
    print("goals: >= 0.5x direct req/s and +<= 1 ms p50; >= wireguard-go's throughput; start <= 3 s; RSS <= 20 MB")


if __name__ == "__main__":
    main()
