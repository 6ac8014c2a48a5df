//! Durations as the command line, the admin API and /delay/{duration} take them: any text gives
//! a duration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = demo_service::config::duration(text);
    let _ = demo_service::config::probability(text);
});
