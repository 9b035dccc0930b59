//! Compile test of the generated code: every proto of `testdata/protos`, generated twice.
//!
//! - at the crate root, by `build.rs` through `grpc-build` (pure-Rust parser, no comments);
//! - in [`golden`], the checked-in files `regenerate.sh` made with protoc, protoc-gen-rs and
//!   protoc-gen-rust-grpc (with comments, so the doctests check that proto comments are
//!   harmless rustdoc).

grpc_runtime::include_protos!();

/// `testdata/collide`: files of one basename (two `resource.proto`, two `status.proto`),
/// each in a module named after its path.
pub mod collide {
    include!(concat!(env!("OUT_DIR"), "/collide/_protos.rs"));
}

/// `services/cross.proto` with `test.common` as an extern path (this crate's root modules).
pub mod extern_paths {
    include!(concat!(env!("OUT_DIR"), "/extern/_protos.rs"));
}

/// `testdata/collide` through the protoc plugin alone (`messages=true,mod_rs=true`), checked
/// in as `testdata/golden/collide`.
#[rustfmt::skip]
#[path = "../../golden/collide/mod.rs"]
pub mod golden_collide;

/// The checked-in golden files (`testdata/golden`), kept as generated: not rustfmt's.
#[rustfmt::skip]
#[path = "../../golden/mod.rs"]
pub mod golden;

#[cfg(test)]
mod tests;
