//! What clients talk to: the generic REST layer (CRUD, patch, apply, list, watch, Table), API
//! discovery and the OpenAPI documents.

pub mod discovery;
pub mod openapi;
pub mod rest;
