//! Binary logging (gRFC A16): `grpc.binarylog.v1.GrpcLogEntry` records of calls' headers,
//! messages and trailers, chosen by a `GRPC_BINARY_LOG_FILTER`-style method filter.
