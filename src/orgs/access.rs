//! What the permission decision hands out: an [`OrgAccess`] or a [`ProjectAccess`], the
//! proof that one user may see one organization or project, with every permission they hold
//! there. Their fields are private to this module, so only [`super::Orgs`] makes them; the
//! gateway takes nothing else, and checks each operation's permission against the access
//! itself. A handler cannot reach an organization's gateway or a project's document with a
//! bare id.

use std::sync::Arc;

use crate::db::accounts::User;

/// The permission a project's document needs to be read (and a collaboration socket opened).
pub const CONTENT_READ: &str = "project:content:read";
/// The permission that lets a connection change the document directly.
pub const CONTENT_WRITE: &str = "project:content:write";

/// Who holds an access.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    User {
        id: String,
        name: String,
    },
    /// The server's own reader (the board feed behind the LiveView pages).
    Server,
}

/// One user's standing in one project, as the decision found it.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    holder: Holder,
    org_id: String,
    project_id: String,
    holds: Arc<[&'static str]>,
}

impl ProjectAccess {
    pub(super) fn user(
        user: &User,
        org_id: &str,
        project_id: &str,
        holds: Vec<&'static str>,
    ) -> Self {
        Self {
            holder: Holder::User {
                id: user.id.clone(),
                name: user.display_name.clone(),
            },
            org_id: org_id.to_string(),
            project_id: project_id.to_string(),
            holds: holds.into(),
        }
    }

    /// The server reading a project for itself: the board feed, whose copy goes only to pages
    /// whose own access allows reading. It holds reading and nothing else.
    pub fn server_reader(org_id: &str, project_id: &str) -> Self {
        Self {
            holder: Holder::Server,
            org_id: org_id.to_string(),
            project_id: project_id.to_string(),
            holds: Arc::from(vec![CONTENT_READ]),
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The user's id (`system:board` for the server's reader).
    pub fn user_id(&self) -> &str {
        match &self.holder {
            Holder::User { id, .. } => id,
            Holder::Server => "system:board",
        }
    }

    pub fn user_name(&self) -> &str {
        match &self.holder {
            Holder::User { name, .. } => name,
            Holder::Server => "Board",
        }
    }

    /// Every permission held in the project.
    pub fn holds(&self) -> &Arc<[&'static str]> {
        &self.holds
    }

    pub fn may(&self, permission: &str) -> bool {
        self.holds.contains(&permission)
    }

    /// The same access without direct writes (a page that only shows the document and its
    /// presence, and changes it by events).
    pub fn reading_only(&self) -> Self {
        Self {
            holds: self
                .holds
                .iter()
                .copied()
                .filter(|p| *p != CONTENT_WRITE)
                .collect(),
            ..self.clone()
        }
    }

    /// Whether this is a person (not the server's own reader).
    pub fn is_user(&self) -> bool {
        matches!(self.holder, Holder::User { .. })
    }
}

/// One user's standing in one organization.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    user_id: String,
    org_id: String,
    holds: Arc<[&'static str]>,
}

impl OrgAccess {
    pub(super) fn new(user: &User, org_id: &str, holds: Vec<&'static str>) -> Self {
        Self {
            user_id: user.id.clone(),
            org_id: org_id.to_string(),
            holds: holds.into(),
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn may(&self, permission: &str) -> bool {
        self.holds.contains(&permission)
    }
}
