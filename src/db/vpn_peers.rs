//! WireGuard peers known to the server's VPN endpoint.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::vpn_peers;
use super::{Db, DbError, one_row, with_conn};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = vpn_peers)]
pub struct VpnPeer {
    pub id: i64,
    pub name: String,
    /// Base64 WireGuard public key.
    pub public_key: String,
    /// The peer's tunnel address (IPv4, no prefix).
    pub address: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = vpn_peers)]
pub struct NewVpnPeer<'a> {
    pub name: &'a str,
    pub public_key: &'a str,
    pub address: &'a str,
    pub created_at: NaiveDateTime,
}

impl Db {
    pub async fn vpn_peers(&self) -> Result<Vec<VpnPeer>, DbError> {
        with_conn!(self, conn => {
            Ok(vpn_peers::table
                .order(vpn_peers::id.asc())
                .select(VpnPeer::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Inserts a peer; a taken name, key or address is `Conflict`.
    pub async fn insert_vpn_peer(&self, new: &NewVpnPeer<'_>) -> Result<VpnPeer, DbError> {
        let what = "a VPN peer with this name, key or address";
        with_conn!(self, conn => {
            diesel::insert_into(vpn_peers::table)
                .values(new)
                .returning(VpnPeer::as_returning())
                .get_result(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, what))
        })
    }

    /// Removes a peer by name; `NotFound` if there is none.
    pub async fn delete_vpn_peer(&self, name: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(vpn_peers::table.filter(vpn_peers::name.eq(name)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    /// The public key (base64) of the peer named `name`.
    pub async fn vpn_peer_key(&self, name: &str) -> Result<Option<String>, DbError> {
        with_conn!(self, conn => {
            Ok(vpn_peers::table
                .filter(vpn_peers::name.eq(name))
                .select(vpn_peers::public_key)
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// The tunnel address of the peer named `name`.
    pub async fn vpn_peer_address(&self, name: &str) -> Result<Option<String>, DbError> {
        with_conn!(self, conn => {
            Ok(vpn_peers::table
                .filter(vpn_peers::name.eq(name))
                .select(vpn_peers::address)
                .first(&mut conn)
                .await
                .optional()?)
        })
    }
}
