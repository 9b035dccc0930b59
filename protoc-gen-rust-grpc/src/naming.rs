//! Names: the ones rust-protobuf 3.7 gives to files, messages and nested modules (which the
//! stubs must reproduce exactly to reference message types), and the ones this generator gives
//! to services, methods and constants.

/// Words rust-protobuf 3.7 escapes with a trailing `_` when they are a module or type name.
///
/// This is rust-protobuf's list, not the language's: `try` and `gen` are missing from it (and
/// are handled by [`rust_ident`]), while some words that are no longer reserved are in it.
const PROTOBUF_ESCAPED_WORDS: &[&str] = &[
    "_", "abstract", "alignof", "as", "async", "await", "become", "box", "break", "const",
    "continue", "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for",
    "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "offsetof",
    "override", "priv", "proc", "pub", "pure", "ref", "return", "Self", "self", "sizeof", "static",
    "struct", "super", "trait", "true", "type", "typeof", "unsafe", "unsized", "use", "virtual",
    "where", "while", "yield",
];

/// Keywords and reserved words of Rust 2024: not usable as plain identifiers.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Keywords that cannot be written as raw identifiers (`r#self` is not valid Rust).
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Whether `word` is a Rust 2024 keyword or reserved word.
pub fn is_rust_keyword(word: &str) -> bool {
    RUST_KEYWORDS.contains(&word)
}

/// An identifier as rust-protobuf 3.7 prints it: words of its keyword list get a `_` suffix.
pub fn protobuf_escape(name: &str) -> String {
    if PROTOBUF_ESCAPED_WORDS.contains(&name) {
        format!("{name}_")
    } else {
        name.to_owned()
    }
}

/// Whether a proto file is compiled into the `protobuf` crate itself (well-known types,
/// `descriptor.proto`, `rustproto.proto`) rather than into a module of its own.
pub fn is_provided_by_protobuf_crate(proto_path: &str) -> bool {
    proto_path == "google/protobuf/descriptor.proto"
        || proto_path == "rustproto.proto"
        || WELL_KNOWN_TYPE_FILES
            .iter()
            .any(|f| proto_path.strip_prefix("google/protobuf/") == Some(f))
}

/// Files of the well-known types, as bundled in `protobuf::well_known_types`.
pub(crate) const WELL_KNOWN_TYPE_FILES: &[&str] = &[
    "any.proto",
    "api.proto",
    "duration.proto",
    "empty.proto",
    "field_mask.proto",
    "source_context.proto",
    "struct.proto",
    "timestamp.proto",
    "type.proto",
    "wrappers.proto",
];

/// Top-level message names of `google.protobuf` that rust-protobuf maps into
/// `protobuf::well_known_types`.
pub(crate) const WELL_KNOWN_TYPE_NAMES: &[&str] = &[
    "Any",
    "Api",
    "BoolValue",
    "BytesValue",
    "DoubleValue",
    "Duration",
    "Empty",
    "Enum",
    "EnumValue",
    "Field",
    "FieldMask",
    "FloatValue",
    "Int32Value",
    "Int64Value",
    "ListValue",
    "Method",
    "Mixin",
    "NullValue",
    "Option",
    "SourceContext",
    "StringValue",
    "Struct",
    "Syntax",
    "Timestamp",
    "Type",
    "UInt32Value",
    "UInt64Value",
    "Value",
];

/// The module rust-protobuf 3.7 generates for a `.proto` file: its basename without the
/// `.proto` suffix (directories are ignored), each character that cannot be part of an
/// identifier replaced with `_`, and a `_` suffix on keywords (`type.proto` -> `type_`).
///
/// The generated file is named `<module>.rs`.
pub fn file_module_name(proto_path: &str) -> String {
    let base = match proto_path.rfind(['/', '\\']) {
        Some(i) => &proto_path[i + 1..],
        None => proto_path,
    };
    let base = base.strip_suffix(".proto").unwrap_or(base);
    let mut name = String::with_capacity(base.len());
    for (i, c) in base.chars().enumerate() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        name.push(if ok { c } else { '_' });
    }
    if name.is_empty() {
        name.push('_');
    }
    protobuf_escape(&name)
}

/// The Rust name rust-protobuf 3.7 gives a message or enum: its proto name with the first
/// letter upper-cased (`Self` -> `Self_`).
pub fn type_name(proto_name: &str) -> String {
    let mut chars = proto_name.chars();
    let upper = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => String::new(),
    };
    protobuf_escape(&upper)
}

/// The module rust-protobuf 3.7 puts the nested types of a message in: its snake_case name,
/// converted the way protobuf-parse does it (an `_` only before an upper-case letter that
/// follows a lower-case one, so `HTTPRequest` -> `httprequest`, `FooBar` -> `foo_bar`).
pub fn nested_module_name(message_name: &str) -> String {
    let mut out = String::with_capacity(message_name.len() + 4);
    let mut last_lower = false;
    for c in message_name.chars() {
        if c.is_ascii_uppercase() && last_lower {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        last_lower = c.is_lowercase();
    }
    protobuf_escape(&out)
}

/// Splits a proto name into words: at `_`, at a lower-case letter or digit followed by an
/// upper-case one, and before the last capital of an acronym followed by a lower-case letter
/// (`GetHTTPRequest` -> `Get`, `HTTP`, `Request`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some(prev) = current.chars().last() {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = c.is_uppercase()
                && (prev.is_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_uppercase() && next_lower));
            if boundary {
                words.push(std::mem::take(&mut current));
            }
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// snake_case of a service or method name (`SayHello` -> `say_hello`,
/// `GetHTTPRequest` -> `get_http_request`). Empty if the name has no letters or digits.
pub fn snake_case(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

/// SCREAMING_SNAKE_CASE of a method name (`SayHello` -> `SAY_HELLO`).
pub fn screaming_snake_case(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| w.to_uppercase())
        .collect::<Vec<_>>()
        .join("_")
}

/// How an identifier chosen by this generator is written in Rust source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RustIdent {
    /// A plain identifier.
    Plain(String),
    /// A raw identifier: `r#<name>`.
    Raw(String),
}

impl RustIdent {
    /// The identifier as written in source (`foo`, `r#type`).
    pub fn as_source(&self) -> String {
        match self {
            RustIdent::Plain(s) => s.clone(),
            RustIdent::Raw(s) => format!("r#{s}"),
        }
    }

    /// The identifier as a token.
    pub(crate) fn to_ident(&self) -> proc_macro2::Ident {
        let span = proc_macro2::Span::call_site();
        match self {
            RustIdent::Plain(s) => proc_macro2::Ident::new(s, span),
            RustIdent::Raw(s) => proc_macro2::Ident::new_raw(s, span),
        }
    }

    /// The name without any `r#` prefix: what collides with what.
    pub(crate) fn name(&self) -> &str {
        match self {
            RustIdent::Plain(s) | RustIdent::Raw(s) => s,
        }
    }
}

/// Makes `name` usable as an identifier: keywords become raw identifiers (`r#type`), and the
/// ones that cannot be raw (`self`, `Self`, `super`, `crate`) get a `_` suffix.
pub fn rust_ident(name: &str) -> RustIdent {
    if NOT_RAW.contains(&name) {
        RustIdent::Plain(format!("{name}_"))
    } else if is_rust_keyword(name) {
        RustIdent::Raw(name.to_owned())
    } else {
        RustIdent::Plain(name.to_owned())
    }
}

/// A path segment naming a module or type that rust-protobuf generated. rust-protobuf has
/// already escaped the words of its own list; a word it does not know (`try`, `gen`) is
/// still a keyword and is written as a raw identifier.
pub(crate) fn protobuf_segment(name: &str) -> RustIdent {
    if is_rust_keyword(name) && !NOT_RAW.contains(&name) {
        RustIdent::Raw(name.to_owned())
    } else {
        RustIdent::Plain(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modules() {
        assert_eq!(file_module_name("helloworld.proto"), "helloworld");
        assert_eq!(file_module_name("foo/bar/baz.proto"), "baz");
        assert_eq!(file_module_name("type.proto"), "type_");
        assert_eq!(file_module_name("google/protobuf/struct.proto"), "struct_");
        assert_eq!(file_module_name("a/self.proto"), "self_");
        assert_eq!(file_module_name("my-service.v1.proto"), "my_service_v1");
        assert_eq!(file_module_name("1st.proto"), "_st");
        assert_eq!(file_module_name("proto.proto3"), "proto_proto3");
        assert_eq!(file_module_name("noext"), "noext");
        // not in rust-protobuf's list: left alone (and written `r#try` by the stubs).
        assert_eq!(file_module_name("try.proto"), "try");
        assert_eq!(protobuf_segment("try").as_source(), "r#try");
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name("HelloRequest"), "HelloRequest");
        assert_eq!(type_name("lowercase"), "Lowercase");
        assert_eq!(type_name("Self"), "Self_");
        assert_eq!(type_name("self"), "Self_");
        assert_eq!(type_name("type"), "Type");
        assert_eq!(type_name("Box"), "Box");
        assert_eq!(type_name("HTTPRequest"), "HTTPRequest");
    }

    #[test]
    fn nested_modules_use_protobuf_parse_snake_case() {
        assert_eq!(nested_module_name("Outer"), "outer");
        assert_eq!(nested_module_name("HTTPRequest"), "httprequest");
        assert_eq!(nested_module_name("FooBar"), "foo_bar");
        assert_eq!(
            nested_module_name("fooBarBaz_QuxQUUX"),
            "foo_bar_baz_qux_quux"
        );
        assert_eq!(nested_module_name("Foo2Bar"), "foo2bar");
        assert_eq!(nested_module_name("Type"), "type_");
        assert_eq!(nested_module_name("Self"), "self_");
        assert_eq!(nested_module_name("Match"), "match_");
        assert_eq!(nested_module_name("IPv4Address"), "ipv4address");
    }

    #[test]
    fn method_names() {
        assert_eq!(snake_case("SayHello"), "say_hello");
        assert_eq!(snake_case("GetHTTPRequest"), "get_http_request");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("connect"), "connect");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("Get2FACode"), "get2_fa_code");
        assert_eq!(snake_case("V1Api"), "v1_api");
        assert_eq!(snake_case("ABC"), "abc");
        assert_eq!(snake_case("__"), "");
        assert_eq!(screaming_snake_case("SayHello"), "SAY_HELLO");
        assert_eq!(screaming_snake_case("GetHTTPRequest"), "GET_HTTP_REQUEST");
        assert_eq!(screaming_snake_case("Descriptor"), "DESCRIPTOR");
    }

    #[test]
    fn keywords() {
        assert_eq!(rust_ident("type").as_source(), "r#type");
        assert_eq!(rust_ident("match").as_source(), "r#match");
        assert_eq!(rust_ident("async").as_source(), "r#async");
        assert_eq!(rust_ident("gen").as_source(), "r#gen");
        assert_eq!(rust_ident("try").as_source(), "r#try");
        assert_eq!(rust_ident("self").as_source(), "self_");
        assert_eq!(rust_ident("Self").as_source(), "Self_");
        assert_eq!(rust_ident("super").as_source(), "super_");
        assert_eq!(rust_ident("crate").as_source(), "crate_");
        assert_eq!(rust_ident("union").as_source(), "union");
        assert_eq!(rust_ident("Box").as_source(), "Box");
        assert_eq!(rust_ident("say_hello").as_source(), "say_hello");
        // Every escaped form is a valid token.
        for kw in RUST_KEYWORDS {
            let _ = rust_ident(kw).to_ident();
        }
    }

    #[test]
    fn protobuf_crate_files() {
        assert!(is_provided_by_protobuf_crate("google/protobuf/empty.proto"));
        assert!(is_provided_by_protobuf_crate(
            "google/protobuf/descriptor.proto"
        ));
        assert!(!is_provided_by_protobuf_crate(
            "google/protobuf/compiler/plugin.proto"
        ));
        assert!(!is_provided_by_protobuf_crate("empty.proto"));
    }
}
