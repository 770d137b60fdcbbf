//! The audit log of security events: sign-ins and failed sign-ins, failed second steps,
//! tokens made, role changes and instance-admin actions. Writing an event never fails the
//! action it records (a failure is logged); nothing secret is ever written.

use chrono::SubsecRound;

use crate::db::Db;
use crate::db::admin::AuditRow;

/// What happened, as the log and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SignIn,
    SignInFailed,
    SecondFactorFailed,
    TokenCreated,
    MemberAdded,
    RoleChanged,
    MemberRemoved,
    AdminUserDisabled,
    AdminUserEnabled,
    AdminMadeAdmin,
    AdminRevokedAdmin,
    AdminEndedSessions,
    AdminResetSignIn,
    AdminSettingsChanged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign_in",
            Kind::SignInFailed => "sign_in_failed",
            Kind::SecondFactorFailed => "second_factor_failed",
            Kind::TokenCreated => "token_created",
            Kind::MemberAdded => "member_added",
            Kind::RoleChanged => "role_changed",
            Kind::MemberRemoved => "member_removed",
            Kind::AdminUserDisabled => "admin.user_disabled",
            Kind::AdminUserEnabled => "admin.user_enabled",
            Kind::AdminMadeAdmin => "admin.made_admin",
            Kind::AdminRevokedAdmin => "admin.revoked_admin",
            Kind::AdminEndedSessions => "admin.ended_sessions",
            Kind::AdminResetSignIn => "admin.reset_sign_in",
            Kind::AdminSettingsChanged => "admin.settings_changed",
        }
    }

    /// Every kind, for the API document.
    pub const ALL: [Kind; 14] = [
        Kind::SignIn,
        Kind::SignInFailed,
        Kind::SecondFactorFailed,
        Kind::TokenCreated,
        Kind::MemberAdded,
        Kind::RoleChanged,
        Kind::MemberRemoved,
        Kind::AdminUserDisabled,
        Kind::AdminUserEnabled,
        Kind::AdminMadeAdmin,
        Kind::AdminRevokedAdmin,
        Kind::AdminEndedSessions,
        Kind::AdminResetSignIn,
        Kind::AdminSettingsChanged,
    ];
}

#[derive(Clone)]
pub struct Audit {
    db: Db,
}

impl Audit {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records one event: `actor` did `kind` (about `target`) from `ip`; `detail` is a
    /// sentence for people.
    pub async fn record(
        &self,
        kind: Kind,
        actor: Option<&str>,
        target: Option<&str>,
        ip: &str,
        detail: String,
    ) {
        let row = AuditRow {
            id: uuid::Uuid::new_v4().simple().to_string(),
            at: chrono::Utc::now().trunc_subsecs(3).naive_utc(),
            kind: kind.as_str().to_string(),
            actor_id: actor.map(str::to_string),
            target: target.map(str::to_string),
            ip: ip.chars().take(64).collect(),
            detail: detail.chars().take(300).collect(),
        };
        if let Err(e) = self.db.insert_audit(&row).await {
            tracing::warn!(error = %e, kind = kind.as_str(), "an audit event could not be written");
        }
    }
}
