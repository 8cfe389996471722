//! Blocklist entries as a service: the validation every entry passes
//! (one created through the API, or a row of a bulk import), and the bulk
//! import itself (§5): CSV or NDJSON, up to [`MAX_IMPORT_ROWS`] rows, every
//! row checked before anything is written, then stored in one transaction
//! (all or nothing). Rows that repeat an existing entry (or an earlier row)
//! are reported with their line numbers and skipped, or, when the caller
//! asks, fail the whole import.
use std::collections::HashSet;

use serde::Deserialize;

use crate::{
    domain::{
        ids::object_id,
        lists::{FLOW_SCOPES, SEVERITIES, SOURCES, is_list_type, normalize_value},
        parse_rfc3339_ms,
    },
    store::{BlocklistEntry, Store, StoreError},
};

/// The most rows one import may carry.
pub const MAX_IMPORT_ROWS: usize = 1_000_000;
/// How many row errors or duplicates an answer lists (all are counted).
pub const MAX_LISTED: usize = 100;

/// An entry as a client sends it.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct EntryFields {
    pub list_type: Option<String>,
    pub value: Option<String>,
    pub flow_scope: Option<String>,
    pub severity: Option<String>,
    pub reason: Option<String>,
    pub source: Option<String>,
    pub expires_at: Option<String>,
}

/// Why an entry is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// `list_type` is not a known list type.
    InvalidType(String),
    /// `severity` is not `block`, `flag` or `review`.
    InvalidSeverity(String),
    /// Another field: its name and what is wrong.
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl EntryError {
    pub fn field(&self) -> &'static str {
        match self {
            Self::InvalidType(_) => "list_type",
            Self::InvalidSeverity(_) => "severity",
            Self::Invalid { field, .. } => field,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::InvalidType(m) | Self::InvalidSeverity(m) | Self::Invalid { message: m, .. } => m,
        }
    }
}

fn invalid(field: &'static str, message: String) -> EntryError {
    EntryError::Invalid { field, message }
}

/// Validates and normalizes `fields` into an entry of `tenant_id`:
/// defaults `flow_scope` `all`, `severity` `block`, `source` `manual`.
pub fn validate(
    tenant_id: &str,
    fields: EntryFields,
    now: i64,
) -> Result<BlocklistEntry, EntryError> {
    let list_type = fields
        .list_type
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("list_type", "is required".into()))?;
    if !is_list_type(&list_type) {
        return Err(EntryError::InvalidType(format!(
            "`{list_type}` is not a known list type"
        )));
    }
    let raw = fields
        .value
        .ok_or_else(|| invalid("value", "is required".into()))?;
    let value = normalize_value(&list_type, &raw).ok_or_else(|| {
        invalid(
            "value",
            format!("`{raw}` is not a valid `{list_type}` value"),
        )
    })?;
    let flow_scope = fields
        .flow_scope
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "all".to_owned());
    if !FLOW_SCOPES.contains(&flow_scope.as_str()) {
        return Err(invalid(
            "flow_scope",
            format!("`{flow_scope}` is not one of `payin`, `payout`, `all`"),
        ));
    }
    let severity = fields
        .severity
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "block".to_owned());
    if !SEVERITIES.contains(&severity.as_str()) {
        return Err(EntryError::InvalidSeverity(format!(
            "`{severity}` is not one of `block`, `flag`, `review`"
        )));
    }
    let source = fields
        .source
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "manual".to_owned());
    if !SOURCES.contains(&source.as_str()) {
        return Err(invalid(
            "source",
            format!("`{source}` is not a known source"),
        ));
    }
    let expires_at = match fields.expires_at.filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(s) => Some(
            parse_rfc3339_ms(&s)
                .ok_or_else(|| invalid("expires_at", format!("`{s}` is not an RFC 3339 time")))?,
        ),
    };
    Ok(BlocklistEntry {
        id: object_id("bl"),
        tenant_id: tenant_id.to_owned(),
        list_type,
        value,
        flow_scope,
        severity,
        reason: fields.reason.filter(|r| !r.trim().is_empty()),
        source,
        is_active: true,
        expires_at,
        created_at: now,
        updated_at: now,
    })
}

/// The format of an import body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header line naming the columns (`list_type`, `value`, and any of
    /// `flow_scope`, `severity`, `reason`, `source`, `expires_at`).
    Csv,
    /// One JSON object per line, with the same field names.
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

/// A row that is not valid: its line (1-based, the CSV header is line 1),
/// the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub field: String,
    pub message: String,
}

/// A row that repeats an existing entry or an earlier row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub line: u64,
    pub list_type: String,
    pub value: String,
    pub flow_scope: String,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub format: Format,
    pub rows: usize,
    pub inserted: usize,
    pub duplicate_count: usize,
    /// The first [`MAX_LISTED`] duplicates.
    pub duplicates: Vec<Duplicate>,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows are not valid: the first [`MAX_LISTED`] and how many in all.
    #[error("{count} rows are not valid")]
    Invalid { errors: Vec<RowError>, count: usize },
    /// Duplicates were asked to fail the import.
    #[error("{count} rows repeat existing entries or earlier rows")]
    Duplicates {
        duplicates: Vec<Duplicate>,
        count: usize,
    },
    #[error("the import has no rows")]
    Empty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows parsed so far: the valid entries with their lines, the errors.
#[derive(Debug, Default)]
struct Parsed {
    entries: Vec<(u64, BlocklistEntry)>,
    errors: Vec<RowError>,
    error_count: usize,
}

impl Parsed {
    fn row(&mut self, line: u64, tenant_id: &str, fields: EntryFields, now: i64) {
        match validate(tenant_id, fields, now) {
            Ok(e) => self.entries.push((line, e)),
            Err(e) => self.error(line, e.field(), e.message().to_owned()),
        }
    }

    fn error(&mut self, line: u64, field: &str, message: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_LISTED {
            self.errors.push(RowError {
                line,
                field: field.to_owned(),
                message,
            });
        }
    }

    fn rows(&self) -> usize {
        self.entries.len() + self.error_count
    }
}

const COLUMNS: &[&str] = &[
    "list_type",
    "value",
    "flow_scope",
    "severity",
    "reason",
    "source",
    "expires_at",
];

fn parse_csv(body: &[u8], tenant_id: &str, now: i64) -> Parsed {
    let mut parsed = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_ascii_lowercase).collect(),
        Err(e) => {
            parsed.error(1, "header", format!("not a CSV header: {e}"));
            return parsed;
        }
    };
    for name in &header {
        if !COLUMNS.contains(&name.as_str()) {
            parsed.error(
                1,
                "header",
                format!("unknown column `{name}` (columns: {})", COLUMNS.join(", ")),
            );
        }
    }
    for required in ["list_type", "value"] {
        if !header.iter().any(|h| h == required) {
            parsed.error(1, "header", format!("the `{required}` column is required"));
        }
    }
    if parsed.error_count > 0 {
        return parsed;
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let cols: Vec<Option<usize>> = COLUMNS.iter().map(|c| col(c)).collect();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                parsed.error(line, "row", format!("not a CSV row: {e}"));
                if parsed.rows() > MAX_IMPORT_ROWS {
                    break;
                }
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let get = |i: usize| cols[i].and_then(|c| record.get(c)).map(str::to_owned);
        let fields = EntryFields {
            list_type: get(0),
            value: get(1),
            flow_scope: get(2),
            severity: get(3),
            reason: get(4),
            source: get(5),
            expires_at: get(6),
        };
        parsed.row(line, tenant_id, fields, now);
        if parsed.rows() > MAX_IMPORT_ROWS {
            break;
        }
    }
    parsed
}

fn parse_ndjson(body: &[u8], tenant_id: &str, now: i64) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<EntryFields>(line) {
            Ok(fields) => parsed.row(line_no, tenant_id, fields, now),
            Err(e) => parsed.error(line_no, "row", format!("not a JSON object: {e}")),
        }
        if parsed.rows() > MAX_IMPORT_ROWS {
            break;
        }
    }
    parsed
}

/// Parses and validates every row of `body` (CPU work: call it off the
/// async workers).
fn parse(format: Format, body: &[u8], tenant_id: &str, now: i64) -> Parsed {
    match format {
        Format::Csv => parse_csv(body, tenant_id, now),
        Format::Ndjson => parse_ndjson(body, tenant_id, now),
    }
}

/// Imports `body` into the tenant's blocklists: all rows or none.
pub async fn import(
    store: &Store,
    tenant_id: &str,
    format: Format,
    body: bytes::Bytes,
    fail_on_duplicates: bool,
    now: i64,
) -> Result<ImportReport, ImportError> {
    let tenant = tenant_id.to_owned();
    let parsed = tokio::task::spawn_blocking(move || parse(format, &body, &tenant, now))
        .await
        .map_err(|e| StoreError::Corrupt(format!("import parser: {e}")))?;
    if parsed.rows() > MAX_IMPORT_ROWS {
        return Err(ImportError::Invalid {
            errors: vec![RowError {
                line: 0,
                field: "body".into(),
                message: format!("more than {MAX_IMPORT_ROWS} rows; split the file"),
            }],
            count: 1,
        });
    }
    if parsed.error_count > 0 {
        return Err(ImportError::Invalid {
            count: parsed.error_count,
            errors: parsed.errors,
        });
    }
    if parsed.entries.is_empty() {
        return Err(ImportError::Empty);
    }
    // Repeats within the file first: the later row is the duplicate.
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::with_capacity(parsed.entries.len());
    let mut duplicates: Vec<Duplicate> = Vec::new();
    let mut fresh: Vec<&BlocklistEntry> = Vec::with_capacity(parsed.entries.len());
    let mut fresh_lines: Vec<u64> = Vec::with_capacity(parsed.entries.len());
    let duplicate = |line: u64, e: &BlocklistEntry| Duplicate {
        line,
        list_type: e.list_type.clone(),
        value: e.value.clone(),
        flow_scope: e.flow_scope.clone(),
    };
    for (line, e) in &parsed.entries {
        if seen.insert((&e.list_type, &e.value, &e.flow_scope)) {
            fresh.push(e);
            fresh_lines.push(*line);
        } else {
            duplicates.push(duplicate(*line, e));
        }
    }
    if fail_on_duplicates && !duplicates.is_empty() {
        let count = duplicates.len();
        duplicates.truncate(MAX_LISTED);
        return Err(ImportError::Duplicates { duplicates, count });
    }
    let existing = store
        .import_blocklist_entries(&fresh, fail_on_duplicates)
        .await?;
    for i in &existing.skipped {
        duplicates.push(duplicate(fresh_lines[*i], fresh[*i]));
    }
    duplicates.sort_by_key(|d| d.line);
    let duplicate_count = duplicates.len();
    if fail_on_duplicates && duplicate_count > 0 {
        duplicates.truncate(MAX_LISTED);
        return Err(ImportError::Duplicates {
            duplicates,
            count: duplicate_count,
        });
    }
    duplicates.truncate(MAX_LISTED);
    Ok(ImportReport {
        format,
        rows: parsed.entries.len(),
        inserted: existing.inserted,
        duplicate_count,
        duplicates,
    })
}
