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
