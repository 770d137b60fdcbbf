//! Permissions: strings `module:resource:action`; patterns with `*` for any one segment;
//! the catalogue modules register; the built-in roles; and [`PermSet`], the compiled form a
//! decision reads (no allocation, no database).

use std::collections::HashMap;

/// Where a permission applies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The organization itself (members, roles, settings).
    Org,
    /// One project (its settings, members and content).
    Project,
}

/// How much a permission allows; the built-in roles are cut along these lines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// See.
    Read,
    /// Change content.
    Write,
    /// Change settings, members, roles.
    Manage,
    /// Only owners, whatever a custom role says (delete the organization, move ownership).
    Owner,
}

/// One permission a module declares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermissionDef {
    pub name: &'static str,
    pub description: &'static str,
    pub scope: Scope,
    pub level: Level,
}

const fn def(
    name: &'static str,
    scope: Scope,
    level: Level,
    description: &'static str,
) -> PermissionDef {
    PermissionDef {
        name,
        description,
        scope,
        level,
    }
}

/// The permissions of the organization and project model itself (module `org`/`project`).
pub const CORE: &[PermissionDef] = &[
    def(
        "org:org:read",
        Scope::Org,
        Level::Read,
        "See the organization and its members",
    ),
    def(
        "org:org:update",
        Scope::Org,
        Level::Manage,
        "Rename the organization",
    ),
    def(
        "org:org:delete",
        Scope::Org,
        Level::Owner,
        "Delete the organization and everything in it",
    ),
    def(
        "org:ownership:transfer",
        Scope::Org,
        Level::Owner,
        "Make someone an owner, or change an owner's role",
    ),
    def(
        "org:members:read",
        Scope::Org,
        Level::Read,
        "List the members and their roles",
    ),
    def(
        "org:members:manage",
        Scope::Org,
        Level::Manage,
        "Add, invite and remove members; change their roles",
    ),
    def(
        "org:roles:read",
        Scope::Org,
        Level::Read,
        "See the roles and their permissions",
    ),
    def(
        "org:roles:manage",
        Scope::Org,
        Level::Manage,
        "Create, edit and delete custom roles",
    ),
    def(
        "org:projects:create",
        Scope::Org,
        Level::Write,
        "Create projects",
    ),
    def(
        "org:containers:manage",
        Scope::Org,
        Level::Manage,
        "Manage the organization's containers",
    ),
    def(
        "project:project:read",
        Scope::Project,
        Level::Read,
        "See the project",
    ),
    def(
        "project:project:update",
        Scope::Project,
        Level::Manage,
        "Rename the project",
    ),
    def(
        "project:project:delete",
        Scope::Project,
        Level::Manage,
        "Delete the project",
    ),
    def(
        "project:members:read",
        Scope::Project,
        Level::Read,
        "List the project's members",
    ),
    def(
        "project:members:manage",
        Scope::Project,
        Level::Manage,
        "Add and remove project members; change their roles",
    ),
    def(
        "project:content:read",
        Scope::Project,
        Level::Read,
        "Read the project's content",
    ),
    def(
        "project:content:write",
        Scope::Project,
        Level::Write,
        "Change the project's content",
    ),
];

/// Why a permission pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("`{0}`: a permission has three parts, module:resource:action")]
    Segments(String),
    #[error("`{0}`: each part is lowercase letters, digits, `-`, `_`, or `*` alone")]
    Characters(String),
}

fn segment_ok(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.len() <= 40
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
}

/// Checks a pattern (`org:members:*`, `*:*:read`, ...). Case matters: parts are lowercase.
pub fn validate_pattern(p: &str) -> Result<(), PatternError> {
    let parts: Vec<&str> = p.split(':').collect();
    if parts.len() != 3 {
        return Err(PatternError::Segments(p.chars().take(80).collect()));
    }
    if !parts.iter().all(|s| segment_ok(s)) {
        return Err(PatternError::Characters(p.chars().take(80).collect()));
    }
    Ok(())
}

/// Does `pattern` cover `permission`? Both have three parts; `*` matches one whole part.
pub fn matches(pattern: &str, permission: &str) -> bool {
    let mut p = pattern.split(':');
    let mut q = permission.split(':');
    for _ in 0..3 {
        match (p.next(), q.next()) {
            (Some(a), Some(b)) if !b.is_empty() && (a == "*" || a == b) => {}
            _ => return false,
        }
    }
    p.next().is_none() && q.next().is_none()
}

/// The permissions every module declared, by name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    defs: Vec<PermissionDef>,
    index: HashMap<&'static str, usize>,
}

impl Default for Catalogue {
    fn default() -> Self {
        let mut c = Self {
            defs: Vec::new(),
            index: HashMap::new(),
        };
        c.register(CORE);
        c
    }
}

impl Catalogue {
    /// Adds a module's permissions (a name registered twice keeps the first).
    pub fn register(&mut self, defs: &[PermissionDef]) {
        for d in defs {
            if !self.index.contains_key(d.name) {
                self.index.insert(d.name, self.defs.len());
                self.defs.push(d.clone());
            }
        }
    }

    pub fn all(&self) -> &[PermissionDef] {
        &self.defs
    }

    pub fn get(&self, name: &str) -> Option<&PermissionDef> {
        self.index.get(name).map(|&i| &self.defs[i])
    }

    /// The names a built-in role holds.
    pub fn builtin(&self, role: Builtin) -> Vec<&'static str> {
        self.defs
            .iter()
            .filter(|d| role.holds(d))
            .map(|d| d.name)
            .collect()
    }
}

/// The roles that exist in every organization without setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    OrgOwner,
    OrgAdmin,
    OrgMember,
    ProjectAdmin,
    ProjectEditor,
    ProjectViewer,
}

impl Builtin {
    pub const ALL: [Builtin; 6] = [
        Self::OrgOwner,
        Self::OrgAdmin,
        Self::OrgMember,
        Self::ProjectAdmin,
        Self::ProjectEditor,
        Self::ProjectViewer,
    ];

    /// The key stored in memberships.
    pub fn key(self) -> &'static str {
        match self {
            Self::OrgOwner => "org:owner",
            Self::OrgAdmin => "org:admin",
            Self::OrgMember => "org:member",
            Self::ProjectAdmin => "project:admin",
            Self::ProjectEditor => "project:editor",
            Self::ProjectViewer => "project:viewer",
        }
    }

    pub fn from_key(k: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.key() == k)
    }

    pub fn scope(self) -> Scope {
        match self {
            Self::OrgOwner | Self::OrgAdmin | Self::OrgMember => Scope::Org,
            _ => Scope::Project,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OrgOwner => "Owner",
            Self::OrgAdmin => "Admin",
            Self::OrgMember => "Member",
            Self::ProjectAdmin => "Project admin",
            Self::ProjectEditor => "Editor",
            Self::ProjectViewer => "Viewer",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::OrgOwner => {
                "Everything, including deleting the organization and moving ownership"
            }
            Self::OrgAdmin => {
                "Manage members, projects, roles and containers; act on every project"
            }
            Self::OrgMember => "See the organization and create projects",
            Self::ProjectAdmin => "Everything in the project: settings, members, content",
            Self::ProjectEditor => "Read and change the project's content",
            Self::ProjectViewer => "Read the project",
        }
    }

    fn holds(self, d: &PermissionDef) -> bool {
        match self {
            Self::OrgOwner => true,
            Self::OrgAdmin => d.level < Level::Owner,
            Self::OrgMember => d.scope == Scope::Org && d.level <= Level::Write,
            Self::ProjectAdmin => d.scope == Scope::Project && d.level < Level::Owner,
            Self::ProjectEditor => d.scope == Scope::Project && d.level <= Level::Write,
            Self::ProjectViewer => d.scope == Scope::Project && d.level == Level::Read,
        }
    }
}

/// A set of permission patterns compiled for matching: a three-level trie where `*` is one
/// more child. A lookup walks at most 2³ paths.
#[derive(Debug, Default, Clone)]
pub struct PermSet {
    root: Node,
}

#[derive(Debug, Default, Clone)]
struct Node {
    children: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    terminal: bool,
}

impl PermSet {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = Self::default();
        for p in patterns {
            s.insert(p);
        }
        s
    }

    /// Adds a pattern; malformed ones (not three parts) are ignored.
    pub fn insert(&mut self, pattern: &str) {
        if pattern.split(':').count() != 3 {
            return;
        }
        let mut node = &mut self.root;
        for seg in pattern.split(':') {
            node = if seg == "*" {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.children.entry(seg.into()).or_default()
            };
        }
        node.terminal = true;
    }

    pub fn extend(&mut self, other: &PermSet) {
        merge(&mut self.root, &other.root);
    }

    /// Does any pattern cover `permission`?
    pub fn allows(&self, permission: &str) -> bool {
        let mut segs = permission.split(':');
        let (Some(a), Some(b), Some(c), None) =
            (segs.next(), segs.next(), segs.next(), segs.next())
        else {
            return false;
        };
        if a.is_empty() || b.is_empty() || c.is_empty() {
            return false;
        }
        walk(&self.root, &[a, b, c])
    }

    pub fn is_empty(&self) -> bool {
        self.root.children.is_empty() && self.root.star.is_none()
    }
}

fn merge(into: &mut Node, from: &Node) {
    into.terminal |= from.terminal;
    for (k, child) in &from.children {
        merge(into.children.entry(k.clone()).or_default(), child);
    }
    if let Some(s) = &from.star {
        merge(into.star.get_or_insert_with(Box::default), s);
    }
}

fn walk(node: &Node, rest: &[&str]) -> bool {
    let Some((first, tail)) = rest.split_first() else {
        return node.terminal;
    };
    if let Some(child) = node.children.get(*first)
        && walk(child, tail)
    {
        return true;
    }
    match &node.star {
        Some(s) => walk(s, tail),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_need_three_lowercase_parts() {
        for ok in ["org:members:read", "*:*:*", "core-graph:node:*", "a_b:*:x1"] {
            assert_eq!(validate_pattern(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "org",
            "org:members",
            "org:members:read:extra",
            "org::read",
            ":a:b",
            "a:b:",
        ] {
            assert!(
                matches!(
                    validate_pattern(bad),
                    Err(PatternError::Segments(_) | PatternError::Characters(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_pattern("org:members"),
            Err(PatternError::Segments(_))
        ));
        assert!(matches!(
            validate_pattern("Org:members:read"),
            Err(PatternError::Characters(_))
        ));
        assert!(matches!(
            validate_pattern("org:mem*:read"),
            Err(PatternError::Characters(_))
        ));
        assert!(matches!(
            validate_pattern("org:members:re ad"),
            Err(PatternError::Characters(_))
        ));
    }

    #[test]
    fn wildcards_match_one_whole_segment() {
        assert!(matches("*:*:*", "org:members:read"));
        assert!(matches("org:*:read", "org:members:read"));
        assert!(!matches("org:*:read", "org:members:manage"));
        assert!(
            !matches("*:*", "org:members:read"),
            "two parts never match three"
        );
        assert!(!matches("*:*:*:*", "org:members:read"));
        assert!(!matches("*:*:*", "org:members"));
        assert!(
            !matches("org:members:read", "ORG:members:read"),
            "case matters"
        );
        assert!(
            !matches("org:members:*", "org:members:"),
            "an empty part is not an action"
        );
        assert!(matches("org:members:*", "org:members:x"));
    }

    #[test]
    fn permset_agrees_with_matches() {
        let patterns = [
            "org:*:read",
            "project:content:*",
            "*:node:create",
            "chats:message:send",
        ];
        let set = PermSet::new(patterns);
        let probes = [
            "org:members:read",
            "org:members:manage",
            "project:content:write",
            "project:project:read",
            "core-graph:node:create",
            "core-graph:edge:create",
            "chats:message:send",
            "chats:message:edit",
            "org:members",
            "org:members:read:x",
            "",
            "ORG:members:read",
            "org::read",
            "chats:message:",
        ];
        for p in probes {
            let expected = patterns.iter().any(|pat| matches(pat, p));
            assert_eq!(set.allows(p), expected, "{p}");
        }
        let mut merged = PermSet::new(["org:org:read"]);
        merged.extend(&set);
        assert!(merged.allows("org:org:read") && merged.allows("chats:message:send"));
        assert!(PermSet::default().is_empty() && !merged.is_empty());
    }

    #[test]
    fn builtin_roles_are_cut_by_scope_and_level() {
        let c = Catalogue::default();
        let owner = c.builtin(Builtin::OrgOwner);
        let admin = c.builtin(Builtin::OrgAdmin);
        let member = c.builtin(Builtin::OrgMember);
        assert_eq!(owner.len(), CORE.len());
        assert!(!admin.contains(&"org:org:delete") && !admin.contains(&"org:ownership:transfer"));
        assert!(admin.contains(&"org:members:manage") && admin.contains(&"project:project:delete"));
        assert_eq!(
            member,
            vec![
                "org:org:read",
                "org:members:read",
                "org:roles:read",
                "org:projects:create"
            ]
        );
        let viewer = c.builtin(Builtin::ProjectViewer);
        assert!(
            viewer
                .iter()
                .all(|p| p.ends_with(":read") && p.starts_with("project:"))
        );
        let editor = c.builtin(Builtin::ProjectEditor);
        assert!(
            editor.contains(&"project:content:write")
                && !editor.contains(&"project:members:manage")
        );
        let padmin = c.builtin(Builtin::ProjectAdmin);
        assert!(
            padmin.contains(&"project:members:manage")
                && !padmin.iter().any(|p| p.starts_with("org:"))
        );
    }

    #[test]
    fn modules_add_to_the_catalogue() {
        let mut c = Catalogue::default();
        c.register(&[def(
            "core-graph:node:create",
            Scope::Project,
            Level::Write,
            "Add nodes",
        )]);
        assert!(
            c.builtin(Builtin::ProjectEditor)
                .contains(&"core-graph:node:create")
        );
        assert!(
            !c.builtin(Builtin::ProjectViewer)
                .contains(&"core-graph:node:create")
        );
        assert_eq!(
            c.get("core-graph:node:create").map(|d| d.level),
            Some(Level::Write)
        );
    }
}
