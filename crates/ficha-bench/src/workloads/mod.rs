//! The workloads of the benchmark, each against its baseline.

pub mod edit;
pub mod fanout;
pub mod memory;
pub mod read;
pub mod records;
pub mod records_sync;
pub mod repo_endpoint;
pub mod sync;
