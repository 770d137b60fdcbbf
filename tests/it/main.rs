//! The integration test suite: one binary, one harness, the real server and real peers.

mod harness;

mod accounts;
mod acme;
mod admin;
mod agent;
mod backup;
mod board;
mod collab;
mod config_file;
mod containers;
mod contract;
mod dns;
mod edge;
mod home;
mod lifecycle;
mod orgs;
mod packaging;
mod signin;
mod storage;
mod ui;
mod vpn;
