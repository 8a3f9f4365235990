//! Reading an inventory as spreadsheets export it: UTF-8 with or without a byte-order mark,
//! LF or CRLF, `,` or `;` between fields (the delimiter is read from the header line), quoted
//! fields, decimal commas in numbers.

use std::collections::BTreeMap;

/// The columns every inventory has.
pub const COLUMNS: &[&str] = &[
    "system_id",
    "institution",
    "registry_id",
    "ownership",
    "kind",
    "district",
    "city",
    "his_vendor",
    "db_engine",
    "db_version",
    "db_size_gib",
    "daily_patients",
    "national_services",
    "rpo_hours",
    "admins_group",
    "state",
    "wave",
];

/// One data row: its line in the file (the header is line 1) and its fields by column.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Line number in the file, for messages.
    pub line: u64,
    fields: BTreeMap<String, String>,
}

impl Row {
    /// The trimmed value of `column` (empty when absent).
    pub fn get(&self, column: &str) -> &str {
        self.fields.get(column).map_or("", |v| v.trim())
    }
}

/// A problem with the file as a whole, or with one line of it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    /// The header lacks columns.
    #[error("the header lacks the columns {0}")]
    MissingColumns(String),
    /// A line that cannot be read as CSV, or has the wrong number of fields.
    #[error("line {line}: {message}")]
    Line {
        /// Line number in the file.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Reads the rows of an inventory; lines that cannot be read are returned as errors beside
/// the rows that can.
pub fn read(bytes: &[u8]) -> Result<(Vec<Row>, Vec<TableError>), TableError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let header_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let semicolons = header_line.iter().filter(|b| **b == b';').count();
    let commas = header_line.iter().filter(|b| **b == b',').count();
    let delimiter = if semicolons > commas { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| TableError::Line {
            line: 1,
            message: e.to_string(),
        })?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let missing: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| !header.iter().any(|h| h == *c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(TableError::MissingColumns(missing.join(", ")));
    }
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = line_at(bytes, e.position().map_or(0, |p| p.byte()));
                errors.push(TableError::Line {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = line_at(bytes, record.position().map_or(0, |p| p.byte()));
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if record.len() != header.len() {
            errors.push(TableError::Line {
                line,
                message: format!("{} fields, the header has {}", record.len(), header.len()),
            });
            continue;
        }
        let fields = header
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_string))
            .collect();
        rows.push(Row { line, fields });
    }
    Ok((rows, errors))
}

/// The line of the record starting at byte `offset`. The reader's own line count is off by
/// one with CRLF (a record then starts at the `\n` of the previous line's end).
fn line_at(bytes: &[u8], offset: u64) -> u64 {
    let end = usize::try_from(offset).map_or(bytes.len(), |o| (o + 1).min(bytes.len()));
    1 + bytes[..end].iter().filter(|b| **b == b'\n').count() as u64
}

/// A number as spreadsheets write it, with a decimal point or a decimal comma.
pub fn number(text: &str) -> Option<f64> {
    let text = text.trim().replace(',', ".");
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(delimiter: &str) -> String {
        COLUMNS.join(delimiter)
    }

    #[test]
    fn bom_crlf_semicolons_and_decimal_commas_are_normal_input() {
        let row = "x;Dom zdravlja;01234567;Public;PrimaryCare;D;Čačak;v;postgresql;15;\"12,5\";10;e-uput;24;g;Planned;2";
        let text = format!("\u{feff}{}\r\n{row}\r\n", header(";"));
        let (rows, errors) = read(text.as_bytes()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("system_id"), "x");
        assert_eq!(rows[0].get("registry_id"), "01234567");
        assert_eq!(rows[0].get("wave"), "2");
        assert_eq!(rows[0].line, 2);
        assert_eq!(number(rows[0].get("db_size_gib")), Some(12.5));
    }

    #[test]
    fn a_short_line_is_reported_with_its_number_and_the_rest_read() {
        let good = vec!["a"; COLUMNS.len()].join(",");
        let text = format!("{}\n{good}\nonly,three,fields\n{good}\n", header(","));
        let (rows, errors) = read(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            errors,
            [TableError::Line {
                line: 3,
                message: format!("3 fields, the header has {}", COLUMNS.len())
            }]
        );
    }

    #[test]
    fn a_header_without_the_columns_is_refused() {
        assert_eq!(
            read(b"system_id,institution\n").unwrap_err(),
            TableError::MissingColumns(COLUMNS[2..].join(", "))
        );
    }
}
