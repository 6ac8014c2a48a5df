//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the trace id of each request, from
//! its `traceparent` header when it has one that is valid, else a fresh random one. The id
//! travels with the request: into its exemplars and its log lines. While a request's handler
//! runs, its trace is the thread's current one ([`TraceId::current`]), as OpenTelemetry makes a
//! span's context current, rather than an extension of the request: that took a map of
//! extensions filled and searched for every request.
//!
//! Only the trace id is kept. The service starts no spans and calls nothing downstream, so it
//! has no parent id of its own to hand on.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::num::NonZeroU128;

use rand::RngExt as _;
use rand::rngs::SmallRng;

use axum::http::{HeaderName, HeaderValue};

/// The header a client names its trace in.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A trace id: 16 bytes, not all zero, written as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(NonZeroU128);

thread_local! {
    /// The trace of the request whose handler this thread is running, if any.
    static CURRENT: Cell<Option<TraceId>> = const { Cell::new(None) };
}

impl TraceId {
    /// The trace of the request whose handler is running on this thread: the RED middleware
    /// makes it current while it polls the handler ([`TraceId::in_scope`]). `None` outside a
    /// request's handler.
    pub fn current() -> Option<Self> {
        CURRENT.get()
    }

    /// Runs `f` with this trace current, and then the one current before (also when `f`
    /// panics).
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<TraceId>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.set(self.0);
            }
        }
        let _restore = Restore(CURRENT.replace(Some(self)));
        f()
    }

    /// The trace of every request a simulation makes up (a history): no request was sent, so
    /// none can be looked up; the exposition's exemplars, which would name it, are dropped.
    pub const SIMULATED: Self = Self(NonZeroU128::MIN);

    /// A fresh trace id, for a request that came without a valid `traceparent`. Drawn from a
    /// fast generator of the thread's own, seeded from the system's, as OpenTelemetry's SDK
    /// draws its ids: an id must be unique, not secret, and the service makes one for most
    /// requests.
    pub fn random() -> Self {
        thread_local! {
            static IDS: RefCell<SmallRng> = RefCell::new(rand::make_rng());
        }
        IDS.with_borrow_mut(|ids| {
            loop {
                if let Some(id) = NonZeroU128::new(ids.random()) {
                    return Self(id);
                }
            }
        })
    }

    /// The trace id of a `traceparent` value, or `None` when the value is not one: the caller
    /// then starts a new trace, as the specification says, and never fails the request.
    ///
    /// `version "-" trace-id "-" parent-id "-" trace-flags`, 2, 32, 16 and 2 lowercase hex
    /// digits. Version `ff` is invalid; version `00` is exactly 55 characters; a later version
    /// may append fields after a dash, which are ignored. A trace id or parent id of zeros is
    /// invalid.
    pub fn from_traceparent(value: &[u8]) -> Option<Self> {
        if value.len() < 55 || [value[2], value[35], value[52]] != [b'-'; 3] {
            return None;
        }
        let version = hex(&value[..2])?;
        let extended = value.len() > 55;
        if version == 0xff || (version == 0 && extended) || (extended && value[55] != b'-') {
            return None;
        }
        let trace = hex(&value[3..35])?;
        let parent = hex(&value[36..52])?;
        hex(&value[53..55])?;
        if parent == 0 {
            return None;
        }
        NonZeroU128::new(trace).map(Self)
    }

    /// A `traceparent` value that starts a trace of this id: version 00, the given parent id
    /// (a span of the caller's; not zero) and the sampled flag.
    pub fn traceparent(&self, parent: u64) -> HeaderValue {
        let mut value = [0u8; 55];
        value[..3].copy_from_slice(b"00-");
        value[3..35].copy_from_slice(&self.digits());
        value[35] = b'-';
        value[36..52].copy_from_slice(&to_hex::<16>(parent.max(1).into()));
        value[52..].copy_from_slice(b"-01");
        HeaderValue::from_bytes(&value).expect("hex digits and dashes are a valid header value")
    }

    /// The 32 lowercase hex digits that [`Display`](fmt::Display) writes, made without the
    /// formatting machinery: every log line of a request to `/` carries them.
    pub(crate) fn digits(&self) -> [u8; 32] {
        to_hex::<32>(self.0.get())
    }
}

impl fmt::Display for TraceId {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.digits();
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

/// The value of lowercase hex digits (at most 32); `None` for any other character.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(v))
    })
}

/// The low `N` hex digits of `value`, lowercase, most significant first (`N` a multiple of
/// 8). Every request's log line writes 32 of them, so eight are made at a time, in the eight
/// bytes of a `u64`, with shifts and masks instead of a lookup per digit.
fn to_hex<const N: usize>(value: u128) -> [u8; N] {
    const { assert!(N.is_multiple_of(8) && N <= 32) };
    /// The eight hex digits of `x`, most significant first.
    fn eight(x: u32) -> [u8; 8] {
        // Each nibble into a byte of its own: the halves apart, then the quarters, then the
        // nibbles; the lowest nibble ends in the lowest byte.
        let mut x = u64::from(x);
        x = (x | x << 16) & 0x0000_ffff_0000_ffff;
        x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
        x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f;
        // A nibble n becomes b'0' + n, and b'a' + n - 10 when n > 9: then n + 6 carries into
        // its byte's bit 4 (no byte overflows into the next).
        let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        (x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
    }
    let mut hex = [0u8; N];
    for (i, digits) in hex.chunks_exact_mut(8).rev().enumerate() {
        digits.copy_from_slice(&eight((value >> (32 * i)) as u32));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn hex_digits_are_the_formatters() {
        for value in [
            1,
            0xff,
            0x0123_4567_89ab_cdef,
            u128::MAX,
            0xf << 124,
            0xabc << 60,
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ]
        .into_iter()
        .chain((0..10_000).map(|_| rand::random::<u128>()))
        {
            assert_eq!(to_hex::<32>(value), format!("{value:032x}").as_bytes());
            let low = value as u64;
            assert_eq!(to_hex::<16>(low.into()), format!("{low:016x}").as_bytes());
            // The low digits only.
            assert_eq!(to_hex::<16>(value), format!("{low:016x}").as_bytes());
        }
    }

    #[test]
    fn a_trace_is_current_in_its_scope_only_and_scopes_nest() {
        let (outer, inner) = (TraceId::random(), TraceId::random());
        assert_eq!(TraceId::current(), None);
        outer.in_scope(|| {
            assert_eq!(TraceId::current(), Some(outer));
            inner.in_scope(|| assert_eq!(TraceId::current(), Some(inner)));
            assert_eq!(TraceId::current(), Some(outer));
            let panicked = std::panic::catch_unwind(|| inner.in_scope(|| panic!("handler bug")));
            assert!(panicked.is_err());
            assert_eq!(TraceId::current(), Some(outer), "restored after a panic");
        });
        assert_eq!(TraceId::current(), None);
    }

    fn parsed(s: &str) -> Option<String> {
        TraceId::from_traceparent(s.as_bytes()).map(|t| t.to_string())
    }

    #[test]
    fn a_valid_traceparent_gives_its_trace_id() {
        assert_eq!(
            parsed(VALID).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // Not sampled is still a trace.
        assert!(parsed(&VALID.replace("-01", "-00")).is_some());
        // A later version with a field of its own: its first four are read.
        let later = VALID.replacen("00-", "cc-", 1) + "-what-comes-next";
        assert_eq!(
            parsed(&later).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn an_invalid_traceparent_gives_none() {
        for bad in [
            "",
            "00",
            &VALID[..54],                     // too short
            &format!("{VALID}-01"),           // version 00 is 55 characters
            &VALID.replacen("00-", "ff-", 1), // version ff
            &VALID.replacen("00-", "0g-", 1), // not hex
            &VALID.to_uppercase(),            // uppercase hex
            &VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)), // zero trace id
            &VALID.replace("00f067aa0ba902b7", &"0".repeat(16)), // zero parent id
            &VALID.replace("-01", "-0x"),     // flags not hex
            &VALID.replace('-', "_"),         // not dashes
            &(VALID.replacen("00-", "cc-", 1) + "x"), // a later version's extra without a dash
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // shifted
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_id_is_written_as_32_lowercase_hex_digits() {
        for id in [
            1,
            0xab,
            u128::MAX,
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ]
        .into_iter()
        .chain((0..10_000).map(|_| rand::random::<u128>()))
        {
            let written = TraceId(NonZeroU128::new(id).unwrap()).to_string();
            assert_eq!(written, format!("{id:032x}"));
        }
    }

    #[test]
    fn a_fresh_id_is_written_and_read_back() {
        let id = TraceId::random();
        assert_eq!(id.to_string().len(), 32);
        let header = id.traceparent(0x00f0_67aa_0ba9_02b7);
        assert_eq!(header, format!("00-{id}-00f067aa0ba902b7-01").as_str());
        assert_eq!(TraceId::from_traceparent(header.as_bytes()), Some(id));
        // A parent id of zero would make the header invalid: it is never written.
        assert!(TraceId::from_traceparent(id.traceparent(0).as_bytes()).is_some());
        assert_ne!(TraceId::random(), TraceId::random());
    }

    #[test]
    fn fresh_ids_differ_within_and_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..50_000).map(|_| TraceId::random()).collect::<Vec<_>>())
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(ids.insert(id), "{id} twice");
            }
        }
        assert_eq!(ids.len(), 200_000);
    }
}
