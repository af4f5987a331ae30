//! Fitting the text views to the terminal: its width (`COLUMNS`, else the terminal's own; none when
//! the output is not a terminal, so a pipe or a file gets every value whole), tables that shorten a
//! cell, shed columns and clip one to fit, and lines cut with an ellipsis. Pure but for the width.

/// The width to fit: `COLUMNS` when set, else stdout's terminal's, else `None` (no limit).
pub(crate) fn terminal_width() -> Option<usize> {
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|c| *c > 0) {
        return Some(cols);
    }
    #[cfg(unix)]
    {
        let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct we own; on a non-terminal it fails.
        let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
        if rc == 0 && size.ws_col > 0 {
            return Some(usize::from(size.ws_col));
        }
    }
    None
}

/// How a table may give way when it is wider than the terminal, in this order: one column's cells
/// shortened to a prefix (a session id to 8 characters: `show` takes a prefix), columns dropped
/// (least useful first), one column clipped with an ellipsis down to `min` characters.
pub(crate) struct Fit<'a> {
    pub(crate) shorten: Option<(usize, usize)>,
    pub(crate) drop: &'a [usize],
    pub(crate) clip: Option<(usize, usize)>,
}

/// A table: a header, rows, right-aligned columns where `right` says; within `width` if given.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], right: &[bool], width: Option<usize>, fit: &Fit) -> String {
    let mut header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut rows: Vec<Vec<String>> = rows.to_vec();
    let mut right = right.to_vec();
    let Some(width) = width else { return render(&header, &rows, &right) };
    let too_wide = |h: &[String], r: &[Vec<String>]| total(h, r) > width;
    if too_wide(&header, &rows) {
        if let Some((col, keep)) = fit.shorten {
            for row in &mut rows {
                row[col] = prefix(&row[col], keep);
            }
        }
    }
    // drop columns (indices into the original table, so later ones shift as earlier go)
    let mut present: Vec<usize> = (0..header.len()).collect();
    for &col in fit.drop {
        if !too_wide(&header, &rows) {
            break;
        }
        if let Some(at) = present.iter().position(|&c| c == col) {
            present.remove(at);
            header.remove(at);
            right.remove(at);
            rows.iter_mut().for_each(|r| {
                r.remove(at);
            });
        }
    }
    if let Some((col, min)) = fit.clip {
        if let Some(at) = present.iter().position(|&c| c == col) {
            let total = total(&header, &rows);
            if total > width {
                let now = widths(&header, &rows)[at];
                let keep = now.saturating_sub(total - width).max(min);
                rows.iter_mut().for_each(|r| r[at] = ellipsis(&r[at], keep));
            }
        }
    }
    render(&header, &rows, &right)
}

fn widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in w.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    w
}

/// The table's width: its columns and the two spaces between each.
fn total(header: &[String], rows: &[Vec<String>]) -> usize {
    widths(header, rows).iter().sum::<usize>() + 2 * header.len().saturating_sub(1)
}

fn render(header: &[String], rows: &[Vec<String>], right: &[bool]) -> String {
    let widths = widths(header, rows);
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            if right[i] {
                out.push_str(&pad);
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&pad);
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// The first `keep` characters (after a leading `└ ` marker, which stays).
fn prefix(cell: &str, keep: usize) -> String {
    let (mark, rest) = match cell.strip_prefix("└ ") {
        Some(rest) => ("└ ", rest),
        None => ("", cell),
    };
    format!("{mark}{}", rest.chars().take(keep).collect::<String>())
}

/// `s` in at most `max` characters, the last one `…` when cut.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Every line of `text` cut to `width` characters (with `…`), when a width is given.
pub(crate) fn cut_lines(text: &str, width: Option<usize>) -> String {
    let Some(width) = width else { return text.to_owned() };
    text.lines().map(|l| ellipsis(l, width) + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "2cfb142e-3e2c-45c5-8192-58e43d4a510f".into(),
                "a-very-long-project-name-indeed".into(),
                "12".into(),
                "ok".into(),
            ],
            vec!["└ 00a76290-c5ee-4f57-8547-da6ae7fd4aa8".into(), "p".into(), "3".into(), "ok".into()],
        ]
    }
    const HEADER: [&str; 4] = ["SESSION", "PROJECT", "TOOLS", "STATE"];
    const RIGHT: [bool; 4] = [false, false, true, false];
    const FIT: Fit = Fit { shorten: Some((0, 8)), drop: &[2], clip: Some((1, 6)) };

    /// Wide enough: untouched. Narrower: the id shortened (its marker kept), then a column shed,
    /// then the project clipped; every line within the width. No width (a pipe): whole values.
    #[test]
    fn a_table_gives_way_in_order_to_fit_the_width() {
        let whole = table(&HEADER, &rows(), &RIGHT, None, &FIT);
        assert!(whole.contains("2cfb142e-3e2c-45c5-8192-58e43d4a510f") && whole.contains("TOOLS"), "{whole}");
        assert_eq!(table(&HEADER, &rows(), &RIGHT, Some(200), &FIT), whole);
        let shorter = table(&HEADER, &rows(), &RIGHT, Some(60), &FIT);
        assert!(
            shorter.contains("2cfb142e  ") && shorter.contains("└ 00a76290") && shorter.contains("TOOLS"),
            "{shorter}"
        );
        let shed = table(&HEADER, &rows(), &RIGHT, Some(52), &FIT);
        assert!(!shed.contains("TOOLS") && shed.contains("a-very-long-project-name-indeed"), "{shed}");
        let clipped = table(&HEADER, &rows(), &RIGHT, Some(30), &FIT);
        assert!(clipped.contains('…') && !clipped.contains("TOOLS"), "{clipped}");
        for (w, text) in [(60, &shorter), (52, &shed), (30, &clipped)] {
            assert!(text.lines().all(|l| l.chars().count() <= w), "width {w}:\n{text}");
        }
    }

    #[test]
    fn lines_are_cut_with_an_ellipsis() {
        assert_eq!(cut_lines("short\na much longer line\n", Some(8)), "short\na much …\n");
        assert_eq!(cut_lines("a much longer line\n", None), "a much longer line\n");
    }
}
