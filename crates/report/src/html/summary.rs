//! The model summary the page shows after a model is opened, rendered like the report: through
//! the escaping writer, inserted as HTML.
//!
//! The view is defined here, not taken from `parallax-model`: the report knows nothing about
//! model files, so the caller converts its summary into this (sizes already in human units).

use super::markup::{markup, Writer};

/// What the summary shows, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryView {
    /// `(label, value)`: the architecture, then the hyperparameters.
    pub facts: Vec<(String, String)>,
    /// `(type, tensors, size)` per tensor type, the size in human units.
    pub types: Vec<(String, u64, String)>,
    pub metadata: Vec<SummaryMeta>,
    pub tensors: Vec<SummaryTensor>,
}

/// One metadata key with its type and a display form of its value.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryMeta {
    pub key: String,
    pub value_type: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SummaryTensor {
    pub name: String,
    /// The role's canonical name, when known.
    pub role: Option<String>,
    pub ty: String,
    /// ggml shape, `ne0` first.
    pub ne: Vec<u64>,
    pub offset: u64,
    pub bytes: u64,
}

/// The summary as an HTML fragment: facts, tensor types, metadata and tensors.
pub fn render_summary(s: &SummaryView) -> String {
    let mut w = Writer::new();
    w.lit("<h2>Model</h2><dl class=\"meta\">");
    for (k, v) in &s.facts {
        markup!(w, "<dt>{}</dt><dd>{}</dd>", k, v);
    }
    w.lit("</dl><h2>Tensor types</h2><p>");
    for (ty, tensors, size) in &s.types {
        markup!(w, "<span class=\"pill\">{} × {} ({})</span>", *tensors, ty, size);
    }
    w.lit("</p><h2>Metadata</h2><table><tr><th>key</th><th>type</th><th>value</th></tr>");
    for m in &s.metadata {
        markup!(
            w,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            m.key,
            m.value_type,
            m.value
        );
    }
    w.lit(
        "</table><h2>Tensors</h2><table class=\"tensors\"><tr><th>name</th><th>role</th>\
         <th>type</th><th>shape (ne0, ne1, …)</th><th class=\"num\">offset</th>\
         <th class=\"num\">bytes</th></tr>",
    );
    for t in &s.tensors {
        let shape: Vec<String> = t.ne.iter().map(|d| d.to_string()).collect();
        markup!(
            w,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td>\
             <td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            t.name,
            t.role.as_deref().unwrap_or("—"),
            t.ty,
            shape.join(" × "),
            t.offset,
            t.bytes
        );
    }
    w.lit("</table>");
    w.finish().into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(evil: &str) -> SummaryView {
        SummaryView {
            facts: vec![("architecture".into(), evil.into()), ("layers".into(), "24".into())],
            types: vec![(evil.into(), 3, "1.5 MB".into())],
            metadata: vec![SummaryMeta {
                key: evil.into(),
                value_type: evil.into(),
                value: evil.into(),
            }],
            tensors: vec![SummaryTensor {
                name: evil.into(),
                role: None,
                ty: "Q4_K".into(),
                ne: vec![896, 151936],
                offset: 4096,
                bytes: 7,
            }],
        }
    }

    #[test]
    fn the_summary_shows_every_part_in_order() {
        let html = render_summary(&view("qwen2"));
        let order = [
            "<h2>Model</h2><dl class=\"meta\"><dt>architecture</dt><dd>qwen2</dd><dt>layers</dt><dd>24</dd></dl>",
            "<span class=\"pill\">3 × qwen2 (1.5 MB)</span>",
            "<tr><td class=\"mono\">qwen2</td><td>qwen2</td><td class=\"mono\">qwen2</td></tr>",
            "<tr><td class=\"mono\">qwen2</td><td class=\"mono\">—</td><td>Q4_K</td><td class=\"mono\">896 × 151936</td><td class=\"num\">4096</td><td class=\"num\">7</td></tr></table>",
        ];
        let mut at = 0;
        for part in order {
            let found =
                html[at..].find(part).unwrap_or_else(|| panic!("{part} not in order in {html}"));
            at += found + part.len();
        }
    }

    #[test]
    fn every_summary_string_is_text() {
        let evil = "<script>x()</script>\"'&";
        let html = render_summary(&view(evil));
        assert!(!html.contains("<script"));
        assert_eq!(html.matches("&lt;script&gt;x()&lt;/script&gt;&quot;&#39;&amp;").count(), 6);
    }
}
