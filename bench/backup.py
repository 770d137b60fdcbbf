"""Backup, restore and `db copy` of an instance with many projects, beside the stock tools.

Usage: python3 bench/backup.py PATH_TO_DEMIURGE [PROJECTS] [NODES]
       (PostgreSQL parts when DEMIURGE_TEST_DATABASE_URL names a server: scripts/pg.sh start)

Fills an instance (SQLite) with PROJECTS projects of NODES cards each (default 100 x 1000)
through the API's import, then times, while the server runs:
  demiurge backup       against  sqlite3 .backup + tar.gz of the data directory
  demiurge restore      against  gunzip + the copied database file
  demiurge db copy      against  nothing comparable shipped with SQLite (printed alone)
and prints sizes and ratios.
"""
import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Origin": self.base})
        with self.opener.open(req, timeout=120) as r:
            return json.loads(r.read() or b"null")


def start(binary, data, env_extra=None):
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "DEMIURGE_SERVER__DATA_DIR": data,
           "DEMIURGE_EDGE__HTTP": f"127.0.0.1:{port}", "DEMIURGE_DNS__LISTEN": "",
           "DEMIURGE_VPN__LISTEN": "", "DEMIURGE_LOG__LEVEL": "warn"}
    env.update(env_extra or {})
    p = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=0.5) as r:
                if r.status == 200:
                    return p, base, env
        except Exception:
            time.sleep(0.05)
    p.kill()
    sys.exit("demiurge did not start")


def timed(cmd, env):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stdout}{out.stderr}")
    return took, out.stdout.strip()


def main():
    binary = os.path.abspath(sys.argv[1])
    projects = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    nodes = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    work = tempfile.mkdtemp(prefix="demiurge-bench-backup-")
    data = os.path.join(work, "data")
    server, base, env = start(binary, data)
    try:
        api = Api(base)
        code = open(os.path.join(data, "setup-code")).read().strip()
        api.call("POST", "/api/v1/auth/signup", {"username": "bench", "email": "bench@example.test",
                                                 "password": "correct horse battery", "setup_code": code})
        org = api.call("GET", "/api/v1/orgs")[0]["id"]
        t0 = time.perf_counter()
        for i in range(projects):
            p = api.call("POST", f"/api/v1/orgs/{org}/projects", {"name": f"Project {i}"})
            cards = [{"id": f"n{j}", "type": "text", "text": f"card {j} of project {i}",
                      "x": (j % 40) * 220, "y": (j // 40) * 140, "width": 200, "height": 100}
                     for j in range(nodes)]
            api.call("POST", f"/api/v1/projects/{p['id']}/import", {"nodes": cards, "edges": []})
        fill = time.perf_counter() - t0
        db_bytes = os.path.getsize(os.path.join(data, "demiurge.db"))

        # Ours, while the server runs.
        archive = os.path.join(work, "backup.tar.gz")
        ours_backup, said = timed([binary, "backup", archive], env)
        ours_size = os.path.getsize(archive)
        # The stock way: sqlite3's online backup, then the data directory in a tar.gz.
        t0 = time.perf_counter()
        copy = os.path.join(work, "peer.db")
        subprocess.run(["sqlite3", os.path.join(data, "demiurge.db"), f".backup '{copy}'"], check=True)
        peer_archive = os.path.join(work, "peer.tar.gz")
        with tarfile.open(peer_archive, "w:gz") as t:
            t.add(copy, arcname="demiurge.db")
            for keep in ["secrets.key", "vpn", "tls"]:
                if os.path.exists(os.path.join(data, keep)):
                    t.add(os.path.join(data, keep), arcname=keep)
        peer_backup = time.perf_counter() - t0
        peer_size = os.path.getsize(peer_archive)
    finally:
        server.terminate()
        server.wait()

    fresh = os.path.join(work, "fresh")
    renv = dict(env, DEMIURGE_SERVER__DATA_DIR=fresh)
    ours_restore, _ = timed([binary, "restore", archive], renv)
    t0 = time.perf_counter()
    peer_dir = os.path.join(work, "peer-restore")
    os.makedirs(peer_dir)
    with tarfile.open(peer_archive, "r:gz") as t:
        t.extractall(peer_dir, filter="data")
    peer_restore = time.perf_counter() - t0

    copy_line = None
    pg = os.environ.get("DEMIURGE_TEST_DATABASE_URL")
    if pg:
        name = "bench_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", pg, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        target = pg.rsplit("/", 1)[0] + "/" + name
        ours_copy, _ = timed([binary, "db", "copy", "--to", target], env)
        t0 = time.perf_counter()
        dump = subprocess.run(["pg_dump", "-Fc", target], capture_output=True, check=True).stdout
        pg_dump = time.perf_counter() - t0
        copy_line = (ours_copy, pg_dump, len(dump))

    cards = projects * nodes
    print(f"\nInstance: {projects} projects x {nodes} cards = {cards} cards, filled in {fill:.1f} s; "
          f"SQLite file {db_bytes / 2**20:.1f} MiB. Binary: {binary}")
    print(f"{'':28}{'demiurge':>14}{'stock tools':>14}{'ratio':>8}")
    print(f"{'backup (server running)':28}{ours_backup:>12.2f} s{peer_backup:>12.2f} s{ours_backup / peer_backup:>8.2f}")
    print(f"{'backup size':28}{ours_size / 2**20:>10.2f} MiB{peer_size / 2**20:>10.2f} MiB{ours_size / peer_size:>8.2f}")
    print(f"{'restore':28}{ours_restore:>12.2f} s{peer_restore:>12.2f} s{ours_restore / peer_restore:>8.2f}")
    if copy_line:
        ours_copy, pg_dump, dump_size = copy_line
        print(f"{'db copy to PostgreSQL':28}{ours_copy:>12.2f} s{'':>14}")
        print(f"{'pg_dump -Fc of the copy':28}{'':>14}{pg_dump:>12.2f} s  ({dump_size / 2**20:.1f} MiB)")
    print("(stock tools: sqlite3 .backup + tar.gz of the keys; restore: untar. They neither check"
          " counts nor restore into PostgreSQL.)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
