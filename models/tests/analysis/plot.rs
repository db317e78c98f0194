//! The plotting module: files, formats, CSV round trips, error cases and
//! atomic replacement.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use smoothout_models::analysis::{
    write_line_plot, write_surface_plot, LinePlot, PlotFiles, Series, Surface, PLOT_SIZE,
};
use smoothout_models::train::TrainError;

use crate::support::data::TempDir;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Decodes a PNG file into (width, height, RGB bytes).
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(bytes[..8], PNG_SIGNATURE, "{} is not a PNG", path.display());
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.line_size * info.height as usize);
    (info.width, info.height, buf)
}

/// Fraction of pixels that are not the white background.
fn inked_fraction(rgb: &[u8]) -> f64 {
    let pixels = rgb.chunks_exact(3);
    let total = pixels.len();
    let inked = pixels.filter(|p| p != &[255, 255, 255]).count();
    inked as f64 / total as f64
}

/// Number of distinct colours in an RGB buffer.
fn colours(rgb: &[u8]) -> usize {
    let mut seen: Vec<[u8; 3]> = rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Splits one CSV line, honouring RFC 4180 quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn two_curves() -> LinePlot {
    LinePlot {
        title: "Loss along a direction".into(),
        x_label: "alpha".into(),
        y_label: "loss".into(),
        series: vec![
            Series {
                label: "baseline".into(),
                points: (0..=40)
                    .map(|i| {
                        let a = i as f64 / 20.0 - 1.0;
                        (a, 0.2 + 3.0 * a * a)
                    })
                    .collect(),
            },
            Series {
                label: "SmoothOut".into(),
                points: (0..=40)
                    .map(|i| {
                        let a = i as f64 / 20.0 - 1.0;
                        (a, 0.25 + a * a)
                    })
                    .collect(),
            },
        ],
        log_y: false,
    }
}

fn bowl(nx: usize, ny: usize) -> Surface {
    let xs: Vec<f64> = (0..nx)
        .map(|i| -1.0 + 2.0 * i as f64 / (nx - 1) as f64)
        .collect();
    let ys: Vec<f64> = (0..ny).map(|j| -0.5 + j as f64 / (ny - 1) as f64).collect();
    let z = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| x * x + 4.0 * y * y - 0.3 * x * y))
        .collect();
    Surface {
        title: "Loss surface".into(),
        x_label: "direction 1".into(),
        y_label: "direction 2".into(),
        xs,
        ys,
        z,
    }
}

/// The `Config` error's setting and reason, or a panic naming what came instead.
fn config_error(result: Result<PlotFiles, TrainError>) -> (&'static str, String) {
    match result {
        Err(TrainError::Config { setting, reason }) => (setting, reason),
        other => panic!("expected a Config error, got {other:?}"),
    }
}

fn check_svg(path: &Path, texts: &[&str]) {
    let svg = fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(r#"width="800" height="600""#));
    // Plotters writes each text element's content on a line of its own.
    for text in texts {
        assert!(
            svg.lines().any(|l| l.trim() == *text),
            "SVG lacks the text `{text}`"
        );
    }
}

#[test]
fn line_plot_writes_png_svg_and_csv() {
    let dir = TempDir::new("line-files");
    let plot = two_curves();
    let files = write_line_plot(&dir.path().join("sub/loss"), &plot).unwrap();
    assert_eq!(files.png, dir.path().join("sub/loss.png"));
    assert_eq!(files.svg, dir.path().join("sub/loss.svg"));
    assert_eq!(files.csv, dir.path().join("sub/loss.csv"));

    let (w, h, rgb) = decode_png(&files.png);
    assert_eq!((w, h), PLOT_SIZE);
    assert_eq!((w, h), (800, 600));
    assert_eq!(rgb.len(), 800 * 600 * 3);
    check_svg(
        &files.svg,
        &[
            "Loss along a direction",
            "alpha",
            "loss",
            "baseline",
            "SmoothOut",
        ],
    );

    let csv = fs::read_to_string(&files.csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "series,x,y");
    assert_eq!(lines.len(), 1 + 41 + 41);
    assert_eq!(lines[1], "baseline,-1,3.2");
    assert!(lines[42].starts_with("SmoothOut,"));
}

#[test]
fn line_picture_is_not_blank() {
    let dir = TempDir::new("line-ink");
    let files = write_line_plot(&dir.path().join("p"), &two_curves()).unwrap();
    let (_, _, rgb) = decode_png(&files.png);
    let inked = inked_fraction(&rgb);
    assert!(inked > 0.01 && inked < 0.5, "inked fraction {inked}");
    // Both palette colours are present: the first two series were drawn.
    let has = |c: [u8; 3]| rgb.chunks_exact(3).any(|p| p == c);
    assert!(has([31, 119, 180]) && has([255, 127, 14]));
}

#[test]
fn line_csv_round_trips_exactly() {
    let dir = TempDir::new("line-csv");
    let awkward = [
        (0.1, 1.0 / 3.0),
        (-0.0, 5e-324),
        (1e-300, -1e300),
        (1e300, 2.0f64.sqrt()),
        (-7.25, f64::EPSILON),
    ];
    let plot = LinePlot {
        title: "awkward".into(),
        x_label: String::new(),
        y_label: String::new(),
        series: vec![
            Series {
                label: r#"a, "quoted" label"#.into(),
                points: awkward.to_vec(),
            },
            Series {
                label: String::new(),
                points: vec![(3.0, 4.0)],
            },
        ],
        log_y: false,
    };
    let files = write_line_plot(&dir.path().join("awkward"), &plot).unwrap();
    let csv = fs::read_to_string(&files.csv).unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(csv_fields).collect();
    assert_eq!(csv.lines().count(), 1 + awkward.len() + 1);
    let expected = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(move |p| (s.label.as_str(), *p)));
    for (row, (label, (x, y))) in rows.iter().zip(expected) {
        assert_eq!(row.len(), 3, "{row:?}");
        assert_eq!(row[0], label);
        assert_eq!(row[1].parse::<f64>().unwrap().to_bits(), x.to_bits());
        assert_eq!(row[2].parse::<f64>().unwrap().to_bits(), y.to_bits());
    }
}

/// Runs `f` on its own thread and fails if it takes longer than a minute:
/// plotters loops for ever on some ranges, and a hang must fail, not stall CI.
fn within_a_minute(what: &'static str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match finished.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(()) => worker.join().unwrap(),
        // The sender was dropped without sending: `f` panicked.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish"),
    }
}

#[test]
fn log_axis_renders() {
    let dir = TempDir::new("line-log");
    let plot = LinePlot {
        title: "loss over decades".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![Series {
            label: "decay".into(),
            points: (0..200)
                .map(|i| (i as f64, 10f64.powf(2.0 - i as f64 / 25.0)))
                .collect(),
        }],
        log_y: true,
    };
    let files = write_line_plot(&dir.path().join("log"), &plot).unwrap();
    let (_, _, rgb) = decode_png(&files.png);
    assert!(inked_fraction(&rgb) > 0.01);
    check_svg(&files.svg, &["loss over decades", "decay", "1e-4", "100"]);
}

#[test]
fn degenerate_and_extreme_ranges_render() {
    within_a_minute("extreme line plots", || {
        let dir = TempDir::new("line-edges");
        let max = f64::MAX;
        let tiny = 5e-324;
        let cases: Vec<(bool, Vec<(f64, f64)>)> = vec![
            (false, vec![(1.0, 2.0)]),                       // a single point
            (false, vec![(0.0, 0.0), (1.0, 0.0)]),           // flat at zero
            (false, vec![(1.0, 1.0), (2.0, 1.0 + 1e-15)]),   // a few ulps apart
            (false, vec![(tiny, tiny), (1e-323, 0.0)]),      // subnormals
            (false, vec![(-8e307, 8e307), (8e307, -8e307)]), // nearly all of f64
            (false, vec![(max, -max), (max, 0.0)]),          // at the ends
            (true, vec![(0.0, 3.0), (1.0, 3.0)]),            // flat
            (true, vec![(0.0, 1e-154), (1.0, 1e154)]),       // 308 decades
            (true, vec![(0.0, tiny)]),
            (true, vec![(0.0, max)]),
            (true, vec![(0.0, 1.0), (1.0, max)]),
        ];
        for (k, (log_y, points)) in cases.into_iter().enumerate() {
            let plot = LinePlot {
                title: format!("edge {k}"),
                x_label: "x".into(),
                y_label: "y".into(),
                series: vec![Series {
                    label: "s".into(),
                    points,
                }],
                log_y,
            };
            let files = write_line_plot(&dir.path().join(format!("edge{k}")), &plot).unwrap();
            assert_eq!(decode_png(&files.png).0, 800, "case {k}");
        }
    });
    within_a_minute("extreme surfaces", || {
        let dir = TempDir::new("surface-edges");
        let mut s = bowl(3, 3);
        let (max, tiny) = (f64::MAX, 5e-324);
        for (k, z) in [
            [1e-300, 1.0, 1e300], // max / min overflows: linear scale
            [tiny, 1.0, max],
            [-max / 2.0, 0.0, max / 2.0],
            [1.0, 1.0 + 1e-15, 1.0],
            [max, max, max],
            [tiny, tiny, tiny],
            [1e-154, 1.0, 1e154], // 308 decades, logarithmic
        ]
        .into_iter()
        .enumerate()
        {
            s.z = z.iter().cycle().take(9).copied().collect();
            let files = write_surface_plot(&dir.path().join(format!("z{k}")), &s).unwrap();
            assert_eq!(decode_png(&files.png).0, 800, "z case {k}");
        }
        for (k, grid) in [
            vec![0.0, tiny],
            vec![-8e307, 8e307],
            vec![1e15, 1e15 + 0.25],
        ]
        .into_iter()
        .enumerate()
        {
            let s = Surface {
                xs: grid.clone(),
                ys: grid,
                z: vec![1.0, 2.0, 3.0, 4.0],
                ..bowl(2, 2)
            };
            let files = write_surface_plot(&dir.path().join(format!("g{k}")), &s).unwrap();
            assert_eq!(decode_png(&files.png).0, 800, "grid case {k}");
        }
    });
}

#[test]
fn stem_extension_is_appended_not_replaced() {
    let dir = TempDir::new("stem");
    let files = write_line_plot(&dir.path().join("loss.v2"), &two_curves()).unwrap();
    assert_eq!(files.png, dir.path().join("loss.v2.png"));
    assert!(files.csv.exists() && files.svg.exists() && files.png.exists());
}

#[test]
fn surface_writes_png_svg_and_csv() {
    let dir = TempDir::new("surface-files");
    let surface = bowl(31, 21);
    let files = write_surface_plot(&dir.path().join("bowl"), &surface).unwrap();
    let (w, h, rgb) = decode_png(&files.png);
    assert_eq!((w, h), (800, 600));
    // The heat map fills much of the picture with many shades.
    assert!(inked_fraction(&rgb) > 0.3, "{}", inked_fraction(&rgb));
    assert!(colours(&rgb) > 50, "{}", colours(&rgb));
    check_svg(&files.svg, &["Loss surface", "direction 1", "direction 2"]);

    let csv = fs::read_to_string(&files.csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "x,y,z");
    assert_eq!(lines.len(), 1 + 31 * 21);
    for (k, line) in lines[1..].iter().enumerate() {
        let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].to_bits(), surface.xs[k % 31].to_bits(), "row {k}");
        assert_eq!(v[1].to_bits(), surface.ys[k / 31].to_bits(), "row {k}");
        assert_eq!(v[2].to_bits(), surface.z[k].to_bits(), "row {k}");
    }
}

#[test]
fn surface_scales_and_grids_render() {
    let dir = TempDir::new("surface-kinds");
    // Positive values over six decades: logarithmic colour scale.
    let mut decades = bowl(25, 25);
    for z in &mut decades.z {
        *z = 10f64.powf(*z * 2.0 - 3.0);
    }
    // A non-uniform grid, and a constant surface.
    let mut uneven = bowl(4, 3);
    uneven.xs = vec![-3.0, -2.9, 0.0, 10.0];
    uneven.ys = vec![1e-3, 2e-3, 1.0];
    let mut flat = bowl(5, 5);
    flat.z = vec![2.5; 25];
    for (name, s) in [("decades", decades), ("uneven", uneven), ("flat", flat)] {
        let files = write_surface_plot(&dir.path().join(name), &s).unwrap();
        let (w, h, rgb) = decode_png(&files.png);
        assert_eq!((w, h), (800, 600), "{name}");
        assert!(inked_fraction(&rgb) > 0.3, "{name}");
        let rows = fs::read_to_string(&files.csv).unwrap().lines().count();
        assert_eq!(rows, 1 + s.xs.len() * s.ys.len(), "{name}");
    }
}

#[test]
fn same_input_gives_same_bytes() {
    let dir = TempDir::new("deterministic");
    let read = |f: &PlotFiles| [fs::read(&f.png).unwrap(), fs::read(&f.svg).unwrap()];
    let a = write_surface_plot(&dir.path().join("a"), &bowl(9, 7)).unwrap();
    let b = write_surface_plot(&dir.path().join("b"), &bowl(9, 7)).unwrap();
    assert_eq!(read(&a), read(&b));
}

#[test]
fn writing_again_replaces_each_file_whole() {
    let dir = TempDir::new("replace");
    let stem = dir.path().join("pic");
    let mut big = two_curves();
    big.title = "first version".into();
    big.series[0].points = (0..2000).map(|i| (i as f64, (i % 7) as f64)).collect();
    write_line_plot(&stem, &big).unwrap();
    // A stray longer file must not leave a tail behind either.
    fs::write(dir.path().join("pic.svg"), vec![b'x'; 3_000_000]).unwrap();

    let small = LinePlot {
        title: "second version".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        series: vec![Series {
            label: "only".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
        }],
        log_y: false,
    };
    let files = write_line_plot(&stem, &small).unwrap();
    assert_eq!(
        fs::read_to_string(&files.csv).unwrap(),
        "series,x,y\nonly,0,1\nonly,1,2\n"
    );
    let svg = fs::read_to_string(&files.svg).unwrap();
    assert!(svg.contains("second version") && !svg.contains("first version"));
    assert!(!svg.contains("xxxx"));
    assert_eq!(decode_png(&files.png).0, 800);
    // No temporary files are left behind.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["pic.csv", "pic.png", "pic.svg"]);
}

#[test]
fn line_plot_errors_name_the_problem() {
    let dir = TempDir::new("line-errors");
    let stem = dir.path().join("bad");
    let with_points = |points: Vec<(f64, f64)>, log_y: bool| LinePlot {
        series: vec![
            Series {
                label: "fine".into(),
                points: vec![(0.0, 1.0)],
            },
            Series {
                label: "culprit".into(),
                points,
            },
        ],
        log_y,
        ..two_curves()
    };

    let mut no_series = two_curves();
    no_series.series.clear();
    let (setting, reason) = config_error(write_line_plot(&stem, &no_series));
    assert_eq!(setting, "line plot");
    assert!(reason.contains("Loss along a direction") && reason.contains("no series"));

    let (_, reason) = config_error(write_line_plot(&stem, &with_points(vec![], false)));
    assert!(
        reason.contains("culprit") && reason.contains("no points"),
        "{reason}"
    );

    for (points, index) in [
        (vec![(0.0, 1.0), (f64::NAN, 1.0)], "point 1"),
        (vec![(0.0, f64::INFINITY)], "point 0"),
        (
            vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NEG_INFINITY)],
            "point 2",
        ),
    ] {
        let (_, reason) = config_error(write_line_plot(&stem, &with_points(points, false)));
        assert!(
            reason.contains("culprit") && reason.contains(index) && reason.contains("not finite"),
            "{reason}"
        );
    }

    for y in [0.0, -1.0] {
        let (_, reason) = config_error(write_line_plot(
            &stem,
            &with_points(vec![(0.0, 1.0), (1.0, y)], true),
        ));
        assert!(
            reason.contains("culprit") && reason.contains("log"),
            "{reason}"
        );
    }
    // max y / min y overflows: plotters cannot lay out such a log axis.
    let (_, reason) = config_error(write_line_plot(
        &stem,
        &with_points(vec![(0.0, 1e-300), (1.0, 1e300)], true),
    ));
    assert!(reason.contains("decades"), "{reason}");
    // The same values are fine on a linear axis.
    write_line_plot(
        &dir.path().join("ok"),
        &with_points(vec![(0.0, 1.0), (1.0, -1.0)], false),
    )
    .unwrap();

    let (_, reason) = config_error(write_line_plot(
        &stem,
        &with_points(vec![(0.0, -1.7e308), (1.0, 1.7e308)], false),
    ));
    assert!(reason.contains("span"), "{reason}");

    // A rejected plot writes nothing.
    assert!(!dir.path().join("bad.png").exists());
    assert!(!dir.path().join("bad.csv").exists());
}

#[test]
fn surface_errors_name_the_problem() {
    let dir = TempDir::new("surface-errors");
    let stem = dir.path().join("bad");
    let expect = |s: Surface, words: &[&str]| {
        let (setting, reason) = config_error(write_surface_plot(&stem, &s));
        assert_eq!(setting, "surface plot");
        assert!(reason.contains("Loss surface"), "{reason}");
        for w in words {
            assert!(reason.contains(w), "`{reason}` lacks `{w}`");
        }
    };

    let mut s = bowl(3, 3);
    s.xs.truncate(1);
    s.z.truncate(3);
    expect(s, &["xs", "at least 2"]);
    let mut s = bowl(3, 3);
    s.ys.clear();
    s.z.clear();
    expect(s, &["ys", "at least 2"]);

    let mut s = bowl(3, 3);
    s.xs[2] = s.xs[1];
    expect(s, &["xs[2]", "increase"]);
    let mut s = bowl(3, 3);
    s.ys = vec![1.0, 0.0, -1.0];
    expect(s, &["ys[1]", "increase"]);
    let mut s = bowl(3, 3);
    s.xs[0] = f64::NAN;
    expect(s, &["xs[0]", "not finite"]);
    let mut s = bowl(3, 3);
    s.ys[2] = f64::INFINITY;
    expect(s, &["ys[2]", "not finite"]);
    let mut s = bowl(3, 3);
    s.xs = vec![-1.7e308, 0.0, 1.7e308];
    expect(s, &["xs", "span"]);

    let mut s = bowl(3, 4);
    s.z.pop();
    expect(s, &["11", "3 × 4"]);
    let mut s = bowl(3, 4);
    s.z.push(0.0);
    expect(s, &["13"]);

    let mut s = bowl(3, 4);
    s.z[7] = f64::NAN; // xs[1], ys[2]
    expect(s, &["z[7]", "xs[1]", "ys[2]", "not finite"]);
    let mut s = bowl(3, 4);
    s.z[0] = f64::NEG_INFINITY;
    expect(s, &["z[0]", "not finite"]);
    let mut s = bowl(3, 3);
    s.z[0] = -1.7e308;
    s.z[1] = 1.7e308;
    expect(s, &["span"]);

    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing is written"
    );
}

#[test]
fn path_problems_are_typed_errors() {
    let dir = TempDir::new("paths");
    for stem in [Path::new(""), &dir.path().join("..")] {
        let (setting, _) = config_error(write_line_plot(stem, &two_curves()));
        assert_eq!(setting, "plot path");
        let (setting, _) = config_error(write_surface_plot(stem, &bowl(3, 3)));
        assert_eq!(setting, "plot path");
    }
    // A parent that is a file: an Io error naming a path under it.
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    match write_line_plot(&file.join("pic"), &two_curves()) {
        Err(TrainError::Io { path, .. }) => assert!(path.starts_with(&file), "{path:?}"),
        other => panic!("expected an Io error, got {other:?}"),
    }
}
