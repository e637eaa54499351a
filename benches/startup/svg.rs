//! The start-up timeline of one run as a hand-written SVG: one lane per
//! dependency with its attempts (failed, succeeded) and the moment the
//! server started accepting connections, and the HTTP lane with the port
//! closed until the gateway's Ready line and its first `/ready` 200.

use std::fmt::Write;

pub struct Lane {
    pub name: String,
    /// (ms since spawn, succeeded)
    pub attempts: Vec<(f64, bool)>,
    /// When the server started accepting connections (ms since spawn).
    pub up: Option<f64>,
    pub up_label: String,
}

pub struct Timeline {
    pub title: String,
    pub subtitle: String,
    pub lanes: Vec<Lane>,
    /// The gateway's `Ready:` log line (ms since spawn).
    pub ready_line: f64,
    /// The first `/ready` 200 seen by the poller (ms since spawn).
    pub first_200: f64,
}

const WIDTH: f64 = 980.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 85.0;
const LANE: f64 = 70.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn tick_step(span: f64) -> f64 {
    for step in [50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0] {
        if span / step <= 14.0 {
            return step;
        }
    }
    10_000.0
}

pub fn render(t: &Timeline) -> String {
    let last = t
        .lanes
        .iter()
        .flat_map(|l| l.attempts.iter().map(|a| a.0).chain(l.up))
        .chain([t.ready_line, t.first_200])
        .fold(0.0, f64::max);
    let step = tick_step(last * 1.08);
    let span = ((last * 1.08) / step).ceil() * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |ms: f64| LEFT + ms / span * plot_w;
    let lanes = t.lanes.len() as f64 + 1.0;
    let axis_y = TOP + lanes * LANE;
    let height = axis_y + 95.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"##,
        esc(&t.title)
    );
    for (i, line) in t.subtitle.lines().enumerate() {
        let y = 44.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{y}" fill="#555">{}</text>"##,
            esc(line)
        );
    }
    // Grid and axis.
    let mut tick = 0.0;
    while tick <= span + 0.5 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{axis_y}" stroke="#e4e4e4"/>
<text x="{0:.1}" y="{1:.1}" text-anchor="middle" fill="#333">{2}</text>"##,
            x(tick),
            axis_y + 16.0,
            tick
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{:.1}" y2="{axis_y}" stroke="#333"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">ms since the gateway process was spawned</text>"##,
        WIDTH - RIGHT,
        LEFT + plot_w / 2.0,
        axis_y + 34.0
    );
    // Dependency lanes.
    for (i, lane) in t.lanes.iter().enumerate() {
        let y = TOP + LANE * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>
<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#999"/>"##,
            LEFT - 12.0,
            y + 4.0,
            esc(&lane.name),
            WIDTH - RIGHT
        );
        if let Some(up) = lane.up {
            let (ux, band_y, band_w) = (x(up), y - 11.0, (x(span) - x(up)).max(0.0));
            let (top, bottom, tx, ty) = (y - 26.0, y + 26.0, x(up) + 4.0, y - 16.0);
            let label = esc(&lane.up_label);
            let _ = writeln!(
                s,
                r##"<rect x="{ux:.1}" y="{band_y:.1}" width="{band_w:.1}" height="22" fill="#e3f4e1"/>
<line x1="{ux:.1}" y1="{top:.1}" x2="{ux:.1}" y2="{bottom:.1}" stroke="#2e8b57" stroke-width="2" stroke-dasharray="5,3"/>
<text x="{tx:.1}" y="{ty:.1}" fill="#2e8b57">{label}</text>"##
            );
        }
        for (at, ok) in &lane.attempts {
            let (fill, r) = if *ok {
                ("#2e8b57", 6.5)
            } else {
                ("#d62728", 5.0)
            };
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{y:.1}" r="{r}" fill="{fill}" stroke="#fff" stroke-width="1"/>"##,
                x(*at)
            );
        }
    }
    // HTTP lane.
    let y = TOP + LANE * (t.lanes.len() as f64 + 0.5);
    let (label_x, label_y) = (LEFT - 12.0, y + 4.0);
    let (bar_y, closed_w) = (y - 7.0, (x(t.ready_line) - LEFT).max(0.0));
    let (open_x, open_w) = (x(t.ready_line), (x(span) - x(t.ready_line)).max(0.0));
    let (first_x, mark_top, mark_bottom) = (x(t.first_200), y - 26.0, y + 26.0);
    let (closed_x, closed_y) = (LEFT + 6.0, y - 10.0);
    let (note_x, note_y) = (x(t.first_200) - 4.0, y + 24.0);
    let (ready_ms, first_ms) = (t.ready_line, t.first_200);
    let _ = writeln!(
        s,
        r##"<text x="{label_x:.1}" y="{label_y:.1}" text-anchor="end" font-weight="bold">HTTP port</text>
<rect x="{LEFT}" y="{bar_y:.1}" width="{closed_w:.1}" height="14" fill="#cccccc"/>
<text x="{closed_x:.1}" y="{closed_y:.1}" fill="#555">closed</text>
<rect x="{open_x:.1}" y="{bar_y:.1}" width="{open_w:.1}" height="14" fill="#9ecae1"/>
<line x1="{first_x:.1}" y1="{mark_top:.1}" x2="{first_x:.1}" y2="{mark_bottom:.1}" stroke="#1f77b4" stroke-width="2"/>
<text x="{note_x:.1}" y="{note_y:.1}" fill="#1f77b4" text-anchor="end">Ready line {ready_ms:.0} ms, first /ready 200 {first_ms:.0} ms</text>"##
    );
    // Legend.
    let ly = axis_y + 60.0;
    let ty = ly + 4.0;
    let (a, b, c, d) = (LEFT, LEFT + 190.0, LEFT + 440.0, LEFT + 660.0);
    let (at, bt, ct, dt) = (a + 10.0, b + 10.0, c + 10.0, d + 20.0);
    let (c1, c2, dy) = (ly - 8.0, ly + 8.0, ly - 5.0);
    let _ = writeln!(
        s,
        r##"<circle cx="{a:.1}" cy="{ly:.1}" r="5" fill="#d62728"/><text x="{at:.1}" y="{ty:.1}">failed attempt (log line)</text>
<circle cx="{b:.1}" cy="{ly:.1}" r="6.5" fill="#2e8b57"/><text x="{bt:.1}" y="{ty:.1}">successful attempt (debug log line)</text>
<line x1="{c:.1}" y1="{c1:.1}" x2="{c:.1}" y2="{c2:.1}" stroke="#2e8b57" stroke-width="2" stroke-dasharray="5,3"/><text x="{ct:.1}" y="{ty:.1}">server accepts sessions (probe)</text>
<rect x="{d:.1}" y="{dy:.1}" width="14" height="10" fill="#9ecae1"/><text x="{dt:.1}" y="{ty:.1}">HTTP serving</text>
</svg>"##
    );
    s
}

/// One panel of [`rates`]: a lane per series, on a common time axis.
pub struct RatePanel {
    pub title: String,
    /// Time of the first window relative to the panel's zero, ms.
    pub offset_ms: f64,
    /// (name, count per window)
    pub series: Vec<(String, Vec<usize>)>,
}

/// Counts per time window (the herd's attempts per 100 ms) as small
/// multiples: a panel per scenario, a lane per series, one scale per panel.
pub struct Rates {
    pub title: String,
    pub subtitle: String,
    pub window_ms: f64,
    pub panels: Vec<RatePanel>,
}

const RATE_LANE: f64 = 58.0;
const PANEL_GAP: f64 = 62.0;
const COLOURS: [&str; 4] = ["#d62728", "#1f77b4", "#2e8b57", "#9467bd"];

pub fn rates(r: &Rates) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let mut body = String::new();
    let mut y0 = TOP;
    for panel in &r.panels {
        let windows = panel.series.iter().map(|s| s.1.len()).max().unwrap_or(1);
        let span = windows as f64 * r.window_ms;
        let top = panel
            .series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let x = |ms: f64| LEFT + ms / span * plot_w;
        let lanes_h = RATE_LANE * panel.series.len() as f64;
        let axis_y = y0 + lanes_h;
        let _ = writeln!(
            body,
            r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">{} (each lane 0 to {top} per {} ms)</text>"##,
            y0 - 8.0,
            esc(&panel.title),
            r.window_ms
        );
        // Seconds on the axis, relative to the panel's zero.
        let first = (panel.offset_ms / 1000.0).ceil() as i64;
        let last = ((panel.offset_ms + span) / 1000.0).floor() as i64;
        let every = if last - first > 20 { 5 } else { 1 };
        for sec in (first..=last).filter(|s| s % every == 0) {
            let tx = x(sec as f64 * 1000.0 - panel.offset_ms);
            let _ = writeln!(
                body,
                r##"<line x1="{tx:.1}" y1="{y0:.1}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#e4e4e4"/>
<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#333">{sec}</text>"##,
                axis_y + 15.0
            );
        }
        for (i, (name, counts)) in panel.series.iter().enumerate() {
            let base = y0 + RATE_LANE * (i as f64 + 1.0) - 4.0;
            let scale = (RATE_LANE - 10.0) / top;
            let colour = COLOURS[i % COLOURS.len()];
            let mut path = format!("M{LEFT:.1},{base:.1}");
            for (w, c) in counts.iter().enumerate() {
                let (xa, xb) = (x(w as f64 * r.window_ms), x((w + 1) as f64 * r.window_ms));
                let h = base - *c as f64 * scale;
                let _ = write!(path, " L{xa:.1},{h:.1} L{xb:.1},{h:.1}");
            }
            let end = x(counts.len() as f64 * r.window_ms);
            let _ = write!(path, " L{end:.1},{base:.1} Z");
            let _ = writeln!(
                body,
                r##"<line x1="{LEFT}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="#999"/>
<path d="{path}" fill="{colour}" fill-opacity="0.75" stroke="none"/>
<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{colour}">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 8.0,
                base - 8.0,
                esc(&short(name))
            );
        }
        let _ = writeln!(
            body,
            r##"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#333"/>"##,
            WIDTH - RIGHT
        );
        y0 = axis_y + PANEL_GAP;
    }
    let height = y0 - PANEL_GAP + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="24" font-size="16" font-weight="bold">{}</text>
<text x="20" y="44" fill="#555">{}</text>"##,
        esc(&r.title),
        esc(&r.subtitle)
    );
    s.push_str(&body);
    s.push_str("</svg>\n");
    s
}

/// A series name short enough for the lane label: up to its first
/// parenthesis or "+", kept with the jitter.
fn short(name: &str) -> String {
    let base = name.split(" (").next().unwrap_or(name);
    match name.split_once(" + ") {
        Some((_, jitter)) if !base.contains('+') => format!("{base} + {jitter}"),
        _ => base.to_owned(),
    }
}
