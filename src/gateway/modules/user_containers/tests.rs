//! The container records, run the way a project runs its events.

use serde_json::json;
use yrs::{Map, ReadTxn, Transact};

use super::{CONTAINERS, CREATE, DELETE};
use crate::gateway::module::Actor;

type Project = crate::gateway::modules::testing::TestProject;

fn member(id: &str) -> Actor {
    Actor::user(id, id.to_uppercase(), vec![CREATE])
}

fn manager(id: &str) -> Actor {
    Actor::user(id, id.to_uppercase(), vec![CREATE, DELETE])
}

#[test]
fn a_built_in_image_gets_its_services_and_fresh_labels() {
    let mut p = Project::new();
    let ann = member("ann");
    let r = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": " Analysis ", "image": "jupyterlab"}),
    );
    let id = r["id"].as_str().unwrap().to_string();
    let label = r["services"][0]["label"].as_str().unwrap().to_string();
    assert!(label.starts_with("lab-") && label.len() == 12, "{label}");
    assert!(
        label[4..]
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
        "{label}"
    );
    let c = &p.root(CONTAINERS)[&id];
    assert_eq!(c["name"], "Analysis");
    assert_eq!(c["image"], "jupyterlab");
    assert_eq!(c["image_ref"], "quay.io/jupyter/base-notebook:latest");
    assert_eq!(c["state"], "created");
    assert_eq!(c["created_by"], "ann");
    assert_eq!(c["created_by_name"], "ANN");
    assert_eq!(c["services"][0]["port"], 8888.0);
    assert_eq!(c["services"][0]["label"], label.as_str());
    // Another container of the same image gets another label.
    let r2 = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": "Second", "image": "jupyterlab"}),
    );
    assert_ne!(r2["services"][0]["label"], label.as_str());
}

#[test]
fn a_custom_image_may_name_its_start_command() {
    let mut p = Project::new();
    let ann = member("ann");
    let r = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": "Web", "image": "custom",
            "image_ref": "python:3.12-slim", "services": [{"name": "web", "port": 8000}],
            "command": "  python -m http.server 8000 --bind 127.0.0.1 "}),
    );
    let c = &p.root(CONTAINERS)[r["id"].as_str().unwrap()];
    assert_eq!(c["command"], "python -m http.server 8000 --bind 127.0.0.1");
    let bad = |command: &str| {
        json!({"type": "user-containers:create", "name": "Web", "image": "custom",
            "image_ref": "python", "services": [{"name": "web", "port": 8000}], "command": command})
    };
    assert_eq!(p.code(&ann, bad("a\nb")), "invalid_command");
    assert_eq!(p.code(&ann, bad(&"x".repeat(2001))), "invalid_command");
    // Only a custom image takes one: a built-in entry starts its own app.
    assert_eq!(
        p.code(
            &ann,
            json!({"type": "user-containers:create", "name": "L", "image": "jupyterlab", "command": "sh"})
        ),
        "invalid_image"
    );
}

#[test]
fn an_organization_entry_is_run_as_the_server_filled_it_in() {
    let mut p = Project::new();
    let ann = member("ann");
    let entry = json!({"key": "gpu", "title": "GPU lab", "description": "",
        "image_ref": "ghcr.io/team/gpu:1", "services": [{"name": "lab", "port": 8888}],
        "command": "start-lab", "prepare": "true"});
    let r = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": "Train", "image": "gpu",
            "catalogue_entry": entry}),
    );
    let c = &p.root(CONTAINERS)[r["id"].as_str().unwrap()];
    assert_eq!(c["image"], "gpu");
    assert_eq!(c["image_title"], "GPU lab");
    assert_eq!(c["image_ref"], "ghcr.io/team/gpu:1");
    assert_eq!(c["command"], "start-lab");
    assert_eq!(c["prepare"], "true");
    assert!(
        r["services"][0]["label"]
            .as_str()
            .unwrap()
            .starts_with("lab-")
    );
    // Without the entry (no such key in the organization) the key is refused; an entry of
    // another key does not stand in; the entry's image is not the client's to change.
    assert_eq!(
        p.code(
            &ann,
            json!({"type": "user-containers:create", "name": "T", "image": "gpu"})
        ),
        "invalid_image"
    );
    assert_eq!(
        p.code(
            &ann,
            json!({"type": "user-containers:create", "name": "T", "image": "other",
                "catalogue_entry": entry})
        ),
        "invalid_image"
    );
    assert_eq!(
        p.code(
            &ann,
            json!({"type": "user-containers:create", "name": "T", "image": "gpu",
                "image_ref": "evil/image", "catalogue_entry": entry})
        ),
        "invalid_image"
    );
}

#[test]
fn a_custom_image_names_its_services() {
    let mut p = Project::new();
    let ann = member("ann");
    let r = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": "Grafana", "image": "custom",
            "image_ref": "grafana/grafana:11.0.0",
            "services": [{"name": "web", "port": 3000}, {"name": "shell", "port": 7681, "terminal": true}]}),
    );
    let c = &p.root(CONTAINERS)[r["id"].as_str().unwrap()];
    assert_eq!(c["image_ref"], "grafana/grafana:11.0.0");
    assert_eq!(c["services"][1]["terminal"], true);
    for (bad, code) in [
        (json!({"image": "nope"}), "invalid_image"),
        (
            json!({"image": "custom", "services": [{"name": "web", "port": 80}]}),
            "invalid_image",
        ),
        (
            json!({"image": "custom", "image_ref": "x; rm -rf /", "services": [{"name": "web", "port": 80}]}),
            "invalid_image",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx"}),
            "invalid_service",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": []}),
            "invalid_service",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": [{"name": "Web", "port": 80}]}),
            "invalid_service",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": [{"name": "web", "port": 0}]}),
            "invalid_service",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
            "invalid_service",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
            "invalid_service",
        ),
        (
            json!({"image": "custom", "image_ref": "nginx", "services": (0..9).map(|i| json!({"name": format!("s{i}"), "port": 1000 + i})).collect::<Vec<_>>()}),
            "invalid_service",
        ),
        (
            json!({"image": "jupyterlab", "image_ref": "evil/image"}),
            "invalid_image",
        ),
        (json!({"image": "jupyterlab", "name": ""}), "invalid_name"),
        (
            json!({"image": "jupyterlab", "name": "x".repeat(65)}),
            "invalid_name",
        ),
    ] {
        let mut ev = json!({"type": "user-containers:create", "name": "C"});
        for (k, v) in bad.as_object().unwrap() {
            ev[k] = v.clone();
        }
        let shown = ev.to_string();
        assert_eq!(p.code(&ann, ev), code, "{shown}");
    }
    // A port out of range does not fit the event's type.
    assert_eq!(
        p.code(
            &ann,
            json!({"type": "user-containers:create", "name": "C", "image": "custom",
                "image_ref": "nginx", "services": [{"name": "web", "port": 70000}]})
        ),
        "invalid_event"
    );
    assert_eq!(
        p.root(CONTAINERS).as_object().unwrap().len(),
        1,
        "nothing written by a refusal"
    );
}

#[test]
fn rename_is_the_creators_or_a_managers_and_delete_removes_the_record() {
    let mut p = Project::new();
    let (ann, bob, boss) = (member("ann"), member("bob"), manager("boss"));
    let id = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": "Mine", "image": "terminal"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok(
        &ann,
        json!({"type": "user-containers:rename", "id": id, "name": "Still mine"}),
    );
    assert_eq!(
        p.code(
            &bob,
            json!({"type": "user-containers:rename", "id": id, "name": "Bob's"})
        ),
        "forbidden"
    );
    p.ok(
        &boss,
        json!({"type": "user-containers:rename", "id": id, "name": "Renamed"}),
    );
    assert_eq!(p.root(CONTAINERS)[&id]["name"], "Renamed");
    assert_eq!(
        p.code(
            &boss,
            json!({"type": "user-containers:rename", "id": "nope", "name": "x"})
        ),
        "container_not_found"
    );
    p.ok(&boss, json!({"type": "user-containers:delete", "id": id}));
    assert_eq!(p.root(CONTAINERS), json!({}));
    assert_eq!(
        p.code(&boss, json!({"type": "user-containers:delete", "id": id})),
        "container_not_found"
    );
}

#[test]
fn reports_are_the_systems_and_write_only_what_changed() {
    let mut p = Project::new();
    let ann = member("ann");
    let id = p.ok(
        &ann,
        json!({"type": "user-containers:create", "name": "Lab", "image": "jupyterlab"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        p.modules
            .parse(json!({"type": "user-containers:report", "id": id, "state": "running"}))
            .unwrap()
            .system_only
    );
    let before = p.root(CONTAINERS)[&id]["state_at"].clone();
    p.ok(
        &Actor::System,
        json!({"type": "user-containers:report", "id": id, "state": "running",
            "resources": {"cpu_percent": 12.5, "memory_bytes": 1048576}, "health": {"lab": true}}),
    );
    let c = p.root(CONTAINERS)[&id].clone();
    assert_eq!(c["state"], "running");
    assert_eq!(c["resources"]["cpu_percent"], 12.5);
    assert_eq!(c["health"]["lab"], true);
    assert!(c["state_at"].as_str() >= before.as_str());
    // The same state again changes nothing about when it began.
    let at = c["state_at"].clone();
    p.ok(
        &Actor::System,
        json!({"type": "user-containers:report", "id": id, "state": "running"}),
    );
    assert_eq!(p.root(CONTAINERS)[&id]["state_at"], at);
    let txn = p.doc.transact();
    assert!(txn.get_map(CONTAINERS).unwrap().get(&txn, &id).is_some());
}
