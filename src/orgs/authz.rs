//! The one decision: may this user do this action on this resource? Grants are compiled once
//! per user from their memberships and cached; a decision reads memory only. Any change to
//! memberships, roles or projects bumps a generation, which makes every cached grant stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::perms::{Builtin, Catalogue, Level, PermSet};
use crate::db::orgs::Memberships;

/// What an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Org(&'a str),
    Project { org: &'a str, project: &'a str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The user sees the resource but may not do this.
    Deny,
    /// The user may not even know the resource exists (answer 404).
    Hidden,
}

#[derive(Debug, Default)]
struct OrgGrant {
    set: Arc<PermSet>,
    owner: bool,
}

/// A user's compiled permissions.
#[derive(Debug, Default)]
pub struct Grants {
    orgs: HashMap<String, OrgGrant>,
    projects: HashMap<String, Arc<PermSet>>,
}

/// The compiled built-in roles, and the catalogue's levels.
#[derive(Debug)]
pub struct Compiler {
    catalogue: Catalogue,
    builtin: HashMap<&'static str, Arc<PermSet>>,
}

impl Compiler {
    pub fn new(catalogue: Catalogue) -> Self {
        let builtin = Builtin::ALL
            .into_iter()
            .map(|b| (b.key(), Arc::new(PermSet::new(catalogue.builtin(b)))))
            .collect();
        Self { catalogue, builtin }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Compiles memberships into grants. Unknown role keys grant nothing.
    pub fn compile(&self, m: &Memberships) -> Grants {
        let custom: HashMap<&str, Arc<PermSet>> = m
            .custom_roles
            .iter()
            .map(|r| {
                let patterns: Vec<String> =
                    serde_json::from_str(&r.permissions).unwrap_or_default();
                (
                    r.id.as_str(),
                    Arc::new(PermSet::new(patterns.iter().map(String::as_str))),
                )
            })
            .collect();
        let set_of = |key: &str| -> Arc<PermSet> {
            self.builtin
                .get(key)
                .or_else(|| custom.get(key))
                .cloned()
                .unwrap_or_default()
        };
        Grants {
            orgs: m
                .orgs
                .iter()
                .map(|(org, role)| {
                    (
                        org.clone(),
                        OrgGrant {
                            set: set_of(role),
                            owner: role == Builtin::OrgOwner.key(),
                        },
                    )
                })
                .collect(),
            projects: m
                .projects
                .iter()
                .map(|(project, _, role)| (project.clone(), set_of(role)))
                .collect(),
        }
    }

    /// The decision. Owner-level permissions are granted only to owners, whatever a custom
    /// role's patterns say.
    pub fn decide(&self, g: &Grants, action: &str, on: Resource<'_>) -> Decision {
        let owner_only = self
            .catalogue
            .get(action)
            .is_some_and(|d| d.level == Level::Owner);
        match on {
            Resource::Org(org) => {
                let Some(og) = g.orgs.get(org) else {
                    return Decision::Hidden;
                };
                if !og.set.allows("org:org:read") && !og.owner {
                    return Decision::Hidden;
                }
                if (owner_only && !og.owner) || !og.set.allows(action) {
                    Decision::Deny
                } else {
                    Decision::Allow
                }
            }
            Resource::Project { org, project } => {
                let Some(og) = g.orgs.get(org) else {
                    return Decision::Hidden;
                };
                let ps = g.projects.get(project);
                let has = |p: &str| og.set.allows(p) || ps.is_some_and(|s| s.allows(p));
                if !has("project:project:read") {
                    return Decision::Hidden;
                }
                if (owner_only && !og.owner) || !has(action) {
                    Decision::Deny
                } else {
                    Decision::Allow
                }
            }
        }
    }

    /// The built-in role's compiled set, if `key` names one.
    pub fn builtin_set(&self, key: &str) -> Option<Arc<PermSet>> {
        self.builtin.get(key).cloned()
    }

    /// The catalogue permissions that `set`, given as a role at `on`, would grant and that
    /// the holder of `g` does not hold there: what giving it would escalate. A role given in
    /// an organization reaches every project in it, so its project permissions count as
    /// held only when held organization-wide.
    pub fn beyond(&self, g: &Grants, set: &PermSet, on: Resource<'_>) -> Vec<&'static str> {
        self.catalogue
            .all()
            .iter()
            .filter(|d| set.allows(d.name))
            .filter(|d| match on {
                Resource::Org(org) => !g.orgs.get(org).is_some_and(|og| {
                    og.owner || (d.level != Level::Owner && og.set.allows(d.name))
                }),
                Resource::Project { .. } => {
                    d.scope == super::perms::Scope::Project
                        && self.decide(g, d.name, on) != Decision::Allow
                }
            })
            .map(|d| d.name)
            .collect()
    }

    /// Every catalogue permission of the resource's scope the user holds on it.
    pub fn permissions(&self, g: &Grants, on: Resource<'_>) -> Vec<&'static str> {
        let scope = match on {
            Resource::Org(_) => super::perms::Scope::Org,
            Resource::Project { .. } => super::perms::Scope::Project,
        };
        self.catalogue
            .all()
            .iter()
            .filter(|d| d.scope == scope && self.decide(g, d.name, on) == Decision::Allow)
            .map(|d| d.name)
            .collect()
    }
}

/// Cached grants per user, valid for one generation.
#[derive(Debug, Default)]
pub struct GrantCache {
    generation: AtomicU64,
    map: RwLock<HashMap<String, (u64, Arc<Grants>)>>,
}

impl GrantCache {
    pub fn get(&self, user_id: &str) -> Option<Arc<Grants>> {
        let now = self.generation.load(Ordering::Acquire);
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user_id)
            .filter(|(g, _)| *g == now)
            .map(|(_, grants)| grants.clone())
    }

    /// The generation to tag a grant loaded now with (read before loading).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn put(&self, user_id: &str, generation: u64, grants: Arc<Grants>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(user_id.to_string(), (generation, grants));
    }

    /// Something changed: every cached grant is stale.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::orgs::RoleRow;

    fn compiler() -> Compiler {
        Compiler::new(Catalogue::default())
    }

    fn m(
        orgs: &[(&str, &str)],
        projects: &[(&str, &str, &str)],
        custom: Vec<RoleRow>,
    ) -> Memberships {
        Memberships {
            orgs: orgs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            projects: projects
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
            custom_roles: custom,
        }
    }

    fn role(id: &str, perms: &[&str]) -> RoleRow {
        RoleRow {
            id: id.into(),
            org_id: "o".into(),
            name: id.into(),
            name_lower: id.into(),
            scope: "org".into(),
            description: String::new(),
            permissions: serde_json::to_string(perms).unwrap(),
            created_at: chrono::NaiveDateTime::default(),
        }
    }

    #[test]
    fn owners_admins_members_and_outsiders() {
        let c = compiler();
        let p = Resource::Project {
            org: "o",
            project: "p",
        };
        let owner = c.compile(&m(&[("o", "org:owner")], &[], vec![]));
        let admin = c.compile(&m(&[("o", "org:admin")], &[], vec![]));
        let member = c.compile(&m(&[("o", "org:member")], &[], vec![]));
        let outsider = c.compile(&m(&[("other", "org:owner")], &[], vec![]));
        assert_eq!(
            c.decide(&owner, "org:org:delete", Resource::Org("o")),
            Decision::Allow
        );
        assert_eq!(
            c.decide(&admin, "org:org:delete", Resource::Org("o")),
            Decision::Deny
        );
        assert_eq!(
            c.decide(&admin, "org:members:manage", Resource::Org("o")),
            Decision::Allow
        );
        assert_eq!(
            c.decide(&admin, "project:project:delete", p),
            Decision::Allow,
            "admins act on every project"
        );
        assert_eq!(
            c.decide(&member, "org:projects:create", Resource::Org("o")),
            Decision::Allow
        );
        assert_eq!(
            c.decide(&member, "org:members:manage", Resource::Org("o")),
            Decision::Deny
        );
        assert_eq!(
            c.decide(&member, "project:project:read", p),
            Decision::Hidden,
            "not a project member"
        );
        assert_eq!(
            c.decide(&outsider, "org:org:read", Resource::Org("o")),
            Decision::Hidden
        );
        assert_eq!(
            c.decide(&outsider, "project:project:read", p),
            Decision::Hidden
        );
    }

    #[test]
    fn project_roles_apply_to_their_project_only() {
        let c = compiler();
        let g = c.compile(&m(
            &[("o", "org:member")],
            &[("p", "o", "project:viewer"), ("q", "o", "project:editor")],
            vec![],
        ));
        let p = Resource::Project {
            org: "o",
            project: "p",
        };
        let q = Resource::Project {
            org: "o",
            project: "q",
        };
        assert_eq!(c.decide(&g, "project:content:read", p), Decision::Allow);
        assert_eq!(c.decide(&g, "project:content:write", p), Decision::Deny);
        assert_eq!(c.decide(&g, "project:content:write", q), Decision::Allow);
        assert_eq!(c.decide(&g, "project:members:manage", q), Decision::Deny);
        assert_eq!(
            c.decide(&g, "org:members:manage", Resource::Org("o")),
            Decision::Deny
        );
        assert_eq!(
            c.decide(
                &g,
                "project:content:read",
                Resource::Project {
                    org: "o",
                    project: "r"
                }
            ),
            Decision::Hidden
        );
    }

    #[test]
    fn custom_roles_use_patterns_but_never_owner_permissions() {
        let c = compiler();
        let auditor = role("r1", &["org:*:read", "*:*:read"]);
        let everything = role("r2", &["*:*:*"]);
        let g = c.compile(&m(&[("o", "r1")], &[], vec![auditor]));
        let p = Resource::Project {
            org: "o",
            project: "p",
        };
        assert_eq!(c.decide(&g, "project:content:read", p), Decision::Allow);
        assert_eq!(c.decide(&g, "project:content:write", p), Decision::Deny);
        assert_eq!(
            c.decide(&g, "org:members:read", Resource::Org("o")),
            Decision::Allow
        );
        let g = c.compile(&m(&[("o", "r2")], &[], vec![everything]));
        assert_eq!(
            c.decide(&g, "org:members:manage", Resource::Org("o")),
            Decision::Allow
        );
        assert_eq!(
            c.decide(&g, "org:org:delete", Resource::Org("o")),
            Decision::Deny
        );
        assert_eq!(
            c.decide(&g, "org:ownership:transfer", Resource::Org("o")),
            Decision::Deny
        );
        // An unknown role key grants nothing (and hides the organization).
        let g = c.compile(&m(&[("o", "gone")], &[], vec![]));
        assert_eq!(
            c.decide(&g, "org:org:read", Resource::Org("o")),
            Decision::Hidden
        );
    }

    #[test]
    fn cache_goes_stale_on_any_change() {
        let cache = GrantCache::default();
        let gen0 = cache.generation();
        cache.put("u", gen0, Arc::new(Grants::default()));
        assert!(cache.get("u").is_some());
        cache.invalidate();
        assert!(cache.get("u").is_none());
    }
}
