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
