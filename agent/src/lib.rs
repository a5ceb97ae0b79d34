//! Warrant's userspace: policy, trust, the kernel maps, audit and the daemon.
pub mod approval;
pub mod audit;
pub mod btf;
pub mod config;
pub mod control;
pub mod daemon;
pub mod durable;
pub mod kernel;
pub mod metrics;
pub mod nft_render;
pub mod policy;
pub mod protect;
pub mod requests;
pub mod rollback;
pub mod subjects;
pub mod trust;
pub mod trust_root;
