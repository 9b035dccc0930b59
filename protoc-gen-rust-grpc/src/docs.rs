//! Proto comments to rustdoc lines.
//!
//! Proto comments are free text. Rustdoc would compile and run any code block in them as a
//! doctest, so fenced blocks without a language and indented blocks are turned into `text`
//! blocks. Outside code (blocks and inline code spans), what rustdoc would warn about is
//! escaped: bare URLs become autolinks (`<https://...>`), square brackets that would be read
//! as intra-doc links (`[Seek]`, `[Topic][google.pubsub.v1.Topic]`) become `\[...\]` unless
//! they form a markdown link to a URL, and a tag-like `<name>` that is no HTML element (or
//! one never closed in the comment) becomes `\<name>`.

use protobuf::descriptor::FileDescriptorProto;

/// Field number of `FileDescriptorProto.service`.
const FILE_SERVICE: i32 = 6;
/// Field number of `ServiceDescriptorProto.method`.
const SERVICE_METHOD: i32 = 2;

/// Leading comments of every service and method of one file, by source-info path.
#[derive(Debug, Default)]
pub(crate) struct Comments {
    by_path: std::collections::HashMap<Vec<i32>, String>,
}

impl Comments {
    pub(crate) fn new(file: &FileDescriptorProto) -> Comments {
        let mut by_path = std::collections::HashMap::new();
        if let Some(info) = file.source_code_info.as_ref() {
            for location in &info.location {
                let path = &location.path;
                let wanted = (path.len() == 2 || (path.len() == 4 && path[2] == SERVICE_METHOD))
                    && path[0] == FILE_SERVICE;
                if wanted && location.has_leading_comments() {
                    by_path.insert(path.clone(), location.leading_comments().to_owned());
                }
            }
        }
        Comments { by_path }
    }

    /// Doc lines of service `service`.
    pub(crate) fn service(&self, service: usize) -> Vec<String> {
        self.lines(&[FILE_SERVICE, service as i32])
    }

    /// Doc lines of method `method` of service `service`.
    pub(crate) fn method(&self, service: usize, method: usize) -> Vec<String> {
        self.lines(&[FILE_SERVICE, service as i32, SERVICE_METHOD, method as i32])
    }

    fn lines(&self, path: &[i32]) -> Vec<String> {
        self.by_path
            .get(path)
            .map(|c| doc_lines(c))
            .unwrap_or_default()
    }
}

fn is_indented(line: &str) -> bool {
    // Lines carry the one space that follows `//`; an indented code block needs four more.
    let content = line.strip_prefix(' ').unwrap_or(line);
    content.starts_with("    ") || content.starts_with('\t')
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// Turns one proto comment into rustdoc lines (each becomes `///<line>`).
pub(crate) fn doc_lines(comment: &str) -> Vec<String> {
    let mut lines: Vec<String> = comment
        .lines()
        .map(|l| l.trim_end().replace('\t', "    "))
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    while lines.first().is_some_and(|l| l.is_empty()) {
        lines.remove(0);
    }
    // Lines of `/* */` comments can come without the space `//` comments have.
    for l in &mut lines {
        if !l.is_empty() && !l.starts_with(' ') {
            l.insert(0, ' ');
        }
    }

    let mut out = Vec::with_capacity(lines.len());
    // Whether each line of `out` is code (a fence or inside a code block).
    let mut code = Vec::with_capacity(lines.len());
    let mut in_fence = false;
    let mut prev_blank = true;
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if is_fence(line) {
            let t = line.trim_start();
            let info = t.trim_start_matches(['`', '~']).trim();
            if !in_fence && (info.is_empty() || info == "rust") {
                let indent = &line[..line.len() - t.len()];
                let fence = &t[..t.len() - t.trim_start_matches(['`', '~']).len()];
                out.push(format!("{indent}{fence}text"));
            } else {
                out.push(line.clone());
            }
            code.push(true);
            in_fence = !in_fence;
            prev_blank = false;
            i += 1;
            continue;
        }
        if !in_fence && prev_blank && is_indented(line) {
            // An indented code block: up to the next non-blank line that is not indented.
            let mut end = i;
            let mut last_code = i;
            while end < lines.len() {
                if is_indented(&lines[end]) {
                    last_code = end;
                } else if !lines[end].trim().is_empty() {
                    break;
                }
                end += 1;
            }
            out.push(" ```text".to_owned());
            out.extend(lines[i..=last_code].iter().cloned());
            out.push(" ```".to_owned());
            code.resize(out.len(), true);
            i = last_code + 1;
            prev_blank = false;
            continue;
        }
        prev_blank = line.trim().is_empty();
        out.push(line.clone());
        code.push(in_fence);
        i += 1;
    }
    if in_fence {
        out.push(" ```".to_owned());
        code.push(true);
    }
    escape_prose(&mut out, &code);
    out
}

/// Escapes the lines of `lines` that are not `code`, one paragraph (run of non-blank lines)
/// at a time: links and inline code spans can cross lines, not paragraphs.
fn escape_prose(lines: &mut [String], code: &[bool]) {
    let prose: Vec<bool> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| !code.get(i).copied().unwrap_or(true) && !l.trim().is_empty())
        .collect();
    let all_prose: String = lines
        .iter()
        .zip(&prose)
        .filter(|(_, p)| **p)
        .map(|(l, _)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let tags = Tags::of(&all_prose);
    let mut i = 0;
    while i < lines.len() {
        if !prose[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && prose[i] {
            i += 1;
        }
        let escaped = escape_markdown(&lines[start..i].join("\n"), &tags);
        // Escaping inserts characters, never newlines: one line out for each line in.
        for (line, new) in lines[start..i].iter_mut().zip(escaped.split('\n')) {
            new.clone_into(line);
        }
    }
}

/// HTML elements without content (no closing tag).
const VOID_ELEMENTS: &[&str] = &["br", "hr", "img", "wbr"];

/// HTML elements that proto comments use as such; any other `<name>` is text, and so is an
/// element that is opened and never closed, or closed and never opened, in the comment.
#[rustfmt::skip]
const HTML_ELEMENTS: &[&str] = &[
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "details",
    "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u",
    "ul", "var",
];

/// The HTML elements a comment opens and closes (lowercase names).
#[derive(Debug, Default)]
struct Tags {
    opened: Vec<String>,
    closed: Vec<String>,
}

impl Tags {
    fn of(text: &str) -> Tags {
        let b = text.as_bytes();
        let mut tags = Tags::default();
        for (i, _) in text.match_indices('<') {
            if let Some((name_start, name_end)) = tag_name(b, i) {
                let name = text[name_start..name_end].to_ascii_lowercase();
                if name_start == i + 2 {
                    tags.closed.push(name);
                } else {
                    tags.opened.push(name);
                }
            }
        }
        tags
    }

    /// Whether the tag `name` (opening, or closing if `closing`) has its counterpart.
    fn balanced(&self, name: &str, closing: bool) -> bool {
        let name = name.to_ascii_lowercase();
        if VOID_ELEMENTS.contains(&name.as_str()) {
            return true;
        }
        let other = if closing { &self.opened } else { &self.closed };
        other.contains(&name)
    }
}

/// Escapes one paragraph of markdown for rustdoc (see the module's documentation). Inline
/// code, autolinks, HTML elements (that `tags` shows closed), markdown links to URLs and
/// backslash escapes are kept.
fn escape_markdown(text: &str, tags: &Tags) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    // `text[..copied]` is in `out`; `i` is the next byte to look at. Both only ever stop on
    // ASCII bytes (or the end), so every slice is on a character boundary.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let (replacement, end) = match b[i] {
            b'\\' => {
                // An escaped ASCII punctuation character stays as it is.
                i += if b.get(i + 1).is_some_and(u8::is_ascii_punctuation) {
                    2
                } else {
                    1
                };
                continue;
            }
            b'`' => {
                let run = run_length(b, i, b'`');
                i = code_span_end(b, i + run, run).unwrap_or(i + run);
                continue;
            }
            b'<' => {
                if let Some(end) = autolink_end(text, i).or_else(|| html_element_end(text, i, tags))
                {
                    i = end;
                    continue;
                }
                if !is_tag_like(b, i) {
                    i += 1;
                    continue;
                }
                ("\\<".to_owned(), i + 1)
            }
            b'[' => {
                if let Some(end) = url_link_end(text, i) {
                    i = end;
                    continue;
                }
                ("\\[".to_owned(), i + 1)
            }
            b']' => ("\\]".to_owned(), i + 1),
            b'h' => match bare_url_end(text, i) {
                Some(end) => (format!("<{}>", &text[i..end]), end),
                None => {
                    i += 1;
                    continue;
                }
            },
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&text[copied..i]);
        out.push_str(&replacement);
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

fn run_length(b: &[u8], start: usize, c: u8) -> usize {
    b[start..].iter().take_while(|&&x| x == c).count()
}

/// End of the inline code span whose opening run of `run` backticks ends at `from`: after a
/// closing run of exactly as many backticks, if there is one.
fn code_span_end(b: &[u8], from: usize, run: usize) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        if b[j] == b'`' {
            let n = run_length(b, j, b'`');
            if n == run {
                return Some(j + n);
            }
            j += n;
        } else {
            j += 1;
        }
    }
    None
}

/// End of the autolink (`<scheme:...>`) at `start`, if there is one.
fn autolink_end(text: &str, start: usize) -> Option<usize> {
    let rest = &text[start + 1..];
    let scheme_len = rest
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
        .count();
    if !(2..=32).contains(&scheme_len)
        || !rest.as_bytes()[0].is_ascii_alphabetic()
        || rest.as_bytes().get(scheme_len) != Some(&b':')
    {
        return None;
    }
    let body = rest
        .bytes()
        .position(|c| c == b'>' || c == b'<' || c <= b' ')?;
    (rest.as_bytes()[body] == b'>').then_some(start + 1 + body + 1)
}

/// The tag name of `<name` or `</name` at `start`, if it is followed by what can follow a
/// tag name (`>`, `/`, whitespace or the end).
fn tag_name(b: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut j = start + 1;
    if b.get(j) == Some(&b'/') {
        j += 1;
    }
    let name_start = j;
    if !b.get(j).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    while b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-')
    {
        j += 1;
    }
    match b.get(j) {
        None | Some(b'>' | b'/' | b' ' | b'\t' | b'\n') => Some((name_start, j)),
        _ => None,
    }
}

fn is_tag_like(b: &[u8], start: usize) -> bool {
    tag_name(b, start).is_some()
}

/// End of the HTML element tag (`<b>`, `</b>`, `<a href="...">`) at `start`, if it is one
/// whose counterpart (closing or opening tag) `tags` has.
fn html_element_end(text: &str, start: usize, tags: &Tags) -> Option<usize> {
    let b = text.as_bytes();
    let (name_start, name_end) = tag_name(b, start)?;
    let name = &text[name_start..name_end];
    if !HTML_ELEMENTS.iter().any(|e| e.eq_ignore_ascii_case(name))
        || !tags.balanced(name, name_start == start + 2)
    {
        return None;
    }
    let close = b[name_end..].iter().position(|&c| c == b'>')?;
    Some(name_end + close + 1)
}

/// Index of the `close` that balances the `open` at `start`, skipping backslash escapes.
fn balanced(b: &[u8], start: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = start;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 1,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// End of the markdown link `[text](destination)` at `start` whose destination is a URL
/// (has a scheme or a `/`) or an anchor (`#...`): rustdoc leaves those alone. A link to
/// anything else (`[Foo](Foo)`) would be resolved as an intra-doc link, so it is not one.
fn url_link_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let close = balanced(b, start, b'[', b']')?;
    if b.get(close + 1) != Some(&b'(') {
        return None;
    }
    let end = balanced(b, close + 1, b'(', b')')?;
    let destination = text[close + 2..end].split_whitespace().next().unwrap_or("");
    let destination = destination.trim_start_matches('<');
    (destination.contains(':') || destination.contains('/') || destination.starts_with('#'))
        .then_some(end + 1)
}

/// End of the bare `http://` or `https://` URL at `start`, if there is one: up to the first
/// character that cannot be in a URL, less trailing punctuation and unbalanced `)`.
fn bare_url_end(text: &str, start: usize) -> Option<usize> {
    let rest = &text[start..];
    let scheme = ["https://", "http://"]
        .into_iter()
        .find(|s| rest.starts_with(s))?;
    let mut len = rest
        .char_indices()
        .find(|&(_, c)| {
            c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`' | '[' | ']' | '|' | '\\')
        })
        .map_or(rest.len(), |(i, _)| i);
    loop {
        let url = &rest[..len];
        let trim = match url.as_bytes().last() {
            Some(b'.' | b',' | b':' | b';' | b'!' | b'?' | b'\'' | b'*' | b'_' | b'~') => true,
            Some(b')') => url.matches(')').count() > url.matches('(').count(),
            _ => false,
        };
        if !trim {
            break;
        }
        len -= 1;
    }
    (len > scheme.len()).then_some(start + len)
}

#[cfg(test)]
mod tests {
    use super::{Tags, doc_lines};

    fn escape_markdown(text: &str) -> String {
        super::escape_markdown(text, &Tags::of(text))
    }

    #[test]
    fn bare_urls_become_autolinks() {
        let e = escape_markdown;
        assert_eq!(
            e("See https://cloud.google.com/pubsub/docs/admin."),
            "See <https://cloud.google.com/pubsub/docs/admin>."
        );
        assert_eq!(
            e("(https://example.com/a_(b)), http://x.io/?a=b&c=d#f;"),
            "(<https://example.com/a_(b)>), <http://x.io/?a=b&c=d#f>;"
        );
        assert_eq!(
            e("\"https://example.com/x\" **https://example.com**"),
            "\"<https://example.com/x>\" **<https://example.com>**"
        );
        // Already links, in code, or no URL at all: unchanged.
        for kept in [
            "<https://example.com/x>",
            "[the docs](https://example.com/x)",
            "[https://example.com](https://example.com \"title\")",
            "`https://example.com` and ``a ` https://example.com``",
            "<a href=\"https://example.com\">x</a>",
            "http:// https:/x.com httpx://x.com the http protocol",
        ] {
            assert_eq!(e(kept), kept);
        }
    }

    #[test]
    fn brackets_are_escaped_unless_a_link_to_a_url() {
        let e = escape_markdown;
        assert_eq!(
            e("Used in [Seek] operations."),
            "Used in \\[Seek\\] operations."
        );
        assert_eq!(
            e("A [Topic][google.pubsub.v1.Topic] or [Foo.bar][]"),
            "A \\[Topic\\]\\[google.pubsub.v1.Topic\\] or \\[Foo.bar\\]\\[\\]"
        );
        assert_eq!(
            e("/[A-Za-z][a-z]+/ a[0]"),
            "/\\[A-Za-z\\]\\[a-z\\]+/ a\\[0\\]"
        );
        // An inline link to something that is no URL would be an intra-doc link.
        assert_eq!(e("[Foo](Foo)"), "\\[Foo\\](Foo)");
        // `]` and `(` apart: no link.
        assert_eq!(
            e("used in [Seek]\n (https://example.com/seek)"),
            "used in \\[Seek\\]\n (<https://example.com/seek>)"
        );
        for kept in [
            "[a link](https://example.com/a)",
            "[a\nlink across lines](https://example.com/a)",
            "[relative](../a/b) [anchor](#section) [mail](mailto:a@example.com)",
            "already \\[escaped\\]",
            "`[code]` and `a[0]`",
            "unbalanced )) and ((",
        ] {
            assert_eq!(e(kept), kept);
        }
        // Unbalanced brackets are escaped one by one.
        assert_eq!(e("a [b"), "a \\[b");
        assert_eq!(e("a] b"), "a\\] b");
        assert_eq!(e("a ]] b"), "a \\]\\] b");
    }

    #[test]
    fn unknown_tags_are_escaped() {
        let e = escape_markdown;
        assert_eq!(
            e("projects/<project>/topics/</topic> Map<K, V>"),
            "projects/\\<project>/topics/\\</topic> Map<K, V>"
        );
        // Unclosed and unopened elements are text too.
        assert_eq!(
            e("x<y> <x-y> <code>a <b>b</b> c</i>"),
            "x\\<y> \\<x-y> \\<code>a <b>b</b> c\\</i>"
        );
        for kept in [
            "<b>bold</b> <br> <br/> <code>x</code> <a href=\"x\">y</a>",
            "a < b, a <= b, a<-b, <>, < b>",
            "`Map<K, V>`",
        ] {
            assert_eq!(e(kept), kept);
        }
    }

    #[test]
    fn escaping_skips_code_blocks_and_keeps_lines() {
        assert_eq!(
            doc_lines(
                " See [Seek] and\n https://example.com.\n\n ```\n [x] https://example.com\n ```\n\n     \
                 <indented> [code]\n\n After `a\n [b]` c [d].\n"
            ),
            vec![
                " See \\[Seek\\] and",
                " <https://example.com>.",
                "",
                " ```text",
                " [x] https://example.com",
                " ```",
                "",
                " ```text",
                "     <indented> [code]",
                " ```",
                "",
                " After `a",
                " [b]` c \\[d\\].",
            ]
        );
        // A code span does not cross paragraphs.
        assert_eq!(
            doc_lines(" a `b\n\n [c]` d\n"),
            vec![" a `b", "", " \\[c\\]` d"]
        );
    }

    #[test]
    fn escaping_never_panics() {
        let samples = [
            "[",
            "]",
            "<",
            ">",
            "`",
            "\\",
            "h",
            "http",
            "https://",
            "[a](",
            "[a](b",
            "[](",
            "<a",
            "</",
            "<a href=",
            "``` `",
            "[é](ü) <é> https://é.com/☃ `é`",
            "\\é \\\\ [\\]",
            "((([[[<<<```",
            "]]]))>>>",
        ];
        for a in samples {
            for b in samples {
                let text = format!("{a}{b}\n{b}{a}");
                let escaped = escape_markdown(&text);
                assert_eq!(escaped.matches('\n').count(), 1, "{text:?}");
                let _ = doc_lines(&text);
            }
        }
    }

    #[test]
    fn plain() {
        assert_eq!(
            doc_lines(" Sends a greeting.\n"),
            vec![" Sends a greeting."]
        );
        assert_eq!(
            doc_lines(" First.\n\n Second.  \n"),
            vec![" First.", "", " Second."]
        );
        assert_eq!(doc_lines("Block\ncomment\n"), vec![" Block", " comment"]);
        assert_eq!(
            doc_lines(" Lists items.\n(a block comment) "),
            vec![" Lists items.", " (a block comment)"]
        );
    }

    #[test]
    fn code_blocks_become_text() {
        assert_eq!(
            doc_lines(" Example:\n ```\n let x = 1;\n ```\n"),
            vec![" Example:", " ```text", " let x = 1;", " ```"]
        );
        assert_eq!(
            doc_lines(" ```json\n {}\n ```\n"),
            vec![" ```json", " {}", " ```"]
        );
        assert_eq!(
            doc_lines(" Example:\n\n     foo(bar);\n\n     baz();\n\n After.\n"),
            vec![
                " Example:",
                "",
                " ```text",
                "     foo(bar);",
                "",
                "     baz();",
                " ```",
                "",
                " After."
            ]
        );
        // Indented lines continuing a paragraph are not a code block.
        assert_eq!(
            doc_lines(" Text\n     more text\n"),
            vec![" Text", "     more text"]
        );
        // An unterminated fence is closed.
        assert_eq!(doc_lines(" ```\n x\n"), vec![" ```text", " x", " ```"]);
    }
}
