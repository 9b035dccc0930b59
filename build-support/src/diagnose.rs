//! Error messages for `.proto` files that protoc would word better than protobuf-parse.
//!
//! protobuf-parse's pure parser stops at the first missing import and names neither the
//! importing file nor the line, and it does not know editions: `edition = "2023";` is
//! "incorrect input". [`check`] walks the inputs and their imports the way protobuf-parse will
//! (include directories in order, then its built-in copies of the files the `protobuf` crate
//! provides) and reports every such problem at once, as protoc does: one
//! `file:line:col: problem` line each, `file` being the path relative to its include directory.
//!
//! The errors protobuf-parse itself returns (syntax and type errors) are chains whose every
//! link repeats the message of the next; [`ProtoFiles::describe`] says each thing once, in the
//! same `file:line:col: problem` form when protobuf-parse gives a location.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use protoc_gen_rust_grpc::naming;

use crate::Error;

/// Contexts protobuf-parse adds to every error: they say nothing about the problem.
const PARSER_CONTEXTS: &[&str] = &["using pure parser", "using protoc parser"];

/// protoc's tab width, which its columns count with.
const TAB_WIDTH: usize = 8;

/// The files protobuf-parse reads, by the path it names them with in its errors (the include
/// directory as given to it joined with the proto path, or the input as given to it).
#[derive(Debug, Default)]
pub(crate) struct ProtoFiles {
    /// Path as protobuf-parse reads it -> proto path (relative to its include directory).
    names: HashMap<PathBuf, String>,
    /// The include directories as given to protobuf-parse, for files not in `names`.
    includes: Vec<PathBuf>,
}

/// protoc's stderr, out of protobuf-parse's report of a failed run (`protoc command ...
/// exited with non-zero code; stderr: "<Rust-escaped text>"`), unescaped.
fn protoc_stderr(report: &str) -> Option<String> {
    const MARK: &str = "; stderr: \"";
    let quoted = &report[report.find(MARK)? + MARK.len()..];
    let quoted = quoted.strip_suffix('"').unwrap_or(quoted);
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                // `\u{..}`
                let code: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                if let Some(c) = u32::from_str_radix(&code, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    let out = out.trim_end().to_owned();
    (!out.is_empty()).then_some(out)
}

impl ProtoFiles {
    /// Files known only through the include directories (`(given, canonical)` pairs, the
    /// canonical ones being what protobuf-parse is given): for `use_protoc()`, which is not
    /// checked.
    pub(crate) fn unchecked(include_dirs: &[(PathBuf, PathBuf)]) -> ProtoFiles {
        ProtoFiles {
            names: HashMap::new(),
            includes: include_dirs.iter().map(|(_, c)| c.clone()).collect(),
        }
    }

    /// The proto path of a file protobuf-parse names `path` in its errors.
    fn name_of(&self, path: &str) -> String {
        let path = Path::new(path);
        if let Some(name) = self.names.get(path) {
            return name.clone();
        }
        self.includes
            .iter()
            .find_map(|dir| path.strip_prefix(dir).ok().and_then(proto_path_of))
            .unwrap_or_else(|| path.display().to_string())
    }

    /// The message for an error of `protobuf_parse::Parser::parse_and_typecheck`: each link
    /// of the chain once (a link whose text the previous one already contains is dropped,
    /// and so are protobuf-parse's "using pure parser" contexts), and the file's
    /// `error in `/abs/path`: at L:C: ` prefix turned into protoc's `proto/path:L:C: `.
    pub(crate) fn describe(&self, err: &(dyn StdError + 'static)) -> String {
        let mut links: Vec<String> = Vec::new();
        let mut next = Some(err);
        while let Some(e) = next {
            next = e.source();
            let text = e.to_string();
            let text = text.trim();
            if text.is_empty()
                || PARSER_CONTEXTS.contains(&text)
                || links.last().is_some_and(|last| last.contains(text))
            {
                continue;
            }
            links.push(text.to_owned());
        }
        let joined = links.join(": ");
        // protobuf-parse's `WithFileError` ("error in `{file}`: {error}") wraps the errors
        // of one file, and its `ParserErrorWithLocation` ("at {line}:{col}: {error}") the
        // syntax errors.
        let Some((file, problem)) = joined
            .strip_prefix("error in `")
            .and_then(|rest| rest.split_once("`: "))
        else {
            if let Some(stderr) = protoc_stderr(&joined) {
                // protoc's own messages (`file:line:col: what`), as it prints them.
                return stderr;
            }
            return format!("cannot parse the proto files: {joined}");
        };
        let name = self.name_of(file);
        match problem.strip_prefix("at ").and_then(location) {
            Some((line, col, problem)) => format!("{name}:{line}:{col}: {problem}"),
            None => format!("{name}: {problem}"),
        }
    }
}

/// `L:C: rest` -> `(L, C, rest)`.
fn location(text: &str) -> Option<(u32, u32, &str)> {
    let (at, rest) = text.split_once(": ")?;
    let (line, col) = at.split_once(':')?;
    Some((line.parse().ok()?, col.parse().ok()?, rest))
}

/// `a/b.proto` from a relative path, as protobuf-parse names it (`None` if not UTF-8 or not
/// a plain relative path).
fn proto_path_of(relative: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether protobuf-parse accepts `name` as an import path (else it reports a syntax error,
/// which is left to it).
fn is_valid_import(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Where an import was found.
#[derive(Debug, Clone)]
enum Resolved {
    /// In an include directory: the path protobuf-parse reads and its contents.
    File(PathBuf, Vec<u8>),
    /// Nowhere, but protobuf-parse has a copy built in.
    BuiltIn,
    /// Nowhere.
    Missing,
    /// In an include directory (path as the user gave the directory), but unreadable.
    Unreadable(PathBuf, String),
}

/// Resolves `name` against the include directories in order, like protobuf-parse: the first
/// directory with the file wins; a file that exists but cannot be read stops the search.
fn resolve(name: &str, include_dirs: &[(PathBuf, PathBuf)]) -> Resolved {
    for (given, canonical) in include_dirs {
        let path = canonical.join(name);
        match fs::read(&path) {
            Ok(contents) => return Resolved::File(path, contents),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Resolved::Unreadable(given.join(name), e.to_string()),
        }
    }
    // protobuf-parse 3.7 embeds exactly the files the protobuf crate provides.
    if naming::is_provided_by_protobuf_crate(name) {
        Resolved::BuiltIn
    } else {
        Resolved::Missing
    }
}

/// Checks the inputs (`(given, canonical)` pairs) and every file they import, transitively,
/// resolved against the include directories (`(given, canonical)` pairs, canonical ones
/// being what protobuf-parse is given) as protobuf-parse will: missing imports, editions,
/// files that are not UTF-8. All problems are reported at once, one protoc-like line each.
pub(crate) fn check(
    inputs: &[(PathBuf, PathBuf)],
    include_dirs: &[(PathBuf, PathBuf)],
) -> Result<ProtoFiles, Error> {
    let mut files = ProtoFiles::unchecked(include_dirs);
    let mut problems = Vec::new();
    let mut any_missing = false;

    // Depth first, imports in order, like protobuf-parse; a stack rather than recursion so
    // that no chain of imports is too deep.
    let mut stack: Vec<(String, PathBuf, Vec<u8>)> = Vec::new();
    for (given, input) in inputs.iter().rev() {
        // protobuf-parse names an input after the first include directory it is in.
        let Some(name) = include_dirs
            .iter()
            .find_map(|(_, dir)| input.strip_prefix(dir).ok().and_then(proto_path_of))
        else {
            continue; // Not in an include directory or not UTF-8: protobuf-parse reports it.
        };
        match fs::read(input) {
            Ok(contents) => stack.push((name, input.clone(), contents)),
            Err(e) => return Err(Error::io(given, e)),
        }
    }
    let mut visited = HashSet::new();
    let mut resolved: HashMap<String, Resolved> = HashMap::new();
    while let Some((name, path, contents)) = stack.pop() {
        if !visited.insert(name.clone()) {
            continue;
        }
        files.names.insert(path, name.clone());

        if let Err(e) = std::str::from_utf8(&contents) {
            let (line, col) = position(&contents, e.valid_up_to());
            problems.push(format!(
                "{name}:{line}:{col}: invalid UTF-8 (protobuf-parse reads .proto files as UTF-8 \
                 text)"
            ));
        }
        let scanned = scan(&contents);
        for edition in &scanned.editions {
            let what = match &edition.value {
                Some(value) => format!("editions (edition = {value:?})"),
                None => "editions".to_owned(),
            };
            problems.push(format!(
                "{name}:{}:{}: {what} are not supported by rust-protobuf 3.x; use syntax = \
                 \"proto2\" or \"proto3\"",
                edition.line, edition.col
            ));
        }
        let mut next = Vec::new();
        for import in &scanned.imports {
            if !is_valid_import(&import.name) {
                continue;
            }
            let found = resolved
                .entry(import.name.clone())
                .or_insert_with(|| resolve(&import.name, include_dirs));
            let where_ = format!("{name}:{}:{}", import.line, import.col);
            match found {
                Resolved::File(path, contents) => {
                    if !visited.contains(&import.name) {
                        next.push((import.name.clone(), path.clone(), contents.clone()));
                    }
                }
                Resolved::BuiltIn => {}
                Resolved::Missing => {
                    any_missing = true;
                    problems.push(format!(
                        "{where_}: Import {:?} was not found or had errors.",
                        import.name
                    ));
                }
                Resolved::Unreadable(path, e) => problems.push(format!(
                    "{where_}: Import {:?} is `{}`, which cannot be read: {e}",
                    import.name,
                    path.display()
                )),
            }
        }
        stack.extend(next.into_iter().rev());
    }

    if problems.is_empty() {
        return Ok(files);
    }
    if any_missing {
        problems.push(format!(
            "include directories searched: {}",
            include_dirs
                .iter()
                .map(|(given, _)| format!("`{}`", given.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(Error::Parse(problems.join("\n")))
}

/// An `import` statement.
#[derive(Debug, PartialEq)]
struct Import {
    name: String,
    line: usize,
    col: usize,
}

/// An `edition = ...;` statement.
#[derive(Debug, PartialEq)]
struct Edition {
    /// The string after `=`, if there is one.
    value: Option<String>,
    line: usize,
    col: usize,
}

/// What [`scan`] finds in a file.
#[derive(Debug, Default, PartialEq)]
struct Scanned {
    imports: Vec<Import>,
    editions: Vec<Edition>,
}

/// A token, located like protoc does: 1-based line, 1-based column counting bytes and
/// advancing to the next multiple of 8 at a tab.
#[derive(Debug)]
struct Token {
    kind: Kind,
    line: usize,
    col: usize,
}

#[derive(Debug)]
enum Kind {
    Ident(String),
    /// A string literal, escapes decoded (lossily, for a non-UTF-8 result).
    Str(String),
    /// Any other byte: punctuation, or something invalid.
    Symbol(u8),
    /// A number (or anything else starting with a digit).
    Number,
}

/// Finds the top-level `import` and `edition` statements of a file. Never fails: whatever it
/// does not understand it skips, for protobuf-parse to report.
fn scan(src: &[u8]) -> Scanned {
    let tokens = tokenize(src);
    let mut scanned = Scanned::default();
    let mut depth = 0usize;
    let mut statement_start = true;
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        i += 1;
        let starts = statement_start && depth == 0;
        statement_start = false;
        match &token.kind {
            Kind::Symbol(b'{') => depth += 1,
            Kind::Symbol(b'}') => {
                depth = depth.saturating_sub(1);
                statement_start = depth == 0;
            }
            Kind::Symbol(b';') => statement_start = depth == 0,
            Kind::Ident(word) if starts && word == "import" => {
                // import = "import" [ "weak" | "public" ] strLit { strLit } ";"
                if matches!(&tokens.get(i).map(|t| &t.kind),
                    Some(Kind::Ident(w)) if w == "public" || w == "weak")
                {
                    i += 1;
                }
                let mut name = None::<String>;
                while let Some(Token {
                    kind: Kind::Str(part),
                    ..
                }) = tokens.get(i)
                {
                    name.get_or_insert_with(String::new).push_str(part);
                    i += 1;
                }
                if let Some(name) = name {
                    scanned.imports.push(Import {
                        name,
                        line: token.line,
                        col: token.col,
                    });
                }
            }
            Kind::Ident(word)
                if starts
                    && word == "edition"
                    && matches!(tokens.get(i).map(|t| &t.kind), Some(Kind::Symbol(b'='))) =>
            {
                let value = match tokens.get(i + 1).map(|t| &t.kind) {
                    Some(Kind::Str(value)) => Some(value.clone()),
                    _ => None,
                };
                scanned.editions.push(Edition {
                    value,
                    line: token.line,
                    col: token.col,
                });
            }
            _ => {}
        }
    }
    scanned
}

/// Reads bytes, keeping protoc's line and column.
struct Cursor<'a> {
    src: &'a [u8],
    pos: usize,
    /// 1-based.
    line: usize,
    /// 0-based, protoc's way (tabs advance to the next multiple of 8).
    col: usize,
}

impl Cursor<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos.checked_add(ahead)?).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek(0)?;
        self.pos += 1;
        match b {
            b'\n' => {
                self.line = self.line.saturating_add(1);
                self.col = 0;
            }
            b'\t' => self.col = self.col.saturating_add(TAB_WIDTH - self.col % TAB_WIDTH),
            _ => self.col = self.col.saturating_add(1),
        }
        Some(b)
    }

    fn bump_while(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek(0).is_some_and(&pred) {
            self.bump();
        }
    }
}

/// Line and column (1-based, protoc's way) of byte `offset` of `src`.
fn position(src: &[u8], offset: usize) -> (usize, usize) {
    let mut cursor = Cursor {
        src: &src[..offset.min(src.len())],
        pos: 0,
        line: 1,
        col: 0,
    };
    while cursor.bump().is_some() {}
    (cursor.line, cursor.col.saturating_add(1))
}

/// Splits a file into tokens, skipping whitespace and comments. An unterminated comment or
/// string ends at the end of the file (a string also at the end of its line).
fn tokenize(src: &[u8]) -> Vec<Token> {
    let mut c = Cursor {
        src,
        pos: 0,
        line: 1,
        col: 0,
    };
    let mut tokens = Vec::new();
    loop {
        c.bump_while(|b| b.is_ascii_whitespace() || b == b'\x0b');
        let (line, col) = (c.line, c.col.saturating_add(1));
        let Some(b) = c.peek(0) else { break };
        let kind = match b {
            b'/' if c.peek(1) == Some(b'/') => {
                c.bump_while(|b| b != b'\n');
                continue;
            }
            b'/' if c.peek(1) == Some(b'*') => {
                c.bump();
                c.bump();
                while c.peek(0).is_some() && !(c.peek(0) == Some(b'*') && c.peek(1) == Some(b'/')) {
                    c.bump();
                }
                c.bump();
                c.bump();
                continue;
            }
            b'"' | b'\'' => Kind::Str(string_literal(&mut c)),
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = c.pos;
                c.bump_while(|b| b.is_ascii_alphanumeric() || b == b'_');
                Kind::Ident(String::from_utf8_lossy(&src[start..c.pos]).into_owned())
            }
            b if b.is_ascii_digit() => {
                c.bump_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
                Kind::Number
            }
            b => {
                c.bump();
                Kind::Symbol(b)
            }
        };
        tokens.push(Token { kind, line, col });
    }
    tokens
}

/// Reads a string literal at the cursor (which is on its opening quote) and decodes its
/// escapes as protoc does.
fn string_literal(c: &mut Cursor<'_>) -> String {
    let quote = c.bump();
    let mut bytes = Vec::new();
    loop {
        match c.peek(0) {
            None | Some(b'\n') => break,
            Some(b) if Some(b) == quote => {
                c.bump();
                break;
            }
            Some(b'\\') => {
                c.bump();
                let Some(e) = c.bump() else { break };
                match e {
                    b'a' => bytes.push(0x07),
                    b'b' => bytes.push(0x08),
                    b'f' => bytes.push(0x0c),
                    b'n' => bytes.push(b'\n'),
                    b'r' => bytes.push(b'\r'),
                    b't' => bytes.push(b'\t'),
                    b'v' => bytes.push(0x0b),
                    b'0'..=b'7' => {
                        let mut value = u32::from(e - b'0');
                        for _ in 0..2 {
                            match c.peek(0) {
                                Some(d @ b'0'..=b'7') => {
                                    c.bump();
                                    value = value * 8 + u32::from(d - b'0');
                                }
                                _ => break,
                            }
                        }
                        bytes.push((value & 0xff) as u8);
                    }
                    b'x' | b'X' => {
                        let mut value = 0u32;
                        let mut digits = 0;
                        while digits < 2 {
                            let Some(d) = c.peek(0).and_then(|d| char::from(d).to_digit(16)) else {
                                break;
                            };
                            c.bump();
                            value = value * 16 + d;
                            digits += 1;
                        }
                        if digits == 0 {
                            bytes.extend_from_slice(&[b'\\', e]);
                        } else {
                            bytes.push((value & 0xff) as u8);
                        }
                    }
                    // `\\`, `\"`, `\'`, `\?`, and whatever else: the character itself.
                    other => bytes.push(other),
                }
            }
            Some(b) => {
                c.bump();
                bytes.push(b);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(src: &str) -> Vec<(String, usize, usize)> {
        scan(src.as_bytes())
            .imports
            .into_iter()
            .map(|i| (i.name, i.line, i.col))
            .collect()
    }

    #[test]
    fn finds_top_level_imports_where_protoc_locates_them() {
        let src = "syntax = \"proto3\";\n  import   \"a.proto\";\n\timport public 'b.proto';\n\
                   /* x */ import weak\n  \"c.proto\";\nimport \"d\" \".proto\";\n\
                   import \"e\\x2eproto\";";
        assert_eq!(
            imports(src),
            [
                ("a.proto".to_owned(), 2, 3),
                ("b.proto".to_owned(), 3, 9),
                ("c.proto".to_owned(), 4, 9),
                ("d.proto".to_owned(), 6, 1),
                ("e.proto".to_owned(), 7, 1),
            ]
        );
    }

    #[test]
    fn ignores_imports_in_comments_strings_and_bodies() {
        let src = "// import \"a.proto\";\n/* import \"b.proto\";\n*/\n\
                   option (x) = { import: \"c.proto\" };\n\
                   message import { string import = 1; }\n\
                   option y = \"import \\\"d.proto\\\";\";\n\
                   package import;\n";
        assert_eq!(imports(src), []);
        assert_eq!(
            imports("message M {}\nimport \"a.proto\";"),
            [("a.proto".to_owned(), 2, 1)]
        );
    }

    #[test]
    fn finds_editions() {
        let scanned = scan(b"// header\n  edition = \"2023\";\nmessage M {}\n");
        assert_eq!(
            scanned.editions,
            [Edition {
                value: Some("2023".to_owned()),
                line: 2,
                col: 3
            }]
        );
        assert!(
            scan(b"message M { int32 edition = 1; }")
                .editions
                .is_empty()
        );
        assert!(
            scan(b"syntax = \"proto3\"; package edition;")
                .editions
                .is_empty()
        );
    }

    #[test]
    fn describes_located_errors_once() {
        #[derive(Debug)]
        struct Link(&'static str, Option<Box<Link>>);
        impl std::fmt::Display for Link {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl StdError for Link {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let chain = Link(
            "using pure parser",
            Some(Box::new(Link(
                "error in `/inc/a/b.proto`: at 6:3: expecting `;`",
                Some(Box::new(Link(
                    "at 6:3: expecting `;`",
                    Some(Box::new(Link("expecting `;`", None))),
                ))),
            ))),
        );
        let files = ProtoFiles::unchecked(&[("inc".into(), "/inc".into())]);
        assert_eq!(files.describe(&chain), "a/b.proto:6:3: expecting `;`");
        let other = Link("outer", Some(Box::new(Link("inner", None))));
        assert_eq!(
            files.describe(&other),
            "cannot parse the proto files: outer: inner"
        );
    }

    /// Whatever the bytes, scanning ends without panicking.
    #[test]
    fn never_panics() {
        let tricky: &[&[u8]] = &[
            b"",
            b"\"",
            b"'\\",
            b"\"\\x",
            b"\"\\777\\xZZ\\",
            b"/*",
            b"/",
            b"//",
            b"import",
            b"import public",
            b"import \"",
            b"edition",
            b"edition =",
            b"}}}}import \"a\";",
            b"{{{{",
            b"\t\t\xff\xfe\x00import \"\xff\";",
        ];
        for src in tricky {
            for end in 0..=src.len() {
                scan(&src[..end]);
            }
        }
        // xorshift: deterministic noise biased towards the bytes the scanner cares about.
        let alphabet = b"import edition public weak = ; { } \" ' \\ / * \n \t x 0 7 \xc3\xa9 \xff";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut src = Vec::new();
            for _ in 0..(state % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                src.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            scan(&src);
            position(&src, (state % 80) as usize);
        }
    }

    #[test]
    fn protoc_failures_show_its_own_messages() {
        let report = "protoc command \"/usr/bin/protoc\" \"-I/p\" exited with non-zero code; \
                      stderr: \"bad.proto:2:25: Expected \\\";\\\".\\nother.proto:1:1: \\u{e9}\\n\"";
        assert_eq!(
            protoc_stderr(report).unwrap(),
            "bad.proto:2:25: Expected \";\".\nother.proto:1:1: \u{e9}"
        );
        assert!(protoc_stderr("no stderr here").is_none());
    }
}
