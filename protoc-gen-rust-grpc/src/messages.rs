//! The messages too, for the protoc plugin: rust-protobuf's generator run in-process on the
//! same (disambiguated) descriptors as the stubs, and the module file that declares them all.
//!
//! With rust-protobuf's own `protoc-gen-rs` beside this plugin, module names are its:
//! basenames, so a tree with two `status.proto` cannot be generated. Generating the messages
//! here (`messages=true`) gives both halves the names of [`crate::modules`].

use std::collections::BTreeSet;
use std::path::PathBuf;

use protobuf::descriptor::FileDescriptorProto;
use protobuf_codegen::{Customize, CustomizeCallback};

use crate::modules::Renames;
use crate::{Error, GeneratedFile, naming};

/// What rust-protobuf's generator is given besides the descriptors.
#[derive(Clone, Copy)]
pub struct MessageOptions<'a> {
    /// rust-protobuf's options (its `mod.rs` is never generated).
    pub customize: &'a Customize,
    /// Per-element options (attributes before messages, enums, fields...).
    pub callback: &'a dyn CustomizeCallback,
    /// The parser that made the descriptors (`protoc`, `pure`), named in the files' headers.
    pub parser: &'a str,
    /// Packages generated in other crates (see
    /// [`Options::extern_paths`](crate::Options::extern_paths)): their files are not
    /// generated, and references to their types point there.
    pub extern_paths: &'a [(String, String)],
}

impl std::fmt::Debug for MessageOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageOptions")
            .field("customize", self.customize)
            .field("parser", &self.parser)
            .field("extern_paths", &self.extern_paths)
            .finish_non_exhaustive()
    }
}

/// rust-protobuf's messages for `files_to_generate` (names as in `files`, after
/// [`crate::modules::disambiguate`]) but those of extern packages, with the original
/// descriptors embedded again ([`Renames::restore`]) and references to extern files' types
/// pointing at their crates.
pub fn generate_messages(
    files: &[FileDescriptorProto],
    files_to_generate: &[impl AsRef<str>],
    renames: &Renames,
    options: MessageOptions<'_>,
) -> Result<Vec<GeneratedFile>, Error> {
    let package_of = |name: &str| {
        files
            .iter()
            .find(|f| f.name() == name)
            .map_or("", |f| f.package())
    };
    let wanted: Vec<&str> = files_to_generate
        .iter()
        .map(AsRef::as_ref)
        .filter(|name| !naming::is_provided_by_protobuf_crate(name))
        .filter(|name| crate::extern_path(options.extern_paths, package_of(name)).is_none())
        .collect();
    // Module -> crate path, for each extern file.
    let externs: Vec<(String, &str)> = files
        .iter()
        .filter_map(|f| {
            let root = crate::extern_path(options.extern_paths, f.package())?;
            Some((naming::file_module_name(f.name()), root))
        })
        .collect();
    let paths = wanted
        .iter()
        .map(|name| protobuf_parse::ProtoPathBuf::new((*name).to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Messages(format!("{e:#}")))?;
    // protobuf-codegen writes files only; a private directory of this process holds them.
    let dir = scratch_dir()?;
    let result = (|| {
        let mut customize = options.customize.clone();
        customize.update_with(&Customize::default().gen_mod_rs(false));
        // rust-protobuf panics on some inputs it does not support: an error, not a crash.
        let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            protobuf_codegen::gen_and_write::gen_and_write(
                files,
                options.parser,
                &paths,
                &dir,
                &customize,
                options.callback,
            )
        }))
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Error::Messages(format!("rust-protobuf failed (panicked): {message}"))
        })?;
        generated.map_err(|e| Error::Messages(format!("{e:#}")))?;
        let mut out = Vec::new();
        for name in &wanted {
            let file = format!("{}.rs", naming::file_module_name(name));
            let content = std::fs::read_to_string(dir.join(&file)).map_err(|e| {
                Error::Messages(format!("rust-protobuf wrote no `{file}` for `{name}`: {e}"))
            })?;
            let mut content = renames.restore(name, &content).unwrap_or(content);
            for (module, root) in &externs {
                content = point_to(&content, module, root);
            }
            out.push(GeneratedFile {
                name: file,
                content,
            });
        }
        Ok(out)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `source` with its references to file module `module` (`super::<module>::`, reached from
/// any depth of nested modules as `super::super::<module>::`) pointing at `root::<module>::`
/// instead: rust-protobuf reaches other files through their sibling modules, and an extern
/// file's module is in its crate.
fn point_to(source: &str, module: &str, root: &str) -> String {
    let needle = format!("super::{module}::");
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find(&needle) {
        let mut start = at;
        while rest[..start].ends_with("super::") {
            start -= "super::".len();
        }
        // The whole path, not the tail of a longer one (`x::super::..` cannot be, but an
        // identifier ending in `super` could).
        let whole = rest[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        out.push_str(&rest[..start]);
        if whole {
            out.push_str(root);
            out.push_str("::");
            out.push_str(module);
            out.push_str("::");
        } else {
            out.push_str(&rest[start..at + needle.len()]);
        }
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[test]
fn extern_references_from_any_depth() {
    let source = "a: super::common::X, b: super::super::common::y::Z, c: super::commons::W, \
                  d: notsuper::common::V, e: super::super::super::common::file_descriptor()";
    assert_eq!(
        point_to(source, "common", "::dep::pb"),
        "a: ::dep::pb::common::X, b: ::dep::pb::common::y::Z, c: super::commons::W, \
         d: notsuper::common::V, e: ::dep::pb::common::file_descriptor()"
    );
}

fn scratch_dir() -> Result<PathBuf, Error> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "protoc-gen-rust-grpc-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Messages(format!("cannot create `{}`: {e}", dir.display())))?;
    Ok(dir)
}

/// A `mod.rs` declaring `modules` (file names `<module>.rs`) as public siblings, for
/// `#[path = ".../mod.rs"] mod generated;` or a `generated/` directory module.
pub fn module_file(modules: impl IntoIterator<Item = impl AsRef<str>>) -> GeneratedFile {
    let modules: BTreeSet<String> = modules
        .into_iter()
        .map(|m| m.as_ref().trim_end_matches(".rs").to_owned())
        .collect();
    let mut content = String::from(
        "// @generated by protoc-gen-rust-grpc. Do not edit.\n\
         // The modules of this directory: rust-protobuf's messages and their gRPC stubs.\n",
    );
    for module in &modules {
        // `type.proto`'s stubs are `type__grpc`: not snake case for rustc.
        if module.contains("__") {
            content.push_str("#[allow(non_snake_case)]\n");
        }
        content.push_str(&format!(
            "pub mod {};\n",
            naming::rust_ident(module).as_source()
        ));
    }
    GeneratedFile {
        name: "mod.rs".to_owned(),
        content,
    }
}
