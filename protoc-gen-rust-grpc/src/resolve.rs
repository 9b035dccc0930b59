//! Resolution of fully-qualified proto message names to the Rust paths rust-protobuf 3.7
//! generates for them.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use protobuf::descriptor::{DescriptorProto, FileDescriptorProto};
use quote::quote;

use crate::naming;

/// Where rust-protobuf puts a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagePath {
    /// `::protobuf::well_known_types::<module>::<Type>`.
    WellKnown {
        /// Module inside `well_known_types` (`empty`, `struct_`, ...).
        module: String,
        /// Type name.
        name: String,
    },
    /// `::protobuf::descriptor::<nested modules>::<Type>`.
    Descriptor {
        /// Modules of the containing messages.
        nested: Vec<String>,
        /// Type name.
        name: String,
    },
    /// `<crate path>::<file module>::<nested modules>::<Type>`: a file generated elsewhere
    /// (an extern path).
    Extern {
        /// The Rust path of the module holding the file's module.
        root: String,
        /// Module of the file.
        file_module: String,
        /// Modules of the containing messages.
        nested: Vec<String>,
        /// Type name.
        name: String,
    },
    /// `super::<file module>::<nested modules>::<Type>`: a sibling module of the stubs.
    Sibling {
        /// Module of the file.
        file_module: String,
        /// Modules of the containing messages.
        nested: Vec<String>,
        /// Type name.
        name: String,
    },
}

impl MessagePath {
    fn segments(&self) -> (TokenStream, Vec<&str>) {
        match self {
            MessagePath::WellKnown { module, name } => (
                quote!(::protobuf::well_known_types),
                vec![module.as_str(), name.as_str()],
            ),
            MessagePath::Descriptor { nested, name } => (
                quote!(::protobuf::descriptor),
                nested
                    .iter()
                    .map(String::as_str)
                    .chain([name.as_str()])
                    .collect(),
            ),
            MessagePath::Extern {
                root,
                file_module,
                nested,
                name,
            } => (
                // Checked to parse when the paths were set.
                syn::parse_str::<syn::Path>(root).map_or_else(|_| quote!(super), |p| quote!(#p)),
                [file_module.as_str()]
                    .into_iter()
                    .chain(nested.iter().map(String::as_str))
                    .chain([name.as_str()])
                    .collect(),
            ),
            MessagePath::Sibling {
                file_module,
                nested,
                name,
            } => (
                quote!(super),
                [file_module.as_str()]
                    .into_iter()
                    .chain(nested.iter().map(String::as_str))
                    .chain([name.as_str()])
                    .collect(),
            ),
        }
    }

    /// The path as tokens.
    pub(crate) fn to_tokens(&self) -> TokenStream {
        let (prefix, segs) = self.segments();
        let segs = segs
            .into_iter()
            .map(|s| naming::protobuf_segment(s).to_ident());
        quote!(#prefix #(:: #segs)*)
    }
}

impl std::fmt::Display for MessagePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (prefix, segs) = self.segments();
        let prefix = prefix.to_string().replace(' ', "");
        f.write_str(&prefix)?;
        for s in segs {
            write!(f, "::{}", naming::protobuf_segment(s).as_source())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Message {
        file: String,
        package: String,
        /// Names from the outermost message to this one.
        names: Vec<String>,
    },
    Enum,
}

/// Index of every message and enum of a set of files, by fully-qualified name.
#[derive(Debug, Default)]
pub struct TypeIndex {
    entries: HashMap<String, Entry>,
    extern_paths: Vec<(String, String)>,
}

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No message of that name in the files.
    NotFound,
    /// The name is an enum, not a message.
    NotAMessage,
    /// A well-known type's name in `google.protobuf`, defined outside `google/protobuf/`:
    /// rust-protobuf cannot reference it.
    MisplacedWellKnownType(String),
}

impl TypeIndex {
    /// Indexes the messages and enums of `files`.
    pub fn new(files: &[FileDescriptorProto]) -> TypeIndex {
        let mut index = TypeIndex::default();
        for file in files {
            let prefix = if file.package().is_empty() {
                String::new()
            } else {
                format!(".{}", file.package())
            };
            for e in &file.enum_type {
                index
                    .entries
                    .insert(format!("{prefix}.{}", e.name()), Entry::Enum);
            }
            for m in &file.message_type {
                index.add_message(file, &prefix, &mut Vec::new(), m);
            }
        }
        index
    }

    /// Resolves the messages of packages in `extern_paths` to those crate paths (see
    /// [`Options::extern_paths`](crate::Options::extern_paths)).
    pub fn with_extern_paths(mut self, extern_paths: &[(String, String)]) -> TypeIndex {
        self.extern_paths = extern_paths.to_vec();
        self
    }

    fn add_message(
        &mut self,
        file: &FileDescriptorProto,
        prefix: &str,
        names: &mut Vec<String>,
        message: &DescriptorProto,
    ) {
        names.push(message.name().to_owned());
        let full = format!("{prefix}.{}", names.join("."));
        for e in &message.enum_type {
            self.entries
                .insert(format!("{full}.{}", e.name()), Entry::Enum);
        }
        self.entries.insert(
            full,
            Entry::Message {
                file: file.name().to_owned(),
                package: file.package().to_owned(),
                names: names.clone(),
            },
        );
        for nested in &message.nested_type {
            self.add_message(file, prefix, names, nested);
        }
        names.pop();
    }

    /// The Rust path of the message `type_name` (fully qualified, as in a method's
    /// `input_type`: `.package.Outer.Inner`; a missing leading dot is tolerated).
    pub fn resolve(&self, type_name: &str) -> Result<MessagePath, ResolveError> {
        let key = if type_name.starts_with('.') {
            type_name.to_owned()
        } else {
            format!(".{type_name}")
        };
        let (file, package, names) = match self.entries.get(&key) {
            None => return Err(ResolveError::NotFound),
            Some(Entry::Enum) => return Err(ResolveError::NotAMessage),
            Some(Entry::Message {
                file,
                package,
                names,
            }) => (file, package, names),
        };
        let name = naming::type_name(names.last().expect("at least one name"));
        let nested: Vec<String> = names[..names.len() - 1]
            .iter()
            .map(|n| naming::nested_module_name(n))
            .collect();
        if package == "google.protobuf" {
            if names.len() == 1 && naming::WELL_KNOWN_TYPE_NAMES.contains(&names[0].as_str()) {
                let base = file.strip_prefix("google/protobuf/");
                return match base {
                    Some(base) if !base.contains('/') => Ok(MessagePath::WellKnown {
                        module: naming::file_module_name(base),
                        name,
                    }),
                    _ => Err(ResolveError::MisplacedWellKnownType(file.clone())),
                };
            }
            let base = file.rsplit('/').next().unwrap_or(file);
            if base == "descriptor.proto" {
                return Ok(MessagePath::Descriptor { nested, name });
            }
        }
        if let Some(root) = crate::extern_path(&self.extern_paths, package) {
            return Ok(MessagePath::Extern {
                root: root.to_owned(),
                file_module: naming::file_module_name(file),
                nested,
                name,
            });
        }
        Ok(MessagePath::Sibling {
            file_module: naming::file_module_name(file),
            nested,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(name: &str, nested: Vec<DescriptorProto>) -> DescriptorProto {
        let mut m = DescriptorProto::new();
        m.set_name(name.to_owned());
        m.nested_type = nested;
        m
    }

    fn file(name: &str, package: &str, messages: Vec<DescriptorProto>) -> FileDescriptorProto {
        let mut f = FileDescriptorProto::new();
        f.set_name(name.to_owned());
        if !package.is_empty() {
            f.set_package(package.to_owned());
        }
        f.message_type = messages;
        f
    }

    fn index() -> TypeIndex {
        let mut with_enum = message("WithEnum", vec![]);
        let mut e = protobuf::descriptor::EnumDescriptorProto::new();
        e.set_name("Kind".to_owned());
        with_enum.enum_type.push(e);
        TypeIndex::new(&[
            file(
                "a/b/common.proto",
                "test.common",
                vec![
                    message(
                        "HTTPRequest",
                        vec![message("HTTPHeader", vec![message("Value", vec![])])],
                    ),
                    message("Outer", vec![message("Inner", vec![])]),
                    with_enum,
                ],
            ),
            file(
                "type.proto",
                "",
                vec![
                    message("Self", vec![]),
                    message("Type", vec![message("Inner", vec![])]),
                    message("match", vec![message("x", vec![])]),
                ],
            ),
            file(
                "google/protobuf/empty.proto",
                "google.protobuf",
                vec![message("Empty", vec![])],
            ),
            file(
                "google/protobuf/struct.proto",
                "google.protobuf",
                vec![message("Struct", vec![]), message("Value", vec![])],
            ),
            file(
                "google/protobuf/type.proto",
                "google.protobuf",
                vec![message("Type", vec![])],
            ),
            file(
                "google/protobuf/descriptor.proto",
                "google.protobuf",
                vec![
                    message("FileDescriptorProto", vec![]),
                    message("FieldDescriptorProto", vec![message("Nested", vec![])]),
                ],
            ),
            file(
                "google/protobuf/compiler/plugin.proto",
                "google.protobuf.compiler",
                vec![message("CodeGeneratorRequest", vec![])],
            ),
            file(
                "elsewhere/any.proto",
                "google.protobuf",
                vec![message("Any", vec![])],
            ),
            file("try.proto", "t", vec![message("M", vec![])]),
        ])
    }

    fn path(name: &str) -> String {
        index().resolve(name).unwrap().to_string()
    }

    #[test]
    fn nested_and_acronyms() {
        assert_eq!(
            path(".test.common.HTTPRequest"),
            "super::common::HTTPRequest"
        );
        assert_eq!(
            path(".test.common.HTTPRequest.HTTPHeader"),
            "super::common::httprequest::HTTPHeader"
        );
        assert_eq!(
            path(".test.common.HTTPRequest.HTTPHeader.Value"),
            "super::common::httprequest::httpheader::Value"
        );
        assert_eq!(
            path("test.common.Outer.Inner"),
            "super::common::outer::Inner"
        );
    }

    #[test]
    fn keywords() {
        assert_eq!(path(".Self"), "super::type_::Self_");
        assert_eq!(path(".Type.Inner"), "super::type_::type_::Inner");
        assert_eq!(path(".match.x"), "super::type_::match_::X");
        assert_eq!(path(".t.M"), "super::r#try::M");
    }

    #[test]
    fn well_known_types() {
        assert_eq!(
            path(".google.protobuf.Empty"),
            "::protobuf::well_known_types::empty::Empty"
        );
        assert_eq!(
            path(".google.protobuf.Value"),
            "::protobuf::well_known_types::struct_::Value"
        );
        assert_eq!(
            path(".google.protobuf.Type"),
            "::protobuf::well_known_types::type_::Type"
        );
        assert_eq!(
            path(".google.protobuf.FileDescriptorProto"),
            "::protobuf::descriptor::FileDescriptorProto"
        );
        assert_eq!(
            path(".google.protobuf.FieldDescriptorProto.Nested"),
            "::protobuf::descriptor::field_descriptor_proto::Nested"
        );
        assert_eq!(
            path(".google.protobuf.compiler.CodeGeneratorRequest"),
            "super::plugin::CodeGeneratorRequest"
        );
    }

    #[test]
    fn errors() {
        let index = index();
        assert_eq!(index.resolve(".nope.Nope"), Err(ResolveError::NotFound));
        assert_eq!(
            index.resolve(".test.common.WithEnum.Kind"),
            Err(ResolveError::NotAMessage)
        );
        assert_eq!(
            index.resolve(".google.protobuf.Any"),
            Err(ResolveError::MisplacedWellKnownType(
                "elsewhere/any.proto".to_owned()
            ))
        );
    }

    #[test]
    fn tokens_match_display() {
        let index = index();
        for name in [".Self", ".t.M", ".google.protobuf.Empty", ".Type.Inner"] {
            let p = index.resolve(name).unwrap();
            assert_eq!(p.to_tokens().to_string().replace(' ', ""), p.to_string());
        }
    }
}
