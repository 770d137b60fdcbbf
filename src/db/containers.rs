//! User containers as far as connecting and routing go: the container row, its routes
//! (host label → service), its one-time enrollment tokens and its agent's credential.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{
    container_enrollments, container_images, container_routes, containers, vpn_peers,
};
use super::{Db, DbError, with_conn};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = containers)]
pub struct ContainerRow {
    pub id: String,
    pub org_id: String,
    pub project_id: String,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub credential_hash: Option<String>,
    pub enrolled_at: Option<NaiveDateTime>,
    pub vpn_peer: Option<String>,
    /// The catalogue entry it runs (its agent starts that app).
    pub image: String,
    /// The command that starts a custom or organization image's app (the agent runs it).
    pub command: Option<String>,
}

/// One of an organization's own catalogue entries.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = container_images)]
pub struct ContainerImageRow {
    pub org_id: String,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub image_ref: String,
    /// JSON: `[{"name", "port", "terminal"}]`.
    pub services: String,
    pub command: Option<String>,
    pub prepare: Option<String>,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = container_routes)]
pub struct RouteRow {
    pub label: String,
    pub container_id: String,
    pub service: String,
    pub port: i32,
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = container_enrollments)]
pub struct EnrollmentRow {
    pub token_hash: String,
    pub container_id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

impl Db {
    /// Makes the container's row (if it has none yet) and sets its routes to `routes`, then
    /// stores a new enrollment token; older unused tokens of the container stop working.
    /// A label another container holds is `Conflict`.
    pub async fn put_enrollment(
        &self,
        row: &ContainerRow,
        routes: &[RouteRow],
        token: &EnrollmentRow,
    ) -> Result<(), DbError> {
        use diesel_async::AsyncConnection;
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
            diesel::insert_into(containers::table)
                .values(row)
                .on_conflict(containers::id)
                .do_nothing()
                .execute(conn)
                .await?;
            for r in routes {
                let taken: Option<String> = container_routes::table
                    .find(&r.label)
                    .select(container_routes::container_id)
                    .first(conn)
                    .await
                    .optional()?;
                match taken {
                    Some(owner) if owner == r.container_id => {}
                    Some(_) => {
                        return Err(DbError::Conflict(
                            "a service label another container holds",
                        ));
                    }
                    None => {
                        diesel::insert_into(container_routes::table)
                            .values(r)
                            .execute(conn)
                            .await?;
                    }
                }
            }
            diesel::delete(
                container_enrollments::table
                    .filter(container_enrollments::container_id.eq(&token.container_id))
                    .filter(container_enrollments::used_at.is_null()),
            )
            .execute(conn)
            .await?;
            diesel::insert_into(container_enrollments::table)
                .values(token)
                .execute(conn)
                .await?;
            Ok(())
            })
            .await
        })
    }

    /// Uses an enrollment token once: the container it is for, if it was unused and not
    /// expired at `now` (a second use finds nothing).
    pub async fn take_enrollment(
        &self,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<ContainerRow>, DbError> {
        with_conn!(self, conn => {
            let n = diesel::update(
                container_enrollments::table
                    .find(token_hash)
                    .filter(container_enrollments::used_at.is_null())
                    .filter(container_enrollments::expires_at.gt(now)),
            )
            .set(container_enrollments::used_at.eq(Some(now)))
            .execute(&mut conn)
            .await?;
            if n == 0 {
                return Ok(None);
            }
            Ok(container_enrollments::table
                .find(token_hash)
                .inner_join(containers::table)
                .select(ContainerRow::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Records the agent's credential and WireGuard peer (a re-enrollment replaces both).
    pub async fn set_container_agent(
        &self,
        id: &str,
        credential_hash: &str,
        vpn_peer: &str,
        at: NaiveDateTime,
    ) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(containers::table.find(id))
                .set((
                    containers::credential_hash.eq(Some(credential_hash)),
                    containers::vpn_peer.eq(Some(vpn_peer)),
                    containers::enrolled_at.eq(Some(at)),
                ))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn container_by_credential(
        &self,
        credential_hash: &str,
    ) -> Result<Option<ContainerRow>, DbError> {
        with_conn!(self, conn => {
            Ok(containers::table
                .filter(containers::credential_hash.eq(credential_hash))
                .select(ContainerRow::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn container(&self, id: &str) -> Result<Option<ContainerRow>, DbError> {
        with_conn!(self, conn => {
            Ok(containers::table
                .find(id)
                .select(ContainerRow::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn container_routes(&self, id: &str) -> Result<Vec<RouteRow>, DbError> {
        with_conn!(self, conn => {
            Ok(container_routes::table
                .filter(container_routes::container_id.eq(id))
                .order(container_routes::label.asc())
                .select(RouteRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Every container whose agent enrolled (the server watches their heartbeats).
    pub async fn enrolled_containers(&self) -> Result<Vec<ContainerRow>, DbError> {
        with_conn!(self, conn => {
            Ok(containers::table
                .filter(containers::credential_hash.is_not_null())
                .select(ContainerRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Where a host label goes, and the container it belongs to.
    pub async fn route(&self, label: &str) -> Result<Option<(RouteRow, ContainerRow)>, DbError> {
        with_conn!(self, conn => {
            Ok(container_routes::table
                .find(label)
                .inner_join(containers::table)
                .select((RouteRow::as_select(), ContainerRow::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Forgets a container: its row, routes, tokens and WireGuard peer, in one transaction.
    /// Whether there was one.
    pub async fn delete_container(&self, id: &str) -> Result<bool, DbError> {
        use diesel_async::AsyncConnection;
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
            let peer: Option<Option<String>> = containers::table
                .find(id)
                .select(containers::vpn_peer)
                .first(conn)
                .await
                .optional()?;
            let Some(peer) = peer else {
                return Ok(false);
            };
            diesel::delete(container_enrollments::table.filter(container_enrollments::container_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(container_routes::table.filter(container_routes::container_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(containers::table.find(id)).execute(conn).await?;
            if let Some(name) = peer {
                diesel::delete(vpn_peers::table.filter(vpn_peers::name.eq(name)))
                    .execute(conn)
                    .await?;
            }
            Ok(true)
            })
            .await
        })
    }

    /// The organization's own catalogue entries, by slug.
    pub async fn container_images(&self, org_id: &str) -> Result<Vec<ContainerImageRow>, DbError> {
        with_conn!(self, conn => {
            Ok(container_images::table
                .filter(container_images::org_id.eq(org_id))
                .order(container_images::slug.asc())
                .select(ContainerImageRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn container_image(
        &self,
        org_id: &str,
        slug: &str,
    ) -> Result<Option<ContainerImageRow>, DbError> {
        with_conn!(self, conn => {
            Ok(container_images::table
                .find((org_id, slug))
                .select(ContainerImageRow::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Adds an entry; one of that slug in the organization already is `Conflict`.
    pub async fn add_container_image(&self, row: &ContainerImageRow) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(container_images::table)
                .values(row)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a catalogue entry of that key"))?;
            Ok(())
        })
    }

    /// Replaces an entry's title, description, image, services, command and preparing
    /// step (not its creator); whether there was one.
    pub async fn update_container_image(&self, row: &ContainerImageRow) -> Result<bool, DbError> {
        with_conn!(self, conn => {
            let n = diesel::update(container_images::table.find((&row.org_id, &row.slug)))
                .set((
                    container_images::title.eq(&row.title),
                    container_images::description.eq(&row.description),
                    container_images::image_ref.eq(&row.image_ref),
                    container_images::services.eq(&row.services),
                    container_images::command.eq(&row.command),
                    container_images::prepare.eq(&row.prepare),
                    container_images::updated_at.eq(row.updated_at),
                ))
                .execute(&mut conn)
                .await?;
            Ok(n > 0)
        })
    }

    /// Whether there was one. Containers made from it keep what they were made with.
    pub async fn delete_container_image(&self, org_id: &str, slug: &str) -> Result<bool, DbError> {
        with_conn!(self, conn => {
            let n = diesel::delete(container_images::table.find((org_id, slug)))
                .execute(&mut conn)
                .await?;
            Ok(n > 0)
        })
    }
}
