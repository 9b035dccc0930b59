//! One Rust module per file, even where basenames collide.
//!
//! rust-protobuf 3.7 names the module of a `.proto` file after its basename alone, and
//! refers to another file's types through that name (`super::resource::Foo`). Real trees
//! have many files of one basename: googleapis has `google/api/resource.proto` and
//! `google/cloud/speech/v1/resource.proto`, imported together; envoy has dozens of
//! `status.proto`. Both would be written to `resource.rs`.
//!
//! rust-protobuf derives every module name and cross-file path from the file *names* in the
//! descriptors. So [`disambiguate`] renames the colliding files in the descriptors (and the
//! imports that name them) before generation: each file whose basename is shared gets a
//! module named after its whole path, `google/api/resource.proto` -> `google_api_resource`,
//! and files with a basename of their own keep their module. Generated paths then agree by
//! construction, for the messages and for the stubs.
//!
//! The descriptor that rust-protobuf embeds in each generated file (for reflection) must
//! keep the real names, so that `file_descriptor()` and the reflection service show the
//! tree as protoc sees it: [`Renames::restore`] puts the original descriptor back into the
//! generated source of each file whose descriptor was changed.

use std::collections::{BTreeMap, BTreeSet};

use protobuf::Message;
use protobuf::descriptor::FileDescriptorProto;

use crate::{Error, check_module_names, naming};

/// What [`disambiguate`] changed: the original descriptor of every file whose descriptor it
/// renamed or whose imports it rewrote, by the file's new name.
#[derive(Debug, Default, Clone)]
pub struct Renames {
    /// New name -> original name, for the renamed files.
    names: BTreeMap<String, String>,
    /// New name -> original descriptor, for every changed file.
    originals: BTreeMap<String, FileDescriptorProto>,
}

impl Renames {
    /// Whether nothing was renamed.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The original name of the file now named `name` (itself if it was not renamed).
    pub fn original_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.names.get(name).map_or(name, String::as_str)
    }

    /// The new name of the file originally named `name` (itself if it was not renamed).
    pub fn new_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.names
            .iter()
            .find(|(_, original)| *original == name)
            .map_or(name, |(new, _)| new.as_str())
    }

    /// The renamed files: (original name, module).
    pub fn renamed(&self) -> impl Iterator<Item = (&str, String)> {
        self.names
            .iter()
            .map(|(new, original)| (original.as_str(), naming::file_module_name(new)))
    }

    /// Puts the original descriptor back into `source`, the rust-protobuf output for the
    /// file now named `name`: its `file_descriptor_proto_data` holds the renamed one.
    /// `None` if the file's descriptor was not changed (nothing to restore), or if `source`
    /// has no embedded descriptor where rust-protobuf writes it.
    pub fn restore(&self, name: &str, source: &str) -> Option<String> {
        let original = self.originals.get(name)?;
        const START: &str = "static file_descriptor_proto_data: &'static [u8] = b\"\\\n";
        let start = source.find(START)? + START.len();
        let end = start + source[start..].find("\";\n")?;
        let bytes = original.write_to_bytes().ok()?;
        let mut out = String::with_capacity(source.len() + bytes.len());
        out.push_str(&source[..start]);
        // Same layout as rust-protobuf's: lines of at most 72 escaped characters, each
        // continued with `\`; the indentation is the block's own.
        let indent: String = source[start..].chars().take_while(|c| *c == ' ').collect();
        let mut line = String::new();
        for byte in bytes {
            let escaped = escape(byte);
            if line.len() + escaped.len() > 72 {
                out.push_str(&indent);
                out.push_str(&line);
                out.push_str("\\\n");
                line.clear();
            }
            line.push_str(&escaped);
        }
        if !line.is_empty() {
            out.push_str(&indent);
            out.push_str(&line);
            out.push_str("\\\n");
        }
        out.push_str(&source[end..]);
        Some(out)
    }
}

/// One byte in a Rust byte string literal.
fn escape(byte: u8) -> String {
    match byte {
        b'"' => "\\\"".to_owned(),
        b'\\' => "\\\\".to_owned(),
        b'\n' => "\\n".to_owned(),
        b'\r' => "\\r".to_owned(),
        b'\t' => "\\t".to_owned(),
        // Printable but space: a space first on a line would be eaten by the `\` before it.
        0x21..=0x7e => (byte as char).to_string(),
        _ => format!("\\x{byte:02x}"),
    }
}

/// The module of a file named after its whole path: `google/api/resource.proto` ->
/// `google_api_resource` (what [`disambiguate`] gives files whose basenames collide).
pub fn path_module_name(proto_path: &str) -> String {
    let path = proto_path.strip_suffix(".proto").unwrap_or(proto_path);
    let flat: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    naming::file_module_name(&format!("{flat}.proto"))
}

/// Renames, in `files`, each file whose module (its basename) another file of `files` also
/// has, to a name whose module is [`path_module_name`] of its path, and rewrites the imports
/// naming it. Files the `protobuf` crate provides are left alone (they are not modules of
/// this tree). Fails if modules still collide after that (two paths that flatten alike,
/// `a_b/c.proto` and `a/b_c.proto`).
pub fn disambiguate(files: &mut [FileDescriptorProto]) -> Result<Renames, Error> {
    disambiguate_except(files, |_| false)
}

/// As [`disambiguate`], leaving alone the files `is_extern` picks too: files generated in
/// another crate (an extern path), named there by their basenames.
pub fn disambiguate_except(
    files: &mut [FileDescriptorProto],
    is_extern: impl Fn(&FileDescriptorProto) -> bool,
) -> Result<Renames, Error> {
    let mut by_module: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        if !naming::is_provided_by_protobuf_crate(file.name()) && !is_extern(file) {
            by_module
                .entry(naming::file_module_name(file.name()))
                .or_default()
                .push(i);
        }
    }
    // A stubs module `foo_grpc` and a file `foo_grpc.proto` collide too: rename the file.
    let stub_owners: BTreeSet<String> = files
        .iter()
        .filter(|f| {
            !f.service.is_empty()
                && !naming::is_provided_by_protobuf_crate(f.name())
                && !is_extern(f)
        })
        .map(|f| crate::stubs_module_name(f.name()))
        .collect();
    let mut names = BTreeMap::new();
    for (module, owners) in &by_module {
        if owners.len() < 2 && !stub_owners.contains(module) {
            continue;
        }
        for &i in owners {
            let original = files[i].name().to_owned();
            let new = format!("{}.proto", path_module_name(&original));
            names.insert(original, new);
        }
    }
    if names.is_empty() {
        return Ok(Renames::default());
    }
    // The modules after renaming, each claimed once (by the original file names).
    let originals: Vec<FileDescriptorProto> = files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if let Some(new) = names.get(f.name()) {
                // Named so that a collision reports the real name.
                let module = naming::file_module_name(new);
                f.set_name(format!("{}/{module}.proto", f.name()));
            }
            f
        })
        .collect();
    check_module_names(originals.iter().filter(|f| !is_extern(f))).map_err(|e| match e {
        Error::DuplicateModule {
            module,
            first,
            second,
        } => {
            let real = |name: String| match name.rsplit_once('/') {
                Some((real, _)) if names.contains_key(real) => real.to_owned(),
                _ => name,
            };
            Error::DuplicateModule {
                module,
                first: real(first),
                second: real(second),
            }
        }
        other => other,
    })?;
    let mut renames = Renames::default();
    for file in files.iter_mut() {
        let renamed = names.get(file.name());
        let imports_renamed = file.dependency.iter().any(|d| names.contains_key(d));
        if renamed.is_none() && !imports_renamed {
            continue;
        }
        let original = file.clone();
        if let Some(new) = renamed {
            renames.names.insert(new.clone(), file.name().to_owned());
            file.set_name(new.clone());
        }
        for dependency in &mut file.dependency {
            if let Some(new) = names.get(dependency.as_str()) {
                dependency.clone_from(new);
            }
        }
        renames.originals.insert(file.name().to_owned(), original);
    }
    Ok(renames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, deps: &[&str]) -> FileDescriptorProto {
        let mut f = FileDescriptorProto::new();
        f.set_name(name.into());
        f.dependency = deps.iter().map(|d| (*d).to_owned()).collect();
        f
    }

    #[test]
    fn path_modules() {
        assert_eq!(
            path_module_name("google/api/resource.proto"),
            "google_api_resource"
        );
        assert_eq!(path_module_name("a-b/c.d/type.proto"), "a_b_c_d_type");
        assert_eq!(path_module_name("3p/x.proto"), "_p_x");
    }

    #[test]
    fn only_colliding_files_are_renamed_and_imports_follow() {
        let mut files = vec![
            file("google/protobuf/any.proto", &[]),
            file("a/status.proto", &["google/protobuf/any.proto"]),
            file("b/v3/status.proto", &[]),
            file("any.proto", &[]),
            file(
                "user.proto",
                &["a/status.proto", "b/v3/status.proto", "any.proto"],
            ),
        ];
        let before = files.clone();
        let renames = disambiguate(&mut files).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name()).collect();
        // The protobuf crate's any.proto is not a module here: a user's any.proto keeps its.
        assert_eq!(
            names,
            [
                "google/protobuf/any.proto",
                "a_status.proto",
                "b_v3_status.proto",
                "any.proto",
                "user.proto"
            ]
        );
        assert_eq!(
            files[4].dependency,
            ["a_status.proto", "b_v3_status.proto", "any.proto"]
        );
        assert_eq!(renames.original_name("a_status.proto"), "a/status.proto");
        assert_eq!(renames.new_name("b/v3/status.proto"), "b_v3_status.proto");
        assert_eq!(renames.new_name("user.proto"), "user.proto");
        let renamed: Vec<_> = renames.renamed().collect();
        assert_eq!(
            renamed,
            [
                ("a/status.proto", "a_status".to_owned()),
                ("b/v3/status.proto", "b_v3_status".to_owned())
            ]
        );
        // The changed files' originals are kept for restoring; untouched ones are not.
        assert_eq!(renames.originals["user.proto"], before[4]);
        assert_eq!(renames.originals["a_status.proto"], before[1]);
        assert!(!renames.originals.contains_key("any.proto"));
    }

    #[test]
    fn no_collision_changes_nothing() {
        let mut files = vec![file("a/x.proto", &[]), file("b/y.proto", &["a/x.proto"])];
        let before = files.clone();
        assert!(disambiguate(&mut files).unwrap().is_empty());
        assert_eq!(files, before);
    }

    #[test]
    fn a_file_named_like_stubs_is_renamed() {
        let mut with_service = file("foo.proto", &[]);
        with_service.service.push(Default::default());
        let mut files = vec![with_service, file("x/foo_grpc.proto", &[])];
        disambiguate(&mut files).unwrap();
        assert_eq!(files[1].name(), "x_foo_grpc.proto");
    }

    #[test]
    fn paths_that_flatten_alike_are_an_error() {
        let mut files = vec![
            file("a_b/c.proto", &[]),
            file("a/b_c.proto", &[]),
            file("c.proto", &[]),
            file("b_c.proto", &[]),
        ];
        let err = disambiguate(&mut files).unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateModule { module, .. } if module == "a_b_c"),
            "{err}"
        );
    }

    #[test]
    fn restore_puts_the_original_descriptor_back() {
        let mut files = vec![
            file("a/status.proto", &[]),
            file("b/status.proto", &[]),
            file("user.proto", &["a/status.proto"]),
        ];
        files[2].set_package("p \"q\"\n".into());
        let renames = disambiguate(&mut files).unwrap();
        let renamed = protobuf::Message::write_to_bytes(&files[2]).unwrap();
        let literal: String = renamed.iter().map(|b| escape(*b)).collect();
        let source = format!(
            "// x\nstatic file_descriptor_proto_data: &'static [u8] = b\"\\\n    {literal}\\\n\";\n\nfn after() {{}}\n"
        );
        let restored = renames.restore("user.proto", &source).unwrap();
        assert!(restored.starts_with("// x\n"));
        assert!(restored.ends_with("\";\n\nfn after() {}\n"));
        // Unescape the literal as rustc would, and compare with the original.
        let start = restored.find("b\"\\\n").unwrap() + 4;
        let end = restored.find("\";\n").unwrap();
        let mut bytes = Vec::new();
        let body = &restored[start..end];
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                bytes.push(c as u8);
                continue;
            }
            match chars.next().unwrap() {
                '\n' => {
                    while chars.peek() == Some(&' ') {
                        chars.next();
                    }
                }
                'n' => bytes.push(b'\n'),
                'r' => bytes.push(b'\r'),
                't' => bytes.push(b'\t'),
                '"' => bytes.push(b'"'),
                '\\' => bytes.push(b'\\'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    bytes.push(u8::from_str_radix(&hex, 16).unwrap());
                }
                other => panic!("unexpected escape {other}"),
            }
        }
        let back = FileDescriptorProto::parse_from_bytes(&bytes).unwrap();
        assert_eq!(back.name(), "user.proto");
        assert_eq!(back.dependency, ["a/status.proto"]);
        assert_eq!(back.package(), "p \"q\"\n");
        assert!(
            renames
                .restore("b_status.proto", "no descriptor here")
                .is_none()
        );
        assert!(renames.restore("unchanged.proto", &source).is_none());
    }
}
