//! `protoc-gen-rust-grpc`: the protoc plugin.
//!
//! ```text
//! protoc --plugin=protoc-gen-rust-grpc --rust-grpc_out=OUT [--rust-grpc_opt=client=false,...] \
//!        --rs_out=OUT -I protos protos/foo.proto
//! ```
//!
//! Parameters (comma separated): `client=true|false`, `server=true|false`,
//! `runtime_crate=PATH`, and:
//! - `mod_rs=true`: also write `mod.rs`, declaring the messages' modules and the stubs'
//!   (run rust-protobuf's `protoc-gen-rs` with `gen_mod_rs=false` beside it);
//! - `extern_path=.proto.pkg=::rust::path` (repeatable): the package's files were generated
//!   in another crate (tonic's `extern_path`);
//! - `messages=true`: generate rust-protobuf's messages too (no `protoc-gen-rs` needed), so
//!   that files of one basename get modules of their own (`protoc_gen_rust_grpc::modules`).
//!
//! Errors are reported in the response's `error` field, as protoc expects, and the process
//! exits 0.

use std::io::{Read, Write};
use std::process::ExitCode;

use protobuf::Message;
use protobuf::plugin::{CodeGeneratorRequest, CodeGeneratorResponse, code_generator_response};
use protoc_gen_rust_grpc::messages::{MessageOptions, generate_messages, module_file};
use protoc_gen_rust_grpc::modules::{Renames, disambiguate_except};
use protoc_gen_rust_grpc::{Error, Options, generate, naming};

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "parameter `{key}` must be `true` or `false`, not `{value}`"
        )),
    }
}

/// The parameters: the stubs' options, and what else to write.
#[derive(Debug, Default, PartialEq)]
struct Parameters {
    options: Options,
    mod_rs: bool,
    messages: bool,
}

fn parse_parameter(parameter: &str) -> Result<Parameters, String> {
    let mut parameters = Parameters::default();
    let options = &mut parameters.options;
    for part in parameter
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("parameter `{part}` is not of the form key=value"))?;
        match key.trim() {
            "client" => options.build_client = parse_bool(key, value.trim())?,
            "server" => options.build_server = parse_bool(key, value.trim())?,
            "runtime_crate" => options.runtime_crate = value.trim().to_owned(),
            "mod_rs" => parameters.mod_rs = parse_bool(key, value.trim())?,
            "messages" => parameters.messages = parse_bool(key, value.trim())?,
            "extern_path" => {
                let (proto, rust) = value.trim().split_once('=').ok_or_else(|| {
                    format!(
                        "`extern_path={value}` is not of the form extern_path=.proto.pkg=::rust::path"
                    )
                })?;
                options
                    .extern_paths
                    .push((proto.to_owned(), rust.to_owned()));
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}` \
                     (known: client, server, runtime_crate, mod_rs, messages, extern_path)"
                ));
            }
        }
    }
    Ok(parameters)
}

fn run(request: &CodeGeneratorRequest) -> Result<Vec<code_generator_response::File>, String> {
    let parameters = parse_parameter(request.parameter())?;
    let mut descriptors = request.proto_file.clone();
    let mut to_generate = request.file_to_generate.clone();
    let renames = if parameters.messages {
        let extern_paths = &parameters.options.extern_paths;
        let renames = disambiguate_except(&mut descriptors, |f| {
            protoc_gen_rust_grpc::extern_path(extern_paths, f.package()).is_some()
        })
        .map_err(|e| e.to_string())?;
        for name in &mut to_generate {
            *name = renames.new_name(name).to_owned();
        }
        renames
    } else {
        Renames::default()
    };
    let mut files =
        generate(&descriptors, &to_generate, &parameters.options).map_err(|e| match e {
            Error::DuplicateModule { .. } => format!(
                "{e}; or generate the messages with this plugin (--rust-grpc_opt=messages=true \
                 instead of protoc-gen-rs), which names such modules after their paths"
            ),
            e => e.to_string(),
        })?;
    if parameters.messages {
        struct Defaults;
        impl protobuf_codegen::CustomizeCallback for Defaults {}
        let options = MessageOptions {
            customize: &Default::default(),
            callback: &Defaults,
            parser: "protoc",
            extern_paths: &parameters.options.extern_paths,
        };
        let messages = generate_messages(&descriptors, &to_generate, &renames, options)
            .map_err(|e| e.to_string())?;
        files.extend(messages);
    }
    if parameters.mod_rs {
        let is_extern = |name: &str| {
            descriptors
                .iter()
                .any(|f| f.name() == name && parameters.options.extern_path(f.package()).is_some())
        };
        let mut modules: Vec<String> = to_generate
            .iter()
            .filter(|name| !naming::is_provided_by_protobuf_crate(name) && !is_extern(name))
            .map(|name| naming::file_module_name(name))
            .collect();
        modules.extend(files.iter().map(|f| f.name.clone()));
        files.push(module_file(modules));
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let mut out = code_generator_response::File::new();
            out.set_name(f.name);
            out.set_content(f.content);
            out
        })
        .collect())
}

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-rust-grpc: cannot read the request from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let mut response = CodeGeneratorResponse::new();
    response
        .set_supported_features(code_generator_response::Feature::FEATURE_PROTO3_OPTIONAL as u64);
    match CodeGeneratorRequest::parse_from_bytes(&input) {
        Err(e) => response.set_error(format!(
            "protoc-gen-rust-grpc: cannot decode the CodeGeneratorRequest: {e}"
        )),
        Ok(request) => match run(&request) {
            Ok(files) => response.file = files,
            Err(e) => response.set_error(e),
        },
    }
    let bytes = match response.write_to_bytes() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("protoc-gen-rust-grpc: cannot encode the response: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
        eprintln!("protoc-gen-rust-grpc: cannot write the response: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::parse_parameter;

    #[test]
    fn parameters() {
        assert_eq!(parse_parameter("").unwrap(), Default::default());
        let p = parse_parameter("mod_rs=true,messages=true").unwrap();
        assert!(p.mod_rs && p.messages);
        let o = parse_parameter("client=false, server=true,runtime_crate=crate::rt")
            .unwrap()
            .options;
        assert!(!o.build_client && o.build_server);
        assert_eq!(o.runtime_crate, "crate::rt");
        assert!(
            parse_parameter("client=yes")
                .unwrap_err()
                .contains("`true` or `false`")
        );
        assert!(
            parse_parameter("bogus=1")
                .unwrap_err()
                .contains("unknown parameter `bogus`")
        );
        assert!(parse_parameter("client").unwrap_err().contains("key=value"));
    }
}
