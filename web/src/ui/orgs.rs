//! Organizations and projects: the list, an organization's dashboard, its settings (members,
//! invitations, roles with the permission catalogue), project settings, and accepting an
//! invitation. What a person may do comes from `/permissions/me`; the server checks anyway.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::{Notice, call, get, go, post, query_param, short_time, use_get};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

fn list(r: &Option<super::Reply>) -> Vec<Value> {
    r.as_ref()
        .filter(|r| r.ok())
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default()
}

/// What a person may do, as a sentence from the catalogue's descriptions ("You can see the
/// project, read the project's content and list the project's members.").
fn sentences(can: &[String], catalogue: &[Value]) -> String {
    let said: Vec<String> = can
        .iter()
        .map(|name| {
            catalogue
                .iter()
                .find(|d| d["name"].as_str() == Some(name.as_str()))
                .and_then(|d| d["description"].as_str())
                .map(|d| {
                    let mut c = d.chars();
                    c.next()
                        .map(|f| f.to_lowercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| name.clone())
        })
        .collect();
    match said.as_slice() {
        [] => String::new(),
        [one] => format!("You can {one}."),
        [rest @ .., last] => format!("You can {}, and {last}.", rest.join(", ")),
    }
}

fn perms(r: &Option<super::Reply>) -> Vec<String> {
    r.as_ref()
        .filter(|r| r.ok())
        .and_then(|r| r.body["permissions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn role_name(key: &str, roles: &[Value]) -> String {
    if let Some(name) = builtin_role(key) {
        return name.to_string();
    }
    roles
        .iter()
        .find(|r| r["id"] == key)
        .map(|r| s(r, "name"))
        .unwrap_or_else(|| key.to_string())
}

/// A built-in role's name as people read it (`project:viewer` is "Viewer").
fn builtin_role(key: &str) -> Option<&'static str> {
    Some(match key {
        "org:owner" => "Owner",
        "org:admin" => "Admin",
        "org:member" => "Member",
        "project:admin" => "Project admin",
        "project:editor" => "Editor",
        "project:viewer" => "Viewer",
        _ => return None,
    })
}

/// Shows an action's outcome: `ok` as a notice, or the error; true when it worked.
fn report(
    r: super::Reply,
    ok: &str,
    mut error: Signal<String>,
    mut notice: Signal<String>,
) -> bool {
    if r.ok() {
        error.set(String::new());
        notice.set(ok.to_string());
        true
    } else {
        notice.set(String::new());
        error.set(r.message());
        false
    }
}

#[component]
pub fn OrgList() -> Element {
    let orgs = use_resource(|| async { get("/api/v1/orgs").await });
    let mut name = use_signal(String::new);
    let mut error = use_signal(String::new);
    let on_create = move |_| {
        spawn(async move {
            error.set(String::new());
            let r = post("/api/v1/orgs", json!({"name": name()})).await;
            if r.ok() {
                go(&format!("/orgs/{}", s(&r.body, "id")));
            } else {
                error.set(r.message());
            }
        });
    };
    let rows = list(&orgs.read());
    rsx! {
        section { class: "card", id: "orgs",
            h2 { "Organizations" }
            ul { class: "rows",
                for o in rows.iter() {
                    li { key: "{s(o, \"id\")}", class: "org", "data-slug": "{s(o, \"slug\")}",
                        a { href: "/orgs/{s(o, \"id\")}", "{s(o, \"name\")}" }
                        span { class: "muted", "{s(o, \"slug\")}" }
                        span { class: "pill off", "{s(o, \"role\")}" }
                    }
                }
            }
            Notice { text: error(), error: true }
            form { onsubmit: on_create,
                label { "New organization"
                    input { id: "org-name", placeholder: "Acme Research", value: "{name}", oninput: move |e| name.set(e.value()) }
                }
                button { id: "org-create", r#type: "submit", "Create organization" }
            }
        }
    }
}

/// The organization's gateway: running or not, its loaded documents and their clients; start
/// and stop for those who may.
#[component]
fn GatewayPanel(id: String, manage: bool, projects: Vec<Value>) -> Element {
    let mut status = use_get(format!("/api/v1/orgs/{id}/gateway"));
    let mut error = use_signal(String::new);
    let act = {
        let id = id.clone();
        move |verb: &'static str| {
            let id = id.clone();
            spawn(async move {
                error.set(String::new());
                let r = post(&format!("/api/v1/orgs/{id}/gateway/{verb}"), json!({})).await;
                if !r.ok() {
                    error.set(r.message());
                }
                status.restart();
            });
        }
    };
    let (start, stop) = (act.clone(), act);
    let body = status.read().clone().map(|r| r.body).unwrap_or(Value::Null);
    let state = s(&body, "state");
    let clients = body["clients"].as_u64().unwrap_or(0);
    let uptime = body["uptime_seconds"].as_u64();
    let loaded: Vec<(String, String, u64)> = body["projects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let pid = s(p, "project_id");
            let name = projects
                .iter()
                .find(|x| s(x, "id") == pid)
                .map(|x| s(x, "name"))
                .unwrap_or_else(|| "a project you cannot see".into());
            (name, s(p, "state"), p["clients"].as_u64().unwrap_or(0))
        })
        .collect();
    rsx! {
        section { class: "card", id: "gateway", "data-state": "{state}",
            h2 { "Collaboration gateway" }
            p { id: "gateway-status",
                match state.as_str() {
                    "running" => format!("Running{} · {clients} connected", uptime.map(|u| format!(" for {u} s")).unwrap_or_default()),
                    "stopping" => "Stopping…".to_string(),
                    "" => "…".to_string(),
                    _ => "Stopped (it starts when someone opens a project)".to_string(),
                }
            }
            if !loaded.is_empty() {
                ul { class: "rows", id: "gateway-documents",
                    for (name, st, n) in loaded.iter() {
                        li { key: "{name}", class: "document", "{name}" span { class: "muted", " {st} · {n} connected" } }
                    }
                }
            }
            Notice { text: error(), error: true }
            div { class: "actions",
                button { id: "gateway-refresh", onclick: move |_| status.restart(), "Refresh" }
                if manage {
                    if state == "running" {
                        button { id: "gateway-stop", onclick: move |_| stop("stop"), "Stop" }
                    } else {
                        button { id: "gateway-start", onclick: move |_| start("start"), "Start" }
                    }
                }
            }
        }
    }
}

#[component]
pub fn OrgDashboard(id: String) -> Element {
    let org = use_get(format!("/api/v1/orgs/{id}"));
    let mut projects = use_get(format!("/api/v1/orgs/{id}/projects"));
    let members = use_get(format!("/api/v1/orgs/{id}/members"));
    let my = use_get(format!("/api/v1/orgs/{id}/permissions/me"));
    let mut name = use_signal(String::new);
    let mut error = use_signal(String::new);
    let on_create = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                error.set(String::new());
                let r = post(
                    &format!("/api/v1/orgs/{id}/projects"),
                    json!({"name": name()}),
                )
                .await;
                if r.ok() {
                    name.set(String::new());
                    projects.restart();
                } else {
                    error.set(r.message());
                }
            });
        }
    };
    let Some(o) = org.read().clone() else {
        return rsx! {};
    };
    if !o.ok() {
        return rsx! { section { class: "card", h2 { "Not found" } p { "{o.message()}" } } };
    }
    let o = o.body;
    let can = perms(&my.read());
    let project_rows = list(&projects.read());
    let member_rows = list(&members.read());
    rsx! {
        section { class: "card", id: "org-dashboard", "data-org": "{id}",
            h2 { id: "org-title", "{s(&o, \"name\")}" }
            p { class: "muted", "{s(&o, \"slug\")} · your role: " span { id: "my-org-role", "data-role": "{s(&o, \"role\")}", "{role_name(&s(&o, \"role\"), &[])}" }
                if can.iter().any(|p| p == "org:members:manage" || p == "org:roles:manage" || p == "org:org:update") {
                    " · " a { href: "/orgs/{id}/settings", id: "org-settings-link", "Settings" }
                }
            }
        }
        GatewayPanel { id: id.clone(), manage: can.iter().any(|p| p == "gateway:gateway:manage"), projects: project_rows.clone() }
        section { class: "card", id: "projects",
            h2 { "Projects" }
            if project_rows.is_empty() { p { "No projects you can see yet." } }
            ul { class: "rows",
                for p in project_rows.iter() {
                    li { key: "{s(p, \"id\")}", class: "project", "data-name": "{s(p, \"name\")}",
                        a { href: "/projects/{s(p, \"id\")}", "{s(p, \"name\")}" }
                        span { class: "muted", "created {short_time(&p[\"created_at\"])}" }
                    }
                }
            }
            Notice { text: error(), error: true }
            if can.iter().any(|p| p == "org:projects:create") {
                form { onsubmit: on_create,
                    label { "New project"
                        input { id: "project-name", value: "{name}", oninput: move |e| name.set(e.value()) }
                    }
                    button { id: "project-create", r#type: "submit", "Create project" }
                }
            }
        }
        section { class: "card", id: "members",
            h2 { "Members" }
            ul { class: "rows",
                for m in member_rows.iter() {
                    li { key: "{s(m, \"user_id\")}", "data-username": "{s(m, \"username\")}",
                        span { class: "avatar", "{s(m, \"initials\")}" }
                        span { "{s(m, \"display_name\")}" }
                        span { class: "muted", "{s(m, \"role\")}" }
                    }
                }
            }
        }
    }
}

#[component]
pub fn OrgSettings(id: String) -> Element {
    let org = use_get(format!("/api/v1/orgs/{id}"));
    let mut members = use_get(format!("/api/v1/orgs/{id}/members"));
    let mut invitations = use_get(format!("/api/v1/orgs/{id}/invitations"));
    let mut roles = use_get(format!("/api/v1/orgs/{id}/roles"));
    let catalogue = use_resource(|| async { get("/api/v1/permissions").await });
    let error = use_signal(String::new);
    let notice = use_signal(String::new);
    let mut add_user = use_signal(String::new);
    let mut add_role = use_signal(|| "org:member".to_string());
    let mut invite_email = use_signal(String::new);
    let mut role_name_in = use_signal(String::new);
    let mut role_scope = use_signal(|| "project".to_string());
    let mut role_perms = use_signal(String::new);
    // The custom role being edited, if any (the form then saves it instead of creating one).
    let mut editing = use_signal(|| Option::<String>::None);
    let mut org_name = use_signal(String::new);
    let mut confirm = use_signal(String::new);

    let act = move |r: super::Reply, ok: &str| report(r, ok, error, notice);

    let on_add = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let r = post(
                    &format!("/api/v1/orgs/{id}/members"),
                    json!({"user": add_user(), "role": add_role()}),
                )
                .await;
                if act(r, "Member added.") {
                    add_user.set(String::new());
                    members.restart();
                }
            });
        }
    };
    let on_invite = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let r = post(
                    &format!("/api/v1/orgs/{id}/invitations"),
                    json!({"email": invite_email(), "role": add_role()}),
                )
                .await;
                if act(r, "Invitation sent.") {
                    invite_email.set(String::new());
                    invitations.restart();
                }
            });
        }
    };
    let on_role = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let patterns: Vec<String> = role_perms()
                    .split([',', '\n', ' '])
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
                let body =
                    json!({"name": role_name_in(), "scope": role_scope(), "permissions": patterns});
                let r = match editing() {
                    Some(rid) => {
                        call("PUT", &format!("/api/v1/orgs/{id}/roles/{rid}"), Some(body)).await
                    }
                    None => post(&format!("/api/v1/orgs/{id}/roles"), body).await,
                };
                if act(r, "Role saved.") {
                    role_name_in.set(String::new());
                    role_perms.set(String::new());
                    editing.set(None);
                    roles.restart();
                }
            });
        }
    };
    let on_rename = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let r = call(
                    "PATCH",
                    &format!("/api/v1/orgs/{id}"),
                    Some(json!({"name": org_name()})),
                )
                .await;
                if act(r, "Renamed.") {
                    go(&format!("/orgs/{id}/settings"));
                }
            });
        }
    };
    let on_delete = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let r = call(
                    "DELETE",
                    &format!("/api/v1/orgs/{id}"),
                    Some(json!({"confirm": confirm()})),
                )
                .await;
                if act(r, "Deleted.") {
                    go("/orgs");
                }
            });
        }
    };

    let Some(o) = org.read().clone() else {
        return rsx! {};
    };
    if !o.ok() {
        return rsx! { section { class: "card", h2 { "Not found" } p { "{o.message()}" } } };
    }
    let o = o.body;
    let role_rows = list(&roles.read());
    let org_roles: Vec<Value> = role_rows
        .iter()
        .filter(|r| r["scope"] == "org")
        .cloned()
        .collect();
    let member_rows = list(&members.read());
    let invitation_rows = list(&invitations.read());
    let cat = list(&catalogue.read());

    rsx! {
        section { class: "card", id: "org-settings",
            h2 { "Settings of {s(&o, \"name\")}" }
            p { a { href: "/orgs/{id}", "Back to the organization" } }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            form { onsubmit: on_rename,
                label { "Name" input { id: "org-rename", placeholder: "{s(&o, \"name\")}", value: "{org_name}", oninput: move |e| org_name.set(e.value()) } }
                button { id: "org-rename-submit", r#type: "submit", "Rename" }
            }
        }
        section { class: "card", id: "org-members",
            h2 { "Members" }
            ul { class: "rows",
                for m in member_rows.iter() {
                    li { key: "{s(m, \"user_id\")}", class: "member", "data-username": "{s(m, \"username\")}",
                        span { "{s(m, \"display_name\")} ({s(m, \"username\")})" }
                        select { class: "member-role", "data-username": "{s(m, \"username\")}",
                            onchange: {
                                let id = id.clone();
                                let uid = s(m, "user_id");
                                move |e: FormEvent| {
                                    let id = id.clone();
                                    let uid = uid.clone();
                                    spawn(async move {
                                        let r = call("PATCH", &format!("/api/v1/orgs/{id}/members/{uid}"), Some(json!({"role": e.value()}))).await;
                                        act(r, "Role changed.");
                                        members.restart();
                                    });
                                }
                            },
                            for r in org_roles.iter() {
                                option { value: "{s(r, \"id\")}", selected: m["role"] == r["id"], "{s(r, \"name\")}" }
                            }
                        }
                        button { class: "danger small", onclick: {
                            let id = id.clone();
                            let uid = s(m, "user_id");
                            move |_| {
                                let id = id.clone();
                                let uid = uid.clone();
                                spawn(async move {
                                    let r = call("DELETE", &format!("/api/v1/orgs/{id}/members/{uid}"), None).await;
                                    act(r, "Member removed.");
                                    members.restart();
                                });
                            }
                        }, "Remove" }
                    }
                }
            }
            form { onsubmit: on_add,
                label { "Add by username or email"
                    input { id: "add-member", value: "{add_user}", oninput: move |e| add_user.set(e.value()) }
                }
                label { "Role"
                    select { id: "add-role", onchange: move |e| add_role.set(e.value()),
                        for r in org_roles.iter() {
                            option { value: "{s(r, \"id\")}", selected: add_role() == s(r, "id"), "{s(r, \"name\")}" }
                        }
                    }
                }
                button { id: "add-member-submit", r#type: "submit", "Add member" }
            }
            form { onsubmit: on_invite,
                label { "Or invite by email (with the role above)"
                    input { id: "invite-email", r#type: "email", value: "{invite_email}", oninput: move |e| invite_email.set(e.value()) }
                }
                button { class: "secondary", id: "invite-submit", r#type: "submit", "Send invitation" }
            }
            if !invitation_rows.is_empty() {
                h3 { "Pending invitations" }
                ul { class: "rows", id: "invitations",
                    for i in invitation_rows.iter() {
                        li { key: "{s(i, \"id\")}",
                            span { "{s(i, \"email\")}" }
                            span { class: "muted", "{role_name(&s(i, \"role\"), &role_rows)}, until {short_time(&i[\"expires_at\"])}" }
                            button { class: "danger small", onclick: {
                                let id = id.clone();
                                let iid = s(i, "id");
                                move |_| {
                                    let id = id.clone();
                                    let iid = iid.clone();
                                    spawn(async move {
                                        let r = call("DELETE", &format!("/api/v1/orgs/{id}/invitations/{iid}"), None).await;
                                        act(r, "Invitation revoked.");
                                        invitations.restart();
                                    });
                                }
                            }, "Revoke" }
                        }
                    }
                }
            }
        }
        section { class: "card", id: "roles",
            h2 { "Roles" }
            table {
                thead { tr { th { "Role" } th { "Scope" } th { "Permissions" } th {} } }
                tbody {
                    for r in role_rows.iter() {
                        tr { key: "{s(r, \"id\")}", "data-role": "{s(r, \"name\")}",
                            td { strong { "{s(r, \"name\")}" } br {} span { class: "muted", "{s(r, \"description\")}" } }
                            td { "{s(r, \"scope\")}" }
                            td { class: "detail", "{r[\"permissions\"].as_array().map(|a| a.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join(\", \")).unwrap_or_default()}" }
                            td {
                                if r["builtin"] == false {
                                    button { class: "secondary small", onclick: {
                                        let rid = s(r, "id");
                                        let name = s(r, "name");
                                        let scope = s(r, "scope");
                                        let patterns = r["permissions"].as_array().map(|a| a.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
                                        move |_| {
                                            editing.set(Some(rid.clone()));
                                            role_name_in.set(name.clone());
                                            role_scope.set(scope.clone());
                                            role_perms.set(patterns.clone());
                                        }
                                    }, "Edit" }
                                    button { class: "danger small", onclick: {
                                        let id = id.clone();
                                        let rid = s(r, "id");
                                        move |_| {
                                            let id = id.clone();
                                            let rid = rid.clone();
                                            spawn(async move {
                                                let r = call("DELETE", &format!("/api/v1/orgs/{id}/roles/{rid}"), None).await;
                                                act(r, "Role deleted.");
                                                roles.restart();
                                            });
                                        }
                                    }, "Delete" }
                                } else {
                                    span { class: "muted", "built-in" }
                                }
                            }
                        }
                    }
                }
            }
            form { onsubmit: on_role,
                h3 { if editing().is_some() { "Edit the role" } else { "New custom role" } }
                label { "Name" input { id: "role-name", value: "{role_name_in}", oninput: move |e| role_name_in.set(e.value()) } }
                label { "Scope"
                    select { id: "role-scope", onchange: move |e| role_scope.set(e.value()),
                        option { value: "project", selected: role_scope() == "project", "project" }
                        option { value: "org", selected: role_scope() == "org", "org" }
                    }
                }
                label { "Permissions (patterns such as project:content:*, separated by commas)"
                    input { id: "role-permissions", value: "{role_perms}", oninput: move |e| role_perms.set(e.value()) }
                }
                button { id: "role-create", r#type: "submit", if editing().is_some() { "Save role" } else { "Create role" } }
                if editing().is_some() {
                    button { class: "secondary", r#type: "button", onclick: move |_| {
                        editing.set(None);
                        role_name_in.set(String::new());
                        role_perms.set(String::new());
                    }, "Cancel" }
                }
            }
            details { id: "catalogue",
                summary { "Permission catalogue ({cat.len()})" }
                table {
                    tbody {
                        for p in cat.iter() {
                            tr { key: "{s(p, \"name\")}",
                                td { code { "{s(p, \"name\")}" } }
                                td { "{s(p, \"description\")}" }
                                td { class: "muted", "{s(p, \"scope\")} · {s(p, \"level\")}" }
                            }
                        }
                    }
                }
            }
        }
        super::images::ContainerImages { org: id.clone() }
        section { class: "card danger-zone", id: "org-delete",
            h2 { "Delete the organization" }
            p { "This deletes every project in it. Type the slug " code { "{s(&o, \"slug\")}" } " to confirm." }
            form { onsubmit: on_delete,
                input { id: "org-delete-confirm", value: "{confirm}", oninput: move |e| confirm.set(e.value()) }
                button { class: "danger", id: "org-delete-submit", r#type: "submit", "Delete" }
            }
        }
    }
}

#[component]
pub fn ProjectSettings(id: String) -> Element {
    let project = use_get(format!("/api/v1/projects/{id}"));
    let mut members = use_get(format!("/api/v1/projects/{id}/members"));
    let my = use_get(format!("/api/v1/projects/{id}/permissions/me"));
    let catalogue = use_get("/api/v1/permissions".to_string());
    let error = use_signal(String::new);
    let notice = use_signal(String::new);
    let mut rename = use_signal(String::new);
    let mut member = use_signal(String::new);
    let mut member_role = use_signal(|| "project:editor".to_string());
    let mut confirm = use_signal(String::new);
    let act = move |r: super::Reply, ok: &str| report(r, ok, error, notice);
    let Some(p) = project.read().clone() else {
        return rsx! {};
    };
    if !p.ok() {
        return rsx! { section { class: "card", h2 { "Not found" } p { "{p.message()}" } } };
    }
    let p = p.body;
    let org_id = s(&p, "org_id");
    let can = perms(&my.read());
    let manage = can.iter().any(|x| x == "project:members:manage");
    let member_rows = list(&members.read());
    let can_text = sentences(&can, &list(&catalogue.read()));
    let can_raw = can.join(" ");
    let on_rename = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let r = call(
                    "PATCH",
                    &format!("/api/v1/projects/{id}"),
                    Some(json!({"name": rename()})),
                )
                .await;
                if act(r, "Renamed.") {
                    go(&format!("/projects/{id}/settings"));
                }
            });
        }
    };
    let on_member = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn(async move {
                let r = post(
                    &format!("/api/v1/projects/{id}/members"),
                    json!({"user": member(), "role": member_role()}),
                )
                .await;
                if act(r, "Member added.") {
                    member.set(String::new());
                    members.restart();
                }
            });
        }
    };
    let on_delete = {
        let id = id.clone();
        let org_id = org_id.clone();
        move |_| {
            let id = id.clone();
            let org_id = org_id.clone();
            spawn(async move {
                let r = call(
                    "DELETE",
                    &format!("/api/v1/projects/{id}"),
                    Some(json!({"confirm": confirm()})),
                )
                .await;
                if act(r, "Deleted.") {
                    go(&format!("/orgs/{org_id}"));
                }
            });
        }
    };
    rsx! {
        section { class: "card", id: "project", "data-project": "{id}",
            h2 { id: "project-title", "{s(&p, \"name\")}" }
            p { a { href: "/projects/{id}", id: "open-board", "Open the board" } " · " a { href: "/orgs/{org_id}", "Back to the organization" } }
            // Sentences for people; the permission names stay in the attribute for tools.
            p { class: "muted", id: "my-project-permissions", "data-permissions": "{can_raw}", "{can_text}" }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            if can.iter().any(|x| x == "project:project:update") {
                form { onsubmit: on_rename,
                    label { "Rename" input { id: "project-rename", value: "{rename}", oninput: move |e| rename.set(e.value()) } }
                    button { id: "project-rename-submit", r#type: "submit", "Rename" }
                }
            }
        }
        section { class: "card", id: "project-members",
            h2 { "Project members" }
            ul { class: "rows",
                for m in member_rows.iter() {
                    li { key: "{s(m, \"user_id\")}", class: "member", "data-username": "{s(m, \"username\")}",
                        span { "{s(m, \"display_name\")}" }
                        span { class: "muted role", "data-role": "{s(m, \"role\")}", "{role_name(&s(m, \"role\"), &[])}" }
                        if manage {
                            button { class: "danger small", onclick: {
                                let id = id.clone();
                                let uid = s(m, "user_id");
                                move |_| {
                                    let id = id.clone();
                                    let uid = uid.clone();
                                    spawn(async move {
                                        let r = call("DELETE", &format!("/api/v1/projects/{id}/members/{uid}"), None).await;
                                        act(r, "Removed.");
                                        members.restart();
                                    });
                                }
                            }, "Remove" }
                        }
                    }
                }
            }
            if manage {
                form { onsubmit: on_member,
                    label { "Add or change a member (username or email)"
                        input { id: "project-member", value: "{member}", oninput: move |e| member.set(e.value()) }
                    }
                    label { "Role"
                        select { id: "project-member-role", onchange: move |e| member_role.set(e.value()),
                            option { value: "project:admin", "Project admin" }
                            option { value: "project:editor", selected: true, "Editor" }
                            option { value: "project:viewer", "Viewer" }
                        }
                    }
                    button { id: "project-member-submit", r#type: "submit", "Save member" }
                }
            }
        }
        if can.iter().any(|x| x == "project:project:delete") {
            section { class: "card danger-zone", id: "project-delete",
                h2 { "Delete the project" }
                p { "Type its name to confirm." }
                form { onsubmit: on_delete,
                    input { id: "project-delete-confirm", value: "{confirm}", oninput: move |e| confirm.set(e.value()) }
                    button { class: "danger", id: "project-delete-submit", r#type: "submit", "Delete" }
                }
            }
        }
    }
}

#[component]
pub fn AcceptInvite(query: String, signed_in: bool) -> Element {
    let token = query_param(&query, "token").unwrap_or_default();
    let mut error = use_signal(String::new);
    let on_accept = {
        let token = token.clone();
        move |_| {
            let token = token.clone();
            spawn(async move {
                let r = post("/api/v1/invitations/accept", json!({"token": token})).await;
                if r.ok() {
                    go(&format!("/orgs/{}", s(&r.body, "id")));
                } else {
                    error.set(r.message());
                }
            });
        }
    };
    // What the link is for, named by the server (the mail names nothing the inviter chose).
    // Asked again when the visitor turns out to be signed in.
    let preview = use_resource(use_reactive!(|token, signed_in| async move {
        if signed_in {
            Some(post("/api/v1/invitations/preview", json!({"token": token})).await)
        } else {
            None
        }
    }));
    let about = match &*preview.read() {
        Some(Some(r)) if r.ok() => {
            let by = match (s(&r.body, "inviter_name"), s(&r.body, "inviter_username")) {
                (n, u) if !u.is_empty() => format!("{n} (@{u}) invited you"),
                _ => "You were invited".to_string(),
            };
            let bound = match s(&r.body, "email") {
                e if e.is_empty() => String::new(),
                e => format!(" This invitation is for {e}."),
            };
            Ok(format!(
                "{by} to join {} as {}.{bound}",
                s(&r.body, "org_name"),
                role_name(&s(&r.body, "role"), &[])
            ))
        }
        Some(Some(r)) => Err(r.message()),
        // Still asking (or not signed in): no button before the page can say what it joins.
        _ => Err(String::new()),
    };
    let back = format!("/invite?token={token}");
    rsx! {
        section { class: "card auth", id: "invite",
            h2 { "Join an organization" }
            Notice { text: error(), error: true }
            if signed_in {
                match about {
                    Ok(text) => rsx! {
                        p { id: "invite-about", "{text}" }
                        button { id: "invite-accept", onclick: on_accept, "Accept the invitation" }
                    },
                    Err(e) => rsx! { Notice { text: e, error: true } },
                }
            } else {
                p { "Sign in or create an account first, then open this link again." }
                a { class: "button", href: "/signin?return_to={super::signin::url_encode(&back)}", "Sign in" }
                a { class: "button secondary", href: "/signup?return_to={super::signin::url_encode(&back)}", "Create an account" }
            }
        }
    }
}
