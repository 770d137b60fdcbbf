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

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_keeps_its_own_container_catalogue_sqlite() {
    org_catalogue(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_keeps_its_own_container_catalogue_postgres() {
    org_catalogue(true).await;
}

async fn org_catalogue(pg: bool) {
    let mut opts = options(pg_url(pg).await, &[]);
    opts.vpn = true;
    let server = Server::start_with(opts);
    let t = team(&server).await;
    let list = format!("/api/v1/orgs/{}/container-images", t.org);
    let gpu = json!({"key": "gpu-lab", "title": "GPU notebooks", "description": "CUDA 12",
        "image_ref": "ghcr.io/team/gpu-lab:1", "services": [{"name": "lab", "port": 8888}],
        "command": "start-notebook.sh --ip=127.0.0.1", "prepare": "command -v curl || apt-get install -y curl"});

    // Only those who may manage the organization's containers keep the catalogue.
    let (st, e) = t.editor.post(&list, gpu.clone()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("org:containers:manage"),
        "{e}"
    );
    assert_eq!(
        t.outsider.post(&list, gpu.clone()).await.0,
        StatusCode::NOT_FOUND
    );
    let (st, added) = t.owner.post(&list, gpu.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{added}");
    assert_eq!(added["key"], "gpu-lab");
    // Bad entries are clear 4xx that store nothing.
    for (bad, status, code) in [
        (
            json!({"key": "gpu-lab"}),
            StatusCode::CONFLICT,
            "image_exists",
        ),
        (
            json!({"key": "terminal"}),
            StatusCode::CONFLICT,
            "image_exists",
        ),
        (
            json!({"key": "Bad Key"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"key": "x", "image_ref": "a b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            json!({"key": "x", "services": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_service",
        ),
        (
            json!({"key": "x", "command": "a\nb"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_command",
        ),
    ] {
        let mut body = gpu.clone();
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, e) = t.owner.post(&list, body.clone()).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (status, Some(code)),
            "{body}: {e}"
        );
    }
    let (st, e) = t.owner.post(&list, json!({"key": "x"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a body without fields: {e}");

    // Members list it, after the built-in entries; so do the project's members.
    let (st, cat) = t.editor.get(&list).await;
    assert_eq!(st, StatusCode::OK, "{cat}");
    let keys: Vec<&str> = cat
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["jupyterlab", "terminal", "vscode", "custom", "gpu-lab"]
    );
    assert_eq!(cat[4]["builtin"], false);
    assert_eq!(cat[0]["builtin"], true);
    let (st, from_project) = t
        .viewer
        .get(&format!("/api/v1/projects/{}/container-images", t.pid))
        .await;
    assert_eq!((st, &from_project), (StatusCode::OK, &cat));
    assert_eq!(t.outsider.get(&list).await.0, StatusCode::NOT_FOUND);
    // A port written as 8888.0 is the integer JSON Schema says it is; a built-in entry is
    // not the organization's to change.
    let mut float = gpu.clone();
    float["key"] = json!("float-port");
    float["services"] = json!([{"name": "lab", "port": 8888.0}]);
    let (st, e) = t.owner.post(&list, float.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    assert_eq!(e["services"][0]["port"], 8888);
    assert_eq!(
        t.owner.delete(&format!("{list}/float-port")).await,
        StatusCode::NO_CONTENT
    );
    let (st, e) = t.owner.put(&format!("{list}/jupyterlab"), float).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("image_not_found")),
        "{e}"
    );

    // A member makes a container of it by its key: the record holds what the entry says,
    // and a client cannot put in an entry of its own making.
    let forged = json!({"key": "gpu-lab", "title": "GPU notebooks", "image_ref": "evil/miner",
        "services": [{"name": "lab", "port": 8888}]});
    let (st, out) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "Train", "image": "gpu-lab",
                "catalogue_entry": forged}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{out}");
    let id = out["result"]["id"].as_str().unwrap().to_string();
    let doc = t.document(&t.viewer).await;
    let c = &doc["roots"]["containers"][&id];
    assert_eq!(c["image"], "gpu-lab", "{c}");
    assert_eq!(c["image_ref"], "ghcr.io/team/gpu-lab:1", "{c}");
    assert_eq!(c["image_title"], "GPU notebooks");
    assert_eq!(c["command"], "start-notebook.sh --ip=127.0.0.1");
    let (st, e) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "T", "image": "no-such",
                "catalogue_entry": forged}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image")),
        "a key the organization has not: {e}"
    );
    // Its `docker run` line runs the entry's image, after its preparing step.
    let (st, en) = t
        .editor
        .post(
            &format!("/api/v1/projects/{}/containers/{id}/enrollment", t.pid),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{en}");
    let command = en["command"].as_str().unwrap();
    assert!(command.contains("'ghcr.io/team/gpu-lab:1'"), "{command}");
    assert!(
        command.contains("command -v curl || apt-get install -y curl; (curl"),
        "{command}"
    );

    // Changing the entry leaves the container as it was made; deleting it too, and the
    // key is gone for new containers.
    let item = format!("{list}/gpu-lab");
    let mut changed = gpu.clone();
    changed["image_ref"] = json!("ghcr.io/team/gpu-lab:2");
    assert_eq!(
        t.editor.put(&item, changed.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (st, e) = t.owner.put(&item, changed.clone()).await;
    assert_eq!(
        (st, &e["image_ref"]),
        (StatusCode::OK, &json!("ghcr.io/team/gpu-lab:2")),
        "{e}"
    );
    let (st, e) = t.owner.put(&format!("{list}/nope"), changed).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("image_not_found")),
        "{e}"
    );
    assert_eq!(t.editor.delete(&item).await, StatusCode::FORBIDDEN);
    assert_eq!(t.owner.delete(&item).await, StatusCode::NO_CONTENT);
    assert_eq!(t.owner.delete(&item).await, StatusCode::NOT_FOUND);
    let doc = t.document(&t.viewer).await;
    assert_eq!(
        doc["roots"]["containers"][&id]["image_ref"],
        "ghcr.io/team/gpu-lab:1"
    );
    let (st, e) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "T", "image": "gpu-lab"}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image")),
        "{e}"
    );
}

/// The catalogue as people use it, in Chromium: the owner adds and edits an image on the
/// organization's settings page; a member picks it on the board and gets the `docker run`
/// line of its image; the owner deletes it.
#[tokio::test(flavor = "multi_thread")]
async fn an_owner_adds_an_image_that_a_member_picks_on_the_board() {
    crate::harness::chromium::require_browser();
    let mut opts = options(None, &[]);
    opts.vpn = true;
    let server = Server::start_with(opts);
    let t = team(&server).await;
    let args = json!({
        "main": format!("http://localhost:{}", server.http.port()),
        "org": t.org, "pid": t.pid,
        "owner": {"login": "owner", "password": "correct horse battery"},
        "member": {"login": "editor", "password": "correct horse battery"},
        "shots": crate::harness::chromium::artifacts_dir("containers"),
    });
    let mut script =
        crate::harness::chromium::Script::start("ui_container_images.mjs", &[&args.to_string()])
            .quoting_logs_of(&server);
    let r = script.expect("RESULT", std::time::Duration::from_secs(120));
    assert_eq!(r["empty"], true, "{r}");
    assert!(
        r["bad_services"].as_str().unwrap().contains("name:port"),
        "{r}"
    );
    assert_eq!(r["key_locked"], true, "{r}");
    assert_eq!(r["services_shown"], "lab:8888, shell:7681:terminal", "{r}");
    assert!(
        r["row"]
            .as_str()
            .unwrap()
            .contains("ghcr.io/team/gpu-lab:1"),
        "{r}"
    );
    assert_eq!(r["option"], "GPU notebooks (CUDA 12)", "{r}");
    let command = r["command"].as_str().unwrap();
    assert!(command.contains("'ghcr.io/team/gpu-lab:1'"), "{command}");
    assert!(
        r["listed"]
            .as_str()
            .unwrap()
            .contains("GPU notebooks (CUDA 12)"),
        "{r}"
    );
    assert_eq!(r["links"], json!(["Open lab", "Open terminal"]), "{r}");
    assert_eq!(r["deleted"], true, "{r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    // The container made from it keeps its image.
    let doc = t.document(&t.viewer).await;
    let list = doc["roots"]["containers"].as_object().unwrap();
    assert_eq!(list.len(), 1, "{doc}");
    let c = list.values().next().unwrap();
    assert_eq!(c["image"], "gpu-lab");
    assert_eq!(c["command"], "start-notebook.sh --ip=127.0.0.1");
    assert_eq!(c["services"][1]["terminal"], true);
}
