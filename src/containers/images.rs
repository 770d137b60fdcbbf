//! An organization's own container catalogue: entries its members pick beside the built-in
//! ones, kept by those with `org:containers:manage`. A create event naming one gets the
//! entry filled in before it is parsed ([`crate::gateway::EventPreparer`]), so the record
//! holds what the container runs and a later change of the entry leaves it alone.

use serde_json::Value;

use super::{Containers, ContainersError, now};
use crate::db::containers::ContainerImageRow;
use crate::gateway::GatewayError;
use crate::gateway::modules::user_containers::ServiceSpec;
use crate::gateway::modules::user_containers::catalogue::{self, MAX_ORG_ENTRIES, OrgEntry};
use crate::orgs::OrgAccess;

/// Who keeps the organization's catalogue.
pub const MANAGE: &str = "org:containers:manage";

fn entry_of(row: ContainerImageRow) -> OrgEntry {
    OrgEntry {
        services: serde_json::from_str::<Vec<ServiceSpec>>(&row.services).unwrap_or_default(),
        key: row.slug,
        title: row.title,
        description: row.description,
        image_ref: row.image_ref,
        command: row.command,
        prepare: row.prepare,
    }
}

impl Containers {
    /// The organization's own entries, by key (any member may list them: they pick from it).
    pub async fn org_images(&self, org_id: &str) -> Result<Vec<OrgEntry>, ContainersError> {
        Ok(self
            .db
            .container_images(org_id)
            .await?
            .into_iter()
            .map(entry_of)
            .collect())
    }

    fn may_manage(access: &OrgAccess) -> Result<(), ContainersError> {
        if access.may(MANAGE) {
            Ok(())
        } else {
            Err(ContainersError::Forbidden(format!(
                "keeping the organization's container catalogue needs `{MANAGE}`"
            )))
        }
    }

    fn row(access: &OrgAccess, e: &OrgEntry) -> ContainerImageRow {
        let t = now();
        ContainerImageRow {
            org_id: access.org_id().to_string(),
            slug: e.key.clone(),
            title: e.title.clone(),
            description: e.description.clone(),
            image_ref: e.image_ref.clone(),
            services: serde_json::to_string(&e.services).unwrap_or_else(|_| "[]".into()),
            command: e.command.clone(),
            prepare: e.prepare.clone(),
            created_by: Some(access.user_id().to_string()),
            created_at: t,
            updated_at: t,
        }
    }

    /// Adds an entry to the organization's catalogue.
    pub async fn add_image(
        &self,
        access: &OrgAccess,
        entry: OrgEntry,
    ) -> Result<OrgEntry, ContainersError> {
        Self::may_manage(access)?;
        let e = entry.checked().map_err(ContainersError::invalid)?;
        if self.db.container_images(access.org_id()).await?.len() >= MAX_ORG_ENTRIES {
            return Err(ContainersError::TooManyImages);
        }
        self.db
            .add_container_image(&Self::row(access, &e))
            .await
            .map_err(|err| match err {
                crate::db::DbError::Conflict(_) => ContainersError::ImageExists(e.key.clone()),
                other => other.into(),
            })?;
        tracing::info!(org = %access.org_id(), key = %e.key, "container catalogue entry added");
        Ok(e)
    }

    /// Replaces entry `key` (its key stays). Containers made from it keep what they run.
    pub async fn update_image(
        &self,
        access: &OrgAccess,
        key: &str,
        entry: OrgEntry,
    ) -> Result<OrgEntry, ContainersError> {
        Self::may_manage(access)?;
        if catalogue::entry(key).is_some() {
            // Built in: not the organization's to change.
            return Err(ContainersError::NoSuchImage(key.to_string()));
        }
        let e = OrgEntry {
            key: key.to_string(),
            ..entry
        }
        .checked()
        .map_err(ContainersError::invalid)?;
        if !self
            .db
            .update_container_image(&Self::row(access, &e))
            .await?
        {
            return Err(ContainersError::NoSuchImage(key.chars().take(64).collect()));
        }
        tracing::info!(org = %access.org_id(), key = %e.key, "container catalogue entry changed");
        Ok(e)
    }

    pub async fn delete_image(&self, access: &OrgAccess, key: &str) -> Result<(), ContainersError> {
        Self::may_manage(access)?;
        if !self.db.delete_container_image(access.org_id(), key).await? {
            return Err(ContainersError::NoSuchImage(key.chars().take(64).collect()));
        }
        tracing::info!(org = %access.org_id(), key = %key, "container catalogue entry deleted");
        Ok(())
    }
}

impl crate::gateway::EventPreparer for Containers {
    /// A create event: whatever the client put in `catalogue_entry` goes; a key that is
    /// not built in gets the organization's entry of that key, if there is one (otherwise
    /// the reducer refuses the key).
    fn prepare<'a>(
        &'a self,
        org_id: &'a str,
        event: &'a mut Value,
    ) -> futures::future::BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            if event["type"] != "user-containers:create" {
                return Ok(());
            }
            let Some(fields) = event.as_object_mut() else {
                return Ok(());
            };
            fields.remove("catalogue_entry");
            let Some(key) = fields.get("image").and_then(Value::as_str) else {
                return Ok(());
            };
            if catalogue::entry(key).is_some() || key.len() > catalogue::MAX_KEY {
                return Ok(());
            }
            if let Some(row) = self.db.container_image(org_id, key).await? {
                let e = serde_json::to_value(entry_of(row)).unwrap_or(Value::Null);
                fields.insert("catalogue_entry".into(), e);
            }
            Ok(())
        })
    }
}
