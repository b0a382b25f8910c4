//! Escaping by construction: the only ways to put characters into the renderer's output.
//!
//! [`Html`] is markup known to be safe: it is a `'static` literal written in this crate
//! ([`Html::lit`]) or what a [`Writer`] wrote. A writer appends
//! static literals, escaped text, numbers and `Html` — never a `String` as markup. The
//! [`markup!`] macro formats a literal template whose every `{}` hole takes an explicit argument
//! rendered through [`Piece`]: text escaped, numbers as numbers, `Html` as is. A hole that names
//! a variable (`{name}`) would bypass that, so the macro rejects it at compile time.

use std::fmt::{self, Write as _};

/// Markup that is safe to emit: a static literal, or what a [`Writer`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Html(String);

impl Html {
    /// A markup literal of this crate (a `'static` string, never one built at run time).
    pub const fn lit(markup: &'static str) -> HtmlLit {
        HtmlLit(markup)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A static markup literal, rendered as is by [`markup!`] and [`Writer::html`].
#[derive(Debug, Clone, Copy)]
pub struct HtmlLit(&'static str);

impl From<HtmlLit> for Html {
    fn from(l: HtmlLit) -> Html {
        Html(l.0.to_string())
    }
}

/// Escape text for HTML element content and attribute values (`&`, `<`, `>`, `"`, `'`).
fn escape_into(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        out.write_str(entity)?;
        start = i + 1;
    }
    out.write_str(&s[start..])
}

/// An output buffer that takes markup only as static literals or [`Html`], and text only escaped.
#[derive(Debug, Default)]
pub struct Writer(String);

impl Writer {
    pub fn new() -> Writer {
        Writer(String::new())
    }

    /// A markup literal.
    pub fn lit(&mut self, markup: &'static str) {
        self.0.push_str(markup);
    }

    /// Text, escaped.
    pub fn text(&mut self, s: &str) {
        let _ = escape_into(&mut self.0, s);
    }

    /// Markup that is already safe.
    pub fn html(&mut self, h: &Html) {
        self.0.push_str(&h.0);
    }

    /// What [`markup!`] expands to: a template whose holes all went through [`Piece`].
    #[doc(hidden)]
    pub fn template(&mut self, args: fmt::Arguments<'_>) {
        // Writing into a String cannot fail.
        let _ = self.0.write_fmt(args);
    }

    pub fn finish(self) -> Html {
        Html(self.0)
    }
}

/// How a value enters a template: text is escaped, numbers print as numbers (with the hole's
/// precision), markup as is.
pub trait Piece {
    fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl Piece for str {
    fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_into(f, self)
    }
}

impl Piece for String {
    fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_into(f, self)
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).piece(f)
    }
}

impl Piece for Html {
    fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Piece for HtmlLit {
    fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn piece(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}
numbers!(f64, u32, u64, usize, i64);

/// One template argument; formats through [`Piece`].
#[doc(hidden)]
pub struct Arg<'a, T: ?Sized>(pub &'a T);

impl<T: Piece + ?Sized> fmt::Display for Arg<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.piece(f)
    }
}

/// `{:e}` holes: scientific notation, for floats only.
impl fmt::LowerExp for Arg<'_, f64> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerExp::fmt(self.0, f)
    }
}

/// Whether every `{…}` hole of a template is positional (`{}` or `{:spec}`): a hole naming a
/// variable would format it without [`Piece`], so unescaped.
#[doc(hidden)]
pub const fn holes_are_positional(template: &str) -> bool {
    let b = template.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            if i + 1 < b.len() && b[i + 1] == b'{' {
                i += 2;
                continue;
            }
            if i + 1 >= b.len() || (b[i + 1] != b'}' && b[i + 1] != b':') {
                return false;
            }
            // Inside the spec, `$` would take a width or precision from a named variable.
            let mut j = i + 1;
            while j < b.len() && b[j] != b'}' {
                if b[j] == b'$' || b[j] == b'*' {
                    return false;
                }
                j += 1;
            }
            i = j;
        }
        i += 1;
    }
    true
}

/// `markup!(w, "<td class=\"{}\">{:.1}</td>", class, x)`: a static template with explicit,
/// positional arguments, each rendered through [`Piece`] (text escaped).
macro_rules! markup {
    ($w:expr, $template:literal $(, $arg:expr)* $(,)?) => {{
        const _: () = assert!(
            $crate::html::markup::holes_are_positional($template),
            "markup! holes must be positional, each value an argument"
        );
        $w.template(format_args!($template $(, $crate::html::markup::Arg(&$arg))*))
    }};
}
pub(crate) use markup;

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a<b>&\"c\"'d'";
    const ESCAPED: &str = "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;";

    /// Every way a string can enter the output escapes `<`, `>`, `&`, `"` and `'`.
    #[test]
    fn every_text_path_escapes() {
        let mut w = Writer::new();
        w.text(HOSTILE);
        assert_eq!(w.finish().into_string(), ESCAPED);

        let owned: String = HOSTILE.to_string();
        let borrowed: &str = HOSTILE;
        let mut w = Writer::new();
        markup!(w, "<p title=\"{}\">{}|{}</p>", owned, borrowed, &owned);
        assert_eq!(
            w.finish().into_string(),
            format!("<p title=\"{ESCAPED}\">{ESCAPED}|{ESCAPED}</p>")
        );

        // Markup passes through only as `Html`, whose text was escaped when it was written.
        let mut inner = Writer::new();
        inner.text(HOSTILE);
        let made = inner.finish();
        let mut w = Writer::new();
        w.html(&made);
        markup!(w, "{}", made);
        assert_eq!(w.finish().into_string(), format!("{ESCAPED}{ESCAPED}"));
    }

    #[test]
    fn numbers_keep_their_format_and_literals_stay_markup() {
        let mut w = Writer::new();
        markup!(
            w,
            "<x a=\"{:.1}\" b=\"{}\" c=\"{:.3e}\">{}{}</x>",
            1.25f64,
            7u32,
            0.000123f64,
            Html::lit("<b>"),
            3usize
        );
        w.lit("</b>");
        assert_eq!(w.finish().into_string(), "<x a=\"1.2\" b=\"7\" c=\"1.230e-4\"><b>3</x></b>");
    }

    #[test]
    fn templates_that_capture_variables_are_refused() {
        assert!(holes_are_positional("<a>{}</a>{:.1}{{literal}}"));
        assert!(!holes_are_positional("<a>{name}</a>"));
        assert!(!holes_are_positional("<a>{0}</a>"));
        assert!(!holes_are_positional("{:.digits$}"));
        assert!(!holes_are_positional("{:.*}"));
    }

    /// Nothing is dropped or doubled around the escaped characters.
    #[test]
    fn escaping_keeps_the_other_characters() {
        let text = |s: &str| {
            let mut w = Writer::new();
            w.text(s);
            w.finish().into_string()
        };
        assert_eq!(text(""), "");
        assert_eq!(text("σ · “x” ∞"), "σ · “x” ∞");
        assert_eq!(text("&&"), "&amp;&amp;");
        assert_eq!(text("x<"), "x&lt;");
    }
}
