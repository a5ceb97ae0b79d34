//! The command line, one module per command family; main.rs parses and
//! dispatches.

mod agent;
mod approve;
mod audit;
mod doctor;
mod marks;
mod policy;
mod requests;
mod signing;
mod status;
mod trust;
mod uninstall;

pub(crate) use agent::*;
pub(crate) use approve::*;
pub(crate) use audit::*;
pub(crate) use doctor::*;
pub(crate) use marks::*;
pub(crate) use policy::*;
pub(crate) use requests::*;
pub(crate) use signing::*;
pub(crate) use status::*;
pub(crate) use trust::*;
pub(crate) use uninstall::*;
