//! Demiurge: a self-hosted collaborative workspace in one executable.
//!
//! The subsystems (see docs/ARCHITECTURE.md) each have one public face:
//! [`db::Db`], [`app::App`], [`edge::Edge`], [`dns::Dns`], [`vpn::Vpn`]; [`server::serve`]
//! starts and stops them together.

pub mod acme;
pub mod agent;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod code;
pub mod config;
pub mod containers;
pub mod db;
pub mod dns;
pub mod edge;
pub mod fsutil;
pub mod gateway;
pub mod heap;
pub mod instance;
pub mod json;
pub mod mail;
pub mod orgs;
pub mod sealed;
pub mod server;
pub mod status;
pub mod vpn;
