//! OpenTelemetry metrics (gRFC A66), on the `opentelemetry` cargo feature.
