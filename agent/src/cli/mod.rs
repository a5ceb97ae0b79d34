//! The command line, one module per command family; main.rs parses and
//! dispatches.

mod agent;
mod approve;
mod audit;
mod doctor;
mod marks;
mod policy;
mod signing;
mod status;

pub(crate) use agent::*;
pub(crate) use approve::*;
pub(crate) use audit::*;
pub(crate) use doctor::*;
pub(crate) use marks::*;
pub(crate) use policy::*;
pub(crate) use signing::*;
pub(crate) use status::*;
