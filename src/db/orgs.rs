//! Organizations, their members, custom roles, projects, project members and invitations.
//!
//! Changes that must keep an organization with at least one owner lock the organization row
//! first (`UPDATE organizations SET slug = slug`), which serialises them on both backends.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::accounts::User;
use super::schema::{
    invitations, org_members, organizations, project_members, projects, roles, users,
};
use super::{Db, DbError, like_prefix, one_row, with_conn};

/// The built-in role key of owners (kept in step with `orgs::perms::Builtin`).
pub const OWNER_ROLE: &str = "org:owner";

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizations)]
pub struct Org {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub personal: bool,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = org_members)]
pub struct OrgMember {
    pub org_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = roles)]
pub struct RoleRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub name_lower: String,
    /// `org` or `project`.
    pub scope: String,
    pub description: String,
    /// JSON array of patterns.
    pub permissions: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = projects)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub name_lower: String,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = project_members)]
pub struct ProjectMember {
    pub project_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = invitations)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub email_lower: String,
    pub role: String,
    pub token_hash: String,
    pub invited_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub accepted_at: Option<NaiveDateTime>,
    pub accepted_by: Option<String>,
}

/// What a user is a member of, for permission decisions.
#[derive(Debug, Clone, Default)]
pub struct Memberships {
    /// (org id, role key)
    pub orgs: Vec<(String, String)>,
    /// (project id, org id, role key)
    pub projects: Vec<(String, String, String)>,
    /// The custom roles among them.
    pub custom_roles: Vec<RoleRow>,
}

/// Why a membership change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    NoSuchMember,
    /// It would leave the organization without an owner.
    LastOwner,
}

impl Db {
    /// Creates an organization with `owner` as its owner.
    pub async fn insert_org(&self, org: &Org, owner: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::insert_into(organizations::table)
                    .values(org)
                    .execute(conn)
                    .await
                    .map_err(|e| DbError::conflict_as(e, "an organization with this slug"))?;
                diesel::insert_into(org_members::table)
                    .values(&OrgMember {
                        org_id: org.id.clone(),
                        user_id: owner.to_string(),
                        role: OWNER_ROLE.into(),
                        created_at: org.created_at,
                    })
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await
        })
    }

    /// The organizations `user_id` belongs to, with their role key.
    pub async fn orgs_of(&self, user_id: &str) -> Result<Vec<(Org, String)>, DbError> {
        with_conn!(self, conn => {
            Ok(organizations::table
                .inner_join(org_members::table)
                .filter(org_members::user_id.eq(user_id))
                .order(organizations::name.asc())
                .select((Org::as_select(), org_members::role))
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn org(&self, id: &str) -> Result<Option<Org>, DbError> {
        with_conn!(self, conn => {
            Ok(organizations::table.find(id).select(Org::as_select()).first(&mut conn).await.optional()?)
        })
    }

    pub async fn update_org(&self, id: &str, name: &str, slug: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(organizations::table.find(id))
                .set((organizations::name.eq(name), organizations::slug.eq(slug)))
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "an organization with this slug"))?
        });
        one_row(n)
    }

    /// Deletes an organization; its projects, members, roles and invitations go with it.
    pub async fn delete_org(&self, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(organizations::table.find(id)).execute(&mut conn).await?
        });
        one_row(n)
    }

    pub async fn org_members(&self, org_id: &str) -> Result<Vec<(OrgMember, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(org_members::table
                .inner_join(users::table)
                .filter(org_members::org_id.eq(org_id))
                .order(users::username_lower.asc())
                .select((OrgMember::as_select(), User::as_select()))
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn org_member(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> Result<Option<OrgMember>, DbError> {
        with_conn!(self, conn => {
            Ok(org_members::table
                .find((org_id, user_id))
                .select(OrgMember::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn insert_org_member(&self, m: &OrgMember) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(org_members::table)
                .values(m)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "already a member"))?;
            Ok(())
        })
    }

    /// Sets a member's role, or removes the member (`role` None, with their project
    /// memberships in this organization); refused if no owner would remain.
    pub async fn change_org_member(
        &self,
        org_id: &str,
        user_id: &str,
        role: Option<&str>,
    ) -> Result<MemberChange, DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::update(organizations::table.find(org_id))
                    .set(organizations::slug.eq(organizations::slug))
                    .execute(conn)
                    .await?;
                let current: Option<String> = org_members::table
                    .find((org_id, user_id))
                    .select(org_members::role)
                    .first(conn)
                    .await
                    .optional()?;
                let Some(current) = current else {
                    return Ok(MemberChange::NoSuchMember);
                };
                if current == OWNER_ROLE && role != Some(OWNER_ROLE) {
                    let owners: i64 = org_members::table
                        .filter(org_members::org_id.eq(org_id))
                        .filter(org_members::role.eq(OWNER_ROLE))
                        .count()
                        .get_result(conn)
                        .await?;
                    if owners <= 1 {
                        return Ok(MemberChange::LastOwner);
                    }
                }
                match role {
                    Some(r) => {
                        diesel::update(org_members::table.find((org_id, user_id)))
                            .set(org_members::role.eq(r))
                            .execute(conn)
                            .await?;
                    }
                    None => {
                        let in_org = projects::table.filter(projects::org_id.eq(org_id)).select(projects::id);
                        diesel::delete(
                            project_members::table
                                .filter(project_members::user_id.eq(user_id))
                                .filter(project_members::project_id.eq_any(in_org)),
                        )
                        .execute(conn)
                        .await?;
                        diesel::delete(org_members::table.find((org_id, user_id))).execute(conn).await?;
                    }
                }
                Ok(MemberChange::Done)
            })
            .await
        })
    }

    /// Makes `to` an owner and `from` (an owner) an admin, at once.
    pub async fn transfer_ownership(
        &self,
        org_id: &str,
        from: &str,
        to: &str,
        from_role: &str,
    ) -> Result<MemberChange, DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::update(organizations::table.find(org_id))
                    .set(organizations::slug.eq(organizations::slug))
                    .execute(conn)
                    .await?;
                let n = diesel::update(org_members::table.find((org_id, to)))
                    .set(org_members::role.eq(OWNER_ROLE))
                    .execute(conn)
                    .await?;
                if n != 1 {
                    return Ok(MemberChange::NoSuchMember);
                }
                if from != to {
                    diesel::update(org_members::table.find((org_id, from)))
                        .set(org_members::role.eq(from_role))
                        .execute(conn)
                        .await?;
                }
                Ok(MemberChange::Done)
            })
            .await
        })
    }

    pub async fn insert_role(&self, r: &RoleRow) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(roles::table)
                .values(r)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a role with this name"))?;
            Ok(())
        })
    }

    pub async fn roles_of(&self, org_id: &str) -> Result<Vec<RoleRow>, DbError> {
        with_conn!(self, conn => {
            Ok(roles::table
                .filter(roles::org_id.eq(org_id))
                .order(roles::name_lower.asc())
                .select(RoleRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn role(&self, org_id: &str, id: &str) -> Result<Option<RoleRow>, DbError> {
        with_conn!(self, conn => {
            Ok(roles::table
                .filter(roles::org_id.eq(org_id))
                .filter(roles::id.eq(id))
                .select(RoleRow::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn update_role(&self, r: &RoleRow) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(roles::table.filter(roles::id.eq(&r.id)).filter(roles::org_id.eq(&r.org_id)))
                .set((
                    roles::name.eq(&r.name),
                    roles::name_lower.eq(&r.name_lower),
                    roles::description.eq(&r.description),
                    roles::permissions.eq(&r.permissions),
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a role with this name"))?
        });
        one_row(n)
    }

    /// How many memberships give this role.
    pub async fn role_uses(&self, id: &str) -> Result<i64, DbError> {
        with_conn!(self, conn => {
            let a: i64 = org_members::table.filter(org_members::role.eq(id)).count().get_result(&mut conn).await?;
            let b: i64 = project_members::table.filter(project_members::role.eq(id)).count().get_result(&mut conn).await?;
            let c: i64 = invitations::table
                .filter(invitations::role.eq(id))
                .filter(invitations::accepted_at.is_null())
                .count()
                .get_result(&mut conn)
                .await?;
            Ok(a + b + c)
        })
    }

    pub async fn delete_role(&self, org_id: &str, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(roles::table.filter(roles::id.eq(id)).filter(roles::org_id.eq(org_id)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    /// Creates a project with its creator as project admin.
    pub async fn insert_project(&self, p: &Project, admin_role: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::insert_into(projects::table)
                    .values(p)
                    .execute(conn)
                    .await
                    .map_err(|e| DbError::conflict_as(e, "a project with this name"))?;
                if let Some(creator) = &p.created_by {
                    diesel::insert_into(project_members::table)
                        .values(&ProjectMember {
                            project_id: p.id.clone(),
                            user_id: creator.clone(),
                            role: admin_role.into(),
                            created_at: p.created_at,
                        })
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        })
    }

    pub async fn projects_of_org(&self, org_id: &str) -> Result<Vec<Project>, DbError> {
        with_conn!(self, conn => {
            Ok(projects::table
                .filter(projects::org_id.eq(org_id))
                .order(projects::name_lower.asc())
                .select(Project::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn project(&self, id: &str) -> Result<Option<Project>, DbError> {
        with_conn!(self, conn => {
            Ok(projects::table.find(id).select(Project::as_select()).first(&mut conn).await.optional()?)
        })
    }

    pub async fn rename_project(&self, id: &str, name: &str) -> Result<(), DbError> {
        let lower = name.to_lowercase();
        let n = with_conn!(self, conn => {
            diesel::update(projects::table.find(id))
                .set((projects::name.eq(name), projects::name_lower.eq(&lower)))
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a project with this name"))?
        });
        one_row(n)
    }

    pub async fn delete_project(&self, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(projects::table.find(id)).execute(&mut conn).await?
        });
        one_row(n)
    }

    pub async fn project_members(
        &self,
        project_id: &str,
    ) -> Result<Vec<(ProjectMember, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(project_members::table
                .inner_join(users::table)
                .filter(project_members::project_id.eq(project_id))
                .order(users::username_lower.asc())
                .select((ProjectMember::as_select(), User::as_select()))
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn upsert_project_member(&self, m: &ProjectMember) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(project_members::table)
                .values(m)
                .on_conflict((project_members::project_id, project_members::user_id))
                .do_update()
                .set(project_members::role.eq(&m.role))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn delete_project_member(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(project_members::table.find((project_id, user_id))).execute(&mut conn).await?
        });
        one_row(n)
    }

    pub async fn insert_invitation(&self, i: &Invitation) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(invitations::table).values(i).execute(&mut conn).await?;
            Ok(())
        })
    }

    pub async fn pending_invitations(
        &self,
        org_id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<Invitation>, DbError> {
        with_conn!(self, conn => {
            Ok(invitations::table
                .filter(invitations::org_id.eq(org_id))
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::expires_at.gt(now))
                .order(invitations::created_at.desc())
                .select(Invitation::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn delete_invitation(&self, org_id: &str, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(
                invitations::table
                    .filter(invitations::id.eq(id))
                    .filter(invitations::org_id.eq(org_id))
                    .filter(invitations::accepted_at.is_null()),
            )
            .execute(&mut conn)
            .await?
        });
        one_row(n)
    }

    pub async fn invitation_by_hash(
        &self,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Invitation>, DbError> {
        with_conn!(self, conn => {
            Ok(invitations::table
                .filter(invitations::token_hash.eq(token_hash))
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::expires_at.gt(now))
                .select(Invitation::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Uses an invitation once: marks it accepted and adds the member (an existing member
    /// keeps their role). False if it was already used or has expired.
    pub async fn accept_invitation(
        &self,
        id: &str,
        user_id: &str,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                let inv: Option<Invitation> = invitations::table
                    .find(id)
                    .select(Invitation::as_select())
                    .first(conn)
                    .await
                    .optional()?;
                let Some(inv) = inv else { return Ok(false) };
                let n = diesel::update(
                    invitations::table
                        .find(id)
                        .filter(invitations::accepted_at.is_null())
                        .filter(invitations::expires_at.gt(now)),
                )
                .set((invitations::accepted_at.eq(Some(now)), invitations::accepted_by.eq(Some(user_id))))
                .execute(conn)
                .await?;
                if n != 1 {
                    return Ok(false);
                }
                diesel::insert_into(org_members::table)
                    .values(&OrgMember {
                        org_id: inv.org_id.clone(),
                        user_id: user_id.to_string(),
                        role: inv.role.clone(),
                        created_at: now,
                    })
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await
        })
    }

    /// Everything `user_id` is a member of, with the custom roles involved.
    pub async fn memberships(&self, user_id: &str) -> Result<Memberships, DbError> {
        with_conn!(self, conn => {
            let orgs: Vec<(String, String)> = org_members::table
                .filter(org_members::user_id.eq(user_id))
                .select((org_members::org_id, org_members::role))
                .load(&mut conn)
                .await?;
            let projects: Vec<(String, String, String)> = project_members::table
                .inner_join(projects::table)
                .filter(project_members::user_id.eq(user_id))
                .select((project_members::project_id, projects::org_id, project_members::role))
                .load(&mut conn)
                .await?;
            let ids: Vec<&str> = orgs
                .iter()
                .map(|(_, r)| r.as_str())
                .chain(projects.iter().map(|(_, _, r)| r.as_str()))
                .filter(|r| !r.contains(':'))
                .collect();
            let custom_roles = if ids.is_empty() {
                Vec::new()
            } else {
                roles::table
                    .filter(roles::id.eq_any(ids))
                    .select(RoleRow::as_select())
                    .load(&mut conn)
                    .await?
            };
            Ok(Memberships { orgs, projects, custom_roles })
        })
    }

    /// Users who share an organization with `user_id` and whose username, name or email
    /// starts with `prefix` (lowercase). Nobody else, not even by their exact address: the
    /// search must not tell which addresses have accounts.
    pub async fn search_users(
        &self,
        user_id: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<User>, DbError> {
        let pattern = like_prefix(prefix);
        with_conn!(self, conn => {
            let my_orgs: Vec<String> = org_members::table
                .filter(org_members::user_id.eq(user_id))
                .select(org_members::org_id)
                .load(&mut conn)
                .await?;
            let co_members = org_members::table.filter(org_members::org_id.eq_any(my_orgs)).select(org_members::user_id);
            let found: Vec<User> = users::table
                .filter(users::id.eq_any(co_members))
                .filter(
                    users::username_lower
                        .like(&pattern)
                        .escape('\\')
                        .or(users::email_lower.like(&pattern).escape('\\'))
                        .or(users::display_name.like(&pattern).escape('\\')),
                )
                .order(users::username_lower.asc())
                .limit(limit)
                .select(User::as_select())
                .load(&mut conn)
                .await?;
            Ok(found)
        })
    }

    /// Do two users share an organization?
    pub async fn share_org(&self, a: &str, b: &str) -> Result<bool, DbError> {
        with_conn!(self, conn => {
            let of_a: Vec<String> = org_members::table
                .filter(org_members::user_id.eq(a))
                .select(org_members::org_id)
                .load(&mut conn)
                .await?;
            let n: i64 = org_members::table
                .filter(org_members::user_id.eq(b))
                .filter(org_members::org_id.eq_any(of_a))
                .count()
                .get_result(&mut conn)
                .await?;
            Ok(n > 0)
        })
    }
}

impl Db {
    /// Records that `user_id` opened a board now.
    pub async fn touch_visit(
        &self,
        user_id: &str,
        project_id: &str,
        at: NaiveDateTime,
    ) -> Result<(), DbError> {
        use super::schema::project_visits as v;
        use diesel::upsert::excluded;
        with_conn!(self, conn => {
            diesel::insert_into(v::table)
                .values((v::user_id.eq(user_id), v::project_id.eq(project_id), v::opened_at.eq(at)))
                .on_conflict((v::user_id, v::project_id))
                .do_update()
                .set(v::opened_at.eq(excluded(v::opened_at)))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// The boards `user_id` opened, last first, with when.
    pub async fn visits_of(
        &self,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<(Project, NaiveDateTime)>, DbError> {
        use super::schema::project_visits as v;
        with_conn!(self, conn => {
            Ok(v::table
                .inner_join(projects::table)
                .filter(v::user_id.eq(user_id))
                .order(v::opened_at.desc())
                .limit(limit)
                .select((Project::as_select(), v::opened_at))
                .load(&mut conn)
                .await?)
        })
    }

    /// Who else opened these boards since `since`: (project id, display name), latest first.
    pub async fn visitors_since(
        &self,
        project_ids: &[String],
        except: &str,
        since: NaiveDateTime,
    ) -> Result<Vec<(String, String)>, DbError> {
        use super::schema::project_visits as v;
        use super::schema::users;
        with_conn!(self, conn => {
            Ok(v::table
                .inner_join(users::table.on(users::id.eq(v::user_id)))
                .filter(v::project_id.eq_any(project_ids))
                .filter(v::user_id.ne(except))
                .filter(v::opened_at.ge(since))
                .order(v::opened_at.desc())
                .select((v::project_id, users::display_name))
                .load(&mut conn)
                .await?)
        })
    }
}
