//! Strings from model files and reports are text, never markup: a report whose model name, file
//! name, prompt, token pieces, path ids, site names and notes carry HTML, script and
//! `javascript:` payloads renders with exactly the tags and attributes an honest report has, and
//! the standalone page forbids script by its Content-Security-Policy.

use std::collections::BTreeSet;

use parallax_report::{html, permalink, Report};
use serde_json::Value;

const SEED: &str = include_str!("../../../fuzz/corpus/report_json/tiny-report.json");

fn payload(place: &str) -> String {
    format!("\"'><script>window.__pwned='{place}'</script><img src=x onerror=window.__pwned='{place}'><a href=\"javascript:window.__pwned='{place}'\">")
}

/// Rename every key and string value equal to `from` (path ids, site names) in the JSON tree.
fn rename(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_string(),
        Value::Array(a) => a.iter_mut().for_each(|x| rename(x, from, to)),
        Value::Object(o) => {
            let old = std::mem::take(o);
            for (k, mut x) in old {
                rename(&mut x, from, to);
                o.insert(if k == from { to.to_string() } else { k }, x);
            }
        }
        _ => {}
    }
}

/// The seed report with its per-token statistics filled in (the seed leaves them out to stay
/// small): every site of layer 0 gets the embedding's per-token rows, so token pieces are drawn.
fn seed() -> Value {
    let mut v: Value = serde_json::from_str(SEED).unwrap();
    let embed = v["per_token"]["embed"].clone();
    let sites: serde_json::Map<String, Value> = v["site_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s.as_str().unwrap().to_string(), embed.clone()))
        .collect();
    v["per_token"]["layers"] = Value::Array(vec![Value::Object(sites)]);
    v
}

fn hostile_report() -> Report {
    let mut v = seed();
    v["model"]["name"] = payload("name").into();
    v["model"]["file_name"] = payload("file").into();
    v["model"]["arch"] = payload("arch").into();
    v["prompt"]["text"] = payload("prompt").into();
    v["prompt"]["pieces"] = Value::Array(vec![
        payload("piece").into();
        v["prompt"]["tokens"].as_array().unwrap().len()
    ]);
    v["execution"]["notes"] = Value::Array(vec![payload("note").into()]);
    rename(&mut v, "q8", &payload("path"));
    rename(&mut v, "ffn_gate", &payload("site"));
    Report::from_json(&v.to_string()).expect("the hostile report is a valid report")
}

/// Tag names and attribute names used in `html` (the renderer's vocabulary).
fn vocabulary(html: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut tags, mut attrs) = (BTreeSet::new(), BTreeSet::new());
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let end = rest[at..].find('>').map(|e| at + e).unwrap_or(rest.len());
        let tag = &rest[at + 1..end];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '!')
            .collect();
        tags.insert(name.to_ascii_lowercase());
        // Attribute names: words followed by `=` outside quoted values.
        let mut in_quote = None;
        let mut word = String::new();
        for c in tag.chars() {
            match (in_quote, c) {
                (Some(q), c) if c == q => in_quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => in_quote = Some(c),
                (None, '=') => {
                    attrs.insert(word.to_ascii_lowercase());
                    word.clear();
                }
                (None, c) if c.is_ascii_alphanumeric() || c == '-' || c == ':' => word.push(c),
                (None, _) => word.clear(),
            }
        }
        rest = &rest[end.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    (tags, attrs)
}

#[test]
fn hostile_strings_render_as_text_with_the_honest_tag_vocabulary() {
    let honest = Report::from_json(&seed().to_string()).unwrap();
    let hostile = hostile_report();
    let (honest_tags, honest_attrs) = vocabulary(&html::render_standalone(&honest));
    let page = html::render_standalone(&hostile);
    let (tags, attrs) = vocabulary(&page);
    assert!(
        tags.is_subset(&honest_tags),
        "new tags: {:?}",
        tags.difference(&honest_tags).collect::<Vec<_>>()
    );
    assert!(
        attrs.is_subset(&honest_attrs),
        "new attributes: {:?}",
        attrs.difference(&honest_attrs).collect::<Vec<_>>()
    );
    assert!(!attrs.iter().any(|a| a.starts_with("on")), "event handler attributes: {attrs:?}");
    assert!(!tags.contains("script"));
    for needle in ["<script", "<img", "javascript:window", "onerror=window"] {
        let raw = page.to_ascii_lowercase().matches(needle).count();
        // `javascript:` and `onerror=` may appear as inert text; never inside a tag or href.
        if needle.starts_with('<') {
            assert_eq!(raw, 0, "{needle} appears unescaped");
        }
    }
    assert!(!page.contains("href=\"javascript:"), "a javascript: link");
    // Shown as text: the escaped payload of each place is there.
    for place in ["name", "piece", "path", "site"] {
        assert!(
            page.contains(&format!("&lt;script&gt;window.__pwned=&#39;{place}&#39;")),
            "{place} is not shown as text"
        );
    }
    // The standalone page forbids script outright.
    let csp = page
        .split("Content-Security-Policy\" content=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'none'"), "CSP: {csp}");
    assert!(
        !csp.contains("unsafe-inline'; script") && !csp.contains("script-src 'unsafe"),
        "CSP: {csp}"
    );
    // The fragment the page shows, and a permalink of the hostile report, too.
    let (ftags, fattrs) = vocabulary(&html::render_fragment(&hostile));
    assert!(ftags.is_subset(&honest_tags) && fattrs.is_subset(&honest_attrs));
    let back = permalink::decode(&permalink::encode(&hostile)).unwrap();
    assert_eq!(back.model.name, hostile.model.name);
    let (ptags, pattrs) = vocabulary(&html::render_fragment(&back));
    assert!(ptags.is_subset(&honest_tags) && pattrs.is_subset(&honest_attrs));
}
