//! User containers (issue 15): the records in the project document, through the events API
//! with the roles' permissions, on both backends. The agent, the tunnel and the guard come
//! with their own tests.

use reqwest::StatusCode;
use serde_json::json;

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
