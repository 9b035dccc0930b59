#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| grpc_runtime::fuzzing::paced(data));
