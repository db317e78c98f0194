//! `smoothout-verify report [--out DIR]`: run every theory check, print the
//! table, write it as markdown and JSON (default `docs/verify/`), and exit
//! with status 1 if any row fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use smoothout_verify::report::Report;

const USAGE: &str = "usage: smoothout-verify report [--out DIR]

  report      run every check of the paper's theory (about a minute in release),
              print the table and write DIR/report.md and DIR/report.json
  --out DIR   where to write (default: docs/verify)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = PathBuf::from("docs/verify");
    match args.as_slice() {
        [cmd] if cmd == "report" => {}
        [cmd, flag, dir] if cmd == "report" && flag == "--out" => out = PathBuf::from(dir),
        [h] if h == "--help" || h == "-h" || h == "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("error: unrecognised arguments {args:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let start = Instant::now();
    let report = Report::run_all(|i, n, name| eprintln!("[{}/{n}] {name}", i + 1));
    print!("{}", report.text());
    if let Err(e) = report.write(&out) {
        eprintln!(
            "error: could not write the report to {}: {e}; pass --out DIR with a writable folder",
            out.display()
        );
        return ExitCode::from(1);
    }
    eprintln!(
        "wrote {}/report.md and report.json in {:.1} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    if report.passed() == report.rows.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
