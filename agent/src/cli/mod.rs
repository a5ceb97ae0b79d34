//! The command line, one module per command family; main.rs parses and
//! dispatches.

mod signing;
mod doctor;
mod status;
mod policy;
mod approve;
mod agent;
mod audit;

pub(crate) use signing::*;
pub(crate) use doctor::*;
pub(crate) use status::*;
pub(crate) use policy::*;
pub(crate) use approve::*;
pub(crate) use agent::*;
pub(crate) use audit::*;
