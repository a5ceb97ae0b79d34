// Exists so that agent/ can name this crate as a build dependency (cargo
// rebuilds the embedded object when it changes); the programs are in main.rs.
#![no_std]
