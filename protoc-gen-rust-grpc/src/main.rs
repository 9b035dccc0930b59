//! `protoc-gen-rust-grpc`: the protoc plugin.
//!
//! ```text
//! protoc --plugin=protoc-gen-rust-grpc --rust-grpc_out=OUT [--rust-grpc_opt=client=false,...] \
//!        --rs_out=OUT -I protos protos/foo.proto
//! ```
//!
//! Parameters (comma separated): `client=true|false`, `server=true|false`,
//! `runtime_crate=PATH`. Errors are reported in the response's `error` field, as protoc
//! expects, and the process exits 0.

use std::io::{Read, Write};
use std::process::ExitCode;

use protobuf::Message;
use protobuf::plugin::{CodeGeneratorRequest, CodeGeneratorResponse, code_generator_response};
use protoc_gen_rust_grpc::{Options, generate};

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "parameter `{key}` must be `true` or `false`, not `{value}`"
        )),
    }
}

fn parse_parameter(parameter: &str) -> Result<Options, String> {
    let mut options = Options::default();
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
            other => {
                return Err(format!(
                    "unknown parameter `{other}` (known: client, server, runtime_crate)"
                ));
            }
        }
    }
    Ok(options)
}

fn run(request: &CodeGeneratorRequest) -> Result<Vec<code_generator_response::File>, String> {
    let options = parse_parameter(request.parameter())?;
    let files = generate(&request.proto_file, &request.file_to_generate, &options)
        .map_err(|e| e.to_string())?;
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
        let o = parse_parameter("client=false, server=true,runtime_crate=crate::rt").unwrap();
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
