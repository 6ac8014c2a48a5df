//! The three exposition formats, and which one a scraper gets.
//!
//! Prometheus asks for OpenMetrics first and falls back to the 0.0.4 text format; with native
//! histograms on, it asks for protobuf before both. Browsers and curl ask for anything. Like
//! the Python client, the service answers OpenMetrics only to a scraper that asks for it by
//! name, and the text format to everyone else; unlike the Python client, it honours `q` values,
//! so a scraper can rank or refuse a format. Protobuf, too, only to a scraper that names it,
//! with the message type and framing that Prometheus reads.

use std::str::FromStr;

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

    /// Chooses a format for an `Accept` header. Protobuf wins when it is asked for by name
    /// with a weight at least that of any other match, then OpenMetrics, on the same terms
    /// against the text format; for a missing or unparsable header, the text format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut protobuf, mut openmetrics, mut text) = (0.0_f32, 0.0_f32, 0.0_f32);
        for (mime, q) in media_ranges(accept) {
            let param = |name| mime.get_param(name).map(|v| v.as_str());
            let best = match (mime.type_().as_str(), mime.subtype().as_str()) {
                ("application", "vnd.google.protobuf")
                    if param("proto") == Some("io.prometheus.client.MetricFamily")
                        && param("encoding") == Some("delimited") =>
                {
                    &mut protobuf
                }
                ("application", "openmetrics-text")
                    if matches!(param("version"), None | Some("1.0.0" | "0.0.1")) =>
                {
                    &mut openmetrics
                }
                ("text", "plain") if matches!(param("version"), None | Some("0.0.4")) => &mut text,
                ("text", "*") | ("*", "*") => &mut text,
                _ => continue,
            };
            *best = best.max(q);
        }
        if protobuf > 0.0 && protobuf >= openmetrics && protobuf >= text {
            Format::Protobuf
        } else if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
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
            assert_eq!(Format::negotiate(Some(accept)), format, "{who}");
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
    fn everyone_else_gets_text() {
        for accept in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Some("text/plain;version=0.0.4"),
            Some("application/json"),
            Some("garbage;;;,=,"),
        ] {
            assert_eq!(Format::negotiate(accept), Format::Text, "{accept:?}");
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
            assert_eq!(Format::negotiate(Some(accept)), format, "{accept}");
        }
    }
}
