//! The text printer: verdicts as plain lines for a terminal (what `parallax run` prints).

use crate::verdict::{fmt_value, Outcome, Verdicts};

/// One line per test, notes indented below, then the first divergence and the overall verdict.
pub fn verdict_lines(v: &Verdicts) -> Vec<String> {
    let mut out = Vec::new();
    for c in &v.contracts {
        let mut head = format!("contract {}", c.name);
        if let Some(version) = &c.version {
            head.push_str(&format!(" v{version}"));
        }
        if !c.mapping.is_empty() {
            let m: Vec<String> = c.mapping.iter().map(|(a, b)| format!("{a} → {b}")).collect();
            head.push_str(&format!(" ({})", m.join(", ")));
        }
        out.push(head);
        if let Some(s) = &c.source {
            out.push(format!("  restated from {s}"));
        }
        for t in &c.tests {
            let mut line = format!("  {:<14} {}  {}", t.outcome.to_string(), t.id, t.rule);
            match (&t.outcome, &t.first_failure, &t.worst) {
                (Outcome::Fail, Some(m), _) => line.push_str(&format!(
                    " — {}/{} outside {}; first: {m}",
                    t.failed,
                    t.evaluated,
                    t.band.as_deref().unwrap_or("")
                )),
                (Outcome::Explained, Some(m), _) => line.push_str(&format!(
                    " — explained, see below; first outside {}: {m}",
                    t.band.as_deref().unwrap_or("")
                )),
                (Outcome::Measured, _, Some(m)) => line.push_str(&format!(" — {m}")),
                (Outcome::Pass, _, Some(m)) => line.push_str(&format!(
                    " — worst {m}; band {}, {} points",
                    t.band.as_deref().unwrap_or(""),
                    t.evaluated
                )),
                _ => {}
            }
            out.push(line);
            for n in &t.notes {
                out.push(format!("                 {n}"));
            }
        }
    }
    if let Some(d) = &v.first_divergence {
        out.push(format!(
            "first divergence: {} ({} {}): {} outside {}",
            d.at.place(),
            d.contract,
            d.test,
            d.at.value.map_or("no value".to_string(), fmt_value),
            d.band
        ));
        out.push(format!("  {}", d.explanation));
    }
    out.push(format!("verdict: {} — {}", if v.passed() { "PASS" } else { "FAIL" }, v.tally()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::tests::{one_contract, test};

    #[test]
    fn lines_name_the_mapping_every_outcome_and_the_verdict() {
        let mut v = one_contract(vec![test(Outcome::Pass), test(Outcome::NotMeasurable)]);
        let lines = verdict_lines(&v);
        assert_eq!(lines[0], "contract c v1 (apr → f32)");
        assert!(lines.iter().any(|l| l.contains("NOT MEASURABLE")), "{lines:?}");
        assert_eq!(
            lines.last().unwrap(),
            "verdict: PASS — 1 passed, 0 failed, 0 refused, 1 not measurable"
        );
        v.contracts[0].tests.push(test(Outcome::Refused));
        assert!(verdict_lines(&v).last().unwrap().starts_with("verdict: FAIL"));
    }
}
