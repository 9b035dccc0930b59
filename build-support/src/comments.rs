//! Leading comments of services and methods, read back from the `.proto` sources.
//!
//! Neither of protobuf-parse's parsers keeps `source_code_info`, which is where the stub
//! generator finds the comments it turns into rustdoc. This module rescans each file's text
//! with a small tokenizer that knows comments, string literals and braces, finds the
//! `service` and `rpc` declarations, and records their leading comments under the same paths
//! `protoc --include_source_info` would use (`[6, s]` and `[6, s, 2, m]`).
//!
//! "Leading comment" follows protoc's tokenizer: the comment block right before a
//! declaration's first token (a run of `//` lines, or one `/* */` block) that is not
//! separated from it by a blank line and does not start on the line of the previous token
//! (that one trails the previous declaration). The text is what protoc keeps: a `//` line
//! without its `//`, newline included; a block without its `/*`, `*/` and the whitespace and
//! `*` that start its continuation lines.
//!
//! Declarations are matched to the descriptors by order and checked by name; anything that
//! does not match is skipped. Comments are never a reason to fail a build: unreadable files,
//! odd syntax and unterminated comments or strings only mean fewer docs.

use std::fs;
use std::path::Path;

use protobuf::descriptor::source_code_info::Location;
use protobuf::descriptor::{FileDescriptorProto, SourceCodeInfo};

/// Field number of `FileDescriptorProto.service`.
const FILE_SERVICE: i32 = 6;
/// Field number of `ServiceDescriptorProto.method`.
const SERVICE_METHOD: i32 = 2;

/// Fills `source_code_info` of every file with services with the leading comments of its
/// services and methods, read from the first of `include_dirs` that holds the file.
/// `source_name` maps a descriptor's name to the file's path relative to the include
/// directories (they differ for descriptors renamed for generation). Paths that already have
/// a leading comment (a descriptor that came with source info) are left alone.
pub(crate) fn attach_leading_comments<'a>(
    files: &mut [FileDescriptorProto],
    include_dirs: impl IntoIterator<Item = &'a Path> + Clone,
    source_name: impl Fn(&str) -> String,
) {
    for file in files.iter_mut().filter(|f| !f.service.is_empty()) {
        let name = source_name(file.name());
        let Some(source) = include_dirs
            .clone()
            .into_iter()
            .map(|dir| dir.join(&name))
            .find(|path| path.is_file())
            .and_then(|path| fs::read(path).ok())
        else {
            continue;
        };
        let source = String::from_utf8_lossy(&source);
        attach_from_source(file, &source);
    }
}

/// [`attach_leading_comments`] for one file whose text is `source`.
pub(crate) fn attach_from_source(file: &mut FileDescriptorProto, source: &str) {
    let found = leading_comments(source);
    let mut info = file.source_code_info.take().unwrap_or_default();
    for (si, service_decl) in found.iter().enumerate() {
        let Some(service) = file.service.get(si) else {
            break;
        };
        if service.name() != service_decl.decl.name {
            continue;
        }
        let path = vec![FILE_SERVICE, si as i32];
        add(&mut info, path, &service_decl.decl);
        for (mi, method_decl) in service_decl.methods.iter().enumerate() {
            let Some(method) = service.method.get(mi) else {
                break;
            };
            if method.name() != method_decl.name {
                continue;
            }
            let path = vec![FILE_SERVICE, si as i32, SERVICE_METHOD, mi as i32];
            add(&mut info, path, method_decl);
        }
    }
    if !info.location.is_empty() {
        file.source_code_info = Some(info).into();
    }
}

fn add(info: &mut SourceCodeInfo, path: Vec<i32>, decl: &Decl) {
    let Some(comment) = decl.leading.as_ref().filter(|c| !c.is_empty()) else {
        return;
    };
    if info
        .location
        .iter()
        .any(|l| l.path == path && l.has_leading_comments())
    {
        return;
    }
    let mut location = Location::new();
    location.path = path;
    // The declaration's keyword (zero-based line, start and end columns, in bytes): enough
    // for a reader; the stub generator only reads the comment.
    location.span = vec![decl.line as i32, decl.column as i32, decl.end_column as i32];
    location.set_leading_comments(comment.clone());
    info.location.push(location);
}

/// A `service` or `rpc` declaration found in a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decl {
    /// The declared name.
    pub(crate) name: String,
    /// The leading comment, as protoc records it.
    pub(crate) leading: Option<String>,
    /// Zero-based line of the keyword.
    pub(crate) line: usize,
    /// Zero-based column (in bytes) where the keyword starts.
    pub(crate) column: usize,
    /// Zero-based column (in bytes) where the keyword ends.
    pub(crate) end_column: usize,
}

impl Decl {
    fn new(keyword: &Token<'_>, name: &Token<'_>) -> Decl {
        Decl {
            name: name.text.to_owned(),
            leading: keyword.leading.clone(),
            line: keyword.line,
            column: keyword.column,
            end_column: keyword.column + keyword.text.len(),
        }
    }
}

/// A service declaration with its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceDecl {
    /// The service itself.
    pub(crate) decl: Decl,
    /// Its methods, in order of declaration.
    pub(crate) methods: Vec<Decl>,
}

/// The services of `source`, in order of declaration, each with its methods.
pub(crate) fn leading_comments(source: &str) -> Vec<ServiceDecl> {
    let tokens = tokenize(source);
    let mut services: Vec<ServiceDecl> = Vec::new();
    let mut depth = 0usize;
    // Depth inside the body of the service being read, if any.
    let mut service_body: Option<usize> = None;
    let mut statement_start = true;
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        if statement_start {
            let name = tokens.get(i + 1).filter(|t| is_ident(t.text));
            match (tok.text, service_body, name) {
                ("service", None, Some(name))
                    if depth == 0 && tokens.get(i + 2).is_some_and(|t| t.text == "{") =>
                {
                    services.push(ServiceDecl {
                        decl: Decl::new(tok, name),
                        methods: Vec::new(),
                    });
                    depth += 1;
                    service_body = Some(depth);
                    statement_start = true;
                    i += 3;
                    continue;
                }
                ("rpc", Some(body), Some(name)) if depth == body => {
                    if let Some(service) = services.last_mut() {
                        service.methods.push(Decl::new(tok, name));
                    }
                    statement_start = false;
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        match tok.text {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if service_body.is_some_and(|body| depth < body) {
                    service_body = None;
                }
            }
            _ => {}
        }
        statement_start = matches!(tok.text, ";" | "{" | "}");
        i += 1;
    }
    services
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One token of a `.proto` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token<'a> {
    /// The token's text (a whole string literal for strings).
    text: &'a str,
    /// Its leading comment, if it has one.
    leading: Option<String>,
    /// Zero-based line.
    line: usize,
    /// Zero-based column, in bytes.
    column: usize,
}

fn tokenize(source: &str) -> Vec<Token<'_>> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut scanner = Scanner {
        text: source,
        pos: 0,
        line: 0,
        line_start: 0,
    };
    let mut tokens = Vec::new();
    while let Some(token) = scanner.next_token(tokens.is_empty()) {
        tokens.push(token);
    }
    tokens
}

/// A pending comment block, before the token it may lead.
enum Pending {
    None,
    Lines(String),
    Block(String),
}

impl Pending {
    fn into_comment(self) -> Option<String> {
        match self {
            Pending::None => None,
            Pending::Lines(s) | Pending::Block(s) => Some(s),
        }
    }
}

enum CommentStart {
    Line,
    Block,
    None,
}

struct Scanner<'a> {
    text: &'a str,
    /// Byte offset; always on a character boundary.
    pos: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.text.as_bytes().get(self.pos + ahead).copied()
    }

    /// Moves past one character.
    fn bump(&mut self) {
        let Some(c) = self.text[self.pos..].chars().next() else {
            return;
        };
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.line_start = self.pos;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Skips whitespace other than newlines.
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | 0x0b | 0x0c)) {
            self.bump();
        }
    }

    /// Consumes `//` or `/*` if there is one.
    fn comment_start(&mut self) -> CommentStart {
        match (self.peek(), self.peek_at(1)) {
            (Some(b'/'), Some(b'/')) => {
                self.pos += 2;
                CommentStart::Line
            }
            (Some(b'/'), Some(b'*')) => {
                self.pos += 2;
                CommentStart::Block
            }
            _ => CommentStart::None,
        }
    }

    /// After `//`: the rest of the line, its newline included.
    fn line_comment(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            self.bump();
            if b == b'\n' {
                break;
            }
        }
        &self.text[start..self.pos]
    }

    /// After `/*`: the text up to `*/` (or the end of the file), without the blanks and
    /// the `*` that start each continuation line.
    fn block_comment(&mut self) -> String {
        let mut content = String::new();
        let mut start = self.pos;
        loop {
            match self.peek() {
                None => {
                    content.push_str(&self.text[start..self.pos]);
                    break;
                }
                Some(b'\n') => {
                    self.bump();
                    content.push_str(&self.text[start..self.pos]);
                    self.skip_blanks();
                    if self.eat(b'*') && self.eat(b'/') {
                        break;
                    }
                    start = self.pos;
                }
                Some(b'*') if self.peek_at(1) == Some(b'/') => {
                    content.push_str(&self.text[start..self.pos]);
                    self.pos += 2;
                    break;
                }
                Some(_) => self.bump(),
            }
        }
        content
    }

    /// The next token, with the comments before it. `first`: no token precedes it.
    fn next_token(&mut self, first: bool) -> Option<Token<'a>> {
        if !first {
            // A comment on the line of the previous token trails it; a token on the same
            // line has no leading comment.
            self.skip_blanks();
            match self.comment_start() {
                CommentStart::Line => {
                    self.line_comment();
                }
                CommentStart::Block => {
                    self.block_comment();
                    self.skip_blanks();
                    if !self.eat(b'\n') {
                        return self.token(None);
                    }
                }
                CommentStart::None => {
                    if !self.eat(b'\n') {
                        return self.token(None);
                    }
                }
            }
        }
        let mut pending = Pending::None;
        loop {
            self.skip_blanks();
            match self.comment_start() {
                CommentStart::Line => {
                    let line = self.line_comment();
                    match &mut pending {
                        Pending::Lines(s) => s.push_str(line),
                        _ => pending = Pending::Lines(line.to_owned()),
                    }
                }
                CommentStart::Block => {
                    pending = Pending::Block(self.block_comment());
                    self.skip_blanks();
                    self.eat(b'\n');
                }
                CommentStart::None => {
                    if self.eat(b'\n') {
                        // A blank line detaches what came before.
                        pending = Pending::None;
                        continue;
                    }
                    let token = self.token(None)?;
                    if matches!(token.text, "}" | "]" | ")") {
                        // The end of a scope leads nothing.
                        return Some(token);
                    }
                    return Some(Token {
                        leading: pending.into_comment(),
                        ..token
                    });
                }
            }
        }
    }

    /// Reads one token at the current position (after blanks and comments).
    fn token(&mut self, leading: Option<String>) -> Option<Token<'a>> {
        let start = self.pos;
        let (line, column) = (self.line, self.pos - self.line_start);
        let first = self.peek()?;
        match first {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'0'..=b'9' => {
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    self.bump();
                }
            }
            b'"' | b'\'' => {
                self.bump();
                // Up to the closing quote; an unterminated string ends at the line's end.
                while let Some(b) = self.peek() {
                    match b {
                        b'\n' => break,
                        b'\\' => {
                            self.bump();
                            if self.peek() != Some(b'\n') {
                                self.bump();
                            }
                        }
                        _ => {
                            self.bump();
                            if b == first {
                                break;
                            }
                        }
                    }
                }
            }
            // Any other character is a token of its own (whitespace never gets here).
            _ => self.bump(),
        }
        Some(Token {
            text: &self.text[start..self.pos],
            leading,
            line,
            column,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(service, leading)` and `(service.method, leading)` of `source`.
    fn comments(source: &str) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for s in leading_comments(source) {
            out.push((s.decl.name.clone(), s.decl.leading.clone()));
            for m in &s.methods {
                out.push((format!("{}.{}", s.decl.name, m.name), m.leading.clone()));
            }
        }
        out
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    const TRICKY: &str = r#"// File header: detached from the syntax statement.

syntax = "proto3";
package t; // trails the package
import "google/protobuf/descriptor.proto";
extend google.protobuf.ServiceOptions { string x = 50000; }

// Detached from the message.

message M { string service = 1; /* not a service */ }

// A comment before a blank line is detached,

// this one leads.
// Two lines.
service Greeter {
  option deprecated = false; // trails the option
  // Says hello.
  rpc SayHello(M) returns (M);
  /* A block. */
  rpc WithOptions (M) returns (M) {
    option deprecated = true;
    // In the options block: leads nothing we read.
  }
  rpc NoComment(M) returns (M); // trails NoComment
  rpc AfterTrailing(M) returns (M);
  /*
   * Stars at the start
   *   of lines.
   */
  rpc Stars(M) returns (stream M) {}
  // Lines, then a block: the block wins.
  /* block */
  rpc Mixed(M) returns (M);
  /* A block, then lines: */
  // the lines win.
  rpc Mixed2(M) returns (M);
  ;
  //
  rpc EmptyComment(M) returns (M);
}
/* "service Fake {" in a block */
// "rpc Fake(" in a line: "unterminated
service Second { rpc A(M) returns (M); rpc B(M) returns (M); }
service Third {
  // Strings hide braces.
  option (x) = "} service Nope { rpc Nope(";
  //Without a space.
  rpc C(M) returns (M);
}
"#;

    #[test]
    fn leading_comments_like_protoc() {
        assert_eq!(
            comments(TRICKY),
            vec![
                ("Greeter".into(), some(" this one leads.\n Two lines.\n")),
                ("Greeter.SayHello".into(), some(" Says hello.\n")),
                ("Greeter.WithOptions".into(), some(" A block. ")),
                ("Greeter.NoComment".into(), None),
                ("Greeter.AfterTrailing".into(), None),
                (
                    "Greeter.Stars".into(),
                    some("\n Stars at the start\n   of lines.\n")
                ),
                ("Greeter.Mixed".into(), some(" block ")),
                ("Greeter.Mixed2".into(), some(" the lines win.\n")),
                ("Greeter.EmptyComment".into(), some("\n")),
                (
                    "Second".into(),
                    some(" \"rpc Fake(\" in a line: \"unterminated\n")
                ),
                ("Second.A".into(), None),
                ("Second.B".into(), None),
                ("Third".into(), None),
                ("Third.C".into(), some("Without a space.\n")),
            ]
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for source in [
            "",
            "/",
            "/*",
            "/* service S {",
            "service S { /* unterminated",
            "service S { rpc A(M) returns (M); // eof without newline",
            "service S { rpc \"unterminated string\nrpc B(M) returns (M); }",
            "service S { rpc 'x\\",
            "service",
            "service S",
            "service S {",
            "rpc A(",
            "}}}}} service S { rpc",
            "{{{{ service S { rpc A(M) returns (M); }",
            "\u{feff}// bom\nservice S {}",
            "// é\nservice Ü { /* ☃\n * ★ */ rpc A(M) returns (M); }",
            "service S {\r\n  // crlf\r\n  rpc A(M) returns (M);\r\n}\r\n",
            "\\\\\\\"\"\"'''***///***",
        ] {
            let _ = comments(source);
            let _ = tokenize(source);
        }
        // Every prefix of a file full of comments and strings.
        for end in 0..=TRICKY.len() {
            if TRICKY.is_char_boundary(end) {
                let _ = comments(&TRICKY[..end]);
            }
        }
        assert_eq!(
            comments("\u{feff}// bom\nservice S {}"),
            vec![("S".into(), some(" bom\n"))]
        );
        assert_eq!(
            comments("service S {\r\n  // crlf\r\n  rpc A(M) returns (M);\r\n}\r\n"),
            vec![("S".into(), None), ("S.A".into(), some(" crlf\r\n"))]
        );
        assert_eq!(
            comments("// é\nservice S { /* ☃\n * ★ */ rpc A(M) returns (M); }"),
            vec![("S".into(), some(" é\n")), ("S.A".into(), None)]
        );
        assert!(comments("service Ü { rpc A(M) returns (M); }").is_empty());
    }

    fn protoc() -> Option<std::path::PathBuf> {
        std::env::var_os("PROTOC")
            .map(std::path::PathBuf::from)
            .or_else(|| Some("/usr/bin/protoc".into()).filter(|p: &std::path::PathBuf| p.exists()))
    }

    /// Leading comments of services and methods by path, as protoc reports them.
    fn from_protoc(protoc: &Path, dir: &Path, name: &str) -> Vec<(Vec<i32>, String)> {
        use protobuf::Message;
        let out = dir.join("set.pb");
        let status = std::process::Command::new(protoc)
            .arg("--include_source_info")
            .arg(format!("--descriptor_set_out={}", out.display()))
            .arg("-I")
            .arg(dir)
            .arg(dir.join(name))
            .status()
            .unwrap();
        assert!(status.success());
        let set =
            protobuf::descriptor::FileDescriptorSet::parse_from_bytes(&fs::read(&out).unwrap())
                .unwrap();
        let file = set.file.iter().find(|f| f.name() == name).unwrap();
        let mut found: Vec<(Vec<i32>, String)> = file
            .source_code_info
            .location
            .iter()
            .filter(|l| {
                l.path.first() == Some(&FILE_SERVICE)
                    && (l.path.len() == 2 || (l.path.len() == 4 && l.path[2] == SERVICE_METHOD))
                    && l.has_leading_comments()
            })
            .map(|l| (l.path.clone(), l.leading_comments().to_owned()))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn same_as_protoc() {
        let Some(protoc) = protoc() else {
            eprintln!("skipping same_as_protoc: no protoc (set PROTOC)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tricky.proto"), TRICKY).unwrap();
        let expected = from_protoc(&protoc, dir.path(), "tricky.proto");
        assert_eq!(expected.len(), 9, "{expected:?}");
        // protoc's descriptor without its source info, then ours.
        let parsed = protobuf_parse::Parser::new()
            .pure()
            .include(dir.path())
            .input(dir.path().join("tricky.proto"))
            .parse_and_typecheck()
            .unwrap();
        let mut files = parsed.file_descriptors;
        attach_leading_comments(&mut files, [dir.path()], str::to_owned);
        let file = files.iter().find(|f| f.name() == "tricky.proto").unwrap();
        let mut ours: Vec<(Vec<i32>, String)> = file
            .source_code_info
            .location
            .iter()
            .map(|l| (l.path.clone(), l.leading_comments().to_owned()))
            .collect();
        ours.sort();
        assert_eq!(ours, expected);
    }

    /// Every file with a service under `$GRPC_BUILD_COMMENTS_TREE` (an include directory, such
    /// as googleapis), compared with protoc: `GRPC_BUILD_COMMENTS_TREE=dir cargo test -p
    /// grpc-build -- --ignored same_as_protoc_on_a_tree`. Files protoc rejects are skipped.
    #[test]
    #[ignore = "needs protoc and a tree of .proto files"]
    fn same_as_protoc_on_a_tree() {
        let (Some(protoc), Some(tree)) = (protoc(), std::env::var_os("GRPC_BUILD_COMMENTS_TREE"))
        else {
            panic!("needs protoc and GRPC_BUILD_COMMENTS_TREE");
        };
        let tree = std::path::PathBuf::from(tree);
        let mut files = Vec::new();
        let mut dirs = vec![tree.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "proto") {
                    files.push(path);
                }
            }
        }
        files.sort();
        let out = tempfile::tempdir().unwrap();
        let (mut compared, mut mismatches) = (0, Vec::new());
        for path in files {
            let name = path
                .strip_prefix(&tree)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let set_path = out.path().join("set.pb");
            let ok = std::process::Command::new(&protoc)
                .arg("--include_source_info")
                .arg(format!("--descriptor_set_out={}", set_path.display()))
                .arg("-I")
                .arg(&tree)
                .arg(&path)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                continue;
            }
            use protobuf::Message;
            let set = protobuf::descriptor::FileDescriptorSet::parse_from_bytes(
                &fs::read(&set_path).unwrap(),
            )
            .unwrap();
            let mut file = set.file.into_iter().find(|f| f.name() == name).unwrap();
            if file.service.is_empty() {
                continue;
            }
            let leading = |f: &FileDescriptorProto| -> Vec<(Vec<i32>, String)> {
                let mut v: Vec<_> = f
                    .source_code_info
                    .location
                    .iter()
                    .filter(|l| {
                        l.path.first() == Some(&FILE_SERVICE)
                            && (l.path.len() == 2
                                || (l.path.len() == 4 && l.path[2] == SERVICE_METHOD))
                            && l.has_leading_comments()
                    })
                    .map(|l| (l.path.clone(), l.leading_comments().to_owned()))
                    .collect();
                v.sort();
                v
            };
            let expected = leading(&file);
            file.source_code_info = Default::default();
            attach_leading_comments(std::slice::from_mut(&mut file), [tree.as_path()], |n| {
                n.to_owned()
            });
            compared += 1;
            if leading(&file) != expected {
                mismatches.push(name);
            }
        }
        eprintln!("compared {compared} files");
        assert!(compared > 0);
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }

    /// Stubs of a commented service through `Builder::compile`, with `builder`.
    fn compiled_stubs(builder: crate::Builder) -> String {
        let dir = tempfile::tempdir().unwrap();
        let protos = dir.path().join("protos");
        fs::create_dir_all(protos.join("pkg")).unwrap();
        fs::write(
            protos.join("pkg/hello.proto"),
            "syntax = \"proto3\";\npackage pkg;\nmessage M {}\n\
             // The greeter, see [Seek] (https://example.com/seek).\n\
             service Greeter {\n  /* Says hello. */\n  rpc SayHello(M) returns (M);\n}\n",
        )
        .unwrap();
        let out = dir.path().join("out");
        builder
            .emit_rerun_if_changed(false)
            .out_dir(&out)
            .compile(&[protos.join("pkg/hello.proto")], &[&protos])
            .unwrap();
        // The messages' embedded descriptor stays as parsed: no source info.
        let messages = fs::read_to_string(out.join("hello.rs")).unwrap();
        assert!(!messages.contains("Says hello"));
        fs::read_to_string(out.join("hello_grpc.rs")).unwrap()
    }

    #[test]
    fn stubs_get_the_comments() {
        let stubs = compiled_stubs(crate::configure());
        assert!(
            stubs.contains("/// The greeter, see \\[Seek\\] (<https://example.com/seek>).\n"),
            "{stubs}"
        );
        assert!(stubs.contains("    /// Says hello.\n"), "{stubs}");
        let Some(protoc) = protoc() else {
            eprintln!("skipping stubs_get_the_comments with protoc: no protoc (set PROTOC)");
            return;
        };
        assert_eq!(
            compiled_stubs(crate::configure().use_protoc().protoc_path(protoc)),
            stubs
        );
    }

    fn method(name: &str) -> protobuf::descriptor::MethodDescriptorProto {
        let mut m = protobuf::descriptor::MethodDescriptorProto::new();
        m.set_name(name.to_owned());
        m
    }

    #[test]
    fn attaches_by_order_and_name() {
        let mut file = FileDescriptorProto::new();
        let mut s = protobuf::descriptor::ServiceDescriptorProto::new();
        s.set_name("Greeter".to_owned());
        s.method = vec![method("SayHello"), method("Renamed")];
        let mut other = protobuf::descriptor::ServiceDescriptorProto::new();
        other.set_name("Other".to_owned());
        other.method = vec![method("A")];
        file.service = vec![s, other];
        // Already known: kept.
        let mut known = Location::new();
        known.path = vec![6, 0, 2, 0];
        known.set_leading_comments(" Known.\n".to_owned());
        let mut info = SourceCodeInfo::new();
        info.location.push(known);
        file.source_code_info = Some(info).into();
        attach_from_source(
            &mut file,
            "// G.\nservice Greeter {\n  // S.\n  rpc SayHello(M) returns (M);\n  // X.\n  \
             rpc Different(M) returns (M);\n}\n// O.\nservice NotOther { // A.\n rpc A(M) returns (M); }\n",
        );
        let found: Vec<(Vec<i32>, String)> = file
            .source_code_info
            .location
            .iter()
            .map(|l| (l.path.clone(), l.leading_comments().to_owned()))
            .collect();
        assert_eq!(
            found,
            vec![
                (vec![6, 0, 2, 0], " Known.\n".to_owned()),
                (vec![6, 0], " G.\n".to_owned()),
            ]
        );
    }
}
