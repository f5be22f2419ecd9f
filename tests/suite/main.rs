//! Bunker's integration suite: the real server over a real PostgreSQL, driven over HTTP.
//! One binary, so one PostgreSQL cluster serves the whole run.

mod access;
mod api;
mod appdata;
mod at_rest;
mod audit_chain;
mod bulk;
mod cli;
mod conditions;
mod consent;
mod consent_lifecycle;
mod crbac;
mod credentials;
mod files;
mod groups;
mod isolation;
mod keys;
mod kms;
mod limits;
mod masking;
mod memberships;
mod outage;
mod replicas;
mod requests;
mod resolution;
mod sdk;
mod search;
mod sessions;
mod startup;
mod system;
mod tenants;
mod tls;
mod tokens;
mod users;
