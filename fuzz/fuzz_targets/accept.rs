//! Accept negotiation: any header gives one of the two formats, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|accept: &str| {
    let _ = demo_service::metrics::Format::negotiate(Some(accept));
});
