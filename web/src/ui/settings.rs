//! Account settings: profile, password, two-factor (TOTP with QR code and recovery codes),
//! passkeys, linked sign-in providers, sessions and API tokens.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::{Notice, call, get, list, passkey_ceremony, post};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[component]
pub fn Settings(user: Value) -> Element {
    // Set when a sensitive change was refused for want of a recent sign-in.
    use_context_provider(|| Reauth(Signal::new(false)));
    rsx! {
        div { class: "settings", id: "settings",
            ConfirmItsYou { has_password: user["has_password"] == true }
            Profile { user: user.clone() }
            Password { has_password: user["has_password"] == true }
            TwoFactor {}
            Passkeys {}
            Identities {}
            Sessions {}
            Tokens {}
        }
    }
}

/// Whether the server asked this page to confirm its user again.
#[derive(Clone, Copy)]
struct Reauth(Signal<bool>);

/// The message for a refused change, asking for the confirmation box when that is why.
fn refusal(r: &super::Reply) -> String {
    if r.code() == "reauthentication_required" {
        // Called from event handlers, not while rendering: read the context, no hook.
        if let Some(Reauth(mut needed)) = try_consume_context::<Reauth>() {
            needed.set(true);
        }
        return "Confirm it is you (above), then try again.".into();
    }
    r.message()
}

/// Shown when a change needs a recent sign-in: the password or a code confirms it.
#[component]
fn ConfirmItsYou(has_password: bool) -> Element {
    let mut needed = use_context::<Reauth>().0;
    let mut secret = use_signal(String::new);
    let mut error = use_signal(String::new);
    if !needed() {
        return rsx! {};
    }
    let on_confirm = move |_| {
        spawn(async move {
            error.set(String::new());
            let body = if has_password {
                json!({"password": secret()})
            } else {
                json!({"code": secret()})
            };
            let r = post("/api/v1/auth/reauthenticate", body).await;
            if r.ok() {
                secret.set(String::new());
                needed.set(false);
            } else {
                error.set(r.message());
            }
        });
    };
    rsx! {
        section { class: "card", id: "reauth",
            h2 { "Confirm it is you" }
            p { "This change needs a recent sign-in. "
                if has_password { "Enter your password to go on." } else { "Enter a code from your authenticator app, or sign in again." }
            }
            Notice { text: error(), error: true }
            form { onsubmit: on_confirm,
                input { id: "reauth-secret", r#type: if has_password { "password" } else { "text" },
                    autocomplete: if has_password { "current-password" } else { "one-time-code" },
                    value: "{secret}", oninput: move |e| secret.set(e.value()) }
                button { id: "reauth-submit", r#type: "submit", "Confirm" }
            }
        }
    }
}

#[component]
fn Profile(user: Value) -> Element {
    let mut error = use_signal(String::new);
    let mut notice = use_signal(String::new);
    let verified = user["email_verified"] == true;
    let mut name = use_signal(|| s(&user, "display_name"));
    let mut saved_name = use_signal(|| s(&user, "display_name"));
    let mut me = use_context::<super::MeRefresh>().0;
    let on_rename = move |_| {
        spawn(async move {
            error.set(String::new());
            notice.set(String::new());
            let r = super::call(
                "PATCH",
                "/api/v1/me",
                Some(json!({"display_name": name().trim()})),
            )
            .await;
            if r.ok() {
                let now = s(&r.body, "display_name");
                saved_name.set(now.clone());
                name.set(now.clone());
                notice.set(format!("Your name is now “{now}”."));
                me.restart();
            } else {
                error.set(r.message());
            }
        });
    };
    let on_verify = move |_| {
        spawn(async move {
            let r = post("/api/v1/me/email/verify", json!({})).await;
            if r.ok() {
                notice.set("A confirmation link is on its way to your address.".into());
            } else {
                error.set(r.message());
            }
        });
    };
    rsx! {
        section { class: "card", id: "profile",
            h2 { "Profile" }
            dl {
                dt { "Name" } dd { id: "profile-name", "{saved_name}" }
                dt { "Username" } dd { id: "profile-username", "{s(&user, \"username\")}" }
                dt { "Email" }
                dd { id: "profile-email", "{s(&user, \"email\")} "
                    if verified { span { class: "pill running", "verified" } }
                    else { span { class: "pill starting", "not verified" } }
                }
            }
            form { class: "row", id: "rename", onsubmit: on_rename,
                label { "Name others see"
                    input { id: "display-name-input", maxlength: "100", autocomplete: "name",
                        value: "{name}", oninput: move |e| name.set(e.value()) }
                }
                button { id: "display-name-save", r#type: "submit",
                    disabled: name().trim() == saved_name().as_str(), "Save name" }
            }
            if !verified {
                button { class: "secondary", id: "verify-email", onclick: on_verify, "Send a confirmation link" }
            }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
        }
    }
}

#[component]
fn Password(has_password: bool) -> Element {
    let mut current = use_signal(String::new);
    let mut new = use_signal(String::new);
    let mut code = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut notice = use_signal(String::new);
    let on_submit = move |_| {
        spawn(async move {
            error.set(String::new());
            notice.set(String::new());
            let mut body = json!({"current_password": current(), "new_password": new()});
            if !code().trim().is_empty() {
                body["second_factor"] = json!(code());
            }
            let r = call("PUT", "/api/v1/me/password", Some(body)).await;
            if r.ok() {
                current.set(String::new());
                new.set(String::new());
                code.set(String::new());
                notice.set("Password changed. Your other sessions have ended.".into());
            } else if r.code() == "second_factor_required" {
                error.set("Enter a code from your authenticator app too.".into());
            } else {
                error.set(r.message());
            }
        });
    };
    if !has_password {
        return rsx! {
            section { class: "card", id: "password",
                h2 { "Password" }
                p { "This account signs in without a password. To set one, use " a { href: "/forgot", "the password reset link" } "." }
            }
        };
    }
    rsx! {
        section { class: "card", id: "password",
            h2 { "Password" }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            form { onsubmit: on_submit,
                label { "Current password"
                    input { id: "current-password", r#type: "password", autocomplete: "current-password", value: "{current}", oninput: move |e| current.set(e.value()) }
                }
                label { "New password"
                    input { id: "new-password", r#type: "password", autocomplete: "new-password", value: "{new}", oninput: move |e| new.set(e.value()) }
                }
                label { "Authenticator code (if two-factor is on)"
                    input { id: "password-code", autocomplete: "one-time-code", value: "{code}", oninput: move |e| code.set(e.value()) }
                }
                button { id: "password-submit", r#type: "submit", "Change password" }
            }
        }
    }
}

#[component]
fn TwoFactor() -> Element {
    let mut status = use_resource(|| async { get("/api/v1/me/totp").await });
    let mut enrolment = use_signal(|| Option::<Value>::None);
    let mut codes = use_signal(Vec::<String>::new);
    let mut code = use_signal(String::new);
    let mut error = use_signal(String::new);

    let on_begin = move |_| {
        spawn(async move {
            error.set(String::new());
            let r = post("/api/v1/me/totp", json!({})).await;
            if r.ok() {
                enrolment.set(Some(r.body));
            } else {
                error.set(refusal(&r));
            }
        });
    };
    let on_confirm = move |_| {
        spawn(async move {
            error.set(String::new());
            let r = post("/api/v1/me/totp/confirm", json!({"code": code()})).await;
            if r.ok() {
                let list = r.body["recovery_codes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                codes.set(list);
                enrolment.set(None);
                code.set(String::new());
                status.restart();
            } else {
                error.set(r.message());
            }
        });
    };
    let on_disable = move |_| {
        spawn(async move {
            error.set(String::new());
            let r = call("DELETE", "/api/v1/me/totp", Some(json!({"code": code()}))).await;
            if r.ok() {
                code.set(String::new());
                codes.set(Vec::new());
                status.restart();
            } else {
                error.set(r.message());
            }
        });
    };

    let enabled = status
        .read()
        .as_ref()
        .is_some_and(|r| r.body["enabled"] == true);
    let left = status
        .read()
        .as_ref()
        .and_then(|r| r.body["recovery_codes_left"].as_i64())
        .unwrap_or(0);

    rsx! {
        section { class: "card", id: "two-factor",
            h2 { "Two-factor authentication" }
            Notice { text: error(), error: true }
            if !codes().is_empty() {
                div { class: "recovery", id: "recovery-codes",
                    p { strong { "Two-factor authentication is on." } " Keep these recovery codes somewhere safe; each works once, and they are shown only now." }
                    ul { for c in codes().iter() { li { code { "{c}" } } } }
                }
            }
            if enabled {
                p { id: "totp-state", "On. {left} recovery codes left." }
                form { onsubmit: on_disable,
                    label { "Code to turn it off"
                        input { id: "totp-disable-code", autocomplete: "one-time-code", value: "{code}", oninput: move |e| code.set(e.value()) }
                    }
                    button { class: "danger", id: "totp-disable", r#type: "submit", "Turn off" }
                }
            } else if let Some(e) = enrolment() {
                div { class: "enrol", id: "totp-enrol",
                    p { "Scan this code with your authenticator app, or enter the key by hand." }
                    div { class: "qr", dangerous_inner_html: "{s(&e, \"qr_svg\")}" }
                    p { "Key: " code { id: "totp-secret", "{s(&e, \"secret\")}" } }
                    form { onsubmit: on_confirm,
                        label { "First code from the app"
                            input { id: "totp-code", autocomplete: "one-time-code", inputmode: "numeric", value: "{code}", oninput: move |e| code.set(e.value()) }
                        }
                        button { id: "totp-confirm", r#type: "submit", "Turn on" }
                    }
                }
            } else {
                p { id: "totp-state", "Off." }
                button { id: "totp-begin", onclick: on_begin, "Set up an authenticator app" }
            }
        }
    }
}

#[component]
fn Passkeys() -> Element {
    let mut keys = use_resource(|| async { get("/api/v1/me/passkeys").await });
    let mut name = use_signal(String::new);
    let mut error = use_signal(String::new);
    let on_add = move |_| {
        spawn(async move {
            error.set(String::new());
            match passkey_ceremony(
                true,
                "/api/v1/me/passkeys/register/start",
                json!({"name": name()}),
                "/api/v1/me/passkeys/register/finish",
            )
            .await
            {
                Ok(_) => {
                    name.set(String::new());
                    keys.restart();
                }
                Err(r) => error.set(refusal(&r)),
            }
        });
    };
    let rows = list(&keys.read());
    rsx! {
        section { class: "card", id: "passkeys",
            h2 { "Passkeys" }
            Notice { text: error(), error: true }
            if rows.is_empty() { p { "No passkeys yet." } }
            ul { class: "rows",
                for k in rows.iter() {
                    li { key: "{s(k, \"id\")}", class: "passkey", "data-name": "{s(k, \"name\")}",
                        span { "{s(k, \"name\")}" }
                        span { class: "muted", "added {super::people::ago(&k[\"created_at\"])}, last used {super::people::ago(&k[\"last_used_at\"])}" }
                        button { class: "danger small", onclick: {
                            let id = s(k, "id");
                            move |_| {
                                let id = id.clone();
                                spawn(async move {
                                    let r = call("DELETE", &format!("/api/v1/me/passkeys/{id}"), None).await;
                                    if !r.ok() { error.set(r.message()); }
                                    keys.restart();
                                });
                            }
                        }, "Delete" }
                    }
                }
            }
            form { onsubmit: on_add,
                label { "Name for a new passkey"
                    input { id: "passkey-name", placeholder: "Laptop", value: "{name}", oninput: move |e| name.set(e.value()) }
                }
                button { id: "passkey-add", r#type: "submit", "Add a passkey" }
            }
        }
    }
}

#[component]
fn Identities() -> Element {
    let mut linked = use_resource(|| async { get("/api/v1/me/identities").await });
    let providers = use_resource(|| async { get("/api/v1/auth/providers").await });
    let mut error = use_signal(String::new);
    let rows = list(&linked.read());
    let available = list(&providers.read());
    if rows.is_empty() && available.is_empty() {
        return rsx! {};
    }
    rsx! {
        section { class: "card", id: "identities",
            h2 { "Linked accounts" }
            Notice { text: error(), error: true }
            ul { class: "rows",
                for i in rows.iter() {
                    li { key: "{s(i, \"id\")}",
                        span { "{s(i, \"provider\")}: {s(i, \"display\")}" }
                        button { class: "danger small", onclick: {
                            let id = s(i, "id");
                            move |_| {
                                let id = id.clone();
                                spawn(async move {
                                    let r = call("DELETE", &format!("/api/v1/me/identities/{id}"), None).await;
                                    if !r.ok() { error.set(r.message()); }
                                    linked.restart();
                                });
                            }
                        }, "Unlink" }
                    }
                }
            }
            for p in available.iter() {
                // A form that posts: linking is never started by merely opening an address.
                form { class: "inline", method: "post", action: "/api/v1/auth/providers/{s(p, \"id\")}/start?return_to=/settings",
                    button { class: "secondary", r#type: "submit", "Link {s(p, \"name\")}" }
                }
            }
        }
    }
}

#[component]
fn Sessions() -> Element {
    let mut sessions = use_resource(|| async { get("/api/v1/me/sessions").await });
    let rows = list(&sessions.read());
    rsx! {
        section { class: "card", id: "sessions",
            h2 { "Sessions" }
            ul { class: "rows",
                for x in rows.iter() {
                    li { key: "{s(x, \"id\")}", class: "session",
                        span { class: "device", title: "{s(x, \"user_agent\")}",
                            "{super::people::device(&s(x, \"user_agent\"))}"
                        }
                        span { class: "muted",
                            "{s(x, \"ip\")} · {super::people::ago(&x[\"last_seen_at\"])}"
                        }
                        if x["current"] == true {
                            span { class: "pill running", "this browser" }
                        } else {
                            button { class: "danger small", onclick: {
                                let id = s(x, "id");
                                move |_| {
                                    let id = id.clone();
                                    spawn(async move {
                                        call("DELETE", &format!("/api/v1/me/sessions/{id}"), None).await;
                                        sessions.restart();
                                    });
                                }
                            }, "Sign out" }
                        }
                    }
                }
            }
        }
    }
}

#[component]
fn Tokens() -> Element {
    let mut tokens = use_resource(|| async { get("/api/v1/me/tokens").await });
    let mut name = use_signal(String::new);
    let mut days = use_signal(String::new);
    let mut created = use_signal(String::new);
    let mut error = use_signal(String::new);
    let on_create = move |_| {
        spawn(async move {
            error.set(String::new());
            let mut body = json!({"name": name()});
            if let Ok(d) = days().trim().parse::<u32>() {
                body["expires_in_days"] = json!(d);
            }
            let r = post("/api/v1/me/tokens", body).await;
            if r.ok() {
                created.set(s(&r.body, "token"));
                name.set(String::new());
                days.set(String::new());
                tokens.restart();
            } else {
                error.set(refusal(&r));
            }
        });
    };
    let rows = list(&tokens.read());
    rsx! {
        section { class: "card", id: "tokens",
            h2 { "API tokens" }
            Notice { text: error(), error: true }
            if !created().is_empty() {
                p { class: "notice ok", "Copy this token now; it is not shown again: " code { id: "new-token", "{created}" } }
            }
            ul { class: "rows",
                for t in rows.iter() {
                    li { key: "{s(t, \"id\")}",
                        span { "{s(t, \"name\")}" }
                        span { class: "muted", "last used {super::people::ago(&t[\"last_used_at\"])}" }
                        button { class: "danger small", onclick: {
                            let id = s(t, "id");
                            move |_| {
                                let id = id.clone();
                                spawn(async move {
                                    call("DELETE", &format!("/api/v1/me/tokens/{id}"), None).await;
                                    tokens.restart();
                                });
                            }
                        }, "Revoke" }
                    }
                }
            }
            form { onsubmit: on_create,
                label { "Token name" input { id: "token-name", value: "{name}", oninput: move |e| name.set(e.value()) } }
                label { "Expires in days (empty: never)" input { id: "token-days", inputmode: "numeric", value: "{days}", oninput: move |e| days.set(e.value()) } }
                button { id: "token-create", r#type: "submit", "Create token" }
            }
        }
    }
}

/// After a password reset: what can still sign in (passkeys, provider accounts), each with a
/// way to remove it, until the owner says they recognise what is left. Shown above every page
/// while the review is pending (someone who had the account may have added one).
#[component]
pub fn SignInReview() -> Element {
    let mut review = use_resource(|| async { get("/api/v1/me/sign-in-review").await });
    let mut error = use_signal(String::new);
    let Some(r) = review.read().clone() else {
        return rsx! {};
    };
    if !r.ok() {
        return rsx! {};
    }
    let passkeys = r.body["passkeys"].as_array().cloned().unwrap_or_default();
    let identities = r.body["identities"].as_array().cloned().unwrap_or_default();
    let remove = move |path: String| {
        spawn(async move {
            let r = call("DELETE", &path, None).await;
            if r.ok() {
                error.set(String::new());
            } else {
                error.set(refusal(&r));
            }
            review.restart();
        });
    };
    rsx! {
        section { class: "card review", id: "sign-in-review", role: "alert",
            h2 { "Your password was reset" }
            p {
                "If you did not reset it yourself, someone else may have had your account. "
                "These can still sign in as you: remove any you do not recognise."
            }
            Notice { text: error(), error: true }
            ul { class: "rows",
                for k in passkeys.iter() {
                    li { key: "{s(k, \"id\")}", class: "review-passkey", "data-name": "{s(k, \"name\")}",
                        span { "Passkey “{s(k, \"name\")}”" }
                        button { class: "danger small", onclick: {
                            let path = format!("/api/v1/me/passkeys/{}", s(k, "id"));
                            move |_| remove(path.clone())
                        }, "Remove" }
                    }
                }
                for i in identities.iter() {
                    li { key: "{s(i, \"id\")}", class: "review-identity", "data-provider": "{s(i, \"provider\")}",
                        span { "{s(i, \"provider\")} account {s(i, \"display\")}" }
                        button { class: "danger small", onclick: {
                            let path = format!("/api/v1/me/identities/{}", s(i, "id"));
                            move |_| remove(path.clone())
                        }, "Unlink" }
                    }
                }
            }
            button { id: "review-done", onclick: move |_| {
                spawn(async move {
                    let r = call("DELETE", "/api/v1/me/sign-in-review", None).await;
                    if !r.ok() && r.status != 404 {
                        error.set(refusal(&r));
                    }
                    review.restart();
                });
            }, if passkeys.is_empty() && identities.is_empty() { "Done" } else { "I recognise all of these" } }
        }
    }
}
