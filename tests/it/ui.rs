//! The LiveView shell in headless Chromium (Debian's chromium driven by playwright-core):
//! live subsystem status, and a reconnect after the server restarts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::chromium::{artifacts_dir, require_browser};
use crate::harness::peers::peers_dir;
use crate::harness::{Options, Server};

fn parse(line: &str, tag: &str) -> Value {
    let rest = line
        .strip_prefix(tag)
        .unwrap_or_else(|| panic!("expected {tag}, browser said: {line}"));
    serde_json::from_str(rest.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn liveview_shell_shows_status_and_reconnects_after_restart() {
    require_browser();
    let mut server =
        Server::start_with(Options::default().env("DEMIURGE_SERVER__NAME", "Test Workspace"));
    let shots = artifacts_dir("ui-shell");
    let mut node = Command::new("node")
        .arg(peers_dir().join("ui_shell.mjs"))
        .arg(format!("http://localhost:{}", server.http.port()))
        .arg(&shots)
        .current_dir(peers_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let mut stdin = node.stdin.take().unwrap();
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next = move || {
        out.next()
            .and_then(|l| l.ok())
            .unwrap_or_else(|| "EOF".into())
    };

    let p1 = parse(&next(), "PHASE1");
    assert_eq!(p1["title"], "Test Workspace");
    assert_eq!(p1["live"], "connected");
    assert_eq!(p1["overall"], "All subsystems are up");
    let rows = p1["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{p1}");
    for r in rows {
        assert_eq!(r[1], "running", "{p1}");
    }
    assert_eq!(
        p1["errors"].as_array().unwrap().len(),
        0,
        "page errors: {p1}"
    );
    assert_eq!(
        p1["leaks"].as_array().map(Vec::len),
        Some(0),
        "internal details on the home page: {p1}"
    );
    let boot1 = p1["boot"].as_str().unwrap().to_string();

    assert!(server.stop().is_some(), "server stops");
    writeln!(stdin, "stopped").unwrap();
    let down = parse(&next(), "DOWN");
    assert!(
        down["banner"].as_str().unwrap().contains("Reconnecting"),
        "{down}"
    );

    server.restart_stopped();
    writeln!(stdin, "restarted").unwrap();
    let p2 = parse(&next(), "PHASE2");
    assert_ne!(
        p2["boot"].as_str().unwrap(),
        boot1,
        "a new LiveView session on the new server"
    );
    assert_eq!(p2["live"], "connected");
    drop(stdin);
    let status = node.wait().unwrap();
    assert!(status.success());
    for f in ["shell.png", "reconnecting.png", "reconnected.png"] {
        assert!(shots.join(f).is_file(), "screenshot {f} kept");
    }
}

/// The account pages in Chromium: sign up, enrol TOTP, add a passkey (virtual authenticator),
/// sign out, sign in with password + TOTP, sign in with the passkey alone, forgot password.
#[tokio::test(flavor = "multi_thread")]
async fn account_pages_work_in_chromium() {
    require_browser();
    let server = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default().env("DEMIURGE_AUTH__REAUTHENTICATION_WINDOW", "8s")
    });
    let shots = artifacts_dir("ui-accounts");
    let out = Command::new("node")
        .arg(peers_dir().join("ui_accounts.mjs"))
        .arg(format!("http://localhost:{}", server.http.port()))
        .arg(&shots)
        .arg(server.setup_code().expect("a new server has a setup code"))
        .current_dir(peers_dir())
        .stderr(Stdio::inherit())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT") || l.starts_with("FAIL"))
        .unwrap_or("EOF");
    let r = parse(line, "RESULT");
    assert!(out.status.success());
    assert!(
        r["signup_error"]
            .as_str()
            .unwrap()
            .contains("10 characters"),
        "{r}"
    );
    assert_eq!(r["setup_heading"], "Set up this server", "{r}");
    assert!(
        r["setup_refused"]
            .as_str()
            .unwrap_or_default()
            .starts_with("That is not this server's setup code"),
        "{r}"
    );
    assert_eq!(r["after_signup"], "UI Tester");
    assert_eq!(
        server.setup_code(),
        None,
        "the first account spent the code"
    );
    assert_eq!(r["qr"], true);
    assert_eq!(r["recovery_codes"], 10);
    assert_eq!(r["wrong_password"], "Wrong username, email or password");
    assert_eq!(r["wrong_code"], "Wrong or already used code");
    assert_eq!(r["after_totp"], "UI Tester");
    assert_eq!(r["after_passkey"], "UI Tester");
    assert!(
        r["reauth_asked"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Confirm it is you"),
        "{r}"
    );
    assert_eq!(r["token_after_reauth"], true, "{r}");
    // Sessions as people say them, not raw user-agent strings.
    let session = r["session_text"].as_str().unwrap_or_default();
    assert!(
        session.starts_with("Chrome on Linux") && session.contains(" · "),
        "{r}"
    );
    assert!(!session.contains("Mozilla/5.0"), "{r}");
    assert_eq!(r["renamed_profile"], "UI Tester Renamed", "{r}");
    assert_eq!(r["renamed_header"], "UI Tester Renamed", "{r}");
    assert!(
        r["forgot"]
            .as_str()
            .unwrap()
            .starts_with("If an account has this address")
    );
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "page errors: {r}");
    for f in [
        "setup",
        "signup",
        "settings",
        "totp-enrol",
        "totp-on",
        "passkey-added",
        "signin",
        "second-factor",
        "settings-signed-in",
        "reauth",
        "forgot",
    ] {
        assert!(
            shots.join(format!("{f}.png")).is_file(),
            "screenshot {f} kept"
        );
    }
}

/// Organizations in Chromium: create, invite by email (through the SMTP sink), accept as a
/// second person, create a project, give and change roles; the second person's view follows.
#[tokio::test(flavor = "multi_thread")]
async fn organization_pages_work_in_chromium() {
    require_browser();
    let sink = crate::harness::peers::MailSink::start();
    let server = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default().env("DEMIURGE_MAIL__URL", &sink.url())
    });
    let shots = artifacts_dir("ui-orgs");
    let mut node = Command::new("node")
        .arg(peers_dir().join("ui_orgs.mjs"))
        .arg(format!("http://localhost:{}", server.http.port()))
        .arg(&shots)
        .arg(server.setup_code().expect("a new server has a setup code"))
        .current_dir(peers_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let mut stdin = node.stdin.take().unwrap();
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();
    let line = out.next().and_then(|l| l.ok()).unwrap_or_default();
    let invite = parse(&line, "INVITE");
    let mail = sink.wait_mail(invite["email"].as_str().unwrap(), 1).await;
    let link = crate::harness::peers::link_in(&mail, "http://localhost:");
    writeln!(stdin, "{link}").unwrap();
    let line = out.next().and_then(|l| l.ok()).unwrap_or_default();
    let r = parse(&line, "RESULT");
    drop(stdin);
    assert!(node.wait().unwrap().success());
    assert_eq!(r["org_title"], "Acme UI");
    // The page names the organization, the inviter and the address; the mail names neither
    // the organization nor the inviter (text they chose).
    let about = r["invite_about"].as_str().unwrap_or_default();
    for part in ["@uiowner", "Acme UI", "as Member.", "uimember@example.test"] {
        assert!(about.contains(part), "{part} in: {about}");
    }
    let text = mail["text"].as_str().unwrap_or_default();
    assert!(
        !text.contains("Acme UI") && !text.contains("uiowner"),
        "{text}"
    );
    assert!(
        r["gateway_status"]
            .as_str()
            .is_some_and(|t| t.starts_with("Running")),
        "the dashboard shows the gateway: {r}"
    );
    assert_eq!(r["member_joined"], true, "{r}");
    assert_eq!(r["member_role"], "org:member");
    // Roles read as words; the key stays in the page for scripts.
    assert_eq!(r["member_role_text"], "Member", "{r}");
    assert_eq!(r["project_role_text"], "Editor", "{r}");
    assert_eq!(r["member_sees_projects_before"], 0);
    let viewer = r["viewer_permissions"].as_str().unwrap();
    assert!(
        viewer.contains("project:content:read") && !viewer.contains("project:content:write"),
        "{viewer}"
    );
    assert_eq!(r["viewer_can_rename"], false);
    // People read sentences, not permission names.
    let sentence = r["viewer_sentence"].as_str().unwrap_or_default();
    assert!(
        sentence.contains("read the project's content") && !sentence.contains("project:"),
        "{sentence}"
    );
    assert!(
        r["editor_permissions"]
            .as_str()
            .unwrap()
            .contains("project:content:write"),
        "{r}"
    );
    assert_eq!(r["member_role_after"], "org:admin");
    assert_eq!(r["member_role_after_text"], "Admin", "{r}");
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "page errors: {r}");
    for f in [
        "org-dashboard",
        "org-settings",
        "invite",
        "project-settings",
        "project-as-viewer",
        "org-as-admin",
    ] {
        assert!(
            shots.join(format!("{f}.png")).is_file(),
            "screenshot {f} kept"
        );
    }
}
