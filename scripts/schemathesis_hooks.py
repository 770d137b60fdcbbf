"""Schemathesis hooks for scripts/schemathesis.sh: the instance admin's credential.

The run exercises every operation, revoking tokens among them (GET /api/v1/me/tokens names
the run's own token, and DELETE /api/v1/me/tokens/{id} ends it), so the token is not fixed:
a fresh one is made by signing in and creating it, again whenever the server answers 401.
"""

import os
import time

import requests
import schemathesis

BASE = os.environ["DEMIURGE_ST_BASE"]
LOGIN = os.environ["DEMIURGE_ST_LOGIN"]
PASSWORD = os.environ["DEMIURGE_ST_PASSWORD"]


@schemathesis.auth(refresh_interval=300, retry_on=[401])
class AdminToken:
    def get(self, case, context):
        s = requests.Session()
        origin = {"Origin": BASE}
        r = s.post(f"{BASE}/api/v1/auth/login", json={"login": LOGIN, "password": PASSWORD}, headers=origin)
        r.raise_for_status()
        r = s.post(f"{BASE}/api/v1/me/tokens", json={"name": f"schemathesis-{time.time_ns()}"}, headers=origin)
        r.raise_for_status()
        return r.json()["token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
