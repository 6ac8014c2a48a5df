//! traceparent: any header value gives a trace id or none, never a panic; a trace id it gives
//! is written back as a traceparent that names the same trace.
#![no_main]

use demo_service::trace::TraceId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    if let Some(trace) = TraceId::from_traceparent(value) {
        let written = trace.traceparent(1);
        assert_eq!(TraceId::from_traceparent(written.as_bytes()), Some(trace));
        assert_eq!(&value[3..35], trace.to_string().as_bytes());
    }
});
