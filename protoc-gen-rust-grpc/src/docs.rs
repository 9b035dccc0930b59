//! Proto comments to rustdoc lines.
//!
//! Proto comments are free text. Rustdoc would compile and run any code block in them as a
//! doctest, so fenced blocks without a language and indented blocks are turned into `text`
//! blocks.

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
            i = last_code + 1;
            prev_blank = false;
            continue;
        }
        prev_blank = line.trim().is_empty();
        out.push(line.clone());
        i += 1;
    }
    if in_fence {
        out.push(" ```".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::doc_lines;

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
