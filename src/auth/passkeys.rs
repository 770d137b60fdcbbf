//! Passkeys (WebAuthn, through webauthn-rs): register several, name and delete them, sign in
//! with one alone (user verification required, so it counts as two factors), or use one as
//! the second step of a password sign-in. Ceremony state is kept server-side with expiry.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::{Auth, AuthError, ClientMeta, Opened, add, now, tokens};
use crate::db::DbError;
use crate::db::accounts::User;
use crate::db::signin::{Ceremony, PasskeyRow};

/// How long a person has to touch their authenticator.
const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);
const KIND_REGISTER: &str = "passkey_register";
const KIND_SIGN_IN: &str = "passkey_sign_in";
const KIND_SECOND: &str = "passkey_second_factor";

/// The relying party is the public URL's host; browsers refuse IP addresses there, so with
/// no name to use passkeys are off (and say why).
pub(super) fn build(public_url: &str, name: &str) -> Result<Option<Webauthn>, AuthError> {
    let url = Url::parse(public_url).map_err(|e| AuthError::Internal(e.to_string()))?;
    let Some(host) = url.host_str() else {
        return Ok(None);
    };
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        tracing::info!(
            "passkeys are off: the public URL {public_url} has no host name (set server.public_url)"
        );
        return Ok(None);
    }
    let origin = Url::parse(&url.origin().ascii_serialization())
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(WebauthnBuilder::new(host, &origin)
        .and_then(|b| b.rp_name(name).build())
        .map_err(|e| {
            tracing::warn!(error = %e, "passkeys are off");
        })
        .ok())
}

/// A ceremony in progress: the client sends `ceremony` back with the authenticator's answer.
#[derive(Debug, Serialize)]
pub struct Challenge<T> {
    pub ceremony: String,
    pub options: T,
}

#[derive(Serialize, Deserialize)]
struct RegisterState {
    name: String,
    reg: PasskeyRegistration,
}

fn failed(e: impl std::fmt::Display) -> AuthError {
    AuthError::PasskeyFailed(e.to_string())
}

fn validate_name(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid {
            field: "name",
            message: "1 to 64 characters, no control characters".into(),
        });
    }
    Ok(name.to_string())
}

fn parse_row(row: &PasskeyRow) -> Result<Passkey, AuthError> {
    serde_json::from_str(&row.passkey)
        .map_err(|e| AuthError::Internal(format!("stored passkey {} is unreadable: {e}", row.id)))
}

impl Auth {
    fn webauthn(&self) -> Result<&Webauthn, AuthError> {
        self.webauthn.as_ref().as_ref().ok_or_else(|| {
            AuthError::Unavailable(
                "passkeys need a host name in the public URL; set server.public_url".into(),
            )
        })
    }

    async fn put_ceremony(
        &self,
        kind: &str,
        user_id: Option<&str>,
        state: &impl Serialize,
    ) -> Result<String, AuthError> {
        let (handle, handle_hash) = tokens::new_token();
        let t = now();
        self.db
            .insert_ceremony(
                &Ceremony {
                    handle_hash,
                    kind: kind.into(),
                    user_id: user_id.map(str::to_string),
                    state: serde_json::to_string(state)
                        .map_err(|e| AuthError::Internal(e.to_string()))?,
                    expires_at: add(t, CEREMONY_LIFETIME),
                },
                t,
            )
            .await?;
        Ok(handle)
    }

    async fn take_ceremony<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        handle: &str,
    ) -> Result<(Option<String>, T), AuthError> {
        let gone = || {
            AuthError::PasskeyFailed("the ceremony expired or was already used; start again".into())
        };
        if handle.is_empty() || handle.len() > 128 {
            return Err(gone());
        }
        let c = self
            .db
            .take_ceremony(&tokens::hash(handle), kind, now())
            .await?
            .ok_or_else(gone)?;
        let state = serde_json::from_str(&c.state).map_err(|_| gone())?;
        Ok((c.user_id, state))
    }

    pub async fn passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRow>, AuthError> {
        Ok(self.db.passkeys_of(user_id).await?)
    }

    /// Starts registering a new passkey named `name` for `user`.
    pub async fn passkey_register_start(
        &self,
        user: &User,
        name: &str,
    ) -> Result<Challenge<CreationChallengeResponse>, AuthError> {
        let name = validate_name(name)?;
        let wa = self.webauthn()?;
        let existing = self.db.passkeys_of(&user.id).await?;
        if existing.iter().any(|p| p.name.eq_ignore_ascii_case(&name)) {
            return Err(AuthError::PasskeyNameTaken);
        }
        let exclude = existing
            .iter()
            .filter_map(|r| parse_row(r).ok())
            .map(|p| p.cred_id().clone())
            .collect::<Vec<_>>();
        let uuid = Uuid::parse_str(&user.id).map_err(failed)?;
        let (mut ccr, reg) = wa
            .start_passkey_registration(uuid, &user.username, &user.display_name, Some(exclude))
            .map_err(failed)?;
        // The name the authenticator shows is the instance's as it is now.
        ccr.public_key.rp.name = self.instance.name();
        // Ask for a discoverable credential where the authenticator can keep one, so the
        // passkey alone signs in (no username first).
        if let Some(sel) = ccr.public_key.authenticator_selection.as_mut() {
            sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Preferred);
        }
        let ceremony = self
            .put_ceremony(KIND_REGISTER, Some(&user.id), &RegisterState { name, reg })
            .await?;
        Ok(Challenge {
            ceremony,
            options: ccr,
        })
    }

    pub async fn passkey_register_finish(
        &self,
        user: &User,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
    ) -> Result<PasskeyRow, AuthError> {
        let wa = self.webauthn()?;
        let (owner, state): (_, RegisterState) =
            self.take_ceremony(KIND_REGISTER, ceremony).await?;
        if owner.as_deref() != Some(user.id.as_str()) {
            return Err(AuthError::PasskeyFailed(
                "this ceremony belongs to another session".into(),
            ));
        }
        let passkey = wa
            .finish_passkey_registration(credential, &state.reg)
            .map_err(failed)?;
        let row = PasskeyRow {
            id: tokens::public_id(),
            user_id: user.id.clone(),
            name: state.name,
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            passkey: serde_json::to_string(&passkey)
                .map_err(|e| AuthError::Internal(e.to_string()))?,
            created_at: now(),
            last_used_at: None,
        };
        self.db.insert_passkey(&row).await.map_err(|e| match e {
            DbError::Conflict(_) => AuthError::PasskeyNameTaken,
            other => other.into(),
        })?;
        tracing::info!(user = %user.id, passkey = %row.id, "passkey registered");
        self.tell_owner(user, &format!("a passkey \"{}\" was added", row.name));
        Ok(row)
    }

    pub async fn passkey_rename(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
    ) -> Result<(), AuthError> {
        let name = validate_name(name)?;
        match self.db.rename_passkey(user_id, id, &name).await {
            Ok(()) => Ok(()),
            Err(DbError::NotFound) => Err(AuthError::NoSuchPasskey),
            Err(DbError::Conflict(_)) => Err(AuthError::PasskeyNameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a passkey, if another way to sign in remains.
    pub async fn passkey_delete(&self, user: &User, id: &str) -> Result<(), AuthError> {
        let mine = self.db.passkeys_of(&user.id).await?;
        if !mine.iter().any(|p| p.id == id) {
            return Err(AuthError::NoSuchPasskey);
        }
        if user.password_hash.is_none()
            && mine.len() == 1
            && self.db.identities_of(&user.id).await?.is_empty()
        {
            return Err(AuthError::LastSignInMethod);
        }
        match self.db.delete_passkey(&user.id, id).await {
            Ok(()) => Ok(()),
            Err(DbError::NotFound) => Err(AuthError::NoSuchPasskey),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a sign-in with a passkey alone: any discoverable credential of this site.
    pub async fn passkey_sign_in_start(
        &self,
    ) -> Result<Challenge<RequestChallengeResponse>, AuthError> {
        let wa = self.webauthn()?;
        let (mut rcr, state) = wa.start_discoverable_authentication().map_err(failed)?;
        // A button press, not the autofill (conditional) prompt; the page may set it back.
        rcr.mediation = None;
        let ceremony = self.put_ceremony(KIND_SIGN_IN, None, &state).await?;
        Ok(Challenge {
            ceremony,
            options: rcr,
        })
    }

    /// Finishes a passkey sign-in: a full session (the passkey verified the person).
    pub async fn passkey_sign_in_finish(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        meta: &ClientMeta,
    ) -> Result<Opened, AuthError> {
        let wa = self.webauthn()?;
        let (_, state): (_, DiscoverableAuthentication) =
            self.take_ceremony(KIND_SIGN_IN, ceremony).await?;
        let cred_id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
        let (row, user) = self.db.passkey_with_user(&cred_id).await?.ok_or_else(|| {
            AuthError::PasskeyFailed("this passkey is not registered here".into())
        })?;
        // An authenticator that names the user must name the passkey's owner.
        if let Ok((handle, _)) = wa.identify_discoverable_authentication(credential)
            && handle.to_string() != user.id
        {
            return Err(AuthError::PasskeyFailed(
                "this passkey belongs to another account".into(),
            ));
        }
        let mut passkey = parse_row(&row)?;
        let result = wa
            .finish_discoverable_authentication_v2(credential, state, &passkey)
            .map_err(failed)?;
        passkey.update_credential(&result);
        self.save_passkey_use(&row, &passkey).await?;
        tracing::info!(user = %user.id, passkey = %row.id, "signed in with a passkey");
        self.open_session(user, meta, false).await
    }

    /// Second step of a password sign-in with one of the user's passkeys: the options.
    pub async fn passkey_second_factor_start(
        &self,
        pending_token: &str,
    ) -> Result<Challenge<RequestChallengeResponse>, AuthError> {
        let wa = self.webauthn()?;
        let user = self.pending_user(pending_token).await?;
        let keys = self
            .db
            .passkeys_of(&user.id)
            .await?
            .iter()
            .map(parse_row)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(AuthError::NoSuchPasskey);
        }
        let (rcr, state) = wa.start_passkey_authentication(&keys).map_err(failed)?;
        let ceremony = self
            .put_ceremony(KIND_SECOND, Some(&user.id), &state)
            .await?;
        Ok(Challenge {
            ceremony,
            options: rcr,
        })
    }

    /// Finishes the second step with a passkey: the pending session is replaced by a full one.
    pub async fn passkey_second_factor_finish(
        &self,
        pending_token: &str,
        ceremony: &str,
        credential: &PublicKeyCredential,
        meta: &ClientMeta,
    ) -> Result<Opened, AuthError> {
        let wa = self.webauthn()?;
        let (session, user) = self.pending_session(pending_token).await?;
        let (owner, state): (_, PasskeyAuthentication) =
            self.take_ceremony(KIND_SECOND, ceremony).await?;
        if owner.as_deref() != Some(user.id.as_str()) {
            return Err(AuthError::PasskeyFailed(
                "this ceremony belongs to another sign-in".into(),
            ));
        }
        let result = wa
            .finish_passkey_authentication(credential, &state)
            .map_err(failed)?;
        let rows = self.db.passkeys_of(&user.id).await?;
        let used = URL_SAFE_NO_PAD.encode(result.cred_id());
        if let Some(row) = rows.iter().find(|r| r.credential_id == used) {
            let mut passkey = parse_row(row)?;
            passkey.update_credential(&result);
            self.save_passkey_use(row, &passkey).await?;
        }
        let _ = self.db.delete_session(&user.id, &session.id).await;
        self.cache.forget_user(&user.id);
        tracing::info!(user = %user.id, "second factor passed with a passkey");
        self.open_session(user, meta, false).await
    }

    async fn save_passkey_use(&self, row: &PasskeyRow, passkey: &Passkey) -> Result<(), AuthError> {
        let json =
            serde_json::to_string(passkey).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.db.update_passkey(&row.id, &json, now()).await?;
        Ok(())
    }
}
