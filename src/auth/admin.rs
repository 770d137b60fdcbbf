//! What the instance admin may do to accounts. Every method takes an [`InstanceAdmin`],
//! which only [`Auth::instance_admin`] makes: the decision is here, not in the handlers.

use chrono::NaiveDateTime;

use super::{Auth, AuthError, ClientMeta, now};
use crate::audit::Kind;
use crate::db::accounts::User;
use crate::db::admin::{AuditQuery, AuditRow};
use crate::instance::{InstanceSettings, SettingsChange, SettingsError};

/// Proof that the signed-in user is the instance's administrator.
#[derive(Debug, Clone)]
pub struct InstanceAdmin {
    user: User,
}

impl InstanceAdmin {
    pub fn user(&self) -> &User {
        &self.user
    }
}

impl Auth {
    /// The user as instance admin; anyone else gets [`AuthError::NotAdmin`] (404: the admin
    /// routes do not exist for them).
    pub fn instance_admin(&self, user: &User) -> Result<InstanceAdmin, AuthError> {
        if user.is_admin && user.disabled_at.is_none() {
            Ok(InstanceAdmin { user: user.clone() })
        } else {
            Err(AuthError::NotAdmin)
        }
    }

    /// Every account whose username, name or email starts with `prefix`.
    pub async fn admin_users(
        &self,
        _admin: &InstanceAdmin,
        prefix: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>, AuthError> {
        Ok(self.db.all_users(prefix.trim(), limit, offset).await?)
    }

    async fn target(&self, id: &str) -> Result<User, AuthError> {
        self.db.user_by_id(id).await?.ok_or(AuthError::NoSuchUser)
    }

    /// Disables an account (its sessions end; its tokens stop working) or enables it again.
    pub async fn admin_set_disabled(
        &self,
        admin: &InstanceAdmin,
        id: &str,
        disabled: bool,
        meta: &ClientMeta,
    ) -> Result<User, AuthError> {
        let target = self.target(id).await?;
        if disabled && target.is_admin && self.db.count_admins().await? <= 1 {
            return Err(AuthError::LastAdmin);
        }
        let when: Option<NaiveDateTime> = disabled.then(now);
        self.db.set_user_disabled(id, when).await?;
        self.cache.forget_user(id);
        let (kind, verb) = if disabled {
            (Kind::AdminUserDisabled, "disabled")
        } else {
            (Kind::AdminUserEnabled, "enabled")
        };
        self.audit
            .record(
                kind,
                Some(&admin.user.id),
                Some(id),
                &meta.ip,
                format!("{} {verb} {}", admin.user.username, target.username),
            )
            .await;
        self.target(id).await
    }

    /// Makes an account an instance admin, or takes that away (never from the last one).
    pub async fn admin_set_admin(
        &self,
        admin: &InstanceAdmin,
        id: &str,
        is_admin: bool,
        meta: &ClientMeta,
    ) -> Result<User, AuthError> {
        let target = self.target(id).await?;
        if !is_admin && target.is_admin && self.db.count_admins().await? <= 1 {
            return Err(AuthError::LastAdmin);
        }
        self.db.set_user_admin(id, is_admin).await?;
        self.cache.forget_user(id);
        let (kind, what) = if is_admin {
            (Kind::AdminMadeAdmin, "made")
        } else {
            (Kind::AdminRevokedAdmin, "removed")
        };
        self.audit
            .record(
                kind,
                Some(&admin.user.id),
                Some(id),
                &meta.ip,
                format!(
                    "{} {what} {} {} instance administrator",
                    admin.user.username,
                    target.username,
                    if is_admin { "an" } else { "as" }
                ),
            )
            .await;
        self.target(id).await
    }

    /// Ends every session of an account (it signs in again); returns how many ended.
    pub async fn admin_end_sessions(
        &self,
        admin: &InstanceAdmin,
        id: &str,
        meta: &ClientMeta,
    ) -> Result<usize, AuthError> {
        let target = self.target(id).await?;
        let n = self.db.end_sessions_of(id).await?;
        self.cache.forget_user(id);
        self.audit
            .record(
                Kind::AdminEndedSessions,
                Some(&admin.user.id),
                Some(id),
                &meta.ip,
                format!(
                    "{} ended {n} session(s) of {}",
                    admin.user.username, target.username
                ),
            )
            .await;
        Ok(n)
    }

    /// Resets how an account signs in, for someone locked out (a lost phone or security
    /// key): removes its authenticator app and recovery codes and its passkeys, ends its
    /// sessions, and emails it a link to choose a new password. The password, linked
    /// provider accounts and personal access tokens stay.
    pub async fn admin_reset_sign_in(
        &self,
        admin: &InstanceAdmin,
        id: &str,
        meta: &ClientMeta,
    ) -> Result<SignInReset, AuthError> {
        let target = self.target(id).await?;
        let had_totp = self.db.totp_of(id).await?.is_some_and(|t| t.enabled);
        self.db.disable_totp(id).await?;
        let passkeys_removed = self.db.delete_passkeys_of(id).await?;
        let sessions_ended = self.db.end_sessions_of(id).await?;
        self.cache.forget_user(id);
        let link = self
            .send_email_link(&target.email, super::email_link::LinkPurpose::ResetPassword)
            .await;
        self.audit
            .record(
                Kind::AdminResetSignIn,
                Some(&admin.user.id),
                Some(id),
                &meta.ip,
                format!(
                    "{} reset the sign-in of {}: {}{passkeys_removed} passkey(s) removed, {sessions_ended} session(s) ended",
                    admin.user.username,
                    target.username,
                    if had_totp { "authenticator app removed, " } else { "" },
                ),
            )
            .await;
        Ok(SignInReset {
            second_factor_removed: had_totp,
            passkeys_removed,
            sessions_ended,
            link_sent_to: link.is_ok().then(|| target.email.clone()),
            link_error: link.err().map(|e| e.to_string()),
        })
    }

    /// The instance settings in force, and where each comes from.
    pub fn admin_settings(&self, _admin: &InstanceAdmin) -> InstanceSettings {
        self.instance.settings()
    }

    /// Changes the instance's name or sign-up setting (in force at once, kept across
    /// restarts).
    pub async fn admin_change_settings(
        &self,
        admin: &InstanceAdmin,
        change: &SettingsChange,
        meta: &ClientMeta,
    ) -> Result<InstanceSettings, AuthError> {
        let before = self.instance.settings();
        let after = self
            .instance
            .change(change, &admin.user.id)
            .await
            .map_err(|e| match e {
                SettingsError::Invalid(message) => AuthError::Invalid {
                    field: "name",
                    message,
                },
                SettingsError::Db(e) => e.into(),
            })?;
        let mut what = Vec::new();
        if after.name != before.name {
            what.push(format!(
                "renamed the instance from “{}” to “{}”",
                before.name, after.name
            ));
        }
        if after.open_signup != before.open_signup {
            what.push(if after.open_signup {
                "opened sign-up".into()
            } else {
                "closed sign-up".into()
            });
        }
        if !what.is_empty() {
            self.audit
                .record(
                    Kind::AdminSettingsChanged,
                    Some(&admin.user.id),
                    None,
                    &meta.ip,
                    format!("{} {}", admin.user.username, what.join(" and ")),
                )
                .await;
        }
        Ok(after)
    }

    /// The audit log, newest first.
    pub async fn admin_audit(
        &self,
        _admin: &InstanceAdmin,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRow>, AuthError> {
        Ok(self.db.audit(q).await?)
    }
}

/// What resetting an account's sign-in did.
#[derive(Debug, Clone)]
pub struct SignInReset {
    /// It had an authenticator app (now removed, with its recovery codes).
    pub second_factor_removed: bool,
    pub passkeys_removed: usize,
    pub sessions_ended: usize,
    /// Where the link to choose a new password went.
    pub link_sent_to: Option<String>,
    /// Why the link could not be sent.
    pub link_error: Option<String>,
}

/// What a test mail did.
#[derive(Debug, Clone)]
pub struct MailTest {
    pub sent: bool,
    /// The SMTP server's answer, or why nothing was sent.
    pub answer: String,
}

impl Auth {
    /// Sends a test mail to `to` and reports the SMTP server's answer (or its refusal).
    pub async fn admin_mail_test(
        &self,
        admin: &InstanceAdmin,
        to: &str,
    ) -> Result<MailTest, AuthError> {
        if !super::is_email_address(to) {
            return Err(AuthError::Invalid {
                field: "to",
                message: "not an email address".into(),
            });
        }
        let mail = crate::mail::Mail {
            to: to.to_string(),
            subject: format!("{}: a test mail", self.instance.name()),
            body: format!(
                "{} asked {} to send this test mail from the admin page. Mail works.\n",
                admin.user.username,
                self.instance.name()
            ),
        };
        Ok(match self.mailer.send_answered(&mail).await {
            Ok(Some(answer)) => MailTest { sent: true, answer },
            Ok(None) => MailTest {
                sent: false,
                answer: "not sent: [mail] url is empty, so mail goes to the server's log".into(),
            },
            Err(e) => MailTest {
                sent: false,
                answer: e.to_string(),
            },
        })
    }
}
