//! The one text-table formatter: cells in columns two spaces apart, each
//! column left- or right-aligned, each line trimmed at its end.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right (text).
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// The lines of `rows` (the header is simply the first row), column `i`
/// aligned as `align[i]`: `align` has an entry per column, and a row may
/// have fewer cells than there are columns.
pub fn lines(rows: &[Vec<String>], align: &[Align]) -> Vec<String> {
    let mut widths = vec![0usize; align.len()];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(align)
                .map(|((cell, &w), align)| match align {
                    Align::Left => format!("{cell:<w$}"),
                    Align::Right => format!("{cell:>w$}"),
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// [`lines`] as one text, each line ended by a newline.
pub fn text(rows: &[Vec<String>], align: &[Align]) -> String {
    lines(rows, align).into_iter().map(|l| l + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn columns_line_up_by_the_widest_cell() {
        let rows = [
            row(&["name", "n", "note"]),
            row(&["a", "1234", ""]),
            row(&["héllo", "5"]),
        ];
        let align = [Align::Left, Align::Right, Align::Left];
        assert_eq!(
            lines(&rows, &align),
            ["name      n  note", "a      1234", "héllo     5"]
        );
        assert_eq!(
            text(&rows, &align),
            "name      n  note\na      1234\nhéllo     5\n"
        );
        assert_eq!(text(&[], &align), "");
    }
}
