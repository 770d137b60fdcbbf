//! The server's side of board pages ([`demiurge_web::Boards`]): who opens a board (their
//! session cookie, checked like any request's), what they may do there, the shared live
//! copy of the board ([`feed`]), and their presence.
//!
//! Presence is awareness: each open page is a collaboration client of the project with its
//! user's identity (read-only: it never writes the document), so its cursor, selection and
//! viewport reach every other page and every stock Yjs client, and theirs reach it. While
//! the page is open, a revoked session or a lost permission ends it.

pub mod feed;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use demiurge_web::board::{
    Abilities, BoardSession, Boards, Ended, Me, OpenError, Peer, Presence, Rect, Visitor,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message, MessageReader};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

use self::feed::Feeds;
use crate::app::session::session_cookie_name;
use crate::auth::{Auth, AuthError};
use crate::db::accounts::User;
use crate::gateway::{Close, Connection, GatewayError, GatewayRegistry};
use crate::orgs::ProjectAccess;
use crate::orgs::{Orgs, OrgsError};

/// How often the others' presence is passed on at most (cursors move at 20 Hz or so).
const PEERS_EVERY: Duration = Duration::from_millis(30);

/// Board pages, as the server serves them.
#[derive(Clone)]
pub struct BoardService {
    auth: Auth,
    orgs: Orgs,
    gateways: GatewayRegistry,
    feeds: Arc<Feeds>,
    rt: tokio::runtime::Handle,
    service_url: String,
}

impl BoardService {
    /// Must be called inside the server's runtime (pages' work runs there).
    /// `service_url` is a container service's address with `{label}` for its label
    /// ([`crate::containers::guard::Guard::service_url`]).
    pub fn new(auth: Auth, orgs: Orgs, gateways: GatewayRegistry, service_url: String) -> Self {
        let rt = tokio::runtime::Handle::current();
        Self {
            feeds: Feeds::new(gateways.clone(), rt.clone()),
            auth,
            orgs,
            gateways,
            rt,
            service_url,
        }
    }

    /// Stops the feeds (before the gateways stop, so none starts one again).
    pub fn close(&self) {
        self.feeds.close();
    }
}

/// The session token in a page socket's `Cookie` header, by the cookie name for the scheme
/// its page was loaded over (its `Origin`).
fn session_token(cookie: Option<&str>, origin: Option<&str>) -> Option<String> {
    let name = session_cookie_name(origin.is_some_and(|o| o.starts_with("https://")));
    cookie?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

fn unavailable(e: impl std::fmt::Display) -> OpenError {
    tracing::warn!(error = %e, "a board could not be opened");
    OpenError::Unavailable("the server could not open this board".into())
}

impl Boards for BoardService {
    fn open(
        &self,
        visitor: Visitor,
        project_id: String,
    ) -> BoxFuture<'static, Result<BoardSession, OpenError>> {
        let this = self.clone();
        // On the server's runtime: the page's own thread runs only the page.
        let task = self
            .rt
            .spawn(async move { this.open_board(visitor, project_id).await });
        Box::pin(async move { task.await.unwrap_or_else(|e| Err(unavailable(e))) })
    }
}

impl BoardService {
    async fn open_board(
        self,
        visitor: Visitor,
        project_id: String,
    ) -> Result<BoardSession, OpenError> {
        if *self.feeds.closing().borrow() {
            return Err(OpenError::Unavailable("the server is stopping".into()));
        }
        let token = session_token(visitor.cookie.as_deref(), visitor.origin.as_deref())
            .ok_or(OpenError::SignedOut)?;
        let user = match self.auth.authenticate(&token).await {
            Ok((_, u)) => u,
            Err(AuthError::NotAuthenticated) => return Err(OpenError::SignedOut),
            Err(e) => return Err(unavailable(e)),
        };
        let (project, access) = match self.orgs.project_access(&user, &project_id).await {
            Ok(p) => p,
            Err(OrgsError::NotFound(_) | OrgsError::Forbidden(_)) => {
                return Err(OpenError::NotFound);
            }
            Err(e) => return Err(unavailable(e)),
        };
        // The page shows the document and its presence; it changes it by events.
        let access = access.reading_only();
        let conn = match self.gateways.connect(&access).await {
            Ok(c) => c,
            Err(GatewayError::Forbidden(_)) => return Err(OpenError::NotFound),
            Err(e) => return Err(unavailable(e)),
        };
        let org = self.orgs.org_of(&access).await.map_err(unavailable)?;
        // For the home page's recent boards; a failure here does not stop the board.
        if let Err(e) = self.orgs.record_visit(&user, &project.id).await {
            tracing::warn!(project = %project.id, error = %e, "the board visit could not be recorded");
        }
        let can = abilities(access.holds());
        let doc = self.feeds.subscribe(&project.org_id, &project.id);
        tracing::debug!(project = %project.id, user = %user.id, "board opened");
        let (peers_tx, peers) = watch::channel(Arc::new(Vec::new()));
        let (ended_tx, ended) = watch::channel(None);
        let (presence, presence_rx) = mpsc::channel(64);
        let me = Me {
            color: colour_of(&user.id),
            user_id: user.id.clone(),
            name: user.display_name.clone(),
        };
        let open = OpenBoard {
            service: self.clone(),
            token,
            user,
            access,
            client: ClientID::random(),
            clock: 0,
            others: HashMap::new(),
        };
        self.rt
            .spawn(open.serve(conn, presence_rx, peers_tx, ended_tx));
        Ok(BoardSession {
            project_id: project.id,
            project_name: project.name,
            org_id: org.id,
            org_name: org.name,
            me,
            can,
            doc,
            peers,
            ended,
            presence,
            service_url: self.service_url.clone(),
        })
    }
}

fn abilities(holds: &[&str]) -> Abilities {
    let has = |p: &str| holds.contains(&p);
    Abilities {
        edit: has(crate::gateway::modules::whiteboard::EDIT),
        save_points: has("gateway:history:create"),
        restore: has("gateway:history:restore"),
        settings: has("project:project:update") || has("project:members:manage"),
        views: has(crate::gateway::modules::whiteboard::VIEWS_MANAGE),
        containers: has(crate::gateway::modules::user_containers::CREATE),
        containers_manage: has(crate::gateway::modules::user_containers::DELETE),
    }
}

/// A stable, readable colour for a user (the gateway gives awareness states the same).
fn colour_of(user_id: &str) -> String {
    crate::gateway::colour_of(user_id)
}

/// An open page's presence: its client in the project, and the others it sees.
struct OpenBoard {
    service: BoardService,
    token: String,
    user: User,
    /// What the page may do in the project (reading only: it changes it by events).
    access: ProjectAccess,
    client: ClientID,
    clock: u32,
    /// The others' awareness states, by client id.
    others: HashMap<u64, Peer>,
}

impl OpenBoard {
    async fn serve(
        mut self,
        mut conn: Connection,
        mut presence: mpsc::Receiver<Presence>,
        peers: watch::Sender<Arc<Vec<Peer>>>,
        ended: watch::Sender<Option<Ended>>,
    ) {
        let mut revoked = self.service.auth.watch_revocations();
        let mut orgs_changed = self.service.orgs.watch_changes();
        let mut changed = false;
        let mut publish = tokio::time::interval(PEERS_EVERY);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Presence> = None;
        loop {
            tokio::select! {
                frame = conn.recv() => match frame {
                    Some(f) => changed |= self.read(&f),
                    None => {
                        match conn.closed() {
                            Some(c) if c == Close::PERMISSION_LOST || c == Close::DELETED => {
                                ended.send_replace(Some(Ended::NoAccess));
                                return;
                            }
                            Some(c) if c == Close::AUTH_EXPIRED => {
                                ended.send_replace(Some(Ended::SignedOut));
                                return;
                            }
                            _ => {}
                        }
                        // The project went away (a gateway stop): join again, as the others
                        // do, and say where this page is again.
                        self.others.clear();
                        changed = true;
                        match self.rejoin(&ended).await {
                            Some(c) => {
                                conn = c;
                                if let Some(p) = &last {
                                    let frame = self.awareness(p);
                                    conn.send(frame).await;
                                }
                            }
                            None => return,
                        }
                    }
                },
                p = presence.recv() => {
                    let Some(p) = p else {
                        // The page closed: leaving removes its presence for the others.
                        return;
                    };
                    let frame = self.awareness(&p);
                    last = Some(p);
                    if !conn.send(frame).await {
                        continue;
                    }
                }
                _ = publish.tick(), if changed => {
                    changed = false;
                    let mut list: Vec<Peer> = self.others.values().cloned().collect();
                    list.sort_by_key(|p| p.client);
                    peers.send_replace(Arc::new(list));
                }
                Ok(()) = revoked.changed() => {
                    if self.service.auth.authenticate(&self.token).await.is_err() {
                        ended.send_replace(Some(Ended::SignedOut));
                        return;
                    }
                }
                Ok(()) = orgs_changed.changed() => {
                    // The gateway closes the connection (4403) if reading is no longer allowed.
                    match self.service.orgs.project_access_again(&self.user, &self.access).await {
                        Some(now) => {
                            self.access = now.reading_only();
                            conn.set_access(&self.access).await;
                        }
                        None => {
                            ended.send_replace(Some(Ended::NoAccess));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Joins the project again after it went away (waits while the server is stopping).
    async fn rejoin(&self, ended: &watch::Sender<Option<Ended>>) -> Option<Connection> {
        let mut wait = Duration::from_millis(100);
        let closing = self.service.feeds.closing();
        loop {
            // The page went, or the server is stopping (joining would start the gateway
            // again).
            if ended.is_closed() || *closing.borrow() {
                return None;
            }
            let access = self
                .service
                .orgs
                .project_access_again(&self.user, &self.access)
                .await?
                .reading_only();
            match self.service.gateways.connect(&access).await {
                Ok(c) => return Some(c),
                Err(GatewayError::Forbidden(_)) => return None,
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Takes in the awareness of a frame; whether the others changed.
    fn read(&mut self, frame: &[u8]) -> bool {
        // The gateway sends one message a frame: document changes (0) are the feed's, not
        // this client's, and are not even decoded.
        if frame.first() == Some(&yrs::sync::protocol::MSG_SYNC) {
            return false;
        }
        let mut decoder = DecoderV1::from(frame);
        let mut changed = false;
        for msg in MessageReader::new(&mut decoder).flatten() {
            let Message::Awareness(update) = msg else {
                continue;
            };
            for (id, entry) in update.clients {
                let id = id.get();
                if id == self.client.get() {
                    continue;
                }
                match peer_of(id, &entry.json) {
                    Some(p) => {
                        if self.others.get(&id) != Some(&p) {
                            self.others.insert(id, p);
                            changed = true;
                        }
                    }
                    None => changed |= self.others.remove(&id).is_some(),
                }
            }
        }
        changed
    }

    /// This page's presence as an awareness frame.
    fn awareness(&mut self, p: &Presence) -> Vec<u8> {
        self.clock += 1;
        let state = json!({
            "cursor": p.cursor.map(|(x, y)| json!({"x": x, "y": y})),
            "selection": p.selection,
            "viewport": p.viewport.map(|v| json!({"x": v.x, "y": v.y, "w": v.w, "h": v.h})),
            "view": p.view,
        });
        let mut clients = HashMap::new();
        clients.insert(
            self.client,
            AwarenessUpdateEntry {
                clock: self.clock,
                json: Arc::from(state.to_string()),
            },
        );
        Message::Awareness(AwarenessUpdate { clients }).encode_v1()
    }
}

/// `#` and 3 to 8 hex digits (a colour a page can put in a style safely).
fn is_colour(c: &str) -> bool {
    c.len() >= 4
        && c.len() <= 9
        && c.starts_with('#')
        && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Someone's awareness state as a [`Peer`] (`None` for a client going away). Any Yjs client
/// may write anything there, so every field is optional.
fn peer_of(client: u64, json: &str) -> Option<Peer> {
    let v: Value = serde_json::from_str(json).ok()?;
    let o = v.as_object()?;
    let user = o.get("user")?;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).filter(|n| n.is_finite());
    let cursor = o.get("cursor").and_then(|c| match c {
        Value::Array(a) => Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?)),
        c => Some((num(c, "x")?, num(c, "y")?)),
    });
    let viewport = o.get("viewport").and_then(|v| {
        Some(Rect {
            x: num(v, "x")?,
            y: num(v, "y")?,
            w: num(v, "w")?,
            h: num(v, "h")?,
        })
    });
    let selection = o
        .get("selection")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .take(1000)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let s = |k: &str| user.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Peer {
        client,
        user_id: s("id")?,
        name: s("name").unwrap_or_else(|| "Someone".into()),
        color: s("color")
            .filter(|c| is_colour(c))
            .unwrap_or_else(|| "#868e96".into()),
        cursor,
        selection,
        viewport,
        view: o.get("view").and_then(Value::as_str).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awareness_states_from_any_client_read_safely() {
        let p = peer_of(
            7,
            r##"{"user":{"id":"u","name":"Ada","color":"#123456"},"cursor":{"x":1,"y":2},"selection":["a",3],"viewport":{"x":0,"y":0,"w":10,"h":5},"view":"main"}"##,
        )
        .expect("a peer");
        assert_eq!(p.cursor, Some((1.0, 2.0)));
        assert_eq!(p.selection, vec!["a"]);
        assert_eq!(p.viewport.map(|v| v.w), Some(10.0));
        let bare = peer_of(8, r#"{"user":{"id":"u"},"cursor":[5,6]}"#).expect("a peer");
        assert_eq!(
            (bare.name.as_str(), bare.cursor),
            ("Someone", Some((5.0, 6.0)))
        );
        assert!(peer_of(9, "null").is_none());
        assert!(
            peer_of(9, r#"{"cursor":{"x":1,"y":2}}"#).is_none(),
            "no user, no peer"
        );
        for bad in ["red;evil", "#0;x:y", "#", "#12345678901"] {
            let state = json!({"user": {"id": "u", "color": bad}}).to_string();
            assert_eq!(
                peer_of(9, &state).map(|p| p.color).as_deref(),
                Some("#868e96"),
                "{bad}"
            );
        }
        let http = Some("http://localhost:8080");
        let https = Some("https://team.example");
        assert_eq!(
            session_token(Some("a=1; demiurge_session=tok; b=2"), http).as_deref(),
            Some("tok")
        );
        assert_eq!(session_token(Some("a=1"), http), None);
        // Over HTTPS only the __Host- cookie counts (a neighbour could set the plain one).
        let both = Some("demiurge_session=planted; __Host-demiurge_session=real");
        assert_eq!(session_token(both, https).as_deref(), Some("real"));
        assert_eq!(session_token(Some("demiurge_session=planted"), https), None);
    }
}
