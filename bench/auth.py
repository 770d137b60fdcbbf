"""Password sign-ins per second, GET /api/v1/me and an organization's project list with a bearer
token, through the edge.

Usage: python3 bench/auth.py PATH_TO_DEMIURGE
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url, limit=30):
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers, json.loads(r.read() or b"null")


def wrk(url, conns, secs, extra):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", *extra, url],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat, int(errors.group(1)) if errors else 0


def hey_fixed_rate(url, rate, secs, token):
    # -c 10 workers x -q rate/10 each = `rate` requests per second in total.
    out = subprocess.run(["hey", "-z", f"{secs}s", "-c", "10", "-q", str(rate // 10),
                          "-H", f"Authorization: Bearer {token}", url], capture_output=True, text=True).stdout
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    total = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(total.group(1)), float(p50.group(1)) * 1000, float(p99.group(1)) * 1000


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp()
    http = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEMIURGE_SERVER__DATA_DIR": f"{work}/data",
        "DEMIURGE_EDGE__HTTP": f"127.0.0.1:{http}",
        "DEMIURGE_DNS__LISTEN": "",
        "DEMIURGE_VPN__LISTEN": "",
        "DEMIURGE_LOG__LEVEL": "warn",
        "DEMIURGE_AUTH__LOGIN_RATE": "100000000/1s",
    }
    srv = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{http}"
        wait_ok(base + "/readyz")
        # The new server's first account claims it with the setup code it made.
        with open(f"{work}/data/setup-code") as f:
            setup_code = f.read().strip()
        post(base + "/api/v1/auth/signup", {"username": "bench", "email": "bench@example.test",
                                             "password": "benchmark password", "setup_code": setup_code})
        _, headers, _ = post(base + "/api/v1/auth/login", {"login": "bench", "password": "benchmark password"})
        cookie = headers["Set-Cookie"].split(";")[0]
        _, _, tok = post(base + "/api/v1/me/tokens", {"name": "bench"}, {"Cookie": cookie, "Origin": base})
        token = tok["token"]

        lua = f"{work}/login.lua"
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    'wrk.body = \'{"login":"bench","password":"benchmark password"}\'\n')
        login_rps, login_lat, login_err = wrk(base + "/api/v1/auth/login", 4, 10, ["-s", lua])
        me_rps, me_lat, me_err = wrk(base + "/api/v1/me", 64, 10, ["-H", f"Authorization: Bearer {token}"])
        # An organization with 20 projects: the project list as its owner sees it.
        auth = {"Authorization": f"Bearer {token}"}
        _, _, org = post(base + "/api/v1/orgs", {"name": "Bench"}, auth)
        for i in range(20):
            post(base + f"/api/v1/orgs/{org['id']}/projects", {"name": f"Project {i}"}, auth)
        proj_rps, proj_lat, proj_err = wrk(base + f"/api/v1/orgs/{org['id']}/projects", 64, 10,
                                           ["-H", f"Authorization: Bearer {token}"])
        fixed_rps, fixed_p50, fixed_p99 = hey_fixed_rate(base + "/api/v1/me", 1000, 10, token)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=10)

    # The ceiling: nginx answering a static 200 to the same load tool.
    ng = free_port()
    os.makedirs(f"{work}/ngx", exist_ok=True)
    with open(f"{work}/ngx/nginx.conf", "w") as f:
        f.write(f"worker_processes 2; pid {work}/ngx/nginx.pid; error_log {work}/ngx/error.log; daemon off;\n"
                f"events {{ worker_connections 1024; }}\nhttp {{ access_log off; client_body_temp_path {work}/ngx/cb;"
                f" proxy_temp_path {work}/ngx/px; fastcgi_temp_path {work}/ngx/fc; uwsgi_temp_path {work}/ngx/uw;"
                f" scgi_temp_path {work}/ngx/sc; server {{ listen 127.0.0.1:{ng}; location / {{ return 200 '{{}}'; }} }} }}\n")
    ngx = subprocess.Popen(["nginx", "-p", f"{work}/ngx", "-c", f"{work}/ngx/nginx.conf"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ok(f"http://127.0.0.1:{ng}/")
        ngx_rps, ngx_lat, _ = wrk(f"http://127.0.0.1:{ng}/", 64, 10, [])
    finally:
        ngx.send_signal(signal.SIGQUIT)
        ngx.wait(timeout=10)

    cores = os.cpu_count()
    print(f"auth benchmark ({cores} cores; load tool on the same cores)")
    print(f"password sign-ins (argon2id m=19456,t=2,p=1): {login_rps:.1f}/s total, {login_rps / cores:.1f}/s/core, "
          f"p50 {login_lat.get('50')}, p99 {login_lat.get('99')}, non-2xx {login_err}")
    print(f"GET /api/v1/me, bearer, via edge, 64 conns: {me_rps:.0f} req/s, p50 {me_lat.get('50')}, "
          f"p99 {me_lat.get('99')}, non-2xx {me_err}")
    print(f"GET /api/v1/orgs/<id>/projects (20 projects), bearer, via edge, 64 conns: {proj_rps:.0f} req/s, "
          f"p50 {proj_lat.get('50')}, p99 {proj_lat.get('99')}, non-2xx {proj_err}")
    print(f"GET /api/v1/me at a fixed 1000 req/s: {fixed_rps:.0f} req/s, p50 {fixed_p50:.2f} ms, p99 {fixed_p99:.2f} ms")
    print(f"nginx static 200, 64 conns (ceiling): {ngx_rps:.0f} req/s, p99 {ngx_lat.get('99')}; "
          f"demiurge /me = {me_rps / ngx_rps:.2f} of it")
    print("goals: >= 15 sign-ins/s/core; >= 20000 req/s for /me; p99 < 5 ms at 1000/s")


if __name__ == "__main__":
    main()
