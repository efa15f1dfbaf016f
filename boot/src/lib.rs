//! Corral's host tool as a library: turns a TOML manifest into a bootable
//! ISO (hypervisor, guest images, binary manifest), boots it in Bochs, shows
//! the consoles and judges the run from the hypervisor's report records.
//!
//! The `corral` binary is a thin wrapper around [`cli::run_args`]; the
//! integration tests call the same function.

pub mod bench;
pub mod bench_io;
pub mod bochs;
pub mod bochs_nics;
pub mod cargo_build;
pub mod cli;
pub mod console;
pub mod endpoint;
pub mod error;
pub mod expect;
pub mod fleet_bench;
pub mod hook_cmd;
pub mod hook_object;
pub mod host_cmd;
pub mod iso;
pub mod memory;
pub mod metrics_http;
pub mod net_bench;
pub mod netns;
pub mod nic_bench;
pub mod outcome;
pub mod report;
pub mod run;
pub mod scale_bench;
pub mod service;
pub mod table;
pub mod toml_manifest;
pub mod tools;
pub mod write_back;
