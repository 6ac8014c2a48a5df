//! The admin API's JSON: any body is a change or an error, and a change that is accepted leaves
//! the knobs valid (a probability, ranges in order).
#![no_main]

use std::time::Duration;

use demo_service::knobs::{Change, Knobs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(change) = serde_json::from_slice::<Change>(body) else {
        return;
    };
    let knobs = Knobs {
        delay: Duration::ZERO..=Duration::from_secs(5),
        error_rate: 0.2,
        users: 10..=50,
    };
    if let Ok(new) = knobs.changed(&change) {
        assert!((0.0..=1.0).contains(&new.error_rate));
        assert!(new.delay.start() <= new.delay.end());
        assert!(new.users.start() <= new.users.end());
    }
});
