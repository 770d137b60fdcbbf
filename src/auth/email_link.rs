//! One-time links by email: sign in, reset a forgotten password, verify the address.
//!
//! A link holds a random 256-bit secret; only its SHA-256 is stored. It works once, for 15
//! minutes. Asking for a link answers the same whether or not the address has an account:
//! the caller runs [`Auth::send_email_link`] detached from the request.

use super::{Auth, AuthError, ClientMeta, Opened, add, now, password, tokens};
use crate::db::accounts::User;
use crate::db::signin::EmailLink;
use crate::mail::Mail;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    SignIn,
    ResetPassword,
    VerifyEmail,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::ResetPassword => "reset_password",
            Self::VerifyEmail => "verify_email",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::SignIn, Self::ResetPassword, Self::VerifyEmail]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// What redeeming a link did.
#[derive(Debug)]
pub enum Redeemed {
    /// Signed in (a sign-in link, or a password reset); the session may still owe the second
    /// factor.
    Opened(Opened),
    /// The address is now verified.
    Verified(User),
}

impl Auth {
    /// Emails a link for `purpose` if an account has this address; does nothing (and says
    /// nothing) otherwise. Older unused links of the same purpose stop working.
    pub async fn send_email_link(
        &self,
        email: &str,
        purpose: LinkPurpose,
    ) -> Result<(), AuthError> {
        let email_lower = super::login_key(email);
        let Some(user) = self.db.user_by_email(&email_lower).await? else {
            tracing::info!(
                purpose = purpose.as_str(),
                "email link asked for an unknown address"
            );
            return Ok(());
        };
        self.db
            .delete_email_links(&user.id, purpose.as_str())
            .await?;
        let (secret, token_hash) = tokens::new_token();
        let t = now();
        self.db
            .insert_email_link(&EmailLink {
                id: tokens::public_id(),
                token_hash,
                purpose: purpose.as_str().into(),
                user_id: user.id.clone(),
                email: user.email.clone(),
                created_at: t,
                expires_at: add(t, self.config.email_link_lifetime),
                used_at: None,
            })
            .await?;
        let link = format!("{}auth/link?token={secret}", self.public_url);
        let (subject, what) = match purpose {
            LinkPurpose::SignIn => ("Your sign-in link", "sign in"),
            LinkPurpose::ResetPassword => ("Reset your password", "choose a new password"),
            LinkPurpose::VerifyEmail => ("Confirm your email address", "confirm this address"),
        };
        let body = format!(
            "Hello {name},\n\nOpen this link to {what} on {instance}:\n\n{link}\n\n\
             It works once, for the next {lifetime}. If you did not ask for it, ignore this \
             message; nothing changes.\n",
            name = user.display_name,
            instance = self.instance.name(),
            lifetime = humantime::format_duration(self.config.email_link_lifetime),
        );
        self.mailer
            .send(&Mail {
                to: user.email.clone(),
                subject: format!("{subject} ({})", self.instance.name()),
                body,
            })
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        tracing::info!(user = %user.id, purpose = purpose.as_str(), "email link sent");
        Ok(())
    }

    /// What a link is for, without using it (so a page can ask for a new password first).
    pub async fn email_link_purpose(&self, secret: &str) -> Result<LinkPurpose, AuthError> {
        if secret.is_empty() || secret.len() > 128 {
            return Err(AuthError::InvalidLink);
        }
        let (link, _) = self
            .db
            .email_link_unused_with_user(&tokens::hash(secret), now())
            .await?
            .ok_or(AuthError::InvalidLink)?;
        LinkPurpose::parse(&link.purpose).ok_or(AuthError::InvalidLink)
    }

    /// Uses a link once. A password reset needs `new_password` (checked before the link is
    /// used up, so a refused password does not burn it); it ends every other session.
    pub async fn redeem_email_link(
        &self,
        secret: &str,
        new_password: Option<&str>,
        meta: &ClientMeta,
    ) -> Result<Redeemed, AuthError> {
        if secret.is_empty() || secret.len() > 128 {
            return Err(AuthError::InvalidLink);
        }
        let hash = tokens::hash(secret);
        let t = now();
        let (pending, user) = self
            .db
            .email_link_unused_with_user(&hash, t)
            .await?
            .ok_or(AuthError::InvalidLink)?;
        let purpose = LinkPurpose::parse(&pending.purpose).ok_or(AuthError::InvalidLink)?;
        let new_hash = match purpose {
            LinkPurpose::ResetPassword => {
                let pw = new_password.ok_or(AuthError::Invalid {
                    field: "new_password",
                    message: "a password reset link needs the new password".into(),
                })?;
                if let Some(why) = password::policy_violation(pw, &user.username, &user.email) {
                    return Err(AuthError::WeakPassword(why));
                }
                Some(password::hash(pw).await?)
            }
            _ => None,
        };
        let Some((link, user)) = self.db.redeem_email_link(&hash, t).await? else {
            return Err(AuthError::InvalidLink);
        };
        // Whoever opened the link reads that mailbox.
        let proven = user.email.eq_ignore_ascii_case(&link.email);
        if proven && !user.email_verified {
            self.db
                .set_email_verified(&user.id, &user.email_lower)
                .await?;
        }
        let user = User {
            email_verified: user.email_verified || proven,
            ..user
        };
        self.cache.forget_user(&user.id);
        match purpose {
            LinkPurpose::VerifyEmail => {
                tracing::info!(user = %user.id, "email address verified");
                Ok(Redeemed::Verified(user))
            }
            LinkPurpose::SignIn => {
                let second = self.totp_enabled(&user.id).await?;
                tracing::info!(user = %user.id, "signed in by email link");
                Ok(Redeemed::Opened(
                    self.open_session(user, meta, second).await?,
                ))
            }
            LinkPurpose::ResetPassword => {
                if let Some(h) = new_hash {
                    self.db.set_password_hash(&user.id, &h).await?;
                }
                let ended = self.db.delete_other_sessions(&user.id, None).await?;
                tracing::info!(user = %user.id, sessions_ended = ended, "password reset by email link");
                self.end_tokens_after_reset(&user).await?;
                self.tell_owner(&user, "your password was reset with an emailed link");
                let second = self.totp_enabled(&user.id).await?;
                Ok(Redeemed::Opened(
                    self.open_session(user, meta, second).await?,
                ))
            }
        }
    }
}
