//! The three exposition formats, and which one a scraper gets.
//!
//! Prometheus asks for OpenMetrics first and falls back to the 0.0.4 text format; with native
//! histograms on, it asks for protobuf before both. Browsers and curl ask for anything. Like
//! the Python client, the service answers OpenMetrics only to a scraper that asks for it by
//! name, and the text format to everyone else; unlike the Python client, it honours `q` values,
//! so a scraper can rank or refuse a format. Protobuf, too, only to a scraper that names it,
//! with the message type and framing that Prometheus reads.

use std::str::FromStr;

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry, Unit};

/// The help text of a family that prometheus-client writes. The crate escapes a help text in
/// the 0.0.4 text format, but writes it as it is in OpenMetrics (client_rust#151), where a
/// backslash, a double quote or a line feed would break the exposition. So no such text gets
/// that far: made in a constant, as [`help!`] makes it, a text that holds one fails the build
/// (`cargo build` and `cargo test`; `cargo check` does not evaluate such a constant). The
/// families this service writes itself escape theirs ([`TextFormat::header`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Help(&'static str);

impl Help {
    /// `text` as a help text; panics (in a constant: fails the build) when it holds a
    /// character that OpenMetrics would need escaped.
    pub(crate) const fn new(text: &'static str) -> Help {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            assert!(
                !matches!(bytes[i], b'\\' | b'"' | b'\n'),
                "a help text holds a backslash, a double quote or a line feed, which \
                 prometheus-client would write unescaped in OpenMetrics"
            );
            i += 1;
        }
        Help(text)
    }
}

/// A [`Help`] made in a constant: a text that OpenMetrics would need escaped fails the build.
macro_rules! help {
    ($text:expr) => {
        const { $crate::metrics::Help::new($text) }
    };
}
pub(crate) use help;

// The only calls of the crate's registration and description: clippy.toml refuses them
// elsewhere, so that every help text the crate writes is a `Help`.

/// Registers `metric` as `name` with `help`.
#[allow(clippy::disallowed_methods)]
pub(crate) fn register(registry: &mut Registry, name: &str, help: Help, metric: impl Metric) {
    registry.register(name, help.0, metric);
}

/// Registers `metric` as `name` in `unit` with `help`.
#[allow(clippy::disallowed_methods)]
pub(crate) fn register_with_unit(
    registry: &mut Registry,
    name: &str,
    help: Help,
    unit: Unit,
    metric: impl Metric,
) {
    registry.register_with_unit(name, help.0, unit, metric);
}

/// Describes a collector's family `name` of type `kind` with `help`; its encoder.
#[allow(clippy::disallowed_methods)]
pub(crate) fn describe<'s>(
    encoder: &'s mut DescriptorEncoder,
    name: &'s str,
    help: Help,
    kind: MetricType,
) -> Result<MetricEncoder<'s>, std::fmt::Error> {
    encoder.encode_descriptor(name, help.0, None, kind)
}

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0.0, text.
    OpenMetrics,
    /// Prometheus' protobuf: `io.prometheus.client.MetricFamily` messages, each after its
    /// length. The only one with native histograms.
    Protobuf,
}

/// The two text formats, which the hand-written families write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// The Prometheus text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0, text.
    OpenMetrics,
}

impl TextFormat {
    /// Writes a family's `# HELP` and `# TYPE` lines, the help escaped as this format says:
    /// a backslash and a line feed in both, a double quote too in OpenMetrics.
    pub(crate) fn header(self, out: &mut String, family: &str, help: &str, kind: &str) {
        out.push_str("# HELP ");
        out.push_str(family);
        out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' if self == TextFormat::OpenMetrics => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        out.push_str("\n# TYPE ");
        out.push_str(family);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
    }
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
                 encoding=delimited"
            }
        }
    }

    /// The text format this is, if it is one.
    pub fn text(self) -> Option<TextFormat> {
        match self {
            Format::Text => Some(TextFormat::Prometheus),
            Format::OpenMetrics => Some(TextFormat::OpenMetrics),
            Format::Protobuf => None,
        }
    }

    /// How specifically `range` names this format, or `None` when it does not apply to it:
    /// OpenMetrics and protobuf only when named (with a version, or the message type and
    /// framing, this service writes); the text format also by `text/*` and `*/*`.
    fn matched_by(self, range: &mime::Mime) -> Option<u8> {
        let param = |name| range.get_param(name).map(|v| v.as_str());
        let named = match (self, range.type_().as_str(), range.subtype().as_str()) {
            (Format::Protobuf, "application", "vnd.google.protobuf") => {
                param("proto") == Some("io.prometheus.client.MetricFamily")
                    && param("encoding") == Some("delimited")
            }
            (Format::OpenMetrics, "application", "openmetrics-text") => {
                matches!(param("version"), None | Some("1.0.0" | "0.0.1"))
            }
            (Format::Text, "text", "plain") => matches!(param("version"), None | Some("0.0.4")),
            (Format::Text, "text", "*") => return Some(1),
            (Format::Text, "*", "*") => return Some(0),
            _ => false,
        };
        named.then(|| specificity(range))
    }

    /// Chooses a format for the `Accept` header's lines, as RFC 9110 (12.5.1) says: each format
    /// takes the `q` of the most specific media range that applies to it, and the highest
    /// above 0 wins; on a tie, protobuf, then OpenMetrics, then the text format. A header
    /// that names none of them (or none at all, or only what does not parse) is disregarded:
    /// the text format. `None` when the text format is refused (`q=0`) and no other is
    /// acceptable: nothing this endpoint has is (406).
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let ranges: Vec<_> = accept.into_iter().flat_map(media_ranges).collect();
        let q = |format: Format| quality(&ranges, |range| format.matched_by(range));
        let offers = [Format::Protobuf, Format::OpenMetrics, Format::Text].map(|f| (f, q(f)));
        let mut best: Option<(Format, f32)> = None;
        for (format, q) in offers {
            if let Some(q) = q.filter(|&q| q > 0.0)
                && best.is_none_or(|(_, b)| q > b)
            {
                best = Some((format, q));
            }
        }
        match (best, offers[2].1) {
            (Some((format, _)), _) => Some(format),
            (None, Some(_)) => None,
            (None, None) => Some(Format::Text),
        }
    }
}

/// The media ranges of an `Accept` header with their `q` values, leaving out those that do not
/// parse or whose `q` is not a number in [0, 1].
pub(crate) fn media_ranges(accept: &str) -> impl Iterator<Item = (mime::Mime, f32)> + '_ {
    accept.split(',').filter_map(|range| {
        let mime = mime::Mime::from_str(range.trim()).ok()?;
        let q = weight(&mime)?;
        Some((mime, q))
    })
}

/// How specific a media range that names a type and subtype is: 2, and 1 more for each of
/// its parameters (`q` aside), as RFC 9110 ranks `text/plain;version=0.0.4` above
/// `text/plain`, above `text/*` (1), above `*/*` (0).
pub(crate) fn specificity(range: &mime::Mime) -> u8 {
    let params = range.params().filter(|(name, _)| *name != "q").count();
    2 + u8::try_from(params).unwrap_or(u8::MAX - 2)
}

/// The `q` that `ranges` give a representation: that of the most specific range that applies
/// to it (`matched_by` says how specifically, or `None`), the first of equally specific ones;
/// `None` when no range applies.
pub(crate) fn quality(
    ranges: &[(mime::Mime, f32)],
    matched_by: impl Fn(&mime::Mime) -> Option<u8>,
) -> Option<f32> {
    let mut best: Option<(u8, f32)> = None;
    for (range, q) in ranges {
        if let Some(specific) = matched_by(range)
            && best.is_none_or(|(b, _)| specific > b)
        {
            best = Some((specific, *q));
        }
    }
    best.map(|(_, q)| q)
}

/// A media range's `q` value: 1 when absent, `None` when it is not a number in [0, 1].
fn weight(mime: &mime::Mime) -> Option<f32> {
    match mime.get_param("q") {
        None => Some(1.0),
        Some(q) => q
            .as_str()
            .parse::<f32>()
            .ok()
            .filter(|q| (0.0..=1.0).contains(q)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_or_with_native_histograms_protobuf() {
        // Verbatim from Prometheus' sources: each version's header, by default and with native
        // histograms on (which puts protobuf first).
        for (who, accept, format) in [
            // v2.42.0 scrape/scrape.go: scrapeAcceptHeader.
            (
                "2.42",
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                Format::OpenMetrics,
            ),
            // v2.42.0 scrape/scrape.go: scrapeAcceptHeaderWithProtobuf.
            (
                "2.42, native histograms",
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,\
                 application/openmetrics-text;version=0.0.1;q=0.75,\
                 text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                Format::Protobuf,
            ),
            // v3.13.2 scrape/scrape_test.go: the default scrape protocols.
            (
                "3.13",
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                 application/openmetrics-text;version=0.0.1;q=0.5,\
                 text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
                 text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                Format::OpenMetrics,
            ),
            // v3.13.2 scrape/scrape_test.go: scrape_native_histograms on.
            (
                "3.13, native histograms",
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited;q=0.6,\
                 application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,\
                 text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
                 text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
                Format::Protobuf,
            ),
        ] {
            assert_eq!(Format::negotiate([accept]), Some(format), "{who}");
        }
    }

    #[test]
    fn a_help_text_is_escaped_as_each_format_says() {
        let help = "a \"quoted\" path C:\\temp\nand a second line";
        let mut text = String::new();
        TextFormat::Prometheus.header(&mut text, "f", help, "gauge");
        assert_eq!(
            text,
            "# HELP f a \"quoted\" path C:\\\\temp\\nand a second line\n# TYPE f gauge\n"
        );
        let mut om = String::new();
        TextFormat::OpenMetrics.header(&mut om, "f", help, "gauge");
        assert_eq!(
            om,
            "# HELP f a \\\"quoted\\\" path C:\\\\temp\\nand a second line\n# TYPE f gauge\n"
        );
    }

    #[test]
    fn a_help_text_that_prometheus_client_would_break_is_refused() {
        // Made at run time here, so that the refusal is a panic to catch: in `help!`, a
        // constant, the same refusal fails the build.
        for text in ["a \"quoted\" word", "C:\\temp", "two\nlines"] {
            let made = std::panic::catch_unwind(|| Help::new(text));
            assert!(made.is_err(), "{text:?} was taken");
        }
        let help = help!("Requests per second, by route (the path of the mix); 0: none");
        let mut registry = Registry::default();
        let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        register(&mut registry, "g", help, gauge);
        let mut om = String::new();
        prometheus_client::encoding::text::encode(&mut om, &registry).unwrap();
        assert!(om.starts_with(
            "# HELP g Requests per second, by route (the path of the mix); 0: none.\n"
        ));
    }

    #[test]
    fn everyone_else_gets_text() {
        for accept in [
            &[][..],
            &[""],
            &["*/*"],
            &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
            &["text/plain;version=0.0.4"],
            &["application/json"],
            &["garbage;;;,=,"],
        ] {
            assert_eq!(
                Format::negotiate(accept.iter().copied()),
                Some(Format::Text),
                "{accept:?}"
            );
        }
    }

    #[test]
    fn weights_are_honoured() {
        let cases = [
            (
                "application/openmetrics-text;q=0.2, text/plain",
                Format::Text,
            ),
            ("application/openmetrics-text;q=0", Format::Text),
            (
                "application/openmetrics-text;q=0.5, */*;q=0.5",
                Format::OpenMetrics,
            ),
            (
                "text/plain;q=0.1, application/openmetrics-text",
                Format::OpenMetrics,
            ),
            ("application/openmetrics-text;q=2", Format::Text),
            ("application/openmetrics-text;q=abc", Format::Text),
            (
                "application/openmetrics-text; version=0.0.1",
                Format::OpenMetrics,
            ),
            ("application/openmetrics-text; version=2.0.0", Format::Text),
            // Protobuf only as Prometheus names it: its message type, each after its length.
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited",
                Format::Protobuf,
            ),
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=text",
                Format::Text,
            ),
            ("application/vnd.google.protobuf", Format::Text),
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited;q=0.5,application/openmetrics-text",
                Format::OpenMetrics,
            ),
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited;q=0,application/openmetrics-text",
                Format::OpenMetrics,
            ),
        ];
        for (accept, format) in cases {
            assert_eq!(Format::negotiate([accept]), Some(format), "{accept}");
        }
    }

    #[test]
    fn the_most_specific_range_decides_a_format_s_weight() {
        for (accept, format) in [
            // text/plain's 0.1, not */*'s 0.9, is the text format's weight.
            (
                "application/openmetrics-text;q=0.5, text/plain;q=0.1, */*;q=0.9",
                Some(Format::OpenMetrics),
            ),
            // The text format refused by name, and nothing else named: 406.
            ("text/plain;q=0, */*", None),
            ("*/*;q=0", None),
            ("text/*;q=0, application/openmetrics-text;q=0", None),
            // ...but a refusal of text/plain in general leaves version 0.0.4 to its own range.
            (
                "text/plain;q=0, text/plain;version=0.0.4;q=0.3",
                Some(Format::Text),
            ),
            ("text/plain;version=0.0.4;q=0, text/plain", None),
            ("text/*;q=0.2, */*", Some(Format::Text)),
            // A version this service does not write does not apply: */* does.
            ("text/plain;version=1.0.0, */*;q=0.1", Some(Format::Text)),
            // Equal weights: protobuf, then OpenMetrics, then text.
            (
                "text/plain;q=0.5, application/openmetrics-text;q=0.5",
                Some(Format::OpenMetrics),
            ),
        ] {
            assert_eq!(Format::negotiate([accept]), format, "{accept}");
        }
    }

    #[test]
    fn several_accept_lines_are_one_list() {
        assert_eq!(
            Format::negotiate(["text/plain;q=0.1", "application/openmetrics-text;q=0.5"]),
            Some(Format::OpenMetrics)
        );
        assert_eq!(
            Format::negotiate(["text/plain;q=0", "*/*"]),
            None,
            "the second line's */* does not undo the first's refusal"
        );
    }
}
