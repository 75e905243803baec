//! The SVG of a run: throughput (NAT and forwarding) and added latency against the
//! number of active sessions, one panel each, log-scaled session axis. Drawn with
//! plotters' SVG backend, which writes text as SVG `<text>` and needs no font files.

use std::path::Path;

use plotters::prelude::*;

use crate::results::Report;

/// Write `report`'s plot to `path` (SVG).
pub fn write_svg(report: &Report, path: &Path) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    if report.points.is_empty() {
        return Err("nothing to plot: no measurement points".into());
    }
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (top, bottom) = root.split_vertically(350);
    let xs: Vec<f64> = report.points.iter().map(|p| p.sessions.max(1) as f64).collect();
    let (xmin, xmax) = (xs.iter().cloned().fold(f64::MAX, f64::min), xs.iter().cloned().fold(0.0, f64::max));
    let (xmin, xmax) = (xmin / 2.0, xmax * 2.0);
    let ymax = report.points.iter().map(|p| p.nat_mpps.max(p.forward_mpps)).fold(0.0, f64::max) * 1.15 + 0.1;

    let mut c = ChartBuilder::on(&top)
        .caption(
            format!("masq-bench: throughput, 1 worker, {} B {}", report.frame_size, report.proto),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("active sessions")
        .y_desc("Mpps")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    let nat: Vec<(f64, f64)> = report.points.iter().map(|p| (p.sessions.max(1) as f64, p.nat_mpps)).collect();
    let fwd: Vec<(f64, f64)> = report.points.iter().map(|p| (p.sessions.max(1) as f64, p.forward_mpps)).collect();
    c.draw_series(LineSeries::new(nat.clone(), RED.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label("NAT (MASQUERADE)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.draw_series(nat.iter().map(|&p| Circle::new(p, 3, RED.filled()))).map_err(|x| e(&x))?;
    c.draw_series(LineSeries::new(fwd.clone(), BLUE.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label("forwarding (no NAT)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.draw_series(fwd.iter().map(|&p| Circle::new(p, 3, BLUE.filled()))).map_err(|x| e(&x))?;
    c.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|x| e(&x))?;

    let lat = |load: f64, pick: fn(&crate::results::LatencyPoint) -> f64| -> Vec<(f64, f64)> {
        report
            .points
            .iter()
            .filter_map(|p| {
                p.latency.iter().find(|l| (l.load - load).abs() < 1e-6).map(|l| (p.sessions.max(1) as f64, pick(l)))
            })
            .collect()
    };
    let series = [
        ("p99 at 50 % load", lat(0.5, |l| l.p99_us), RED),
        ("p50 at 50 % load", lat(0.5, |l| l.p50_us), MAGENTA),
        ("p99 at 90 % load", lat(0.9, |l| l.p99_us), BLACK),
        ("p99 at 10 % load", lat(0.1, |l| l.p99_us), GREEN),
    ];
    // Latency spans µs (the worker) to ms (a preempted worker on a shared machine): log.
    let series = series.map(|(n, d, c)| (n, d.into_iter().map(|(x, y)| (x, y.max(0.1))).collect::<Vec<_>>(), c));
    let lmax = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(1.0, f64::max) * 2.0;
    let mut c = ChartBuilder::on(&bottom)
        .caption("latency added by the worker (generator -> worker -> sink)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((xmin..xmax).log_scale(), (0.1..lmax).log_scale())
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("active sessions")
        .y_desc("µs (log)")
        .y_label_formatter(&|v| format!("{v}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (name, data, color) in series {
        if data.is_empty() {
            continue;
        }
        c.draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        c.draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|x| e(&x))?;
    }
    c.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LatencyPoint, Point};

    #[test]
    fn writes_an_svg_with_both_panels() {
        let mut r = Report { frame_size: 64, proto: "udp".into(), ..Default::default() };
        for (i, s) in [1000u64, 100_000, 1_000_000].into_iter().enumerate() {
            r.points.push(Point {
                sessions: s,
                nat_mpps: 5.0 - i as f64,
                forward_mpps: 9.0,
                latency: vec![LatencyPoint { load: 0.5, p50_us: 2.0, p99_us: 4.0 + i as f64, ..Default::default() }],
                ..Default::default()
            });
        }
        let path = std::env::temp_dir().join(format!("masq-bench-plot-{}.svg", std::process::id()));
        write_svg(&r, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("forwarding (no NAT)"));
        assert!(svg.contains("p99 at 50 % load"));
        assert!(svg.matches("<polyline").count() >= 3, "one line per series");
        assert!(write_svg(&Report::default(), &path).is_err());
    }
}
