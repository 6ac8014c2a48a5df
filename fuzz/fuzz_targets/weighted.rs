//! Weighted lists: the load generator's mix (`PATH=WEIGHT,...`) and /status/{codes}
//! (`200:0.9,500:0.1`). A list that parses can be drawn from, and every draw is one of its items.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(statuses) = demo_service::routes::faults::statuses(text) {
        let drawn = statuses.item(statuses.pick(&mut rand_rng()));
        assert!((200..=599).contains(&drawn.as_u16()));
    }
    if let Ok(mix) = demo_service::load::Mix::from_str(text) {
        let paths: Vec<&str> = mix.paths().collect();
        assert!(!paths.is_empty() && paths.iter().all(|p| p.starts_with('/')));
        assert!(mix.pick(&mut rand_rng()) < paths.len());
        // What it writes back parses to the same paths.
        let again = demo_service::load::Mix::from_str(&mix.to_string()).expect("a mix it wrote");
        assert_eq!(again.paths().collect::<Vec<_>>(), paths);
    }
});

fn rand_rng() -> impl rand::Rng {
    rand::rng()
}
