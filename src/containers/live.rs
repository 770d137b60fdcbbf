//! What the server knows of each enrolled container's agent right now: its control
//! connections, when it last reported, and what it last reported. The state shown in the
//! project (`connecting` → `running` → `stale`) is derived from these timestamps by
//! [`Live::due`], as Coder does; nothing depends on the agent saying goodbye.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::gateway::modules::user_containers::{Resources, State, Tunnel};

/// Resource figures reach the document at most this often (state changes at once).
pub const RESOURCES_EVERY: Duration = Duration::from_secs(30);

struct Agent {
    org_id: String,
    project_id: String,
    /// Open control connections (an agent that reconnects may briefly hold two).
    connections: usize,
    /// Since when the server watches it (start, or enrollment).
    since: Instant,
    connected_at: Option<Instant>,
    /// The last heartbeat.
    last_seen: Option<Instant>,
    resources: Option<Resources>,
    health: BTreeMap<String, bool>,
    /// How the network reaches it (none while the VPN is off).
    tunnel: Option<Tunnel>,
    /// What the document was last told.
    reported: Option<State>,
    reported_health: BTreeMap<String, bool>,
    reported_tunnel: Option<Tunnel>,
    resources_reported: Option<Instant>,
    resources_new: bool,
    /// Cancelled when the container is deleted: its control connections end.
    gone: CancellationToken,
}

impl Agent {
    /// Just watched: no connection, no report yet.
    fn new(org_id: &str, project_id: &str) -> Agent {
        Agent {
            org_id: org_id.to_string(),
            project_id: project_id.to_string(),
            connections: 0,
            since: Instant::now(),
            connected_at: None,
            last_seen: None,
            resources: None,
            health: BTreeMap::new(),
            tunnel: None,
            reported: None,
            reported_health: BTreeMap::new(),
            reported_tunnel: None,
            resources_reported: None,
            resources_new: false,
            gone: CancellationToken::new(),
        }
    }
}

/// A report for the document: `(org, project, event)`.
pub type Report = (String, String, Value);

#[derive(Default)]
pub struct Live {
    agents: Mutex<HashMap<String, Agent>>,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Agent>> {
        self.agents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts watching a container (at server start, or when its agent enrolls).
    pub fn watch(&self, id: &str, org_id: &str, project_id: &str) {
        self.lock()
            .entry(id.to_string())
            .or_insert_with(|| Agent::new(org_id, project_id));
    }

    /// A control connection opened; the token ends it when the container is deleted.
    pub fn connected(&self, id: &str, org_id: &str, project_id: &str) -> CancellationToken {
        self.watch(id, org_id, project_id);
        let mut agents = self.lock();
        match agents.get_mut(id) {
            Some(a) => {
                a.connections += 1;
                a.connected_at = Some(Instant::now());
                a.gone.clone()
            }
            None => CancellationToken::new(),
        }
    }

    pub fn disconnected(&self, id: &str) {
        if let Some(a) = self.lock().get_mut(id) {
            a.connections = a.connections.saturating_sub(1);
        }
    }

    pub fn heartbeat(
        &self,
        id: &str,
        resources: Option<Resources>,
        health: BTreeMap<String, bool>,
        tunnel: Option<Tunnel>,
    ) {
        if let Some(a) = self.lock().get_mut(id) {
            a.last_seen = Some(Instant::now());
            if tunnel.is_some() {
                a.tunnel = tunnel;
            }
            if resources.is_some() {
                a.resources = resources;
                a.resources_new = true;
            }
            a.health = health;
        }
    }

    /// Stops watching a deleted container and ends its control connections.
    pub fn forget(&self, id: &str) {
        if let Some(a) = self.lock().remove(id) {
            a.gone.cancel();
        }
    }

    /// Whether the container's agent is running (heartbeats arrive), by the same rule as the
    /// reports.
    pub fn is_running(&self, id: &str, stale_after: Duration) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|a| state_of(a, Instant::now(), stale_after) == Some(State::Running))
    }

    /// The reports due now, marked as sent. A report that cannot be delivered is asked for
    /// again by [`Self::unsent`].
    pub fn due(&self, stale_after: Duration) -> Vec<(String, Report)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, a) in self.lock().iter_mut() {
            let mut event = serde_json::Map::new();
            if let Some(s) = state_of(a, now, stale_after)
                && a.reported != Some(s)
            {
                a.reported = Some(s);
                event.insert("state".into(), json!(s));
            }
            if a.health != a.reported_health && a.reported == Some(State::Running) {
                a.reported_health = a.health.clone();
                event.insert("health".into(), json!(a.health));
            }
            if a.tunnel != a.reported_tunnel && a.reported == Some(State::Running) {
                a.reported_tunnel = a.tunnel;
                event.insert("tunnel".into(), json!(a.tunnel));
            }
            let resources_due = a.resources_new
                && (!event.is_empty()
                    || a.resources_reported
                        .is_none_or(|t| now.duration_since(t) >= RESOURCES_EVERY));
            if resources_due && let Some(r) = &a.resources {
                a.resources_new = false;
                a.resources_reported = Some(now);
                event.insert("resources".into(), json!(r));
            }
            if event.is_empty() {
                continue;
            }
            event.insert("type".into(), json!("user-containers:report"));
            event.insert("id".into(), json!(id));
            out.push((
                id.clone(),
                (a.org_id.clone(), a.project_id.clone(), Value::Object(event)),
            ));
        }
        out
    }

    /// A report was not delivered: send the state again at the next round.
    pub fn unsent(&self, id: &str) {
        if let Some(a) = self.lock().get_mut(id) {
            a.reported = None;
            a.reported_health.clear();
            a.reported_tunnel = None;
            a.resources_new = a.resources.is_some();
        }
    }
}

/// The state the timestamps say, if there is one to report yet.
fn state_of(a: &Agent, now: Instant, stale_after: Duration) -> Option<State> {
    let fresh = |t: Instant| now.duration_since(t) < stale_after;
    if a.last_seen.is_some_and(fresh) {
        return Some(State::Running);
    }
    if a.connections > 0 && a.connected_at.is_some_and(fresh) {
        return Some(State::Connecting);
    }
    if a.last_seen.is_none() && a.connected_at.is_none() && fresh(a.since) {
        return None;
    }
    Some(State::Stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent::new("o", "p")
    }

    #[test]
    fn states_follow_the_timestamps() {
        let stale = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut a = agent();
        a.since = t0;
        // Just started watching, nobody connected: nothing to say yet.
        assert_eq!(state_of(&a, t0, stale), None);
        // Never came back after a restart.
        assert_eq!(state_of(&a, t0 + stale, stale), Some(State::Stale));
        a.connections = 1;
        a.connected_at = Some(t0);
        assert_eq!(state_of(&a, t0, stale), Some(State::Connecting));
        a.last_seen = Some(t0 + Duration::from_secs(1));
        assert_eq!(
            state_of(&a, t0 + Duration::from_secs(2), stale),
            Some(State::Running)
        );
        // Heartbeats stop, the connection still open (a hung agent): stale.
        assert_eq!(
            state_of(&a, t0 + Duration::from_secs(5), stale),
            Some(State::Stale)
        );
        // Connection gone without goodbye: stale once the heartbeat is old, not before.
        a.connections = 0;
        assert_eq!(
            state_of(&a, t0 + Duration::from_secs(2), stale),
            Some(State::Running)
        );
        assert_eq!(
            state_of(&a, t0 + Duration::from_secs(4), stale),
            Some(State::Stale)
        );
    }

    #[test]
    fn reports_are_sent_once_per_change() {
        let live = Live::default();
        let stale = Duration::from_secs(3);
        live.connected("c", "o", "p");
        let r = live.due(stale);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1.2["state"], "connecting");
        assert!(live.due(stale).is_empty(), "nothing new");
        live.heartbeat(
            "c",
            Some(Resources {
                cpu_percent: Some(1.0),
                memory_bytes: Some(10),
                disk_bytes: None,
            }),
            BTreeMap::from([("lab".into(), true)]),
            Some(Tunnel::Relay),
        );
        let r = live.due(stale);
        assert_eq!(r[0].1.2["state"], "running");
        assert_eq!(r[0].1.2["health"]["lab"], true);
        assert_eq!(r[0].1.2["tunnel"], "relay");
        assert_eq!(r[0].1.2["resources"]["memory_bytes"], 10);
        // Resources again within 30 s are held back.
        live.heartbeat(
            "c",
            Some(Resources {
                cpu_percent: Some(2.0),
                memory_bytes: Some(11),
                disk_bytes: None,
            }),
            BTreeMap::from([("lab".into(), true)]),
            None,
        );
        assert!(live.due(stale).is_empty(), "no tunnel news keeps the last");
        live.heartbeat(
            "c",
            None,
            BTreeMap::from([("lab".into(), true)]),
            Some(Tunnel::Udp),
        );
        assert_eq!(live.due(stale)[0].1.2["tunnel"], "udp");
        live.unsent("c");
        assert_eq!(live.due(stale)[0].1.2["state"], "running");
        let gone = live.connected("c", "o", "p");
        live.forget("c");
        assert!(gone.is_cancelled());
        assert!(live.due(stale).is_empty());
    }
}
