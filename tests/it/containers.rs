//! User containers (issue 15): the records in the project document, through the events API
//! with the roles' permissions, on both backends. The agent, the tunnel and the guard come
//! with their own tests.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Server;
use crate::harness::team::{options, pg_url, team};

#[tokio::test(flavor = "multi_thread")]
async fn containers_are_project_records_sqlite() {
    records(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_are_project_records_postgres() {
    records(true).await;
}

async fn records(pg: bool) {
    let server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;

    // An editor makes a JupyterLab; everyone in the project sees its record.
    let (st, out) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "Analysis", "image": "jupyterlab"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{out}");
    let id = out["result"]["id"].as_str().unwrap().to_string();
    let label = out["result"]["services"][0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(label.starts_with("lab-"), "{out}");
    let doc = t.document(&t.viewer).await;
    let c = &doc["roots"]["containers"][&id];
    assert_eq!(c["name"], "Analysis", "{doc}");
    assert_eq!(c["state"], "created");
    assert_eq!(c["created_by"], t.editor_id.as_str());
    assert_eq!(c["services"][0]["label"], label.as_str());

    // A viewer may not make one, an outsider does not see the project, nobody but the
    // server reports.
    let create = json!({"type": "user-containers:create", "name": "Mine", "image": "terminal"});
    let (st, e) = t.event(&t.viewer, create.clone()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("user-containers:container:create"),
        "{e}"
    );
    assert_eq!(t.event(&t.outsider, create).await.0, StatusCode::NOT_FOUND);
    let (st, e) = t
        .event(
            &t.owner,
            json!({"type": "user-containers:report", "id": id, "state": "running"}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_event")),
        "{e}"
    );

    // Bad input is a clear 422 that writes nothing.
    for (bad, code) in [
        (json!({"image": "nope"}), "invalid_image"),
        (
            json!({"image": "custom", "image_ref": "a b"}),
            "invalid_image",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": []}),
            "invalid_service",
        ),
        (json!({"image": "vscode", "name": " "}), "invalid_name"),
    ] {
        let mut ev = json!({"type": "user-containers:create", "name": "C"});
        for (k, v) in bad.as_object().unwrap() {
            ev[k] = v.clone();
        }
        let (st, e) = t.event(&t.editor, ev).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{e}"
        );
    }
    let doc = t.document(&t.owner).await;
    assert_eq!(
        doc["roots"]["containers"].as_object().unwrap().len(),
        1,
        "{doc}"
    );

    // This server's VPN is off: no container can join it, and the answer says so.
    let (st, e) = t
        .editor
        .post(
            &format!("/api/v1/projects/{}/containers/{id}/enrollment", t.pid),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("vpn_off")),
        "{e}"
    );

    // The owner renames it, the editor deletes it: gone from the document.
    let (st, _) = t
        .event(
            &t.owner,
            json!({"type": "user-containers:rename", "id": id, "name": "Renamed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        t.document(&t.editor).await["roots"]["containers"][&id]["name"],
        "Renamed"
    );
    let (st, _) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:delete", "id": id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        t.document(&t.owner).await["roots"]["containers"],
        json!({}),
        "deleted"
    );
    let (st, e) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:delete", "id": id}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("container_not_found")),
        "{e}"
    );

    // The module's permissions are in the catalogue the role editor lists.
    let (_, perms) = t.owner.get("/api/v1/permissions").await;
    let names: Vec<&str> = perms
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["create", "delete", "open", "terminal"] {
        assert!(
            names.contains(&format!("user-containers:container:{p}").as_str()),
            "{names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_enrolls_once_and_a_deleted_container_is_refused_sqlite() {
    enrollment(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_enrolls_once_and_a_deleted_container_is_refused_postgres() {
    enrollment(true).await;
}

fn wg_public_key() -> String {
    let secret = demiurge::vpn::keys::generate();
    demiurge::vpn::keys::encode(demiurge::vpn::keys::public_of(&secret).as_bytes())
}

async fn enroll(server: &Server, token: &str, key: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(server.url("/api/v1/agent/enroll"))
        .json(&json!({"token": token, "wg_public_key": key}))
        .send()
        .await
        .unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn manifest(server: &Server, credential: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(server.url("/api/v1/agent/manifest"))
        .bearer_auth(credential)
        .send()
        .await
        .unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// The `docker run` line's token: for the creator (or a manager) only, never in the
/// document, once, replaced by a newer one; the credential it buys is this container's and
/// stops working when the container is deleted.
async fn enrollment(pg: bool) {
    let mut opts = options(pg_url(pg).await, &[]);
    opts.vpn = true;
    let server = Server::start_with(opts);
    let t = team(&server).await;
    let (_, out) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "Lab", "image": "jupyterlab"}),
        )
        .await;
    let id = out["result"]["id"].as_str().unwrap().to_string();
    let label = out["result"]["services"][0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/projects/{}/containers/{id}/enrollment", t.pid);

    let (st, e) = t.viewer.post(&path, json!({})).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );
    assert_eq!(
        t.outsider.post(&path, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let (st, e) = t
        .editor
        .post(
            &format!("/api/v1/projects/{}/containers/nope/enrollment", t.pid),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("container_not_found")),
        "{e}"
    );
    // The owner may (they may delete containers); the creator's newer token replaces it.
    let (st, by_owner) = t.owner.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{by_owner}");
    let (st, mine) = t.editor.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{mine}");
    let token = mine["token"].as_str().unwrap().to_string();
    let command = mine["command"].as_str().unwrap();
    assert!(
        command.starts_with("docker run -d --restart unless-stopped"),
        "{command}"
    );
    assert!(
        command.contains(&format!("DEMIURGE_ENROLL='{token}'")),
        "{command}"
    );
    assert!(
        command.contains("'quay.io/jupyter/base-notebook:latest'"),
        "{command}"
    );
    assert!(
        !command.contains("--cap-add") && !command.contains("/dev/net/tun"),
        "{command}"
    );
    let doc = t.document(&t.owner).await.to_string();
    assert!(!doc.contains(&token), "the token is never in the document");

    let (st, e) = enroll(
        &server,
        by_owner["token"].as_str().unwrap(),
        &wg_public_key(),
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_enrollment")),
        "a replaced token: {e}"
    );
    let (st, e) = enroll(&server, &token, "not a key").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let key = wg_public_key();
    let (st, joined) = enroll(&server, &token, &key).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a refused key did not burn the token: {joined}"
    );
    assert_eq!(joined["container_id"], id.as_str());
    assert!(
        joined["tunnel_address"]
            .as_str()
            .unwrap()
            .starts_with("10.88."),
        "{joined}"
    );
    assert_eq!(joined["server"]["tunnel_address"], "10.88.0.1", "{joined}");
    assert_eq!(joined["heartbeat_seconds"], 5);
    let credential = joined["credential"].as_str().unwrap().to_string();
    let (st, e) = enroll(&server, &token, &wg_public_key()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_enrollment")),
        "once only: {e}"
    );

    let (st, m) = manifest(&server, &credential).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["container_id"], id.as_str());
    assert_eq!(m["services"][0]["label"], label.as_str());
    assert_eq!(m["services"][0]["port"], 8888);
    let (st, e) = manifest(&server, "dmag_forged").await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_agent_credential")),
        "{e}"
    );

    // A new volume enrolls again with a new token: the old credential stops working.
    let (_, again) = t.editor.post(&path, json!({})).await;
    let (st, rejoined) = enroll(&server, again["token"].as_str().unwrap(), &wg_public_key()).await;
    assert_eq!(st, StatusCode::OK, "{rejoined}");
    assert_eq!(
        manifest(&server, &credential).await.0,
        StatusCode::UNAUTHORIZED
    );
    let credential = rejoined["credential"].as_str().unwrap().to_string();
    assert_eq!(manifest(&server, &credential).await.0, StatusCode::OK);

    // Deleted: the credential is refused as soon as the delete is answered.
    let (st, _) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:delete", "id": id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, e) = manifest(&server, &credential).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_agent_credential")),
        "{e}"
    );
    let (st, _) = t.editor.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// A token not used in time stops working.
#[tokio::test(flavor = "multi_thread")]
async fn an_enrollment_token_expires() {
    let mut opts = options(None, &[("DEMIURGE_CONTAINERS__ENROLLMENT_LIFETIME", "1s")]);
    opts.vpn = true;
    let server = Server::start_with(opts);
    let t = team(&server).await;
    let (_, out) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "Term", "image": "terminal"}),
        )
        .await;
    let id = out["result"]["id"].as_str().unwrap();
    let (st, e) = t
        .editor
        .post(
            &format!("/api/v1/projects/{}/containers/{id}/enrollment", t.pid),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    // The lifetime is the point of this test: wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (st, e) = enroll(&server, e["token"].as_str().unwrap(), &wg_public_key()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_enrollment")),
        "{e}"
    );
}

/// A JSON call made from inside the namespace (the server runs there); `auth` is a bearer
/// token.
fn curl_json(
    ns: &crate::vpn::Netns,
    server: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = server.url(path);
    let origin = format!("http://{}", server.http);
    let mut args = vec![
        "curl",
        "-s",
        "-m",
        "10",
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
        "-H",
    ];
    let origin_header = format!("Origin: {origin}");
    args.push(&origin_header);
    let auth_header = auth.map(|a| format!("Authorization: Bearer {a}"));
    if let Some(h) = &auth_header {
        args.extend(["-H", h]);
    }
    let data = body.map(|b| b.to_string());
    if let Some(d) = &data {
        args.extend(["--data", d]);
    }
    args.extend(["-w", "\n%{http_code}", &url]);
    let out = crate::vpn::run_ok(&mut ns.exec(&args));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Signs the first account up from inside the namespace; returns its personal access token.
fn first_account_token(ns: &crate::vpn::Netns, server: &Server) -> String {
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("cookies").display().to_string();
    let origin = format!("Origin: http://{}", server.http);
    let signup = json!({"username": "owner", "email": "owner@example.test",
        "password": "correct horse battery", "setup_code": server.setup_code().unwrap()})
    .to_string();
    let post = |cookie_flag: &str, body: &str, path: &str| {
        crate::vpn::run_ok(&mut ns.exec(&[
            "curl",
            "-sf",
            "-m",
            "10",
            cookie_flag,
            &jar,
            "-H",
            "Content-Type: application/json",
            "-H",
            &origin,
            "--data",
            body,
            &server.url(path),
        ]))
        .stdout
    };
    post("-c", &signup, "/api/v1/auth/signup");
    let out = post("-b", r#"{"name":"setup"}"#, "/api/v1/me/tokens");
    let v: Value = serde_json::from_slice(&out).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Whether `GET http://10.88.0.1/healthz` answers through the tunnel (3 s at most).
fn through_tunnel(ns: &crate::vpn::Netns) -> bool {
    ns.exec(&["curl", "-sf", "-m", "3", "http://10.88.0.1/healthz"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A container's own WireGuard peer, with the key its agent made: through it the container
/// reaches the server; once the container is deleted, the running VPN drops the peer at
/// once (not at its periodic reload) and nothing passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_containers_tunnel_closes_at_once() {
    use std::time::{Duration, Instant};
    crate::vpn::require_wireguard();
    let mut ns = crate::vpn::Netns::new();
    let server = Server::start_with(crate::harness::Options {
        netns: Some(ns.name.clone()),
        dns: false,
        ..crate::harness::Options::default()
    });
    // Where the container's wg-quick configuration goes (brought down when `ns` goes).
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join(format!("{}.conf", ns.name));
    ns.wg_conf = Some(conf_path.clone());
    let token = first_account_token(&ns, &server);
    let call = |method: &str, path: &str, body: Option<Value>| {
        curl_json(&ns, &server, method, path, Some(&token), body)
    };
    let (st, org) = call("POST", "/api/v1/orgs", Some(json!({"name": "Net"})));
    assert_eq!(st, 201, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (st, p) = call(
        "POST",
        &format!("/api/v1/orgs/{org}/projects"),
        Some(json!({"name": "P"})),
    );
    assert_eq!(st, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let events = format!("/api/v1/projects/{pid}/events");
    let (st, out) = call(
        "POST",
        &events,
        Some(json!({"type": "user-containers:create", "name": "Lab", "image": "jupyterlab"})),
    );
    assert_eq!(st, 200, "{out}");
    let id = out["result"]["id"].as_str().unwrap().to_string();
    let (st, e) = call(
        "POST",
        &format!("/api/v1/projects/{pid}/containers/{id}/enrollment"),
        None,
    );
    assert_eq!(st, 201, "{e}");

    // The agent's part: its own key, the token, a tunnel.
    let secret = demiurge::vpn::keys::generate();
    let public = demiurge::vpn::keys::encode(demiurge::vpn::keys::public_of(&secret).as_bytes());
    let (st, joined) = curl_json(
        &ns,
        &server,
        "POST",
        "/api/v1/agent/enroll",
        None,
        Some(json!({"token": e["token"], "wg_public_key": public})),
    );
    assert_eq!(st, 200, "{joined}");
    let conf = format!(
        "[Interface]\nPrivateKey = {}\nAddress = {}/32\n\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\nEndpoint = {}\nPersistentKeepalive = 25\n",
        demiurge::vpn::keys::encode(secret.as_bytes()),
        joined["tunnel_address"].as_str().unwrap(),
        joined["server"]["public_key"].as_str().unwrap(),
        joined["subnet"].as_str().unwrap(),
        joined["server"]["endpoint"].as_str().unwrap(),
    );
    std::fs::write(&conf_path, &conf).unwrap();
    crate::vpn::run_ok(
        ns.exec(&[
            "env",
            "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
            "wg-quick",
            "up",
        ])
        .arg(&conf_path),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !through_tunnel(&ns) {
        assert!(
            Instant::now() < deadline,
            "the container's peer gets no answer through the tunnel:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleted: the next request through the tunnel gets nothing, well before the VPN's
    // periodic reload (30 s).
    let (st, _) = call(
        "POST",
        &events,
        Some(json!({"type": "user-containers:delete", "id": id})),
    );
    assert_eq!(st, 200);
    let t0 = Instant::now();
    assert!(
        !through_tunnel(&ns),
        "the deleted container's tunnel still answers"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    let log = server.logs();
    assert!(log.contains("vpn: peer removed"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn restoring_a_version_leaves_the_containers_alone_sqlite() {
    restore_keeps_containers(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restoring_a_version_leaves_the_containers_alone_postgres() {
    restore_keeps_containers(true).await;
}

/// The `containers` root follows the containers that exist (their credentials, peers and
/// routes live outside the document): restoring a saved version neither brings back a
/// deleted one nor removes one made since, while the board itself goes back.
async fn restore_keeps_containers(pg: bool) {
    let server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;
    let create =
        |name: &str| json!({"type": "user-containers:create", "name": name, "image": "terminal"});
    let (_, old) = t.event(&t.editor, create("Old")).await;
    let old = old["result"]["id"].as_str().unwrap().to_string();
    let (st, point) = t
        .owner
        .post(
            &format!("/api/v1/projects/{}/history", t.pid),
            json!({"name": "before"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{point}");
    let point = point["id"].as_str().unwrap().to_string();
    let (st, _) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:delete", "id": old}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, new) = t.event(&t.editor, create("New")).await;
    let new = new["result"]["id"].as_str().unwrap().to_string();
    let (st, note) = t
        .event(
            &t.editor,
            json!({"type": "core-graph:add-node", "kind": "note", "x": 0, "y": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{note}");
    let (st, r) = t
        .owner
        .post(
            &format!("/api/v1/projects/{}/history/{point}/restore", t.pid),
            json!({}),
        )
        .await;
    assert!(st.is_success(), "{st} {r}");
    let doc = t.document(&t.viewer).await;
    let containers = &doc["roots"]["containers"];
    assert!(
        containers.get(&old).is_none(),
        "a deleted container came back: {doc}"
    );
    assert_eq!(containers[&new]["name"], "New", "{doc}");
    // The board itself did go back (the note made after the point is gone).
    let nodes = doc["roots"]["nodes"].as_object().map_or(0, |n| n.len());
    assert_eq!(nodes, 0, "{doc}");
}
