//! Renders a report JSON as the standalone HTML report, to look at the renderer's output without
//! a run: `cargo run -p parallax-report --example render_html -- report.json out.html`.

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err("usage: render_html REPORT.json OUT.html".into());
    };
    let text = std::fs::read_to_string(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let report = parallax_report::Report::from_json(&text).map_err(|e| format!("{input}: {e}"))?;
    std::fs::write(output, parallax_report::html::render_standalone(&report))
        .map_err(|e| format!("cannot write {output}: {e}"))
}
