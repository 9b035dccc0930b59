//! Binary logging (gRFC A16): a record of each call's headers, messages and trailers, as
//! `grpc.binarylog.v1.GrpcLogEntry` protos, for the methods a filter chooses.
//!
//! A [`Logger`] is a [stats handler](crate::stats): install a clone on each channel and each
//! server whose calls it should log. It follows a [`Config`] (gRPC's `GRPC_BINARY_LOG_FILTER`
//! syntax, from [`Config::from_env`] or [`Config::parse`]) and writes records to a [`Sink`];
//! [`FileSink`] writes gRPC's file format (each record a 4-byte big-endian length and the
//! serialized proto), which gRPC's tools read. The record types are in [`proto`].
//!
//! Nothing runs for a method the filter leaves out but one lookup when its call begins.
//!
//! # Examples
//!
//! Logs every method of `helloworld.Greeter` but `SayGoodbye`, headers whole and the first
//! kilobyte of each message, on a channel and on a server:
//!
//! ```no_run
//! use grpc_runtime::binarylog::{Config, FileSink, Logger};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::parse("helloworld.Greeter/*{h;m:1024},-helloworld.Greeter/SayGoodbye")?;
//! let logger = Logger::new(config, FileSink::create("/tmp/grpc-binary.log")?);
//!
//! let channel = grpc_runtime::client::Channel::builder("http://127.0.0.1:50051")
//!     .stats_handler(logger.clone())
//!     .build()?;
//! let server = grpc_runtime::server::Server::builder().stats_handler(logger.clone());
//! // ... serve and call. The file sink writes its buffer out every second; at shutdown:
//! logger.flush();
//! # let _ = (channel, server);
//! # Ok(())
//! # }
//! ```
//!
//! Reading a log back:
//!
//! ```
//! use grpc_runtime::binarylog::proto::GrpcLogEntry;
//! use protobuf::Message;
//!
//! fn read_log(mut bytes: &[u8]) -> Result<Vec<GrpcLogEntry>, protobuf::Error> {
//!     let mut entries = Vec::new();
//!     while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
//!         let len = u32::from_be_bytes(*len) as usize;
//!         entries.push(GrpcLogEntry::parse_from_bytes(&rest[..len.min(rest.len())])?);
//!         bytes = &rest[len.min(rest.len())..];
//!     }
//!     Ok(entries)
//! }
//! # assert!(read_log(&[]).unwrap().is_empty());
//! ```

mod config;
mod logger;
mod sink;

pub use config::{Config, FILTER_ENV, FilterError, FilterErrorKind, Limits};
pub use logger::{CallLog, Logger};
pub use sink::{FileSink, Sink};

/// The records: `grpc.binarylog.v1` (gRPC's `grpc/binlog/v1/binarylog.proto`), as
/// rust-protobuf messages.
pub mod proto {
    pub use crate::generated::binarylog_v1::binarylog::*;
}
