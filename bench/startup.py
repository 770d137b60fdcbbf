"""Cold start to /readyz 200, idle RSS and binary size of demiurge, beside nginx + PowerDNS.

Usage: python3 bench/startup.py PATH_TO_DEMIURGE [RUNS]
Prints a table with the median of RUNS starts and the ratios to the peer.
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=0.5) as r:
            return r.status == 200
    except Exception:
        return False


def dns_ok(port):
    # A minimal DNS query for the zone apex (A); any answer with our id counts.
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x05bench\x04test\x00" + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            data, _ = s.recvfrom(512)
            return data[:2] == b"\x12\x34"
        except OSError:
            return False


def tree_rss_kib(pid):
    """Resident memory of a process and its children, KiB."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except Exception:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait(pred, limit=30.0):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if pred():
            return time.perf_counter() - t0
        time.sleep(0.001)
    raise RuntimeError("did not become ready")


def start_demiurge(binary, data_dir):
    ports = {k: free_port() for k in ("http", "dns", "vpn")}
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEMIURGE_SERVER__DATA_DIR": data_dir,
        "DEMIURGE_SERVER__DOMAIN": "bench.test",
        "DEMIURGE_EDGE__HTTP": f"127.0.0.1:{ports['http']}",
        "DEMIURGE_DNS__LISTEN": f"127.0.0.1:{ports['dns']}",
        "DEMIURGE_VPN__LISTEN": f"127.0.0.1:{ports['vpn']}",
        "DEMIURGE_LOG__LEVEL": "warn",
    }
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: http_ok(ports["http"], "/readyz"))
    return p, time.perf_counter() - t0


def start_peer(work):
    """nginx proxying to a static upstream, and PowerDNS with a bind zone: both must answer."""
    http, upstream, dns = free_port(), free_port(), free_port()
    os.makedirs(f"{work}/ngx", exist_ok=True)
    with open(f"{work}/ngx/nginx.conf", "w") as f:
        f.write(f"""
worker_processes 2; pid {work}/ngx/nginx.pid; error_log {work}/ngx/error.log; daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {work}/ngx/cb; proxy_temp_path {work}/ngx/px;
  fastcgi_temp_path {work}/ngx/fc; uwsgi_temp_path {work}/ngx/uw; scgi_temp_path {work}/ngx/sc;
  server {{ listen 127.0.0.1:{upstream}; location / {{ return 200 "ok"; }} }}
  server {{ listen 127.0.0.1:{http}; location / {{ proxy_pass http://127.0.0.1:{upstream}; }} }}
}}
""")
    with open(f"{work}/bench.test.zone", "w") as f:
        f.write("$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\n@ IN A 127.0.0.1\n"
                "ns1 IN A 127.0.0.1\n*.containers IN A 127.0.0.1\n")
    with open(f"{work}/named.conf", "w") as f:
        f.write(f'zone "bench.test" {{ type master; file "{work}/bench.test.zone"; }};\n')
    with open(f"{work}/pdns.conf", "w") as f:
        f.write("\n".join([
            "launch=bind", f"bind-config={work}/named.conf", "local-address=127.0.0.1", f"local-port={dns}",
            f"socket-dir={work}", "daemon=no", "guardian=no", "disable-syslog=yes", "webserver=no", "api=no",
        ]) + "\n")
    t0 = time.perf_counter()
    ngx = subprocess.Popen(["nginx", "-p", f"{work}/ngx", "-c", f"{work}/ngx/nginx.conf", "-e", f"{work}/ngx/error.log"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pdns = subprocess.Popen(["pdns_server", f"--config-dir={work}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: http_ok(http, "/") and dns_ok(dns))
    return [ngx, pdns], time.perf_counter() - t0


def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    first, warm, rss, stop_times = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            data = f"{d}/data"
            p, t = start_demiurge(binary, data)  # fresh data dir: migrations, keys, certificates
            first.append(t)
            stop([p])
            p, t = start_demiurge(binary, data)  # the same data dir again
            warm.append(t)
            time.sleep(2)
            rss.append(tree_rss_kib(p.pid))
            t0 = time.perf_counter()
            stop([p])
            stop_times.append(time.perf_counter() - t0)
    peer_start, peer_rss = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            procs, t = start_peer(d)
            peer_start.append(t)
            time.sleep(2)
            peer_rss.append(sum(tree_rss_kib(p.pid) for p in procs))
            stop(procs)

    size = os.path.getsize(binary)
    with tempfile.TemporaryDirectory() as d:
        stripped = f"{d}/demiurge"
        shutil.copy(binary, stripped)
        subprocess.run(["strip", stripped], check=True)
        stripped_size = os.path.getsize(stripped)

    med = statistics.median
    print(f"demiurge startup benchmark, {runs} runs each, medians (machine: {os.cpu_count()} cores)")
    print(f"{'metric':44} {'demiurge':>12} {'nginx+pdns':>12} {'ratio':>8}")
    print(f"{'cold start to /readyz 200, fresh data dir (ms)':44} {med(first)*1000:12.1f} {'':>12} {'':>8}")
    print(f"{'cold start to ready, existing data dir (ms)':44} {med(warm)*1000:12.1f} {med(peer_start)*1000:12.1f} "
          f"{med(warm)/med(peer_start):8.2f}")
    print(f"{'idle RSS, all subsystems up (MiB)':44} {med(rss)/1024:12.1f} {med(peer_rss)/1024:12.1f} "
          f"{med(rss)/med(peer_rss):8.2f}")
    print(f"{'SIGTERM to exit (ms)':44} {med(stop_times)*1000:12.1f}")
    print(f"{'release binary (MiB)':44} {size/2**20:12.1f}")
    print(f"{'stripped release binary (MiB)':44} {stripped_size/2**20:12.1f}")
    print("goals: cold start <= 300 ms, idle RSS <= 60 MB")


if __name__ == "__main__":
    main()
