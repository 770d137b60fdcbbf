//! Sign in (password, passkey, email link, providers), the second-factor step, sign up, and
//! the forgotten-password request. No message here tells whether an account exists.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::{Notice, get, go, passkey_ceremony, post, query_param, safe_path};

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Password,
    SecondFactor,
}

#[component]
pub fn SignIn(query: String) -> Element {
    let return_to = safe_path(&query_param(&query, "return_to").unwrap_or_else(|| "/".into()));
    let mut stage = use_signal(|| {
        if query_param(&query, "second_factor").is_some() {
            Stage::SecondFactor
        } else {
            Stage::Password
        }
    });
    let mut login = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut code = use_signal(String::new);
    let mut email = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut notice = use_signal(String::new);
    let mut busy = use_signal(|| false);
    let providers = use_resource(|| async { get("/api/v1/auth/providers").await });

    let done = {
        let to = return_to.clone();
        move || go(&to)
    };

    let on_password = {
        let done = done.clone();
        move |_| {
            let done = done.clone();
            spawn(async move {
                busy.set(true);
                error.set(String::new());
                let r = post(
                    "/api/v1/auth/login",
                    json!({"login": login(), "password": password()}),
                )
                .await;
                busy.set(false);
                if !r.ok() {
                    error.set(r.message());
                } else if r.body["second_factor_required"] == true {
                    password.set(String::new());
                    stage.set(Stage::SecondFactor);
                } else {
                    done();
                }
            });
        }
    };

    let on_passkey = {
        let done = done.clone();
        move |_| {
            let done = done.clone();
            spawn(async move {
                error.set(String::new());
                match passkey_ceremony(
                    false,
                    "/api/v1/auth/passkey/start",
                    json!({}),
                    "/api/v1/auth/passkey/finish",
                )
                .await
                {
                    Ok(_) => done(),
                    Err(r) => error.set(r.message()),
                }
            });
        }
    };

    let on_link = move |_| {
        spawn(async move {
            error.set(String::new());
            let r = post(
                "/api/v1/auth/email-link",
                json!({"email": email(), "purpose": "sign_in"}),
            )
            .await;
            if r.ok() {
                notice.set(
                    "If an account has this address, a sign-in link is on its way. It works once, for 15 minutes."
                        .into(),
                );
            } else {
                error.set(r.message());
            }
        });
    };

    let on_code = {
        let done = done.clone();
        move |_| {
            let done = done.clone();
            spawn(async move {
                busy.set(true);
                error.set(String::new());
                let r = post("/api/v1/auth/second-factor", json!({"code": code()})).await;
                busy.set(false);
                if r.ok() {
                    done();
                } else if r.code() == "not_authenticated" {
                    stage.set(Stage::Password);
                    error.set("That sign-in expired; start again.".into());
                } else {
                    error.set(r.message());
                }
            });
        }
    };

    let on_second_passkey = {
        let done = done.clone();
        move |_| {
            let done = done.clone();
            spawn(async move {
                error.set(String::new());
                match passkey_ceremony(
                    false,
                    "/api/v1/auth/second-factor/passkey/start",
                    json!({}),
                    "/api/v1/auth/second-factor/passkey/finish",
                )
                .await
                {
                    Ok(_) => done(),
                    Err(r) => error.set(r.message()),
                }
            });
        }
    };

    let provider_list: Vec<Value> = providers
        .read()
        .as_ref()
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default();
    let encoded_return = url_encode(&return_to);

    if stage() == Stage::SecondFactor {
        return rsx! {
            section { class: "card auth", id: "second-factor",
                h2 { "Two-factor authentication" }
                p { "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }
                Notice { text: error(), error: true }
                form { onsubmit: on_code,
                    label { "Code"
                        input { id: "code", name: "code", autocomplete: "one-time-code", inputmode: "numeric",
                            value: "{code}", oninput: move |e| code.set(e.value()) }
                    }
                    button { id: "code-submit", r#type: "submit", disabled: busy(), "Verify" }
                }
                button { class: "secondary", id: "second-factor-passkey", onclick: on_second_passkey, "Use a passkey instead" }
            }
        };
    }

    rsx! {
        section { class: "card auth", id: "sign-in",
            h2 { "Sign in" }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            form { onsubmit: on_password,
                label { "Username or email"
                    input { id: "login", name: "login", autocomplete: "username webauthn",
                        value: "{login}", oninput: move |e| login.set(e.value()) }
                }
                label { "Password"
                    input { id: "password", name: "password", r#type: "password", autocomplete: "current-password",
                        value: "{password}", oninput: move |e| password.set(e.value()) }
                }
                button { id: "sign-in-submit", r#type: "submit", disabled: busy(), "Sign in" }
            }
            p { class: "links", a { href: "/forgot", "Forgot your password?" } " · " a { href: "/signup", "Create an account" } }
            div { class: "alternatives",
                button { class: "secondary", id: "passkey-sign-in", onclick: on_passkey, "Sign in with a passkey" }
                for p in provider_list.iter() {
                    a { class: "button secondary provider", "data-provider": "{p[\"id\"].as_str().unwrap_or_default()}",
                        href: "/api/v1/auth/providers/{p[\"id\"].as_str().unwrap_or_default()}/start?return_to={encoded_return}",
                        "Sign in with {p[\"name\"].as_str().unwrap_or_default()}" }
                }
                form { class: "email-link", onsubmit: on_link,
                    label { "Or get a sign-in link by email"
                        input { id: "link-email", name: "email", r#type: "email", autocomplete: "email",
                            value: "{email}", oninput: move |e| email.set(e.value()) }
                    }
                    button { class: "secondary", id: "link-submit", r#type: "submit", "Email me a link" }
                }
            }
        }
    }
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
pub fn SignUp(query: String) -> Element {
    let return_to = safe_path(&query_param(&query, "return_to").unwrap_or_else(|| "/".into()));
    // Coming from an invitation link: its token admits this sign-up even when sign-up is
    // closed.
    let invitation = return_to
        .strip_prefix("/invite?")
        .and_then(|q| query_param(q, "token"))
        .filter(|t| !t.is_empty());
    let mut username = use_signal(String::new);
    let mut email = use_signal(String::new);
    let mut display = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut setup_code = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut busy = use_signal(|| false);
    // A server with no account yet: its first (the admin) needs the setup code.
    let setup = use_resource(|| async { super::get("/api/v1/auth/setup").await });
    let first = setup
        .read()
        .as_ref()
        .is_some_and(|r| r.ok() && r.body["needed"] == true);
    let closed = setup
        .read()
        .as_ref()
        .is_some_and(|r| r.ok() && r.body["signup_open"] == false);
    if closed && !first && invitation.is_none() {
        return rsx! {
            section { class: "card auth", id: "sign-up",
                h2 { "Create an account" }
                p { id: "signup-closed",
                    "This server does not take new accounts. Ask one of its administrators for an invitation: its link lets you create yours."
                }
                p { class: "links", "Have an account? " a { href: "/signin", "Sign in" } }
            }
        };
    }
    let on_submit = move |_| {
        let return_to = return_to.clone();
        let invitation = invitation.clone();
        spawn(async move {
            busy.set(true);
            error.set(String::new());
            let mut body =
                json!({"username": username(), "email": email(), "password": password()});
            if !display().trim().is_empty() {
                body["display_name"] = json!(display());
            }
            if first {
                body["setup_code"] = json!(setup_code());
            }
            if let Some(t) = invitation {
                body["invitation"] = json!(t);
            }
            let r = post("/api/v1/auth/signup", body).await;
            busy.set(false);
            if r.ok() {
                go(&return_to);
            } else {
                error.set(r.message());
            }
        });
    };
    rsx! {
        section { class: "card auth", id: "sign-up",
            h2 { if first { "Set up this server" } else { "Create an account" } }
            if first {
                p { id: "setup-explained",
                    "This server has no accounts yet. The first one is its administrator: "
                    "enter the setup code that "
                    code { "demiurge serve" }
                    " printed in its log ("
                    code { "demiurge admin setup-code" }
                    " prints it again)."
                }
            }
            Notice { text: error(), error: true }
            form { onsubmit: on_submit,
                if first {
                    label { "Setup code"
                        input { id: "setup-code", autocomplete: "off", spellcheck: "false", value: "{setup_code}", oninput: move |e| setup_code.set(e.value()) }
                    }
                }
                label { "Username"
                    input { id: "username", autocomplete: "username", value: "{username}", oninput: move |e| username.set(e.value()) }
                }
                label { "Email"
                    input { id: "email", r#type: "email", autocomplete: "email", value: "{email}", oninput: move |e| email.set(e.value()) }
                }
                label { "Display name (optional)"
                    input { id: "display-name", autocomplete: "name", value: "{display}", oninput: move |e| display.set(e.value()) }
                }
                label { "Password (at least 10 characters)"
                    input { id: "password", r#type: "password", autocomplete: "new-password", value: "{password}", oninput: move |e| password.set(e.value()) }
                }
                button { id: "sign-up-submit", r#type: "submit", disabled: busy(), "Create account" }
            }
            p { class: "links", "Have an account? " a { href: "/signin", "Sign in" } }
        }
    }
}

#[component]
pub fn Forgot() -> Element {
    let mut email = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut notice = use_signal(String::new);
    let on_submit = move |_| {
        spawn(async move {
            error.set(String::new());
            let r = post(
                "/api/v1/auth/email-link",
                json!({"email": email(), "purpose": "reset_password"}),
            )
            .await;
            if r.ok() {
                notice.set(
                    "If an account has this address, a link to choose a new password is on its way."
                        .into(),
                );
            } else {
                error.set(r.message());
            }
        });
    };
    rsx! {
        section { class: "card auth", id: "forgot",
            h2 { "Forgot your password?" }
            p { "We will email you a link to choose a new one." }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            form { onsubmit: on_submit,
                label { "Email"
                    input { id: "email", r#type: "email", autocomplete: "email", value: "{email}", oninput: move |e| email.set(e.value()) }
                }
                button { id: "forgot-submit", r#type: "submit", "Send the link" }
            }
            p { class: "links", a { href: "/signin", "Back to sign-in" } }
        }
    }
}
